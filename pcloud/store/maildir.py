"""Maildir++ folders of one account: where message files live and how they get there.

Layout of `<data>/mail/<address>/`:
    cur/ new/ tmp/              the inbox
    .Sent/cur/ …                a mailbox "Sent"; "Archive/2024" lives in ".Archive.2024"
    index.sqlite3               the index (see index.py)

Mailbox names map to folder names one way: each level is percent-encoded outside letters,
digits, space, "-" and "_" (so a "." or "/" in a name can never mean a level), and levels are
joined with ".". Message files are named `<unique>,S=<size>`; flags live in the index, not in the
name, so changing flags never renames a file.

A file is written to tmp/, flushed and renamed into cur/, after the index has committed it (with
its content, until the file is on disk: see mail.py), so a file in cur/ is complete and one the
index knows. tmp/ also holds expunged files on their way out (`expunged-*`) and, in the
account's own tmp/, deleted mailboxes' folders (`deleted-*`).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import time
from pathlib import Path
from urllib.parse import quote, unquote

from pcloud.store.durable import fsync_folder

INBOX = "INBOX"
SUBFOLDERS = ("cur", "new", "tmp")
STALE_AFTER = 36 * 3600  # seconds a file may stay in tmp/
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


def write_message(folder_path: Path, name: str, message: bytes) -> None:
    """Write a message file durably into the folder's tmp/ (over what a crash may have left
    there); the mail store renames it into cur/."""
    temporary = folder_path / "tmp" / name
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(message)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def link_message(source: Path, folder_path: Path) -> str:
    """A copy of a message file into another folder's cur/: a hard link, as the content never
    changes. The caller flushes cur/ (once for several links)."""
    name = unique_name(source.stat().st_size)
    os.link(source, folder_path / "cur" / name)
    return name


def message_files(folder_path: Path) -> dict[str, Path]:
    """Every message file of a folder, by name, moving any found in new/ into cur/
    (put there by another program that writes Maildir)."""
    for path in (folder_path / "new").iterdir():
        os.rename(path, folder_path / "cur" / path.name)
    return {path.name: path for path in (folder_path / "cur").iterdir() if path.is_file()}


def remove_leftovers(folder_path: Path, now: float) -> list[str]:
    """Clear a folder's tmp/ of what a crash left: files written more than 36 hours ago (the
    Maildir convention: another program may still be writing a newer one), and, whatever their
    age, the expunged files and deleted folders that only pcloud makes. Returns their names."""
    removed = []
    for path in (folder_path / "tmp").iterdir():
        if path.name.startswith("deleted-") and path.is_dir():
            shutil.rmtree(path)
        elif path.is_file() and (
            path.name.startswith("expunged-") or path.stat().st_mtime < now - STALE_AFTER
        ):
            path.unlink()
        else:
            continue
        removed.append(path.name)
    return removed
