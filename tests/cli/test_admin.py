"""`pcloud user|alias|domain …`: what the person typing sees, the exit status, and the effect."""

from __future__ import annotations

import io
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcloud.cli import Context, run
from pcloud.testing import RunningServer

PASSWORD = "correct horse battery"


class Cli:
    """Runs commands against one data folder, as `pcloud … --data DIR`."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.out = ""
        self.err = ""

    def __call__(self, *argv: str, stdin: str = "") -> int:
        out, err = io.StringIO(), io.StringIO()
        status = run([*argv, "--data", str(self.data)], Context(out, err, io.StringIO(stdin)))
        self.out, self.err = out.getvalue(), err.getvalue()
        return status


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    cli = Cli(tmp_path / "data")
    assert cli("init", "--domain", "example.org") == 0
    yield cli


def test_init_creates_an_administrator_shown_once(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    assert cli("init", "--domain", "example.org") == 0
    assert "Administrator: admin@example.org" in cli.out
    assert "shown only this once" in cli.out
    assert cli("init") == 0
    assert "Password" not in cli.out
    assert cli("init", "--domain", "other.org") == 1
    assert "--domain other.org applies only to a new data folder" in cli.err


def test_user_add_with_each_password_source(cli: Cli) -> None:
    assert cli("user", "add", "alice@example.org", "--password", PASSWORD) == 0
    assert cli.out == "added alice@example.org\n"
    assert cli("user", "add", "bob@example.org", "--password-stdin", stdin=PASSWORD + "\n") == 0
    assert cli("user", "add", "carol@example.org", "--name", "Carol", "--quota", "5G") == 0
    generated = cli.out.split("password: ")[1].split()[0]
    assert len(generated) >= 20
    assert cli("user", "list", "--json") == 0
    users = {user["address"]: user for user in json.loads(cli.out)}
    assert set(users) == {
        "admin@example.org",
        "alice@example.org",
        "bob@example.org",
        "carol@example.org",
    }
    assert users["carol@example.org"]["quota_bytes"] == 5 * 1024**3
    assert users["carol@example.org"]["display_name"] == "Carol"
    assert users["admin@example.org"]["is_admin"] is True


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["user", "add", "not-an-address", "--password", PASSWORD], 2, "not a valid mail address"),
        (["user", "add", "a b@example.org", "--password", PASSWORD], 2, "not a valid mail address"),
        (["user", "add", "dave@example.org", "--password", "short"], 2, "at least 10 characters"),
        (["user", "add", "dave@example.org", "--password", "dave-password"], 2, "user name"),
        (["user", "add", "dave@nowhere.org", "--password", PASSWORD], 1, "not hosted"),
        (["user", "add", "admin@example.org", "--password", PASSWORD], 1, "already exists"),
        (["user", "add", "x@example.org", "--quota", "lots"], 2, "is not a size"),
        (["user", "add"], 2, "the following arguments are required: address"),
        (["user", "passwd", "ghost@example.org", "--password", PASSWORD], 1, "no user"),
        (["user", "del", "ghost@example.org"], 1, "no user"),
        (["user", "del", "admin@example.org"], 1, "last administrator"),
        (["user", "app-password", "add", "admin@example.org"], 2, "needs a label"),
        (["user", "frobnicate"], 2, "invalid choice"),
        (["alias", "add", "team@example.org"], 2, "required: target"),
        (["alias", "add", "team@example.org", "ghost@example.org"], 1, "not a user"),
        (["alias", "add", "team@@example.org", "admin@example.org"], 2, "not a valid"),
        (["alias", "del", "team@example.org"], 1, "no alias"),
        (["domain", "add", "bad_domain!"], 2, "not a valid domain name"),
        (["domain", "add", "example.org"], 1, "already hosted"),
    ],
)
def test_bad_input_is_refused_clearly(cli: Cli, argv: list[str], status: int, message: str) -> None:
    before = cli("user", "list") or cli.out
    assert cli(*argv) == status
    assert message in cli.err
    assert cli.err.count("\n") <= 2
    assert cli("user", "list") == 0 and cli.out == before


def test_commands_need_a_data_folder(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "missing")
    assert cli("user", "list") == 1
    assert "no pcloud data folder" in cli.err
    assert not (tmp_path / "missing").exists()


def test_aliases_and_domains(cli: Cli) -> None:
    assert cli("domain", "add", "Family.Example") == 0
    assert cli("domain", "list") == 0 and cli.out == "example.org\nfamily.example\n"
    assert cli("user", "add", "alice@family.example", "--password", PASSWORD) == 0
    assert cli("alias", "add", "team@example.org", "alice@family.example", "x@elsewhere.net") == 0
    assert cli.out == "team@example.org -> alice@family.example, x@elsewhere.net\n"
    assert cli("alias", "add", "@family.example", "alice@family.example") == 0
    assert cli("alias", "list") == 0
    assert "@family.example -> alice@family.example" in cli.out
    assert cli("alias", "del", "team@example.org") == 0
    assert cli("alias", "list") == 0 and "team@" not in cli.out


def test_app_passwords_and_quota(cli: Cli) -> None:
    assert cli("user", "add", "alice@example.org", "--password", PASSWORD) == 0
    assert cli("user", "app-password", "add", "alice@example.org", "phone") == 0
    assert "shown only this once" in cli.out
    assert cli("user", "app-password", "list", "alice@example.org") == 0
    assert cli.out.startswith("phone  created=")
    assert cli("user", "app-password", "del", "alice@example.org", "phone") == 0
    assert cli("user", "app-password", "list", "alice@example.org") == 0 and cli.out == ""
    assert cli("user", "quota", "alice@example.org", "500M") == 0
    assert cli.out == f"quota of alice@example.org: {500 * 1024**2} bytes\n"
    assert cli("user", "quota", "alice@example.org", "none") == 0
    assert "no limit" in cli.out


def test_changes_take_effect_in_a_running_server_at_once(server: RunningServer) -> None:
    cli = Cli(server.data_dir)
    assert cli("user", "add", "alice@example.org", "--password", PASSWORD) == 0
    directory = server.services.directory
    principal = server.call(
        directory.authenticate("alice@example.org", PASSWORD, service="test", remote="192.0.2.1")
    )
    assert principal is not None and principal.address == "alice@example.org"
    assert cli("user", "passwd", "alice@example.org", "--password", "a new long secret") == 0
    assert (
        server.call(
            directory.authenticate(
                "alice@example.org", PASSWORD, service="test", remote="192.0.2.1"
            )
        )
        is None
    )


def test_console_script_and_module_run() -> None:
    for command in (["pcloud", "--version"], [sys.executable, "-m", "pcloud", "--version"]):
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        assert result.stdout.startswith("pcloud 0.")
    result = subprocess.run(["pcloud", "nonsense"], capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can act for another user")
def test_root_acts_as_the_owner_of_the_data_folder(tmp_path: Path) -> None:
    commands = (
        ["init", "--domain", "example.org"],
        ["user", "add", "alice@example.org", "--password", PASSWORD],
    )
    # Run them once as root on a folder of root's, so that every module they need is imported:
    # the child below can then switch users even though this Python lies under /root.
    for argv in commands:
        assert Cli(tmp_path / "warm-up")(*argv) == 0
    nobody = pwd.getpwnam("nobody")
    parent = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        parent.chmod(0o755)
        data = parent / "data"
        data.mkdir()
        os.chown(data, nobody.pw_uid, nobody.pw_gid)
        child = os.fork()
        if child == 0:  # the child runs the commands as root would, and exits
            try:
                statuses = [Cli(data)(*argv) for argv in commands]
                os._exit(0 if statuses == [0, 0] and os.geteuid() == nobody.pw_uid else 1)
            finally:
                os._exit(2)
        assert os.waitpid(child, 0)[1] == 0
        owners = {path.name: path.stat().st_uid for path in data.rglob("*")}
        assert set(owners.values()) == {nobody.pw_uid}, owners
        assert "directory.sqlite3" in owners and "server.key" in owners
    finally:
        shutil.rmtree(parent)


def test_queue_ids_are_not_paths(cli: Cli) -> None:
    directory = cli.data / "directory.sqlite3"
    assert cli("queue", "delete", "../directory.sqlite3") == 1
    assert "no queued message" in cli.err
    assert directory.exists()


def test_a_deleted_users_mail_is_kept_but_not_passed_on(server: RunningServer) -> None:
    server.add_user("alice@example.org", PASSWORD)
    server.services.mail.account("alice@example.org").deliver(b"Subject: private\r\n\r\nx\r\n")
    cli = Cli(server.data_dir)
    assert cli("user", "del", "alice@example.org") == 0
    kept = Path(cli.out.split("their mail is kept in ")[1].strip())
    assert kept.parent == server.data_dir / "mail" / ".retired"
    assert any(b"Subject: private" in f.read_bytes() for f in (kept / "cur").iterdir())
    assert cli("user", "add", "alice@example.org", "--password", PASSWORD) == 0
    assert server.messages("alice@example.org") == []
