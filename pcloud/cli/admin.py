"""`pcloud user …`, `pcloud alias …`, `pcloud domain …`: the directory's administration, and
`pcloud queue …`: the outgoing mail queue.

They work whether or not the server runs: the server reads the directory on every request.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pcloud import dns_records
from pcloud.cli import Access, CommandError, Context, UsageError, data_dir_of
from pcloud.directory import Directory
from pcloud.directory.passwords import generate_password
from pcloud.events import Events
from pcloud.services import (
    dkim_keys,
    load_config,
    mail_store,
    open_directory,
    queue_store,
    xmpp_store,
)
from pcloud.store.queue import QueueStore
from pcloud.supervisor import notify_running_server


def register(commands: Any, group: Any, command: Any) -> None:
    own = Access.ACCOUNT  # every user on their own account; the rest is for administrators
    users = group("user", "manage users, their passwords, app passwords and SSH keys")
    add = command(users, "add", cmd_user_add, "add a user")
    add.add_argument("address", help="the user's mail address, which is also their login")
    add.add_argument("--name", default="", help="display name")
    add.add_argument("--admin", action="store_true", help="may administer this server")
    add.add_argument(
        "--quota", type=_size, default=0, help="storage limit, e.g. 5G (default: none)"
    )
    _password_options(add)

    listing = command(users, "list", cmd_user_list, "list users")
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")

    show = command(
        users, "show", cmd_user_show, "a user's name, role and storage limit", access=own
    )
    show.add_argument("address")

    passwd = command(users, "passwd", cmd_user_passwd, "set a user's password", access=own)
    passwd.add_argument("address")
    _password_options(passwd)

    delete = command(users, "del", cmd_user_del, "delete a user from the directory")
    delete.add_argument("address")

    quota = command(users, "quota", cmd_user_quota, "set a user's storage limit")
    quota.add_argument("address")
    quota.add_argument("size", type=_size, help='e.g. 500M, 5G, or "none"')

    app = command(users, "app-password", cmd_app_password, "per-device passwords", access=own)
    app.add_argument("operation", choices=("add", "list", "del"))
    app.add_argument("address")
    app.add_argument("label", nargs="?", help='the device, e.g. "phone" (add, del)')

    key = command(
        users, "ssh-key", cmd_ssh_key, "SSH public keys for SFTP and the shell", access=own
    )
    key.add_argument("operation", choices=("add", "list", "del"))
    key.add_argument("address")
    key.add_argument(
        "key",
        nargs="?",
        help='add: a public key file, or "-" for standard input (over SSH: the key line itself, '
        'quoted, or "-"); del: its fingerprint',
    )

    card = command(
        users, "card", cmd_user_card, "publish the user's contact card, or stop", access=own
    )
    card.add_argument("address")
    card.add_argument("state", choices=("on", "off"))

    aliases = group("alias", "manage aliases: addresses that deliver to other addresses")
    alias_add = command(aliases, "add", cmd_alias_add, "add an alias, or targets to one")
    alias_add.add_argument("alias", help='the alias address; "@domain" is the catch-all')
    alias_add.add_argument("targets", nargs="+", metavar="target", help="user or external address")
    command(aliases, "list", cmd_alias_list, "list aliases")
    alias_del = command(aliases, "del", cmd_alias_del, "delete an alias")
    alias_del.add_argument("alias")

    queue = group("queue", "mail waiting for delivery to other servers")
    command(queue, "list", cmd_queue_list, "list queued mail")
    retry = command(queue, "retry", cmd_queue_retry, "try again now")
    retry.add_argument("id", nargs="?", help="one message (default: all)")
    queue_del = command(queue, "delete", cmd_queue_delete, "give up on a message, silently")
    queue_del.add_argument("id")

    domains = group("domain", "manage hosted domains")
    domain_add = command(domains, "add", cmd_domain_add, "host another domain")
    domain_add.add_argument("name")
    command(domains, "list", cmd_domain_list, "list hosted domains")

    records = command(commands, "dns", cmd_dns, "the DNS records a domain needs to publish")
    records.add_argument("domain")
    records.add_argument("--check", action="store_true", help="look them up and compare")


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$")


def _size(text: str) -> int:
    """ "5G" -> bytes (binary units); "none", "0" -> 0, meaning no limit."""
    if text.strip().lower() in ("none", "unlimited"):
        return 0
    match = _SIZE.match(text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 500M or 5G")
    number, unit = match.groups()
    return int(float(number) * 1024 ** "_kmgt".index(unit or "_"))


def _password_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--password", help="the password (visible to other local users: prefer the next)"
    )
    source.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )


def _new_password(context: Context, arguments: argparse.Namespace) -> tuple[str, bool]:
    """The password given, typed or generated; True when generated (to be shown once)."""
    if arguments.password is not None:
        return arguments.password, False
    if arguments.password_stdin:
        return context.stdin.readline().rstrip("\r\n"), False
    if context.ask_secret is not None:
        first = context.ask_secret("New password (empty: generate one): ")
        if not first:
            return generate_password(), True
        if context.ask_secret("Repeat it: ") != first:
            raise UsageError("the two passwords differ")
        return first, False
    return generate_password(), True


@contextmanager
def directory_of(arguments: argparse.Namespace) -> Iterator[Directory]:
    data_dir = data_dir_of(arguments)
    directory = open_directory(data_dir, load_config(data_dir))
    try:
        yield directory
    finally:
        directory.close()


def cmd_user_add(context: Context, arguments: argparse.Namespace) -> int:
    password, generated = _new_password(context, arguments)
    with directory_of(arguments) as directory:
        user = directory.add_user(
            arguments.address,
            password,
            display_name=arguments.name,
            is_admin=arguments.admin,
            quota_bytes=arguments.quota,
        )
    context.say(f"added {user.address}" + (" (administrator)" if user.is_admin else ""))
    if generated:
        context.say(f"password: {password}   (shown only this once)")
    return 0


def cmd_user_list(context: Context, arguments: argparse.Namespace) -> int:
    with directory_of(arguments) as directory:
        users = directory.users()
    if arguments.json:
        context.say(json.dumps([asdict(user) for user in users], indent=2))
        return 0
    for user in users:
        flags = " admin" if user.is_admin else ""
        quota = f" quota={user.quota_bytes}" if user.quota_bytes else ""
        name = f" ({user.display_name})" if user.display_name else ""
        context.say(f"{user.address}{name}{flags}{quota}")
    return 0


def cmd_user_show(context: Context, arguments: argparse.Namespace) -> int:
    with directory_of(arguments) as directory:
        user = directory.user(arguments.address)
        if user is None:
            raise CommandError(f"no user {arguments.address}")
        keys = len(directory.ssh_keys(user.address))
        apps = len(directory.app_passwords(user.address))
    context.say(user.address)
    context.say(f"  name: {user.display_name or '-'}")
    context.say(f"  administrator: {'yes' if user.is_admin else 'no'}")
    context.say(f"  storage limit: {_size_text(user.quota_bytes)}")
    context.say(f"  app passwords: {apps}, SSH keys: {keys}")
    return 0


def _size_text(size: int) -> str:
    if not size:
        return "none"
    for unit in "TGMK":
        scale = 1024 ** ("_KMGT".index(unit))
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size} bytes"


def cmd_user_passwd(context: Context, arguments: argparse.Namespace) -> int:
    password, generated = _new_password(context, arguments)
    with directory_of(arguments) as directory:
        directory.set_password(arguments.address, password)
    context.say(f"password of {arguments.address} changed")
    if generated:
        context.say(f"password: {password}   (shown only this once)")
    return 0


def cmd_user_del(context: Context, arguments: argparse.Namespace) -> int:
    with directory_of(arguments) as directory:
        aliases = directory.delete_user(arguments.address)
        # Kept, but out of reach: a new user of the same address starts with no mail.
        store = mail_store(data_dir_of(arguments), directory, Events())
        try:
            retired = store.retire(arguments.address)
        finally:
            store.close()
        # Chat state is dropped: their roster, kept messages, and their place in others' rosters.
        chat = xmpp_store(data_dir_of(arguments))
        try:
            chat.forget_user(arguments.address)
        finally:
            chat.close()
    context.say(f"deleted {arguments.address}")
    for alias in aliases:
        context.say(f"  no longer a target of alias {alias}")
    if retired is not None:
        context.say(f"  their mail is kept in {retired}")
    return 0


def cmd_user_quota(context: Context, arguments: argparse.Namespace) -> int:
    with directory_of(arguments) as directory:
        directory.set_quota(arguments.address, arguments.size)
    limit = f"{arguments.size} bytes" if arguments.size else "no limit"
    context.say(f"quota of {arguments.address}: {limit}")
    return 0


def cmd_user_card(context: Context, arguments: argparse.Namespace) -> int:
    publish = arguments.state == "on"
    with directory_of(arguments) as directory:
        directory.publish_contact_card(arguments.address, publish)
    where = f"public at /contact/{arguments.address}.vcf" if publish else "not public"
    context.say(f"contact card of {arguments.address}: {where}")
    return 0


def _required(value: str | None, what: str) -> str:
    if not value:
        raise UsageError(f"this operation needs {what}")
    return value


def cmd_app_password(context: Context, arguments: argparse.Namespace) -> int:
    with directory_of(arguments) as directory:
        if arguments.operation == "add":
            secret = directory.add_app_password(
                arguments.address, _required(arguments.label, "a label")
            )
            context.say(f"app password {arguments.label!r} for {arguments.address}:")
            context.say(f"{secret}   (shown only this once)")
        elif arguments.operation == "list":
            for app in directory.app_passwords(arguments.address):
                used = app.last_used or "never"
                context.say(f"{app.label}  created={app.created}  last_used={used}")
        else:
            directory.revoke_app_password(arguments.address, _required(arguments.label, "a label"))
            context.say(f"app password {arguments.label!r} of {arguments.address} revoked")
    return 0


def cmd_ssh_key(context: Context, arguments: argparse.Namespace) -> int:
    with directory_of(arguments) as directory:
        if arguments.operation == "add":
            key = directory.add_ssh_key(arguments.address, _public_key(context, arguments))
            context.say(f"added key {key.fingerprint} {key.comment}".rstrip())
        elif arguments.operation == "list":
            for key in directory.ssh_keys(arguments.address):
                context.say(f"{key.fingerprint} {key.comment}".rstrip())
        else:
            fingerprint = _required(arguments.key, "a fingerprint")
            directory.remove_ssh_key(arguments.address, fingerprint)
            context.say(f"removed key {fingerprint}")
    return 0


def _public_key(context: Context, arguments: argparse.Namespace) -> str:
    source = _required(arguments.key, "a public key")
    if source == "-":
        return context.stdin.read()
    if context.remote:  # the server's files are not the signed-in user's to read
        return source
    try:
        return Path(source).read_text()
    except OSError as error:
        raise CommandError(f"cannot read {source}: {error.strerror}") from None


def cmd_alias_add(context: Context, arguments: argparse.Namespace) -> int:
    with directory_of(arguments) as directory:
        alias = directory.add_alias(arguments.alias, arguments.targets)
        targets = directory.aliases()[alias]
    context.say(f"{alias} -> {', '.join(targets)}")
    return 0


def cmd_alias_list(context: Context, arguments: argparse.Namespace) -> int:
    with directory_of(arguments) as directory:
        for alias, targets in directory.aliases().items():
            context.say(f"{alias} -> {', '.join(targets)}")
    return 0


def cmd_alias_del(context: Context, arguments: argparse.Namespace) -> int:
    with directory_of(arguments) as directory:
        directory.delete_alias(arguments.alias)
    context.say(f"deleted alias {arguments.alias}")
    return 0


def cmd_domain_add(context: Context, arguments: argparse.Namespace) -> int:
    with directory_of(arguments) as directory:
        domain = directory.add_domain(arguments.name)
    context.say(f"added domain {domain}")
    # The running server issues its certificate again to cover the new names.
    if notify_running_server(data_dir_of(arguments)):
        context.say("the running server now reloads its certificate")
    return 0


def cmd_domain_list(context: Context, arguments: argparse.Namespace) -> int:
    with directory_of(arguments) as directory:
        for domain in directory.domains():
            context.say(domain)
    return 0


@contextmanager
def _queue(arguments: argparse.Namespace) -> Iterator[QueueStore]:
    data_dir = data_dir_of(arguments)
    load_config(data_dir)  # a data folder, not just any folder
    queue = queue_store(data_dir)
    try:
        yield queue
    finally:
        queue.close()


def cmd_queue_list(context: Context, arguments: argparse.Namespace) -> int:
    with _queue(arguments) as queue:
        entries = queue.entries()
    for entry in entries:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.created))
        context.say(f"{entry.id}  {created}  {entry.size} bytes  from <{entry.sender}>")
        for recipient in entry.recipients:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(recipient.next_attempt))
            error = f"  last: {recipient.last_error}" if recipient.last_error else ""
            context.say(f"    to <{recipient.address}>  attempts={recipient.attempts}"
                        f"  next={when}{error}")  # fmt: skip
    context.say(f"{len(entries)} queued")
    return 0


def cmd_queue_retry(context: Context, arguments: argparse.Namespace) -> int:
    with _queue(arguments) as queue:
        count = queue.retry_now(arguments.id)
    if arguments.id and not count:
        raise CommandError(f"no queued message {arguments.id}")
    context.say(f"{count} recipients due now")
    notify_running_server(data_dir_of(arguments))
    return 0


def cmd_queue_delete(context: Context, arguments: argparse.Namespace) -> int:
    with _queue(arguments) as queue:
        if not queue.delete(arguments.id):
            raise CommandError(f"no queued message {arguments.id}")
    context.say(f"deleted {arguments.id}")
    return 0


def cmd_dns(context: Context, arguments: argparse.Namespace) -> int:
    data_dir = data_dir_of(arguments)
    settings = load_config(data_dir)
    with directory_of(arguments) as directory:
        domain = arguments.domain.strip().lower()
        if domain not in directory.domains():
            raise CommandError(f"domain {domain} is not hosted here")
    records = dns_records.mail_records(domain, dkim_keys(data_dir).ensure(domain))
    records += dns_records.client_records(domain, dns_records.public_ports(settings))
    dns_records.configure_resolver(settings.smtp)
    missing = 0
    for record in records:
        context.say(f"; {record.purpose}")
        context.say(f"{record.name}.  {record.type}  {_zone_value(record)}")
        if arguments.check:
            status = dns_records.check(record)
            missing += status != "ok"
            context.say(f";   published: {status}")
    if arguments.check:
        context.say(f"{len(records) - missing} of {len(records)} records are published as shown")
    return 0


def _zone_value(record: dns_records.Record) -> str:
    if record.type != "TXT":
        return record.value
    # A TXT string holds at most 255 bytes: longer values (DKIM keys) are split.
    chunks = [record.value[i : i + 255] for i in range(0, len(record.value), 255)]
    return " ".join(f'"{chunk}"' for chunk in chunks)
