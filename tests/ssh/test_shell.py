"""The SSH shell through asyncssh's client: one command per connection (`ssh host COMMAND`),
what each user may run, and sign-in with keys only."""

from __future__ import annotations

import logging

import asyncssh
import pytest

from pcloud.testing import RunningServer
from tests.ssh.conftest import ADMIN, ALICE, BOB, Account, connect, log_lines, new_key

PASSWORD = "correct horse battery"


async def run(
    server: RunningServer, account: Account, command: str, stdin: str = ""
) -> tuple[int, str, str]:
    async with connect(server, account) as conn:
        result = await conn.run(command, input=stdin or None)
    return result.exit_status, result.stdout, result.stderr


async def test_admin_runs_administrative_commands(
    server: RunningServer, accounts: dict[str, Account]
) -> None:
    status, out, err = await run(server, accounts[ADMIN], "user list")
    assert (status, err) == (0, "")
    assert out.splitlines() == [f"{ADMIN} admin", ALICE, BOB]
    # As written on the server itself, with quoting.
    status, out, _ = await run(
        server, accounts[ADMIN], "pcloud alias add team@example.org 'alice@example.org'"
    )
    assert status == 0 and out == f"team@example.org -> {ALICE}\n"
    assert server.services.directory.resolve("team@example.org") == [ALICE]


async def test_a_user_is_refused_administrative_commands(
    server: RunningServer, accounts: dict[str, Account]
) -> None:
    for command in ("user list", f"user del {BOB}", "domain add evil.example", "queue list"):
        status, out, err = await run(server, accounts[ALICE], command)
        assert status == 1, command
        assert out == ""
        assert "is for administrators (you are alice@example.org)" in err
    assert [u.address for u in server.services.directory.users()] == [ADMIN, ALICE, BOB]
    assert server.services.directory.domains() == ["example.org"]


async def test_a_user_manages_only_their_own_account(
    server: RunningServer, accounts: dict[str, Account]
) -> None:
    alice = accounts[ALICE]
    status, out, err = await run(
        server, alice, f"user passwd {BOB} --password-stdin", PASSWORD + "!"
    )
    assert status == 1
    assert err == f"pcloud: you may manage only your own account ({ALICE}), not {BOB}\n"
    status, _, err = await run(server, alice, f"user ssh-key list {BOB}")
    assert status == 1 and "only your own account" in err

    status, out, err = await run(
        server, alice, f"user passwd {ALICE} --password-stdin", "a new long password\n"
    )
    assert (status, out, err) == (0, f"password of {ALICE} changed\n", "")
    login = server.services.directory.authenticate
    assert server.call(login(ALICE, "a new long password", service="test", remote="::1"))

    status, out, _ = await run(server, alice, f"user app-password add {ALICE.upper()} phone")
    assert status == 0 and "app password 'phone'" in out
    status, out, _ = await run(server, alice, f"user show {ALICE}")
    assert status == 0
    assert "administrator: no" in out and "app passwords: 1, SSH keys: 1" in out

    # Shares: their own collections, and a listing of their own shares only.
    assert (await run(server, alice, f"dav share {ALICE} calendar {BOB} --read-only"))[0] == 0
    assert (await run(server, alice, f"dav share {BOB} calendar {ALICE}"))[0] == 1
    server.services.directory.share_collection(BOB, "contacts", ADMIN, writable=True)
    status, out, _ = await run(server, alice, "dav shares")
    assert (status, out) == (0, f"{ALICE}/calendar -> {BOB} (read-only)\n")
    status, out, _ = await run(server, accounts[ADMIN], "dav shares")
    assert out.count("\n") == 2  # the administrator sees every share


async def test_a_user_adds_a_key_over_ssh_and_signs_in_with_it(
    server: RunningServer, accounts: dict[str, Account], tmp_path
) -> None:
    key, _ = new_key(tmp_path, "phone")
    line = key.export_public_key().decode().strip()
    status, out, err = await run(server, accounts[ALICE], f"user ssh-key add {ALICE} -", line)
    assert status == 0, err
    assert out.startswith("added key SHA256:")
    # Over SSH a key is given itself, never read from a file of the server's.
    status, _, err = await run(server, accounts[ALICE], f"user ssh-key add {ALICE} /etc/passwd")
    assert status == 2 and "not an OpenSSH public key line" in err
    phone = Account(ALICE, key, tmp_path / "phone.key")
    status, out, _ = await run(server, phone, f"user ssh-key list {ALICE}")
    assert status == 0 and out.count("SHA256:") == 2 and "phone's laptop" in out

    fingerprint = key.get_fingerprint()
    assert (await run(server, accounts[ALICE], f"user ssh-key del {ALICE} {fingerprint}"))[0] == 0
    with pytest.raises(asyncssh.PermissionDenied):
        await run(server, phone, "user show alice@example.org")


@pytest.mark.parametrize(
    ("command", "status", "message"),
    [
        ("user frobnicate", 2, "invalid choice: 'frobnicate'"),
        (
            "user add not-an-address --password 'correct horse battery'",
            2,
            "not a valid mail address",
        ),
        (f"user show {BOB} --data /tmp", 2, "unrecognized arguments: --data"),
        ("user show ghost@example.org", 1, "no user ghost@example.org"),
        ("serve", 1, "`serve` is run only on the server's own command line"),
        ("service install", 1, "run only on the server's own command line"),
        ("user list 'unclosed", 2, "No closing quotation"),
    ],
)
async def test_exit_status_and_message_come_back(
    server: RunningServer, accounts: dict[str, Account], command: str, status: int, message: str
) -> None:
    got, _, err = await run(server, accounts[ADMIN], command)
    assert got == status
    assert message in err


async def test_help_lists_what_the_user_may_run(
    server: RunningServer, accounts: dict[str, Account]
) -> None:
    status, out, _ = await run(server, accounts[ALICE], "help")
    assert status == 0
    assert out.startswith(f"Commands for {ALICE} (a user):\n")
    names = [line.split("  ")[1].strip() for line in out.splitlines()[1:]]
    assert "user passwd" in names and "user ssh-key" in names and "dav share" in names
    assert "user list" not in names and "domain add" not in names and "serve" not in names
    status, out, _ = await run(server, accounts[ALICE], "help user passwd")
    assert status == 0 and "--password-stdin" in out and "--data" not in out
    status, out, _ = await run(server, accounts[ADMIN], "help")
    names = [line.split("  ")[1].strip() for line in out.splitlines()[1:]]
    assert "user list" in names and "serve" not in names and "service install" not in names


async def test_a_bare_name_means_the_main_domain(
    server: RunningServer, accounts: dict[str, Account]
) -> None:
    async with connect(server, accounts[ALICE], login="Alice") as conn:
        result = await conn.run(f"user show {ALICE}")
    assert result.exit_status == 0


async def test_an_administrator_who_loses_the_role_loses_the_commands(
    server: RunningServer, accounts: dict[str, Account]
) -> None:
    server.add_user("carol@example.org", is_admin=True)
    carol = Account("carol@example.org", accounts[ALICE].key, accounts[ALICE].key_file)
    server.services.directory.add_ssh_key(carol.address, carol.key.export_public_key().decode())
    async with connect(server, carol) as conn:
        assert (await conn.run("user list")).exit_status == 0
        server.services.directory.delete_user(carol.address)
        server.add_user(carol.address)  # the same address, no longer an administrator
        result = await conn.run("user list")
    assert result.exit_status == 1


async def test_password_and_keyboard_interactive_are_refused(
    server: RunningServer, accounts: dict[str, Account]
) -> None:
    for options in ({"password": PASSWORD}, {"kbdint_auth": True, "password": PASSWORD}):
        with pytest.raises(asyncssh.PermissionDenied):
            async with connect(server, None, login=ALICE, **options):
                pass


async def test_an_unknown_key_or_user_is_refused(
    server: RunningServer, accounts: dict[str, Account], tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    stranger, _ = new_key(tmp_path, "stranger")
    for login, key in ((ALICE, stranger), ("ghost@example.org", accounts[ALICE].key),
                       (BOB, accounts[ALICE].key), ("../../etc", stranger)):  # fmt: skip
        with pytest.raises(asyncssh.PermissionDenied):
            async with connect(server, Account(login, key, tmp_path), login=login):
                pass
    # Logged when the client gives up and leaves, which the server learns a moment later.
    failed = await log_lines(caplog, "login failed", 4)
    assert len(failed) == 4
    assert any(f"login={BOB} service=ssh remote=127.0.0.1" in line for line in failed)


async def test_failures_count_in_the_login_throttle(
    lockout_server: RunningServer, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    server = lockout_server
    server.add_user(ALICE)
    key, path = new_key(tmp_path, "alice")
    server.services.directory.add_ssh_key(ALICE, key.export_public_key().decode())
    alice = Account(ALICE, key, path)
    stranger, _ = new_key(tmp_path, "stranger")
    for _ in range(2):
        with pytest.raises(asyncssh.PermissionDenied):
            async with connect(server, Account(ALICE, stranger, path)):
                pass
    with pytest.raises(asyncssh.PermissionDenied):  # locked out, even with the right key
        async with connect(server, alice):
            pass
    assert any("locked out login=alice@example.org service=ssh" in r.getMessage()
               for r in caplog.records)  # fmt: skip


async def test_one_log_line_per_login(
    server: RunningServer, accounts: dict[str, Account], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await run(server, accounts[ALICE], "help")
    logins = [r.getMessage() for r in caplog.records if r.getMessage().startswith("login ")]
    fingerprint = accounts[ALICE].key.get_fingerprint()
    assert logins == [
        f"login login={ALICE} service=ssh remote=127.0.0.1 credential=ssh-key:{fingerprint} conn="
        + logins[0].rsplit("conn=", 1)[1]
    ]
