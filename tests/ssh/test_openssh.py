"""The SSH shell with Debian's OpenSSH client: `ssh -i KEY user@host COMMAND`, its exit status,
and the host key it is shown."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pcloud.store.ssh_host_keys import SshHostKeys
from pcloud.testing import RunningServer
from tests.conftest import require_tool
from tests.ssh.conftest import ADMIN, ALICE, Account


def ssh(
    server: RunningServer, tmp_path: Path, login: str, *arguments: str, key: Path | None = None
) -> subprocess.CompletedProcess[str]:
    command = [
        require_tool("ssh"), "-p", str(server.port("ssh")), "-F", "/dev/null",
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}",
        *(["-i", str(key)] if key else []),
        "-l", login, "127.0.0.1", *arguments,
    ]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def test_admin_and_user_with_openssh(
    server: RunningServer, accounts: dict[str, Account], tmp_path: Path
) -> None:
    admin = ssh(server, tmp_path, ADMIN, "user", "list", key=accounts[ADMIN].key_file)
    assert admin.returncode == 0, admin.stderr
    assert admin.stdout.splitlines()[0] == f"{ADMIN} admin"

    refused = ssh(server, tmp_path, ALICE, "user", "list", key=accounts[ALICE].key_file)
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert "pcloud: `user list` is for administrators (you are alice@example.org)" in refused.stderr

    usage = ssh(server, tmp_path, ALICE, "user", "show", key=accounts[ALICE].key_file)
    assert usage.returncode == 2 and "required: address" in usage.stderr

    # The host key OpenSSH remembered is the store's Ed25519 key.
    ed25519 = SshHostKeys(server.data_dir / "ssh").ensure()[0]
    known = (tmp_path / "known_hosts").read_text().split()
    assert known[1:3] == ed25519.public_line.split()[:2]


def test_openssh_cannot_sign_in_with_a_password_or_an_unknown_key(
    server: RunningServer, accounts: dict[str, Account], tmp_path: Path
) -> None:
    password = ssh(
        server,
        tmp_path,
        ALICE,
        "-o",
        "PreferredAuthentications=password,keyboard-interactive",
        "help",
    )
    assert password.returncode == 255
    assert "Permission denied (publickey)" in password.stderr  # the only method offered

    subprocess.run(
        [
            require_tool("ssh-keygen"),
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            str(tmp_path / "other"),
        ],
        check=True,
    )
    unknown = ssh(server, tmp_path, ALICE, "help", key=tmp_path / "other")
    assert unknown.returncode == 255 and "Permission denied (publickey)" in unknown.stderr
    assert ssh(server, tmp_path, ALICE, "help", key=accounts[ALICE].key_file).returncode == 0
