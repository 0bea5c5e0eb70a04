"""Paths that try to leave the user's tree over FTPS: every one refused with a 5xx reply, and
nothing outside the tree read, written or listed."""

from __future__ import annotations

import ftplib
import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pcloud.testing import RunningServer
from tests.ftps.conftest import BOB, sign_in, tree

SECRET = b"outside the tree"
BOBS = b"bob's private notes"

Client = ftplib.FTP_TLS


def retr(path: str) -> Callable[[Client], object]:
    return lambda client: client.retrbinary(f"RETR {path}", lambda data: None)


def stor(path: str, command: str = "STOR") -> Callable[[Client], object]:
    return lambda client: client.storbinary(f"{command} {path}", io.BytesIO(b"escaped"))


def command(line: str) -> Callable[[Client], object]:
    return lambda client: client.sendcmd(line)


def size(path: str) -> Callable[[Client], object]:
    return lambda client: (client.voidcmd("TYPE I"), client.size(path))


def rename(source: str, target: str) -> Callable[[Client], object]:
    return lambda client: client.rename(source, target)


def listing(path: str) -> Callable[[Client], object]:
    return lambda client: client.retrlines(f"LIST {path}", lambda line: None)


TRICKS: list[Callable[[Client], object]] = [
    retr("../../../../etc/passwd"),
    retr("/../../../etc/passwd"),
    retr(f"docs/../../{BOB}/tree/bob.txt"),
    retr(f"../{BOB}/tree/bob.txt"),
    retr("..\\..\\directory.sqlite3"),
    retr("link/secret.txt"),  # a symlink planted in the tree
    retr(f"Shared/{BOB}/bob.txt"),  # nothing is shared
    listing("link"),
    listing("../.."),
    command("CWD link"),
    size("link/secret.txt"),
    size("../directory.sqlite3"),
    command("MDTM ../directory.sqlite3"),
    stor("../escaped.txt"),
    stor("docs/../../escaped.txt"),
    stor("..\\escaped.txt"),
    stor("docs/a\x00b.txt"),
    stor("\uff0e\uff0e/escaped.txt"),  # fullwidth full stops
    stor("docs\uff0f..\uff0fescaped.txt"),  # fullwidth solidus
    stor("\u2025/escaped.txt"),  # two dot leader
    stor("n" * 256),  # a name over 255 bytes
    stor("link/escaped.txt"),
    stor("DOCS/A.txt"),  # case: a second name for docs/a.txt's folder
    stor("../escaped.txt", "APPE"),
    command("MKD " + "d/" * 70),  # deeper than 64 levels
    command("MKD ../escaped"),
    command("RMD /"),
    command("RMD .."),
    command("DELE ../directory.sqlite3"),
    command("DELE link"),
    command("SITE CHMOD 777 docs/a.txt"),
    command("STOU escaped.txt"),
    rename("docs/a.txt", "../escaped.txt"),
    rename("docs/a.txt", "/../../escaped.txt"),
    rename("docs/a.txt", "link/a.txt"),
    rename("../directory.sqlite3", "stolen.sqlite3"),
    rename("link/secret.txt", "stolen.txt"),
]


@pytest.fixture
def planted(ftps: RunningServer, tmp_path: Path) -> Path:
    """Alice's docs/a.txt, Bob's bob.txt, and a symlink in Alice's tree to a folder outside."""
    alice, bob = sign_in(ftps), sign_in(ftps, BOB)
    alice.mkd("docs")
    alice.storbinary("STOR docs/a.txt", io.BytesIO(b"alice"))
    bob.storbinary("STOR bob.txt", io.BytesIO(BOBS))
    alice.quit()
    bob.quit()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    os.symlink(outside, tree(ftps) / "link")
    return outside


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def test_escape_tricks_are_refused(ftps: RunningServer, planted: Path, tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    client = sign_in(ftps)
    for number, trick in enumerate(TRICKS):
        with pytest.raises(ftplib.error_perm) as refused:
            trick(client)
        assert str(refused.value)[:1] == "5", (number, refused.value)
        assert client.pwd() == "/"
    # A path that is not UTF-8 cannot even be read as a command.
    client.sock.sendall(b"MKD \xff\xfe\r\n")
    with pytest.raises(ftplib.error_perm, match=r"^501"):
        client.getresp()
    # CWD and CDUP resolve ".." within the tree: the root stays the root.
    client.cwd("docs")
    client.cwd("../../..")
    assert client.pwd() == "/"
    client.sendcmd("CDUP")
    assert client.pwd() == "/"
    assert sorted(client.nlst()) == ["docs"]  # the symlink is not listed
    client.quit()
    after = snapshot(tmp_path)
    changed = {name for name in set(before) | set(after) if before.get(name) != after.get(name)}
    # Only the server's own bookkeeping changed (indexes, logs): no file of either tree.
    assert not {name for name in changed if "/tree/" in name or "outside" in name}, changed
    assert sorted(p.name for p in tree(ftps).iterdir()) == ["docs", "link"]
    assert sorted(p.name for p in (tree(ftps) / "docs").iterdir()) == ["a.txt"]
    assert sorted(p.name for p in tree(ftps, BOB).iterdir()) == ["bob.txt"]
    assert (planted / "secret.txt").read_bytes() == SECRET
    assert sorted(p.name for p in planted.iterdir()) == ["secret.txt"]
    assert not list(tmp_path.rglob("escaped*"))
    assert not list(tmp_path.rglob("stolen*"))
