"""Values of the mail store: mailboxes, messages, flags, and the errors it raises."""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pcloud.store.maildir import INBOX

DEFAULT_MAILBOXES = (
    (INBOX, None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)
SPECIAL_USES = frozenset(use for _, use in DEFAULT_MAILBOXES if use) | {"\\All", "\\Flagged"}
SYSTEM_FLAGS = {
    flag.lower(): flag for flag in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
}
MAILDIR_FLAGS = {
    "D": "\\Draft",
    "F": "\\Flagged",
    "R": "\\Answered",
    "S": "\\Seen",
    "T": "\\Deleted",
}
# An IMAP atom (RFC 9051 §9 flag-keyword): no controls, spaces or atom-specials.
_KEYWORD = re.compile(r'^[^\x00-\x20\x7f(){%*"\\\]]{1,100}$')
MAX_NAME_LENGTH = 500
MAX_DEPTH = 20


class MailStoreError(Exception):
    """A request the store refuses; the message is for the client."""


class MailboxNotFound(MailStoreError):
    pass


class MailboxExists(MailStoreError):
    pass


class QuotaExceeded(MailStoreError):
    pass


class NoSuchAccount(MailStoreError):
    pass


@dataclass(frozen=True)
class Mailbox:
    name: str
    special_use: str | None
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    subscribed: bool
    messages: int
    unseen: int
    size: int
    deleted: int  # messages flagged \\Deleted


@dataclass(frozen=True)
class Message:
    uid: int
    flags: tuple[str, ...]
    modseq: int
    internal_date: int
    size: int
    headers: dict[str, str]  # empty when not asked for (Account.messages(headers=False))


@dataclass(frozen=True)
class MailboxView:
    """What a client opening a mailbox needs (IMAP SELECT), read in one transaction."""

    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    uids: array[int]  # every message's UID, ascending ("I": 4 bytes each, for big mailboxes)
    unseen: int
    first_unseen_uid: int | None
    keywords: tuple[str, ...]  # the keywords in use, for FLAGS and PERMANENTFLAGS


@dataclass(frozen=True)
class MailboxChanges:
    """What changed in a mailbox after a MODSEQ, read in one transaction (IMAP sessions catch
    up with other sessions this way, RFC 7162)."""

    uidvalidity: int
    highestmodseq: int
    changed: list[Message]  # added or flags changed (without headers), UID order
    vanished: list[int]  # expunged UIDs


@dataclass(frozen=True)
class Stored:
    mailbox: str
    uid: int
    uidvalidity: int
    modseq: int


@dataclass(frozen=True)
class FlagChange:
    modseq: int
    changed: list[int]  # UIDs whose flags changed
    failed: list[int]  # UIDs left alone because they changed after `unchanged_since`


FlagMode = Literal["add", "remove", "replace"]


def normalize_mailbox_name(name: str) -> str:
    """Check a mailbox name and write INBOX (any case) as INBOX."""
    levels = name.split("/")
    if levels[0].upper() == INBOX:
        levels[0] = INBOX
    if (
        not name
        or len(name) > MAX_NAME_LENGTH
        or len(levels) > MAX_DEPTH
        or any(not level or level.strip() != level for level in levels)
        or any(ord(c) < 0x20 or c in "*%\x7f" for c in name)
    ):
        raise MailStoreError(f"{name!r} is not a valid mailbox name")
    return "/".join(levels)


def normalize_flags(flags: Iterable[str]) -> tuple[str, ...]:
    """System flags in their usual spelling, keywords as given; sorted, no duplicates.
    \\Recent is a session's, never stored."""
    result = set()
    for flag in flags:
        if flag.startswith("\\"):
            canonical = SYSTEM_FLAGS.get(flag.lower())
            if canonical is None:
                if flag.lower() == "\\recent":
                    continue
                raise MailStoreError(f"{flag} is not a flag that can be set")
            result.add(canonical)
        elif _KEYWORD.match(flag):
            result.add(flag)
        else:
            raise MailStoreError(f"{flag!r} is not a valid keyword")
    return tuple(sorted(result))


def split_flags(text: str) -> tuple[str, ...]:
    return tuple(text.split()) if text else ()
