"""`pcloud files …`: users' file versions, restores, shares, public links and usage.

They work whether or not the server runs: the store's index is SQLite in WAL mode, shared with
the running server, and each change is one transaction.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pcloud.cli import Access, CommandError, Context, UsageError, data_dir_of
from pcloud.cli.admin import directory_of
from pcloud.listeners import LISTENERS, choose_port_map
from pcloud.services import file_store, load_config
from pcloud.store.files import FileStore, FileStoreError, Link, PathRefused
from pcloud.supervisor import running_endpoints


def register(group: Any, command: Any) -> None:
    files = group("files", "users' files: versions, restores, shares, public links, usage")
    # Users manage their own files; administrators anyone's.
    own = {"access": Access.ACCOUNT, "account": "address"}
    versions = command(
        files, "versions", cmd_versions, "list earlier versions of a file or folder", **own
    )
    versions.add_argument("address")
    versions.add_argument("path", help="in the user's files, e.g. /Documents/report.odt")

    restore = command(files, "restore", cmd_restore, "bring back a file or folder", **own)
    restore.add_argument("address")
    restore.add_argument("path")
    when = restore.add_mutually_exclusive_group(required=True)
    when.add_argument("--at", type=_time, help='as it was then: "2024-05-01 14:00" (local time)')
    when.add_argument("--version", type=int, help="one version of it (an ID from `versions`)")
    restore.add_argument("--to", help="write it there instead of over the current one")

    owned = {"access": Access.ACCOUNT, "account": "owner"}
    share = command(files, "share", cmd_share, "share a file or folder with another user", **owned)
    share.add_argument("owner")
    share.add_argument("path")
    share.add_argument("grantee", help="it appears in their files as Shared/OWNER/NAME")
    share.add_argument("--read-only", action="store_true", help="they may read, not change it")
    unshare = command(files, "unshare", cmd_unshare, "stop sharing it with that user", **owned)
    unshare.add_argument("owner")
    unshare.add_argument("path")
    unshare.add_argument("grantee")
    shares = command(files, "shares", cmd_shares, "list shares (all, or one user's)", **own)
    shares.add_argument("address", nargs="?", help="default: all (a user: their own)")

    link = command(
        files, "link", cmd_link, "public links: add OWNER PATH, list [OWNER], del OWNER TOKEN",
        **owned,
    )  # fmt: skip
    link.add_argument("operation", choices=("add", "list", "del"))
    link.add_argument("owner", nargs="?", help="list: default all (a user: their own)")
    link.add_argument("target", nargs="?", metavar="PATH|TOKEN", help="add: PATH; del: TOKEN")
    link.add_argument(
        "--password-stdin", action="store_true", help="add: ask for this password (from stdin)"
    )
    link.add_argument("--expires", type=_days, metavar="DAYS", help="add: valid this many days")
    link.add_argument(
        "--upload-only", action="store_true", help="add: a drop box (a folder others add files to)"
    )

    usage = command(files, "usage", cmd_usage, "space taken by a user's files and versions", **own)
    usage.add_argument("address")


def _time(text: str) -> float:
    """A local date and time ("2024-05-01 14:00", ISO 8601, with or without a zone), or unix
    seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time such as 2024-05-01 14:00"
        ) from None


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = 0
    if not days > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days")
    return days


def _shown(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(moment))


@contextmanager
def _store(arguments: argparse.Namespace) -> Iterator[FileStore]:
    data_dir = data_dir_of(arguments)
    settings = load_config(data_dir)
    with directory_of(arguments) as directory:
        store = file_store(data_dir, directory, settings)
        try:
            yield store
        except PathRefused as error:
            raise UsageError(str(error)) from None
        except FileStoreError as error:
            raise CommandError(str(error)) from None
        finally:
            store.close()


def cmd_versions(context: Context, arguments: argparse.Namespace) -> int:
    with _store(arguments) as store:
        files = store.user(arguments.address)
        versions = files.versions(arguments.path)
        try:
            current = files.stat(arguments.path)
        except FileStoreError:
            current = None
    if current is not None and not current.is_dir:
        context.say(f"current  {_shown(current.mtime)}  {current.size} bytes  /{current.path}")
    for version in versions:
        context.say(
            f"{version.id}  {_shown(version.replaced)}  {version.reason}  {version.size} bytes"
            f"  /{version.path}  (modified {_shown(version.mtime)})"
        )
    if not versions:
        context.say("no earlier versions")
    return 0


def cmd_restore(context: Context, arguments: argparse.Namespace) -> int:
    with _store(arguments) as store:
        written = store.user(arguments.address).restore(
            arguments.path, at=arguments.at, version=arguments.version, to=arguments.to
        )
    for path in written:
        context.say(f"restored /{path}")
    context.say(f"{len(written)} files restored")
    return 0


def cmd_share(context: Context, arguments: argparse.Namespace) -> int:
    with _store(arguments) as store:
        share = store.share(
            arguments.owner, arguments.path, arguments.grantee, writable=not arguments.read_only
        )
    access = "read-write" if share.writable else "read-only"
    context.say(f"/{share.path} of {share.owner} shared with {share.grantee} ({access})")
    context.say(f"  in their files: Shared/{share.owner}/{share.name}")
    return 0


def cmd_unshare(context: Context, arguments: argparse.Namespace) -> int:
    with _store(arguments) as store:
        store.unshare(arguments.owner, arguments.path, arguments.grantee)
    context.say(f"{arguments.path} of {arguments.owner} no longer shared with {arguments.grantee}")
    return 0


def cmd_shares(context: Context, arguments: argparse.Namespace) -> int:
    with _store(arguments) as store:
        for share in store.shares(arguments.address):
            access = "read-write" if share.writable else "read-only"
            context.say(f"{share.owner}:/{share.path} -> {share.grantee} ({access})")
    return 0


def cmd_link(context: Context, arguments: argparse.Namespace) -> int:
    needed = {"add": "OWNER and PATH", "del": "OWNER and TOKEN"}.get(arguments.operation)
    if needed and not (arguments.owner and arguments.target):
        raise UsageError(f"link {arguments.operation} needs {needed}")
    password = None
    if arguments.password_stdin:
        password = context.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("the password read from standard input is empty")
    with _store(arguments) as store:
        if arguments.operation == "add":
            expires = time.time() + arguments.expires * 86400 if arguments.expires else None
            link = store.add_link(
                arguments.owner, arguments.target, password=password, expires=expires,
                upload_only=arguments.upload_only,
            )  # fmt: skip
            context.say(f"link {link.token}")
            context.say(f"  {_link_url(arguments, link.token)}")
            context.say(f"  {_describe(link)}")
        elif arguments.operation == "list":
            for link in store.links(arguments.owner):
                context.say(f"{link.token}  {link.owner}:/{link.path}  {_describe(link)}")
        else:
            link = store.remove_link(arguments.owner, arguments.target)
            context.say(f"link {link.token} to {link.owner}:/{link.path} deleted")
    return 0


def _link_url(arguments: argparse.Namespace, token: str) -> str:
    """The link's address: the server's domain, on the HTTPS port it listens on (or will)."""
    from pcloud.files.links import link_url

    data_dir = data_dir_of(arguments)
    settings = load_config(data_dir)
    running = [e.port for e in running_endpoints(data_dir) if e.listener == "https"]
    listener = settings.listeners.get("https")
    if running:
        port = running[0]
    elif listener is not None and listener.port is not None:
        port = listener.port
    else:
        spec = next(spec for spec in LISTENERS if spec.name == "https")
        port = spec.port_in(choose_port_map(settings.server.ports))
    return link_url(f"https://{settings.server.domain}{'' if port == 443 else f':{port}'}", token)


def _describe(link: Link) -> str:
    parts = ["upload only (drop box)" if link.upload_only else "download"]
    if link.has_password:
        parts.append("password")
    parts.append(f"expires {_shown(link.expires)}" if link.expires else "no expiry")
    return ", ".join(parts)


def cmd_usage(context: Context, arguments: argparse.Namespace) -> int:
    with _store(arguments) as store:
        usage = store.user(arguments.address).usage()
    context.say(f"files: {usage.files} bytes")
    context.say(f"earlier versions: {usage.versions} bytes")
    quota = f"{usage.quota} bytes" if usage.quota else "no limit"
    context.say(f"counted against the quota: {usage.counted} bytes (quota: {quota})")
    return 0
