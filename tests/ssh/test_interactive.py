"""The interactive shell on a terminal (asyncssh's client asking for a pty): prompt, `help`, a
command, Tab completion, a password typed without echo, Ctrl-C and Ctrl-D."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pcloud.ssh.shell import complete
from pcloud.testing import RunningServer
from tests.ssh.conftest import ADMIN, ALICE, BOB, Account, connect

PROMPT = f"{ALICE}> "


class Terminal:
    """Types at the shell's prompt and reads what the terminal shows."""

    def __init__(self, process: Any) -> None:
        self.process = process

    async def until(self, text: str) -> str:
        # Bounded, so that a missing prompt fails here rather than at the suite's timeout.
        return str(await asyncio.wait_for(self.process.stdout.readuntil(text), 30))

    async def type(self, keys: str, then: str = PROMPT) -> str:
        """Type keys and return what the terminal shows up to (and with) `then`."""
        self.process.stdin.write(keys)
        return await self.until(then)


async def terminal(conn: Any) -> Terminal:
    process = await conn.create_process(term_type="xterm", term_size=(100, 40))
    shell = Terminal(process)
    banner = await shell.until(PROMPT)
    assert banner.startswith(f"pcloud shell for {ALICE}: `help` lists the commands")
    return shell


async def test_help_and_a_command_at_the_prompt(
    server: RunningServer, accounts: dict[str, Account]
) -> None:
    async with connect(server, accounts[ALICE]) as conn:
        shell = await terminal(conn)
        shown = await shell.type("help\r")
        assert f"Commands for {ALICE} (a user):\r\n" in shown  # the terminal's line ends
        assert "user ssh-key" in shown and "user list" not in shown
        shown = await shell.type(f"user show {ALICE}\r")
        assert f"{ALICE}\r\n  name: -\r\n  administrator: no\r\n" in shown
        shown = await shell.type("user list\r")
        assert "`user list` is for administrators" in shown
        shown = await shell.type(f"user show {BOB}\r")
        assert "only your own account" in shown
        shell.process.stdin.write("exit\r")
        await shell.process.wait()
    assert shell.process.exit_status == 1  # the last command's


async def test_tab_completes_and_history_recalls(
    server: RunningServer, accounts: dict[str, Account]
) -> None:
    async with connect(server, accounts[ALICE]) as conn:
        shell = await terminal(conn)
        shell.process.stdin.write("us\t")
        assert (await shell.until("user ")).endswith("user ")
        shell.process.stdin.write("sh\t")
        assert (await shell.until("show ")).endswith("show ")
        shown = await shell.type(f"{ALICE}\r")
        assert "administrator: no" in shown
        shown = await shell.type("\x1b[A\r")  # the up arrow: the line again
        assert shown.count("administrator: no") == 1
        shell.process.stdin.write("user \t")  # several fit: they are listed
        listed = await shell.until("ssh-key")
        assert listed.endswith("\r\napp-password  card  passwd  show  ssh-key")
        assert (await shell.until(PROMPT + "user ")).startswith("\r\n")  # the line, again
        shell.process.stdin.write("\x03")  # Ctrl-C drops the line
        assert "^C\r\n" in await shell.until(PROMPT)
        shell.process.stdin.write("\x04")  # Ctrl-D at an empty prompt leaves
        await shell.process.wait()
    assert shell.process.exit_status == 0


async def test_a_password_is_asked_without_echo(
    server: RunningServer, accounts: dict[str, Account]
) -> None:
    async with connect(server, accounts[ALICE]) as conn:
        shell = await terminal(conn)
        shell.process.stdin.write(f"user passwd {ALICE}\r")
        await shell.until("New password (empty: generate one): ")
        shell.process.stdin.write("typed at the terminal\r")
        shown = await shell.until("Repeat it: ")
        shell.process.stdin.write("typed at the terminal\r")
        shown += await shell.until(PROMPT)
        assert "typed at the terminal" not in shown
        assert f"password of {ALICE} changed" in shown
        shell.process.stdin.write("\x04")
        await shell.process.wait()
    login = server.services.directory.authenticate
    assert server.call(login(ALICE, "typed at the terminal", service="test", remote="::1"))


async def test_lines_without_a_terminal_run_one_after_another(
    server: RunningServer, accounts: dict[str, Account]
) -> None:
    async with connect(server, accounts[ADMIN]) as conn:
        result = await conn.run(input="domain add family.example\n\nuser list\nuser bogus\n")
    assert result.stdout.startswith("added domain family.example\nadmin@example.org admin\n")
    assert "invalid choice: 'bogus'" in result.stderr
    assert result.exit_status == 2  # the last command's


@pytest.mark.parametrize(
    ("line", "inserted", "listed"),
    [
        ("", "", ["alias", "dns", "exit", "help", "user"]),
        ("us", "er ", ["user"]),
        ("user p", "asswd ", ["passwd"]),
        ("user ", "", ["add", "list", "passwd"]),
        ("help al", "ias ", ["alias"]),
        ("alias x", "", []),
    ],
)
def test_completion(line: str, inserted: str, listed: list[str]) -> None:
    commands = [("user", "add"), ("user", "list"), ("user", "passwd"), ("alias", "add"), ("dns",)]
    assert complete(line, len(line), commands) == (inserted, listed)
