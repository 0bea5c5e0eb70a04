"""SFTP and SCP with Debian's OpenSSH clients over the file store: transfers byte for byte,
folders, renames, each user's own tree, and paths that try to leave it."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from pcloud.testing import RunningServer
from tests.conftest import require_tool
from tests.ssh.conftest import ALICE, BOB, Account

SIZE = 5 * 1024 * 1024 + 123  # several SFTP writes, not a round number


def options(server: RunningServer, tmp_path: Path, key: Path) -> list[str]:
    return [
        "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
        "-o", "IdentityAgent=none", "-o", "StrictHostKeyChecking=no",
        "-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}", "-i", str(key),
    ]  # fmt: skip


def sftp(
    server: RunningServer, tmp_path: Path, account: Account, batch: str
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "batch").write_text(batch)
    command = [
        require_tool("sftp"), *options(server, tmp_path, account.key_file),
        "-P", str(server.port("ssh")), "-b", str(tmp_path / "batch"),
        f"{account.address}@127.0.0.1",
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def scp(
    server: RunningServer, tmp_path: Path, account: Account, *arguments: str
) -> subprocess.CompletedProcess[str]:
    command = [
        require_tool("scp"), *options(server, tmp_path, account.key_file),
        "-P", str(server.port("ssh")), *arguments,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def stored(server: RunningServer, address: str, path: str) -> bytes:
    with server.services.files.user(address).open_read(path) as file:
        return file.read()


def test_sftp_batch_round_trip(
    server: RunningServer, accounts: dict[str, Account], tmp_path: Path
) -> None:
    content = os.urandom(SIZE)
    (tmp_path / "big.bin").write_bytes(content)
    result = sftp(server, tmp_path, accounts[ALICE], """\
mkdir Documents
cd Documents
put big.bin
rename big.bin kept.bin
put big.bin
rm big.bin
get kept.bin back.bin
mkdir empty
rmdir empty
ls -l
cd ..
pwd
""")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "back.bin").read_bytes() == content
    assert stored(server, ALICE, "Documents/kept.bin") == content
    names = [e.name for e in server.services.files.user(ALICE).listdir("Documents")]
    assert names == ["kept.bin"]
    assert "kept.bin" in result.stdout and "Remote working directory: /\n" in result.stdout


def test_sftp_failures_stop_the_batch(
    server: RunningServer, accounts: dict[str, Account], tmp_path: Path
) -> None:
    (tmp_path / "note.txt").write_text("alice's note\n")
    assert sftp(server, tmp_path, accounts[ALICE], "put note.txt\n").returncode == 0
    assert sftp(server, tmp_path, accounts[ALICE], "rmdir note.txt\n").returncode == 1
    assert sftp(server, tmp_path, accounts[ALICE], "get missing.txt\n").returncode == 1
    assert sftp(server, tmp_path, accounts[ALICE], "ln -s note.txt link\n").returncode == 1
    assert stored(server, ALICE, "note.txt") == b"alice's note\n"


def test_each_user_sees_only_their_own_files(
    server: RunningServer, accounts: dict[str, Account], tmp_path: Path
) -> None:
    (tmp_path / "secret.txt").write_text("alice only\n")
    assert sftp(server, tmp_path, accounts[ALICE], "put secret.txt\n").returncode == 0
    listing = sftp(server, tmp_path, accounts[BOB], "ls -a\n")
    assert listing.returncode == 0 and "secret.txt" not in listing.stdout
    for batch in ("get /secret.txt\n", f"get /../{ALICE}/tree/secret.txt\n",
                  f"get ../{ALICE}/secret.txt\n"):  # fmt: skip
        assert sftp(server, tmp_path, accounts[BOB], batch).returncode == 1, batch


# Each trick is one sftp batch line; "planted" is a symlink to a folder outside the tree, put
# there on disk as if by someone with shell access. Every line must fail (sftp -b stops with 1).
ESCAPES = [
    "put escape.txt ../escape.txt",
    "put escape.txt /../escape.txt",
    "put escape.txt a/../../escape.txt",
    "put escape.txt ./../escape.txt",
    "put escape.txt ..",
    "put escape.txt /etc/../../escape.txt",
    'put escape.txt "x\\..\\..\\escape.txt"',
    "put escape.txt planted/escape.txt",
    "get planted/secret.txt",
    "get ../../directory.sqlite3",
    "get /../../tls/server.key",
    "rename note.txt ../note.txt",
    "rename note.txt /../../note.txt",
    "mkdir ../outside",
    "rm ../../directory.sqlite3",
    "rm planted/secret.txt",
    "ln -s /etc/passwd passwd",
    "ln -s ../../directory.sqlite3 directory",
    "chmod 777 ../../directory.sqlite3",
    'put escape.txt "\u2025/escape.txt"',  # two dot leader: a name, in a folder that is not
]


def outside_files(server: RunningServer) -> dict[Path, bytes]:
    """Every file of the data folder outside Alice's tree, with its content."""
    tree = server.data_dir / "files" / ALICE / "tree"
    return {
        path: path.read_bytes()
        for path in server.data_dir.rglob("*")
        if path.is_file() and tree not in path.parents and "-wal" not in path.name
        and "-shm" not in path.name and not path.name.endswith(".sqlite3")
    }  # fmt: skip


@pytest.mark.parametrize("trick", ESCAPES)
def test_paths_that_leave_the_tree_are_refused(
    server: RunningServer, accounts: dict[str, Account], tmp_path: Path, trick: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours\n")
    files = server.services.files.user(ALICE)
    files.write("note.txt", b"alice's note\n")
    os.symlink(outside, server.data_dir / "files" / ALICE / "tree" / "planted")
    (tmp_path / "escape.txt").write_text("out\n")
    before = outside_files(server)
    result = sftp(server, tmp_path, accounts[ALICE], trick + "\n")
    assert result.returncode == 1, (trick, result.stdout)
    assert outside_files(server) == before
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "not yours\n"
    assert [e.name for e in files.listdir("")] == ["note.txt"]  # planted is never listed
    assert stored(server, ALICE, "note.txt") == b"alice's note\n"
    assert not any(
        p.name in ("secret.txt", "directory.sqlite3", "server.key") for p in tmp_path.iterdir()
    )


def test_a_100_mb_file_both_ways(
    server: RunningServer, accounts: dict[str, Account], tmp_path: Path
) -> None:
    sent, digest = tmp_path / "video.bin", hashlib.sha256()
    with sent.open("wb") as file:  # written in pieces: the test's memory stays small
        for _ in range(100):
            piece = os.urandom(1024 * 1024)
            digest.update(piece)
            file.write(piece)
    result = sftp(server, tmp_path, accounts[ALICE], "put video.bin\nget video.bin back.bin\n")
    assert result.returncode == 0, result.stderr
    assert file_digest(tmp_path / "back.bin") == digest.hexdigest()
    stored_digest = hashlib.sha256()
    for chunk in server.services.files.user(ALICE).read_chunks("video.bin"):
        stored_digest.update(chunk)
    assert stored_digest.hexdigest() == digest.hexdigest()


def file_digest(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


@pytest.mark.parametrize("protocol", [[], ["-O"]], ids=["sftp", "legacy-scp"])
def test_scp_both_ways(
    server: RunningServer, accounts: dict[str, Account], tmp_path: Path, protocol: list[str]
) -> None:
    content = os.urandom(SIZE)
    (tmp_path / "photo.jpg").write_bytes(content)
    remote = f"{ALICE}@127.0.0.1"
    result = scp(server, tmp_path, accounts[ALICE], *protocol, "photo.jpg", f"{remote}:photo.jpg")
    assert result.returncode == 0, result.stderr
    assert stored(server, ALICE, "photo.jpg") == content
    result = scp(server, tmp_path, accounts[ALICE], *protocol, f"{remote}:photo.jpg", "copy.jpg")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "copy.jpg").read_bytes() == content
    refused = scp(
        server, tmp_path, accounts[BOB], *protocol, f"{BOB}@127.0.0.1:../{ALICE}/photo.jpg", "x"
    )
    assert refused.returncode != 0 and not (tmp_path / "x").exists()
