"""`pcloud dav share|unshare|shares`: calendars and address books shared between users."""

from __future__ import annotations

import argparse
from typing import Any

from pcloud.cli import Access, Context
from pcloud.cli.admin import directory_of


def register(group: Any, command: Any) -> None:
    dav = group("dav", "calendars and address books shared with other users")
    # Users share their own collections; administrators anyone's.
    own = {"access": Access.ACCOUNT, "account": "owner"}
    share = command(dav, "share", cmd_share, "share a calendar or address book with a user", **own)
    share.add_argument("owner", help="the owner's address")
    share.add_argument("collection", help='its name in the owner\'s home, e.g. "calendar"')
    share.add_argument("grantee", help="the user it is shared with")
    share.add_argument("--read-only", action="store_true", help="they may read, not change it")
    unshare = command(dav, "unshare", cmd_unshare, "stop sharing it with that user", **own)
    unshare.add_argument("owner")
    unshare.add_argument("collection")
    unshare.add_argument("grantee")
    shares = command(
        dav, "shares", cmd_shares, "list shares (all, or one user's)", access=Access.ACCOUNT
    )
    shares.add_argument("address", nargs="?", help="default: all (a user: their own)")


def cmd_share(context: Context, arguments: argparse.Namespace) -> int:
    with directory_of(arguments) as directory:
        share = directory.share_collection(
            arguments.owner, arguments.collection, arguments.grantee,
            writable=not arguments.read_only,
        )  # fmt: skip
    access = "read-write" if share.writable else "read-only"
    context.say(f"{share.owner}/{share.collection} shared with {share.grantee} ({access})")
    context.say(f"  its address: /dav/{share.owner}/{share.collection}/")
    return 0


def cmd_unshare(context: Context, arguments: argparse.Namespace) -> int:
    with directory_of(arguments) as directory:
        directory.unshare_collection(arguments.owner, arguments.collection, arguments.grantee)
    context.say(
        f"{arguments.owner}/{arguments.collection} no longer shared with {arguments.grantee}"
    )
    return 0


def cmd_shares(context: Context, arguments: argparse.Namespace) -> int:
    with directory_of(arguments) as directory:
        for share in directory.shares(arguments.address):
            access = "read-write" if share.writable else "read-only"
            context.say(f"{share.owner}/{share.collection} -> {share.grantee} ({access})")
    return 0
