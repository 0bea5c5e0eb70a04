"""The one command tree: `pcloud …` on the command line (and, later, the SSH shell and the web
panel's forms) runs these same commands.

Each command is a function `(context, arguments) -> int` registered on an argparse tree. Errors
are exceptions turned into an exit status in one place:
    0  done
    1  refused: the request is well-formed but cannot be done (duplicate, unknown, not running)
    2  bad input: unknown command, missing argument, malformed value or too weak a password
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from pcloud import __version__
from pcloud.config import ConfigError


class CommandError(Exception):
    """The command cannot be done (exit 1)."""


class UsageError(Exception):
    """The command line itself is wrong (exit 2)."""


@dataclass
class Context:
    """Where a command reads and writes; the SSH shell will hand in its channel's streams."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)

    def say(self, text: str = "") -> None:
        print(text, file=self.out)


Command = Callable[[Context, argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """Raises instead of exiting, so that the tree can also serve an interactive shell."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


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


def build_parser() -> argparse.ArgumentParser:
    from pcloud.cli import admin, dav, server, service

    common = _Parser(add_help=False)
    common.add_argument(
        "--data", metavar="DIR", help="data folder (default: $PCLOUD_DATA or ./pcloud-data)"
    )
    parser = _Parser(prog="pcloud", description="pcloud: a personal cloud server.")
    parser.add_argument("--version", action="version", version=f"pcloud {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def group(name: str, help: str) -> argparse._SubParsersAction[_Parser]:
        sub = commands.add_parser(name, help=help, description=help)
        return sub.add_subparsers(dest="action", metavar="ACTION", required=True)

    def command(
        parent: argparse._SubParsersAction[_Parser], name: str, function: Command, help: str
    ) -> _Parser:
        sub: _Parser = parent.add_parser(name, help=help, description=help, parents=[common])
        sub.set_defaults(function=function)
        return sub

    server.register(commands, command)
    admin.register(commands, group, command)
    service.register(group, command)
    dav.register(group, command)
    return parser


def run(argv: Sequence[str], context: Context) -> int:
    """Run one command line; returns the exit status."""
    from pcloud.directory import DirectoryError, InvalidValue
    from pcloud.store.sqlite import SchemaTooNew

    parser = build_parser()
    try:
        arguments = parser.parse_args(argv)
        function: Command = arguments.function
        return function(context, arguments)
    except UsageError as error:
        print(f"{error}\n(see `pcloud --help`)", file=context.err)
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
    try:
        return run(sys.argv[1:] if argv is None else argv, Context())
    except KeyboardInterrupt:
        return 130
