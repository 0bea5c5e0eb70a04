"""Files over FTPS: what the client sends is what the store keeps, byte for byte, and each
user sees only their own tree."""

from __future__ import annotations

import ftplib
import io
import os
import socket

import pytest

from pcloud.testing import RunningServer
from tests.ftps.conftest import ALICE, BOB, sign_in, tree


def download(client: ftplib.FTP_TLS, path: str) -> bytes:
    received = io.BytesIO()
    client.retrbinary(f"RETR {path}", received.write)
    return received.getvalue()


def test_upload_and_download_are_byte_identical(ftps: RunningServer) -> None:
    data = os.urandom(5 * 1024 * 1024 + 7)
    client = sign_in(ftps)
    assert client.storbinary("STOR big.bin", io.BytesIO(data)).startswith("226")
    assert (tree(ftps) / "big.bin").read_bytes() == data
    assert download(client, "big.bin") == data
    assert client.size("big.bin") == len(data)
    client.quit()


def test_folders_rename_and_delete(ftps: RunningServer) -> None:
    client = sign_in(ftps)
    assert client.mkd("docs") == "/docs"
    client.storbinary("STOR docs/a.txt", io.BytesIO(b"first"))
    client.cwd("docs")
    assert client.pwd() == "/docs"
    client.storbinary("STOR b.txt", io.BytesIO(b"second"))
    assert sorted(client.nlst()) == ["a.txt", "b.txt"]
    listing: list[str] = []
    client.retrlines("LIST", listing.append)
    assert len(listing) == 2 and listing[0].startswith("-rw") and listing[0].endswith(" a.txt")
    facts = dict(client.mlsd("/"))
    assert facts["docs"]["type"] == "dir"
    client.cwd("..")
    assert client.pwd() == "/"
    assert client.sendcmd("MDTM docs/a.txt").startswith("213 ")

    client.rename("docs/a.txt", "docs/c.txt")  # RNFR, RNTO
    client.rename("docs/b.txt", "docs/c.txt")  # a file replaces a file
    assert (tree(ftps) / "docs" / "c.txt").read_bytes() == b"second"
    assert sorted(p.name for p in (tree(ftps) / "docs").iterdir()) == ["c.txt"]
    client.mkd("docs/sub")
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        client.rename("docs/c.txt", "docs/sub")  # nothing replaces a folder
    with pytest.raises(ftplib.error_perm, match=r"^550 .*not empty"):
        client.rmd("docs")
    with pytest.raises(ftplib.error_perm, match=r"^550 .*RMD"):
        client.delete("docs/sub")
    client.delete("docs/c.txt")
    client.rmd("docs/sub")
    client.rmd("docs")
    assert client.nlst() == []
    assert list(tree(ftps).iterdir()) == []
    # The deleted and replaced contents are kept as versions.
    versions = ftps.services.files.user(ALICE).versions("docs")
    assert {v.size for v in versions} == {5, 6}
    client.quit()


def test_append_and_resume(ftps: RunningServer) -> None:
    client = sign_in(ftps)
    client.storbinary("STOR log.txt", io.BytesIO(b"one\n"))
    client.storbinary("APPE log.txt", io.BytesIO(b"two\n"))
    assert (tree(ftps) / "log.txt").read_bytes() == b"one\ntwo\n"
    client.storbinary("STOR log.txt", io.BytesIO(b"TWO\n"), rest=4)  # REST 4, then STOR
    assert (tree(ftps) / "log.txt").read_bytes() == b"one\nTWO\n"
    with pytest.raises(ftplib.error_perm, match=r"^554"):
        client.storbinary("STOR log.txt", io.BytesIO(b"x"), rest=100)
    received = io.BytesIO()
    client.retrbinary("RETR log.txt", received.write, rest=4)
    assert received.getvalue() == b"TWO\n"
    client.quit()


def test_empty_listings_and_files(ftps: RunningServer) -> None:
    """Nothing to send still makes a data connection whose TLS handshake completes."""
    client = sign_in(ftps)
    for _ in range(20):
        assert client.nlst() == []
    client.storbinary("STOR empty", io.BytesIO(b""))
    for _ in range(20):
        assert download(client, "empty") == b""
    assert (tree(ftps) / "empty").read_bytes() == b""
    client.quit()


def test_quota_exceeded_is_552_and_stores_nothing(ftps: RunningServer) -> None:
    ftps.services.directory.set_quota(ALICE, 100_000)
    client = sign_in(ftps)
    client.storbinary("STOR small.txt", io.BytesIO(b"small"))
    with pytest.raises(ftplib.error_perm, match=r"^552 .*quota"):
        client.storbinary("STOR small.txt", io.BytesIO(b"x" * 200_000))
    with pytest.raises(ftplib.error_perm, match=r"^552 .*quota"):
        client.storbinary("STOR big.txt", io.BytesIO(b"x" * 200_000))
    assert sorted(p.name for p in tree(ftps).iterdir()) == ["small.txt"]
    assert (tree(ftps) / "small.txt").read_bytes() == b"small"
    assert download(client, "small.txt") == b"small"  # the session goes on
    client.quit()


def test_an_interrupted_upload_keeps_the_previous_content(ftps: RunningServer) -> None:
    client = sign_in(ftps)
    client.storbinary("STOR doc.txt", io.BytesIO(b"version one"))
    data = client.transfercmd("STOR doc.txt")
    data.sendall(b"the beginning of version two")
    data.shutdown(socket.SHUT_RDWR)  # cut, without TLS's close_notify
    data.close()
    with pytest.raises(ftplib.error_temp, match=r"^426 .*close_notify"):
        client.voidresp()
    assert (tree(ftps) / "doc.txt").read_bytes() == b"version one"
    assert [p.name for p in tree(ftps).iterdir()] == ["doc.txt"]
    assert download(client, "doc.txt") == b"version one"
    client.quit()


def test_a_second_user_sees_only_their_own_files(ftps: RunningServer) -> None:
    alice = sign_in(ftps)
    alice.mkd("private")
    alice.storbinary("STOR private/notes.txt", io.BytesIO(b"alice's notes"))
    bob = sign_in(ftps, BOB)
    assert bob.nlst() == []
    for path in ("private/notes.txt", f"/{ALICE}/tree/private/notes.txt", "/private/notes.txt"):
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            download(bob, path)
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        bob.cwd("private")
    bob.storbinary("STOR notes.txt", io.BytesIO(b"bob's notes"))
    assert (tree(ftps, BOB) / "notes.txt").read_bytes() == b"bob's notes"
    assert (tree(ftps) / "private" / "notes.txt").read_bytes() == b"alice's notes"
    assert alice.nlst() == ["private"]
    # What Alice shares appears under Shared/ for Bob, read-only.
    ftps.services.files.share(ALICE, "private", BOB, writable=False)
    assert download(bob, f"Shared/{ALICE}/private/notes.txt") == b"alice's notes"
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        bob.storbinary(f"STOR Shared/{ALICE}/private/new.txt", io.BytesIO(b"x"))
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        bob.delete(f"Shared/{ALICE}/private/notes.txt")
    alice.quit()
    bob.quit()
