"""The one command tree: `pcloud …` on the command line, the SSH shell (pcloud/ssh/) and later
the web panel's forms run these same commands.

Each command is a function `(context, arguments) -> int` registered on an argparse tree together
with who may run it (`Access`; administrators only, unless it says otherwise). The context says
who asks: `principal` None is the machine's owner at the local command line, who may run
everything on any data folder; a signed-in user runs commands on the server's own data folder
(`--data` is not offered) within what `authorize`, the one place that decides, allows them.

Errors are exceptions turned into an exit status in one place:
    0  done
    1  refused: the request is well-formed but cannot be done (duplicate, unknown, not running,
       or not this user's to do)
    2  bad input: unknown command, missing argument, malformed value or too weak a password
"""

from __future__ import annotations

import argparse
import enum
import getpass
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pcloud import __version__
from pcloud.config import ConfigError

if TYPE_CHECKING:
    from pcloud.directory import Principal


class CommandError(Exception):
    """The command cannot be done (exit 1)."""


class UsageError(Exception):
    """The command line itself is wrong (exit 2)."""


class Access(enum.Enum):
    """Who may run a command."""

    LOCAL = "local"  # the machine's own command line only: serve, init, service install
    ADMIN = "admin"  # administrators
    # Every user on their own account, named by the command's `account` argument (filled in
    # with their own address when left out); administrators on any account.
    ACCOUNT = "account"


@dataclass(frozen=True)
class CommandSpec:
    words: tuple[str, ...]  # ("user", "passwd")
    help: str
    access: Access
    account: str  # the argument that names the account, for Access.ACCOUNT

    @property
    def name(self) -> str:
        return " ".join(self.words)


@dataclass
class Context:
    """Who asks, and where a command reads and writes (the SSH shell hands in its channel)."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    principal: Principal | None = None  # None: the machine's owner, at the local command line
    data_dir: Path | None = None  # the server's own data folder, given with a principal
    # Asks for a password without echoing it; None when nobody can be asked.
    ask_secret: Callable[[str], str] | None = None

    @property
    def remote(self) -> bool:
        return self.principal is not None

    def say(self, text: str = "") -> None:
        print(text, file=self.out)


Command = Callable[[Context, argparse.Namespace], int]


class _Shown(Exception):
    """--help or --version: the text to print, then exit 0."""


class _Parser(argparse.ArgumentParser):
    """Raises instead of printing and exiting, so that the tree can also serve the SSH shell,
    whose output is not sys.stdout."""

    commands: list[CommandSpec]

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")

    def _print_message(self, message: str, file: object = None) -> None:
        raise _Shown(message)


def data_dir_of(arguments: argparse.Namespace) -> Path:
    """--data, else $PCLOUD_DATA, else ./pcloud-data.

    Run by root on a data folder that belongs to another user (the service's), the command
    becomes that user first, so that every file it writes (the directory's journal among them)
    stays readable and writable by the server.
    """
    chosen = arguments.data or os.environ.get("PCLOUD_DATA") or "pcloud-data"
    data_dir = Path(chosen).absolute()
    if os.geteuid() == 0 and data_dir.exists():
        owner = data_dir.stat()
        if owner.st_uid != 0:
            os.setgroups([])  # root's supplementary groups go too
            os.setgid(owner.st_gid)
            os.setuid(owner.st_uid)
    return data_dir


def build_parser(*, remote: bool = False) -> _Parser:
    """The command tree; `remote`: for a signed-in user, without --data."""
    from pcloud.cli import admin, avatar, dav, files, server, service

    common = _Parser(add_help=False)
    if not remote:
        common.add_argument(
            "--data", metavar="DIR", help="data folder (default: $PCLOUD_DATA or ./pcloud-data)"
        )
    parser = _Parser(prog="pcloud", description="pcloud: a personal cloud server.")
    parser.add_argument("--version", action="version", version=f"pcloud {__version__}")
    parser.commands = []
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def group(name: str, help: str) -> argparse._SubParsersAction[_Parser]:
        sub = commands.add_parser(name, help=help, description=help)
        return sub.add_subparsers(dest="action", metavar="ACTION", required=True)

    def command(
        parent: argparse._SubParsersAction[_Parser],
        name: str,
        function: Command,
        help: str,
        *,
        access: Access = Access.ADMIN,
        account: str = "address",
    ) -> _Parser:
        sub: _Parser = parent.add_parser(name, help=help, description=help, parents=[common])
        spec = CommandSpec(tuple(sub.prog.split()[1:]), help, access, account)
        sub.set_defaults(function=function, command_spec=spec)
        parser.commands.append(spec)
        return sub

    def local_command(
        parent: argparse._SubParsersAction[_Parser], name: str, function: Command, help: str
    ) -> _Parser:
        return command(parent, name, function, help, access=Access.LOCAL)

    server.register(commands, command)
    admin.register(commands, group, command)
    service.register(group, local_command)  # it installs pcloud on this machine
    dav.register(group, command)
    avatar.register(group, command)
    files.register(group, command)
    return parser


def may_run(principal: Principal | None, spec: CommandSpec) -> bool:
    """Whether the command is offered to this user at all (their own account aside)."""
    if principal is None:
        return True
    if spec.access is Access.LOCAL:
        return False
    return principal.is_admin or spec.access is Access.ACCOUNT


def authorize(context: Context, arguments: argparse.Namespace) -> None:
    """Refuse (CommandError) what the signed-in user may not do. For a user's own commands the
    account argument is filled in with their address when left out."""
    from pcloud.directory.addresses import AddressError, normalize_address

    principal = context.principal
    spec: CommandSpec = arguments.command_spec
    if principal is None:
        return
    if spec.access is Access.LOCAL:
        raise CommandError(f"`{spec.name}` is run only on the server's own command line")
    if principal.is_admin:
        return
    if spec.access is Access.ADMIN:
        raise CommandError(f"`{spec.name}` is for administrators (you are {principal.address})")
    named = getattr(arguments, spec.account)
    if named is None:
        setattr(arguments, spec.account, principal.address)
        return
    try:
        own = normalize_address(named) == principal.address
    except AddressError:
        own = False
    if not own:
        raise CommandError(
            f"you may manage only your own account ({principal.address}), not {named}"
        )


def run(argv: Sequence[str], context: Context) -> int:
    """Run one command line; returns the exit status."""
    from pcloud.directory import DirectoryError, InvalidValue
    from pcloud.store.sqlite import SchemaTooNew

    parser = build_parser(remote=context.remote)
    try:
        arguments = parser.parse_args(argv)
        if context.remote:
            assert context.data_dir is not None, "a signed-in user works on the server's data"
            arguments.data = str(context.data_dir)
        authorize(context, arguments)
        function: Command = arguments.function
        return function(context, arguments)
    except _Shown as shown:
        context.out.write(str(shown))
        return 0
    except UsageError as error:
        hint = "`help`" if context.remote else "`pcloud --help`"
        print(f"{error}\n(see {hint})", file=context.err)
        return 2
    except InvalidValue as error:
        print(f"pcloud: {error}", file=context.err)
        return 2
    except (CommandError, DirectoryError, ConfigError, SchemaTooNew) as error:
        print(f"pcloud: {error}", file=context.err)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    # Everything pcloud writes into its data folder is private to the account running it.
    os.umask(0o077)
    ask_secret = getpass.getpass if sys.stdin.isatty() else None
    try:
        return run(sys.argv[1:] if argv is None else argv, Context(ask_secret=ask_secret))
    except KeyboardInterrupt:
        return 130
