"""The values the IMAP parser produces: one command, with its arguments typed per command.

`parse.py` turns the bytes of one command (literals included) into a `Command`; the session acts
on it. Nothing here touches sockets or the store.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Literal


class ParseError(Exception):
    """A command that cannot be parsed: the reply is `<tag> BAD <message>` (or `* BAD` when
    not even the tag could be read)."""

    def __init__(self, message: str, tag: str | None = None) -> None:
        super().__init__(message)
        self.tag = tag


class UnknownCharset(ParseError):
    """SEARCH CHARSET names a charset the server does not search in: the reply is
    `<tag> NO [BADCHARSET (UTF-8 US-ASCII)]` (RFC 9051 §6.4.4), not BAD."""

    def __init__(self, charset: str, tag: str | None = None) -> None:
        super().__init__("unsupported charset", tag)
        self.charset = charset


# -- sequence sets (RFC 9051 §9 sequence-set) ---------------------------------------------------

STAR = 0  # "*" in a sequence set: the largest number in use


@dataclass(frozen=True)
class SequenceSet:
    """Ranges as written, both ends inclusive; STAR (0) stands for "*"."""

    ranges: tuple[tuple[int, int], ...]

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Sorted, merged, non-overlapping (low, high) ranges with "*" replaced by `largest` and
        each range's ends put in order ("5:2" is "2:5"). Empty when `largest` is 0 and the set
        is only "*"-ranges; ranges may reach beyond `largest` (the caller clips)."""
        spans = []
        for low, high in self.ranges:
            low = largest if low == STAR else low
            high = largest if high == STAR else high
            if low > high:
                low, high = high, low
            if high == 0:
                continue
            spans.append((max(low, 1), high))
        spans.sort()
        merged: list[tuple[int, int]] = []
        for low, high in spans:
            if merged and low <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], high))
            else:
                merged.append((low, high))
        return merged


# -- FETCH (RFC 9051 §6.4.5, RFC 3516 BINARY, RFC 7162 CONDSTORE/QRESYNC) ----------------------

SectionText = Literal["HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"]


@dataclass(frozen=True)
class Section:
    """A body section: `part` (1.2.3, () for the whole message), then an optional text part.
    `fields` are upper-cased header field names, for HEADER.FIELDS and HEADER.FIELDS.NOT."""

    part: tuple[int, ...] = ()
    text: SectionText | None = None
    fields: tuple[str, ...] = ()

    def label(self) -> str:
        """The section as a FETCH response names it: "1.2.HEADER.FIELDS (FROM SUBJECT)"."""
        pieces = [str(number) for number in self.part]
        if self.text is not None:
            pieces.append(self.text)
        label = ".".join(pieces)
        if self.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            label += " (" + " ".join(self.fields) + ")"
        return label


FetchName = Literal[
    "UID",
    "FLAGS",
    "INTERNALDATE",
    "RFC822.SIZE",
    "ENVELOPE",
    "BODYSTRUCTURE",
    "BODY",  # with section None: the non-extensible BODYSTRUCTURE; else BODY[section]
    "BINARY",  # BINARY[section] (RFC 3516), section always set
    "BINARY.SIZE",  # BINARY.SIZE[section], section always set
    "MODSEQ",
    "RFC822",  # BODY[], answered as RFC822
    "RFC822.HEADER",  # BODY.PEEK[HEADER], answered as RFC822.HEADER
    "RFC822.TEXT",  # BODY[TEXT], answered as RFC822.TEXT
]


@dataclass(frozen=True)
class FetchAttribute:
    name: FetchName
    section: Section | None = None
    peek: bool = False  # BODY.PEEK[...] / BINARY.PEEK[...]: does not set \Seen
    partial: tuple[int, int] | None = None  # <offset.length>


@dataclass(frozen=True)
class Fetch:
    """FETCH; the macros ALL, FAST and FULL arrive expanded."""

    sequence: SequenceSet
    attributes: tuple[FetchAttribute, ...]
    changed_since: int | None = None  # CHANGEDSINCE (RFC 7162 §3.1.4)
    vanished: bool = False  # VANISHED (RFC 7162 §3.2.6), UID FETCH only


# -- STORE, COPY, MOVE, EXPUNGE ----------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    sequence: SequenceSet
    mode: Literal["add", "remove", "replace"]  # +FLAGS, -FLAGS, FLAGS
    silent: bool
    flags: tuple[str, ...]  # as written ("\\Seen", "$Forwarded")
    unchanged_since: int | None = None  # UNCHANGEDSINCE (RFC 7162 §3.1.3)


@dataclass(frozen=True)
class Copy:
    """COPY and MOVE (RFC 6851)."""

    sequence: SequenceSet
    mailbox: str


@dataclass(frozen=True)
class UidExpunge:
    """UID EXPUNGE (RFC 4315 §2.1); a plain EXPUNGE has no arguments."""

    sequence: SequenceSet


# -- SEARCH (RFC 9051 §6.4.4, RFC 4731 ESEARCH, RFC 7162 MODSEQ) --------------------------------


@dataclass(frozen=True)
class All:
    pass


@dataclass(frozen=True)
class Not:
    key: SearchKey


@dataclass(frozen=True)
class Or:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True)
class And:
    """A parenthesised list, and the keys of a search in a row."""

    keys: tuple[SearchKey, ...]


@dataclass(frozen=True)
class FlagKey:
    """SEEN/UNSEEN, ANSWERED, FLAGGED, DELETED, DRAFT and their UN- forms, KEYWORD/UNKEYWORD
    (flag as written), and RECENT/NEW/OLD (flag "\\Recent"; NEW is And(RECENT, UNSEEN),
    OLD is Not(RECENT))."""

    flag: str
    present: bool


@dataclass(frozen=True)
class HeaderKey:
    """FROM, TO, CC, BCC, SUBJECT (field named so) and HEADER field value: the field contains
    `value`, case-insensitively; HEADER with an empty value matches any message with the field."""

    field: str  # lower-case: "from", "subject", "x-mailer"
    value: str


@dataclass(frozen=True)
class TextKey:
    """BODY (the body only) and TEXT (header and body)."""

    where: Literal["body", "text"]
    value: str


@dataclass(frozen=True)
class DateKey:
    """BEFORE/ON/SINCE (internal date) and SENTBEFORE/SENTON/SENTSINCE (Date: header), dates
    without time as the RFC has them."""

    which: Literal["internal", "sent"]
    relation: Literal["before", "on", "since"]
    date: datetime.date


@dataclass(frozen=True)
class SizeKey:
    relation: Literal["larger", "smaller"]
    size: int


@dataclass(frozen=True)
class SequenceKey:
    """A bare sequence set (message numbers), or UID set."""

    sequence: SequenceSet
    uid: bool


@dataclass(frozen=True)
class ModSeqKey:
    """MODSEQ n (RFC 7162 §3.1.5); the optional entry name and type are parsed and ignored."""

    modseq: int


SearchKey = (
    All
    | Not
    | Or
    | And
    | FlagKey
    | HeaderKey
    | TextKey
    | DateKey
    | SizeKey
    | SequenceKey
    | ModSeqKey
)

SearchReturn = Literal["MIN", "MAX", "ALL", "COUNT", "SAVE"]


@dataclass(frozen=True)
class Search:
    key: SearchKey
    charset: str | None = None  # CHARSET as given, upper-cased
    returns: tuple[SearchReturn, ...] | None = None  # None: no RETURN (a plain SEARCH reply);
    # RETURN () is ("ALL",) per RFC 4731 §3.1


# -- mailboxes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Qresync:
    """SELECT/EXAMINE (QRESYNC (uidvalidity modseq [known-uids [(seq-match uid-match)]]))."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    sequence_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True)
class Select:
    """SELECT and EXAMINE (read_only)."""

    mailbox: str
    read_only: bool
    condstore: bool = False
    qresync: Qresync | None = None


@dataclass(frozen=True)
class MailboxName:
    """DELETE, SUBSCRIBE, UNSUBSCRIBE, GETQUOTAROOT: one mailbox name."""

    mailbox: str


@dataclass(frozen=True)
class Create:
    mailbox: str
    special_use: tuple[str, ...] = ()  # CREATE-SPECIAL-USE (RFC 6154 §3): ("\\Archive",)


@dataclass(frozen=True)
class Rename:
    old: str
    new: str


@dataclass(frozen=True)
class ListCommand:
    """LIST (with RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154) and LSUB.

    `selection` and `returns` are upper-cased option names; LIST (SUBSCRIBED) arrives as
    selection {"SUBSCRIBED"}; LSUB as lsub=True with no options."""

    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[str] = frozenset()  # SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE
    returns: frozenset[str] = frozenset()  # SUBSCRIBED, CHILDREN, SPECIAL-USE
    status: tuple[str, ...] | None = None  # RETURN (STATUS (...)): the STATUS items
    lsub: bool = False


@dataclass(frozen=True)
class Status:
    mailbox: str
    items: tuple[str, ...]  # upper-cased: MESSAGES, UIDNEXT, UIDVALIDITY, UNSEEN, DELETED,
    # SIZE, RECENT, HIGHESTMODSEQ, APPENDLIMIT


@dataclass(frozen=True)
class Append:
    """APPEND (RFC 9051 §6.3.12); `binary` when the message came as a literal8 (~{n})."""

    mailbox: str
    message: bytes
    flags: tuple[str, ...] = ()
    internal_date: datetime.datetime | None = None  # timezone-aware
    binary: bool = False


# -- session -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    user: str
    password: str


@dataclass(frozen=True)
class Authenticate:
    """AUTHENTICATE mechanism [initial-response] (RFC 4959 SASL-IR): `initial` is the decoded
    response, b"" for "=", None when absent."""

    mechanism: str  # upper-cased
    initial: bytes | None = None


@dataclass(frozen=True)
class Id:
    """ID (RFC 2971): None for NIL."""

    fields: dict[str, str | None] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class Enable:
    capabilities: tuple[str, ...]  # upper-cased


@dataclass(frozen=True)
class QuotaRoot:
    """GETQUOTA root."""

    root: str


@dataclass(frozen=True)
class SetQuota:
    root: str
    limits: tuple[tuple[str, int], ...]  # (resource upper-cased, limit)


Arguments = (
    None | Fetch | Store | Copy | UidExpunge | Search | Select | MailboxName | Create | Rename
    | ListCommand | Status | Append | Login | Authenticate | Id | Enable | QuotaRoot | SetQuota
)  # fmt: skip


@dataclass(frozen=True)
class Command:
    """One command. `name` is upper-case ("FETCH"); "UID FETCH" is name "FETCH" with uid True.
    Commands without arguments (CAPABILITY, NOOP, LOGOUT, STARTTLS, CHECK, CLOSE, UNSELECT,
    EXPUNGE, NAMESPACE, IDLE) have `arguments` None."""

    tag: str
    name: str
    arguments: Arguments = None
    uid: bool = False
