"""The SSH shell: pcloud commands for the signed-in user, one at a time.

`ssh host COMMAND` runs one command line and exits with its status. A session without a command
reads command lines from the client: with a terminal it prompts, and asyncssh's line editor
gives editing and history (arrows, Ctrl-A/E/U/K, Ctrl-D on an empty line leaves, Ctrl-C drops the
line), with Tab completing command words here; without one it runs each line it reads and exits
with the last status. `help` lists the commands this user may run, `help COMMAND` one's options.

Commands block (SQLite, password hashing, waiting for typed input), so they run in threads; their
output goes onto the channel through the event loop, and their input comes from it the same way.
Ctrl-C interrupts a command that waits for input.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shlex
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import TextIO, TypeVar, cast

import asyncssh

from pcloud.cli import Context, build_parser, may_run, run
from pcloud.directory import Principal
from pcloud.services import Services

T = TypeVar("T")

INTERRUPTED = 130  # the shell's status for a command stopped by Ctrl-C
SHELL_WORDS = {"help": "this list, or `help COMMAND` for its options", "exit": "leave"}


def command_words(principal: Principal) -> list[tuple[str, ...]]:
    """The command lines this user may start with, e.g. ("user", "passwd")."""
    specs = build_parser(remote=True).commands
    return [spec.words for spec in specs if may_run(principal, spec)]


def complete(line: str, pos: int, commands: list[tuple[str, ...]]) -> tuple[str, list[str]]:
    """Tab: (the text to insert at the cursor, the words that fit the one being typed)."""
    before = line[:pos]
    words = before.split()
    partial = words.pop() if words and not before[-1].isspace() else ""
    if words[:1] == ["help"]:
        words = words[1:]
    else:
        commands = [*commands, *((word,) for word in SHELL_WORDS)]
    depth = len(words)
    choices = {c[depth] for c in commands if len(c) > depth and list(c[:depth]) == words}
    matches = sorted(choice for choice in choices if choice.startswith(partial))
    if len(matches) == 1:
        return matches[0][len(partial) :] + " ", matches
    # Characters, not path components: the common beginning of the words.
    return os.path.commonprefix(matches)[len(partial) :], matches  # noqa: RUF071


class _Output(io.TextIOBase):
    """A command's output (or error) stream: written from its thread, sent by the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, writer: asyncssh.SSHWriter[str]) -> None:
        self.loop = loop
        self.writer = writer

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.loop.call_soon_threadsafe(self._send, text)
        return len(text)

    def _send(self, text: str) -> None:
        with contextlib.suppress(BrokenPipeError):  # the client left meanwhile
            self.writer.write(text)


class _Input(io.TextIOBase):
    """A command's standard input, read from its thread through the loop: until the client's
    EOF (at a terminal, Ctrl-D, after which the shell goes on)."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell

    def readable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.shell.terminal

    def readline(self, size: int = -1, /) -> str:  # type: ignore[override]
        return self.shell.from_thread(self.shell.process.stdin.readline)

    def read(self, size: int | None = -1, /) -> str:
        return self.shell.from_thread(self.shell.process.stdin.read)


class Shell:
    def __init__(
        self,
        services: Services,
        process: asyncssh.SSHServerProcess[str],
        principal: Principal,
        executor: Executor,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.services = services
        self.process = process
        self.principal = principal
        self.executor = executor
        self.loop = loop
        self.terminal = process.term_type is not None
        self.gone = False  # the user was deleted during the session
        # With a terminal, asyncssh wraps the channel in its line editor.
        self.editor = cast(asyncssh.SSHLineEditorChannel, process.channel)

    async def run(self) -> int:
        if self.process.command is not None:
            return await self.run_line(self.process.command)
        return await self._interactive()

    async def _interactive(self) -> int:
        if self.terminal:
            self.editor.register_key("\t", self._tab)
            self.process.stdout.write(
                f"pcloud shell for {self.principal.address}: `help` lists the commands, "
                "`exit` leaves.\n"
            )
        status = 0
        while True:
            if self.terminal:
                self.process.stdout.write(f"{self.principal.address}> ")
            try:
                line = await self.process.stdin.readline()
            except asyncssh.BreakReceived:  # Ctrl-C: the line is dropped
                self.editor.clear_input()
                self.process.stdout.write("^C\n")
                continue
            except (asyncssh.TerminalSizeChanged, asyncssh.SignalReceived):
                continue
            if not line:  # EOF, or Ctrl-D at the prompt
                return status
            if line.strip() == "exit":
                return status
            status = await self.run_line(line)
            if self.gone:
                return status

    async def run_line(self, line: str) -> int:
        """One command line: `help [COMMAND]` or a pcloud command; returns its status."""
        # On a terminal errors are shown in line with the rest, as a pty shows a program's.
        stderr = self.process.stdout if self.terminal else self.process.stderr
        try:
            argv = shlex.split(line)
        except ValueError as error:  # an unclosed quote
            stderr.write(f"pcloud: {error}\n")
            return 2
        if argv[:1] == ["pcloud"]:  # as the command is written on the server itself
            argv = argv[1:]
        if not argv:
            return 0
        if argv[0] == "help":
            if len(argv) == 1:
                self.process.stdout.write(self._help())
                return 0
            argv = [*argv[1:], "--help"]
        user = self.services.directory.user(self.principal.address)
        if user is None:  # deleted meanwhile
            self.gone = True
            stderr.write(f"pcloud: {self.principal.address} is no longer a user here\n")
            return 1
        # Read again for every command: an administrator's role may have changed meanwhile.
        principal = Principal(user.address, user.is_admin, self.principal.credential)
        self.principal = principal
        context = Context(
            out=cast(TextIO, _Output(self.loop, self.process.stdout)),
            err=cast(TextIO, _Output(self.loop, stderr)),
            stdin=cast(TextIO, _Input(self)),
            principal=principal,
            data_dir=self.services.data_dir,
            ask_secret=self._ask_secret if self.terminal else None,
        )
        try:
            return await self.loop.run_in_executor(self.executor, run, argv, context)
        except KeyboardInterrupt:
            stderr.write("interrupted\n")
            return INTERRUPTED

    def _help(self) -> str:
        specs = [s for s in build_parser(remote=True).commands if may_run(self.principal, s)]
        rows = [(spec.name, spec.help) for spec in specs] + list(SHELL_WORDS.items())
        width = max(len(name) for name, _ in rows)
        lines = [f"  {name.ljust(width)}  {text}" for name, text in rows]
        role = "an administrator" if self.principal.is_admin else "a user"
        return f"Commands for {self.principal.address} ({role}):\n" + "\n".join(lines) + "\n"

    def _tab(self, line: str, pos: int) -> tuple[str, int] | bool:
        insert, matches = complete(line, pos, command_words(self.principal))
        if insert:
            return line[:pos] + insert + line[pos:], pos + len(insert)
        if len(matches) > 1:  # show them, then the prompt and the line again
            prompt = f"{self.principal.address}> "
            self.process.stdout.write("\n" + "  ".join(matches) + "\n" + prompt)
            return line, pos
        return False  # the bell: nothing fits

    def from_thread(self, read: Callable[[], Awaitable[T]]) -> T:
        """Run `read()` on the loop for a command's thread and wait for it; Ctrl-C interrupts."""

        async def reading() -> T:
            while True:
                try:
                    return await read()
                except asyncssh.TerminalSizeChanged:
                    continue
                except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                    raise KeyboardInterrupt from None

        return asyncio.run_coroutine_threadsafe(reading(), self.loop).result()

    def _ask_secret(self, prompt: str) -> str:
        """A password typed at the terminal, not echoed."""

        async def ask() -> str:
            self.editor.set_echo(False)
            try:
                self.process.stdout.write(prompt)
                return await self.process.stdin.readline()
            finally:
                self.editor.set_echo(True)

        return self.from_thread(ask).rstrip("\r\n")
