"""SFTP and SCP with Debian's OpenSSH clients over the file store: transfers byte for byte,
folders, renames, each user's own tree, and paths that try to leave it."""

from __future__ import annotations

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


@pytest.mark.parametrize(
    "path",
    ["../escape.txt", "/../escape.txt", "a/../../escape.txt", "./../escape.txt",
     "..", "/etc/../../escape.txt", "x\\..\\..\\escape.txt"],
)  # fmt: skip
def test_paths_that_leave_the_tree_are_refused(
    server: RunningServer, accounts: dict[str, Account], tmp_path: Path, path: str
) -> None:
    (tmp_path / "escape.txt").write_text("out\n")
    result = sftp(server, tmp_path, accounts[ALICE], f'put escape.txt "{path}"\n')
    assert result.returncode == 1
    assert not (server.data_dir / "files" / "escape.txt").exists()
    assert not (server.data_dir / "escape.txt").exists()
    assert [e.name for e in server.services.files.user(ALICE).listdir("")] == []


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
