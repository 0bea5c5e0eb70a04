"""IMAP commands on whole mailboxes: CREATE, DELETE, RENAME, SUBSCRIBE/UNSUBSCRIBE, LIST/LSUB,
NAMESPACE, STATUS, APPEND, and the QUOTA commands (RFC 9208).

Implementation notes:
- One personal namespace without prefix, "/" as the hierarchy delimiter: the store's names.
- CREATE and RENAME also create the missing levels above the new name (RFC 9051 §6.3.4 SHOULD),
  so that every level a client sees is a mailbox. A level can still be missing: DELETE of a
  mailbox leaves the mailboxes below it (RFC 9051 §6.3.5 allows this). LIST shows such a level
  where the RFC asks for it: reached by a trailing "%" (RFC 9051 §6.3.9), as \\Noselect, or as
  \\NonExistent to IMAP4rev2 and LIST-EXTENDED clients (RFC 9051 §6.3.9.8 example 10); and under
  RECURSIVEMATCH.
- DELETE of the selected mailbox closes it first (as Dovecot does), so that the session goes on;
  another session that has it selected is told BYE (session.catch_up).
- LIST joins the reference and the pattern by concatenation ("Archive/" and "%" are
  "Archive/%"), as Cyrus and Dovecot do. "*" matches "/", "%" does not; only INBOX is matched
  without regard to case.
- Every LIST response has \\HasChildren or \\HasNoChildren (CHILDREN, RFC 3348) and the special
  use (RFC 6154 §2 SHOULD), asked for or not; \\Subscribed only when asked (RFC 5258 §3).
- STATUS RECENT is always 0: no session sees \\Recent messages here. STATUS HIGHESTMODSEQ is a
  CONDSTORE enabling command (RFC 7162 §3.1).
- QUOTA: one quota root, "", per user, with the STORAGE resource in KiB when the administrator
  gave the user a quota; a quota root without any limit has no resources (`* QUOTA "" ()`).
  MESSAGE is never listed: the syntax wants a limit, and there is none on messages.

Not supported: subscriptions to names that are not mailboxes (the store keeps a subscription
with its mailbox: SUBSCRIBE refuses such a name, DELETE ends the subscription); REMOTE is accepted
and changes nothing (there are no remote mailboxes); OLDNAME (RFC 9051 §6.3.9.7).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pcloud.imap.errors import ImapError, from_store
from pcloud.imap.values import (
    Append,
    Command,
    Create,
    ListCommand,
    MailboxName,
    QuotaRoot,
    Rename,
    Status,
)
from pcloud.imap.wire import parenthesized
from pcloud.store.mail import Account
from pcloud.store.mail_values import (
    SPECIAL_USES,
    Mailbox,
    MailboxExists,
    MailStoreError,
    normalize_mailbox_name,
)
from pcloud.store.maildir import INBOX

if TYPE_CHECKING:
    from pcloud.imap.session import Session

DELIMITER = "/"
QUOTA_ROOT = ""
_SPECIAL_USES = {use.lower(): use for use in SPECIAL_USES}  # flags are case-insensitive
_WILDCARDS = {"*": ".*", "%": f"[^{DELIMITER}]*"}


# -- creating, deleting, renaming, subscribing ---------------------------------------------------


def _create_parents(account: Account, name: str) -> None:
    """Create the levels above `name` that are not mailboxes yet."""
    levels = name.split(DELIMITER)
    for depth in range(1, len(levels)):
        with contextlib.suppress(MailboxExists):
            account.create_mailbox(DELIMITER.join(levels[:depth]))


def _create(account: Account, name: str, special_use: str | None) -> None:
    account.create_mailbox(name, special_use)
    _create_parents(account, name)


def _rename(account: Account, old: str, new: str) -> None:
    account.rename_mailbox(old, new)
    _create_parents(account, new)


# RFC 9051 §6.3.4; RFC 6154 §3 (CREATE-SPECIAL-USE)
async def create(session: Session, command: Command) -> str:
    arguments = command.arguments
    assert isinstance(arguments, Create)
    if len(arguments.special_use) > 1:
        raise ImapError("A mailbox has at most one special use", code="USEATTR")
    special_use = None
    if arguments.special_use:
        special_use = _SPECIAL_USES.get(arguments.special_use[0].lower())
        if special_use is None:
            raise ImapError(f"{arguments.special_use[0]} is not a special use", code="USEATTR")
    # A trailing delimiter only says that names will be created below this one.
    name = arguments.mailbox.removesuffix(DELIMITER)
    await session.store_call(_create, session.require_account(), name, special_use)
    return "CREATE completed"


# RFC 9051 §6.3.5
async def delete(session: Session, command: Command) -> str:
    arguments = command.arguments
    assert isinstance(arguments, MailboxName)
    # Deleting the selected mailbox closes it first, as Dovecot does: the session goes on in the
    # authenticated state instead of ending for its mailbox gone.
    selected = session.selected
    with contextlib.suppress(MailStoreError):  # not a valid name: the store says so below
        if selected is not None and selected.name == normalize_mailbox_name(arguments.mailbox):
            session.selected = None
    try:
        await session.store_call(session.require_account().delete_mailbox, arguments.mailbox)
    except ImapError:
        session.selected = selected  # nothing was deleted
        raise
    return "DELETE completed"


# RFC 9051 §6.3.6
async def rename(session: Session, command: Command) -> str:
    arguments = command.arguments
    assert isinstance(arguments, Rename)
    await session.store_call(_rename, session.require_account(), arguments.old, arguments.new)
    return "RENAME completed"


# RFC 9051 §6.3.7 (SUBSCRIBE), §6.3.8 (UNSUBSCRIBE)
async def subscribe(session: Session, command: Command) -> str:
    arguments = command.arguments
    assert isinstance(arguments, MailboxName)
    subscribing = command.name == "SUBSCRIBE"
    account = session.require_account()
    try:
        await session.store_call(account.subscribe, arguments.mailbox, subscribing)
    except ImapError as error:
        # §6.3.8: unsubscribing from a name that is not subscribed succeeds.
        if subscribing or error.code != "NONEXISTENT":
            raise
    return f"{command.name} completed"


# -- LIST and LSUB ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Level:
    """A name in the hierarchy: a mailbox, or (mailbox None) a level above mailboxes only."""

    name: str
    mailbox: Mailbox | None
    has_children: bool


def _hierarchy(mailboxes: Iterable[Mailbox]) -> list[_Level]:
    """Every mailbox and every level above one, INBOX first, then by name."""
    by_name = {mailbox.name: mailbox for mailbox in mailboxes}
    parents = {ancestor for name in by_name for ancestor in _ancestors(name)}
    names = sorted(by_name.keys() | parents, key=lambda name: (name != INBOX, name))
    return [_Level(name, by_name.get(name), name in parents) for name in names]


def _ancestors(name: str) -> list[str]:
    levels = name.split(DELIMITER)
    return [DELIMITER.join(levels[:depth]) for depth in range(1, len(levels))]


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    trailing_percent: bool  # RFC 9051 §6.3.9: then the levels above what it finds match too


def _pattern(reference: str, pattern: str) -> _Pattern:
    joined = reference + pattern
    first, delimiter, rest = joined.partition(DELIMITER)
    if first.upper() == INBOX:
        joined = INBOX + delimiter + rest
    regex = "".join(_WILDCARDS.get(char) or re.escape(char) for char in joined)
    return _Pattern(re.compile(regex, re.DOTALL), joined.endswith("%"))


@dataclass(frozen=True)
class _Listed:
    level: _Level
    chosen: bool  # meets the selection criteria
    childinfo: bool  # has descendants that do (told under RECURSIVEMATCH)


def _criteria(arguments: ListCommand) -> frozenset[str]:
    if arguments.lsub:
        return frozenset({"SUBSCRIBED"})
    return arguments.selection & {"SUBSCRIBED", "SPECIAL-USE"}


def _listed(arguments: ListCommand, hierarchy: list[_Level]) -> Iterator[_Listed]:
    """The names a LIST or LSUB answers with (RFC 9051 §6.3.9.3): once each name that matches a
    pattern and meets the selection criteria, or has descendants that do and is reached by
    RECURSIVEMATCH or, without selection options, by a trailing "%"."""
    criteria = _criteria(arguments)
    recursive = "RECURSIVEMATCH" in arguments.selection
    levels_too = arguments.lsub or not criteria
    patterns = [_pattern(arguments.reference, p) for p in arguments.patterns if p]

    def chosen(level: _Level) -> bool:
        mailbox = level.mailbox
        return (
            mailbox is not None
            and (mailbox.subscribed or "SUBSCRIBED" not in criteria)
            and (mailbox.special_use is not None or "SPECIAL-USE" not in criteria)
        )

    def matching(name: str) -> list[_Pattern]:
        return [pattern for pattern in patterns if pattern.regex.fullmatch(name)]

    chosen_names = [level.name for level in hierarchy if chosen(level)]
    above_chosen = {ancestor for name in chosen_names for ancestor in _ancestors(name)}
    # RFC 9051 §6.3.9.6: a name that is not chosen itself is listed for its descendants only
    # when one of them is not listed.
    above_unlisted = {
        ancestor for name in chosen_names if not matching(name) for ancestor in _ancestors(name)
    }
    for level in hierarchy:
        found = matching(level.name)
        if not found:
            continue
        is_chosen = chosen(level)
        if recursive:
            if is_chosen or level.name in above_unlisted:
                yield _Listed(level, is_chosen, level.name in above_chosen)
        elif is_chosen or (
            levels_too
            and level.name in above_chosen
            and any(pattern.trailing_percent for pattern in found)
        ):
            yield _Listed(level, is_chosen, childinfo=False)


# RFC 9051 §6.3.9, RFC 5258 (LIST-EXTENDED), RFC 5819 (LIST-STATUS), RFC 6154 (SPECIAL-USE);
# RFC 3501 §6.3.9 (LSUB)
async def list_mailboxes(session: Session, command: Command) -> str:
    arguments = command.arguments
    assert isinstance(arguments, ListCommand)
    response = b"LSUB" if arguments.lsub else b"LIST"
    extended_syntax = (
        bool(arguments.selection or arguments.returns)
        or arguments.status is not None
        or len(arguments.patterns) != 1
    )
    if not extended_syntax and arguments.patterns == ("",):
        # The delimiter, and the root of the reference: every name here is rooted at "".
        session.untagged(response + b' (\\Noselect) "/" ""')
        return f"{command.name} completed"
    recursive = "RECURSIVEMATCH" in arguments.selection
    subscriptions = "SUBSCRIBED" in arguments.selection | arguments.returns
    rev2_style = not arguments.lsub and (session.rev2 or extended_syntax)
    nonexistent = b"\\NonExistent" if rev2_style else b"\\Noselect"
    childinfo = parenthesized(b'"%s"' % option.encode() for option in sorted(_criteria(arguments)))
    if arguments.status is not None:
        _enable_condstore(session, arguments.status)
    account = session.require_account()
    hierarchy = _hierarchy(await session.store_call(account.mailboxes))
    for listed in _listed(arguments, hierarchy):
        level, mailbox = listed.level, listed.level.mailbox
        attributes: list[bytes] = []
        if mailbox is None:
            attributes.append(nonexistent)
        elif not listed.chosen and not recursive:
            attributes.append(b"\\Noselect")  # LSUB: a level above subscribed mailboxes
        if not arguments.lsub:
            attributes.append(b"\\HasChildren" if level.has_children else b"\\HasNoChildren")
            if subscriptions and mailbox is not None and mailbox.subscribed:
                attributes.append(b"\\Subscribed")
            if mailbox is not None and mailbox.special_use is not None:
                attributes.append(mailbox.special_use.encode())
        line = response + b" " + parenthesized(attributes) + b' "/" '
        line += session.mailbox_name(level.name)
        if listed.childinfo:
            line += b' ("CHILDINFO" ' + childinfo + b")"
        session.untagged(line)
        if arguments.status is not None and listed.chosen and mailbox is not None:
            session.untagged(_status_response(session, mailbox, arguments.status))
    return f"{command.name} completed"


# RFC 2342, RFC 9051 §6.3.10
async def namespace(session: Session, command: Command) -> str:
    session.untagged(b'NAMESPACE (("" "/")) NIL NIL')
    return "NAMESPACE completed"


# -- STATUS ----------------------------------------------------------------------------------------


def _enable_condstore(session: Session, items: tuple[str, ...]) -> None:
    if "HIGHESTMODSEQ" in items:
        session.enabled.add("CONDSTORE")  # RFC 7162 §3.1: a CONDSTORE enabling command


def _status_response(session: Session, mailbox: Mailbox, items: tuple[str, ...]) -> bytes:
    values = {
        "MESSAGES": mailbox.messages,
        "UIDNEXT": mailbox.uidnext,
        "UIDVALIDITY": mailbox.uidvalidity,
        "UNSEEN": mailbox.unseen,
        "DELETED": mailbox.deleted,
        "SIZE": mailbox.size,
        "RECENT": 0,
        "HIGHESTMODSEQ": mailbox.highestmodseq,
        "APPENDLIMIT": session.services.config.smtp.max_message_bytes,
    }
    pairs = (b"%s %d" % (item.encode(), values[item]) for item in items)
    return b"STATUS " + session.mailbox_name(mailbox.name) + b" " + parenthesized(pairs)


# RFC 9051 §6.3.11; RFC 8438 (SIZE), RFC 7162 §3.1.2 (HIGHESTMODSEQ), RFC 7889 (APPENDLIMIT)
async def status(session: Session, command: Command) -> str:
    arguments = command.arguments
    assert isinstance(arguments, Status)
    account = session.require_account()
    mailbox = await session.store_call(account.mailbox, arguments.mailbox)
    _enable_condstore(session, arguments.items)
    session.untagged(_status_response(session, mailbox, arguments.items))
    return "STATUS completed"


# -- APPEND ----------------------------------------------------------------------------------------


# RFC 9051 §6.3.12; RFC 4315 §3 (APPENDUID), RFC 3516 §4.4 (literal8), RFC 7889 (APPENDLIMIT)
async def append(session: Session, command: Command) -> str:
    arguments = command.arguments
    assert isinstance(arguments, Append)
    limit = session.services.config.smtp.max_message_bytes
    if len(arguments.message) > limit:
        raise ImapError(f"The message is larger than the limit of {limit} bytes", code="TOOBIG")
    if not arguments.message:
        raise ImapError("An empty message is not a message")
    date = arguments.internal_date
    account = session.require_account()
    try:
        stored = await asyncio.to_thread(
            account.deliver, arguments.message, mailbox=arguments.mailbox,
            flags=arguments.flags, internal_date=None if date is None else date.timestamp(),
        )  # fmt: skip
    except MailStoreError as error:
        raise from_store(error, trycreate=True) from None
    return f"[APPENDUID {stored.uidvalidity} {stored.uid}] APPEND completed"


# -- QUOTA -----------------------------------------------------------------------------------------


def _usage(account: Account, mailbox: str | None) -> tuple[int, int]:
    """(bytes used, quota in bytes or 0), checking first that `mailbox` exists if named."""
    if mailbox is not None:
        account.mailbox(mailbox)
    return account.usage()[0], account.quota()


async def _quota(session: Session, mailbox: str | None = None) -> bytes:
    """The QUOTA response of the one quota root."""
    used, limit = await session.store_call(_usage, session.require_account(), mailbox)
    # Usage rounded up and the limit down: the client never sees more room than there is.
    resources = b"STORAGE %d %d" % (-(-used // 1024), limit // 1024) if limit else b""
    return b'QUOTA "" (' + resources + b")"


# RFC 9208 §4.2
async def get_quota(session: Session, command: Command) -> str:
    arguments = command.arguments
    assert isinstance(arguments, QuotaRoot)
    if arguments.root != QUOTA_ROOT:
        raise ImapError('The only quota root is ""', code="NONEXISTENT")
    session.untagged(await _quota(session))
    return "GETQUOTA completed"


# RFC 9208 §4.3
async def get_quota_root(session: Session, command: Command) -> str:
    arguments = command.arguments
    assert isinstance(arguments, MailboxName)
    quota = await _quota(session, arguments.mailbox)
    session.untagged(b"QUOTAROOT " + session.mailbox_name(arguments.mailbox) + b' ""')
    session.untagged(quota)
    return "GETQUOTAROOT completed"


# RFC 9208 §4.1
async def set_quota(session: Session, command: Command) -> str:
    raise ImapError("Quotas are set by the administrator", code="NOPERM")
