"""Maildir++ folders of one account: where message files live and how they get there.

Layout of `<data>/mail/<address>/`:
    cur/ new/ tmp/              the inbox
    .Sent/cur/ …                a mailbox "Sent"; "Archive/2024" lives in ".Archive.2024"
    index.sqlite3               the index (see index.py)

Mailbox names map to folder names one way: each level is percent-encoded outside letters,
digits, space, "-" and "_" (so a "." or "/" in a name can never mean a level), and levels are
joined with ".". Message files are named `<unique>,S=<size>`; flags live in the index, not in the
name, so changing flags never renames a file.

A file is written to tmp/, flushed, renamed into cur/, and cur/ is flushed before the index is
told: a message the index knows is always complete on disk.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from pathlib import Path
from urllib.parse import quote, unquote

from pcloud.store.durable import fsync_folder

INBOX = "INBOX"
SUBFOLDERS = ("cur", "new", "tmp")
_SAFE = "-_ "
_counter = itertools.count()


def folder_name(mailbox: str) -> str:
    """ "INBOX" -> "", "Archive/2024" -> ".Archive.2024", "a.b" -> ".a%2Eb"."""
    if mailbox == INBOX:
        return ""
    return "".join(
        "." + quote(level, safe=_SAFE).replace(".", "%2E") for level in mailbox.split("/")
    )


def mailbox_name(folder: str) -> str:
    if folder == "":
        return INBOX
    return "/".join(unquote(level) for level in folder[1:].split("."))


def create_folder(account_dir: Path, folder: str) -> Path:
    path = account_dir / folder if folder else account_dir
    for sub in SUBFOLDERS:
        (path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    fsync_folder(path)
    fsync_folder(path.parent)
    return path


def unique_name(size: int) -> str:
    """Maildir's unique part: time, process, a counter and the host, plus the size."""
    now = time.time()
    seconds, micro = int(now), int(now % 1 * 1_000_000)
    host = socket.gethostname().replace("/", "_").replace(":", "_").replace(",", "_")
    return f"{seconds}.M{micro}P{os.getpid()}Q{next(_counter)}.{host},S={size}"


def write_message(folder_path: Path, message: bytes, *, flush_folder: bool = True) -> str:
    """Write a message durably into cur/; returns its file name there. With flush_folder
    False the caller flushes cur/ itself (once for several messages)."""
    name = unique_name(len(message))
    temporary = folder_path / "tmp" / name
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(message)
            file.flush()
            os.fsync(file.fileno())
        os.rename(temporary, folder_path / "cur" / name)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if flush_folder:
        fsync_folder(folder_path / "cur")
    return name


def link_message(source: Path, folder_path: Path) -> str:
    """A copy of a message file into another folder: a hard link, as the content never changes."""
    name = unique_name(source.stat().st_size)
    os.link(source, folder_path / "cur" / name)
    fsync_folder(folder_path / "cur")
    return name


def message_files(folder_path: Path) -> dict[str, Path]:
    """Every message file of a folder, by name, moving any found in new/ into cur/
    (put there by another program that writes Maildir)."""
    for path in (folder_path / "new").iterdir():
        os.rename(path, folder_path / "cur" / path.name)
    return {path.name: path for path in (folder_path / "cur").iterdir() if path.is_file()}
