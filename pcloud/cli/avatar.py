"""`pcloud avatar set|del|list`: the pictures served at /avatar/ (Libravatar, Gravatar)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pcloud.cli import Access, CommandError, Context, data_dir_of
from pcloud.cli.admin import directory_of
from pcloud.services import avatar_store
from pcloud.store.avatars import MAX_UPLOAD_BYTES, AvatarStore, hashes


def register(group: Any, command: Any) -> None:
    avatars = group("avatar", "pictures of addresses, served to mail and chat programs")
    owner_help = 'an address (a user or an alias), or "@domain" for its addresses without one'
    # It reads a file of this machine: not for the SSH shell (the web panel will take uploads).
    set_ = command(avatars, "set", cmd_set, "set the picture of an address or of a domain",
                   access=Access.LOCAL)  # fmt: skip
    set_.add_argument("owner", metavar="ADDRESS", help=owner_help)
    set_.add_argument("file", metavar="FILE", help="a PNG, JPEG, GIF or WebP picture")
    delete = command(avatars, "del", cmd_del, "delete the picture of an address or of a domain",
                     access=Access.ACCOUNT, account="owner")  # fmt: skip
    delete.add_argument("owner", metavar="ADDRESS", help=owner_help)
    command(avatars, "list", cmd_list, "list the addresses and domains that have a picture")


@contextmanager
def _store(arguments: argparse.Namespace) -> Iterator[AvatarStore]:
    with directory_of(arguments) as directory:
        yield avatar_store(data_dir_of(arguments), directory)


def cmd_set(context: Context, arguments: argparse.Namespace) -> int:
    try:
        with open(arguments.file, "rb") as file:
            data = file.read(MAX_UPLOAD_BYTES + 1)  # one byte more tells "too large"
    except OSError as error:
        raise CommandError(f"cannot read {arguments.file}: {error.strerror}") from None
    with _store(arguments) as store:
        owner = store.set(arguments.owner, data)
    if owner.startswith("@"):
        context.say(f"avatar of {owner[1:]} set: its addresses without their own show it")
    else:
        md5, sha256 = hashes(owner)
        context.say(f"avatar of {owner} set: served at /avatar/{md5} and /avatar/{sha256}")
    return 0


def cmd_del(context: Context, arguments: argparse.Namespace) -> int:
    with _store(arguments) as store:
        owner = store.delete(arguments.owner)
    context.say(f"avatar of {owner.removeprefix('@')} deleted")
    return 0


def cmd_list(context: Context, arguments: argparse.Namespace) -> int:
    with _store(arguments) as store:
        for owner in store.owners():
            context.say(owner)
    return 0
