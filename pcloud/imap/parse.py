"""IMAP command parsing (RFC 9051 §9 and RFC 3501 §9 grammar, with the extensions pcloud offers):
the bytes of one command, literals included, become a `Command` value, or a ParseError whose
short message follows BAD.

No maintained Python library parses IMAP commands on the server side (imaplib and its kin are
clients; imap-codec's Python bindings are an early Rust extension with values of their own), so
this is a small recursive-descent parser: `_Cursor` reads the grammar's tokens (atoms, strings,
literals, numbers, sequence sets, parenthesised lists) with compiled patterns, and one function
per command reads that command's arguments.

Notes:
- `data` is the whole command as the connection read it: its lines joined by CRLF, each literal's
  bytes right after its `{n}` CRLF announcement, no final CRLF. The connection finds the
  announcements with `literal_at_end` and answers the synchronising ones; sizes are its business.
- Only ParseError leaves `parse_command` (UnknownCharset, its subclass, for a SEARCH charset
  other than UTF-8 and US-ASCII, which gets NO [BADCHARSET] rather than BAD). Numbers are bounded
  before conversion, and SEARCH nesting is bounded (_MAX_DEPTH) so that recursion cannot run out.
- Mailbox names are modified UTF-7 until the client enables UTF8=ACCEPT or IMAP4rev2, UTF-8
  after; a name that is not valid modified UTF-7 is taken as UTF-8, as Dovecot does. Other
  strings are UTF-8, invalid bytes kept as surrogate escapes; SEARCH strings must be UTF-8.
- Quoted strings may hold 8-bit bytes (RFC 9051 utf8-quoted, and what clients send anyway); atoms,
  tags and the rest of the grammar may not.

Not supported: MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469), SEARCHRES "$" (RFC 5182), values
of LIST-EXTENDED option extensions, SORT and THREAD, and other RFC 4466 extension parameters:
each is a ParseError.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Final, Literal, NoReturn, TypeVar

from pcloud.imap.utf7 import decode_utf7
from pcloud.imap.values import (
    STAR,
    All,
    And,
    Append,
    Arguments,
    Authenticate,
    Command,
    Copy,
    Create,
    DateKey,
    Enable,
    Fetch,
    FetchAttribute,
    FlagKey,
    HeaderKey,
    Id,
    ListCommand,
    Login,
    MailboxName,
    ModSeqKey,
    Not,
    Or,
    ParseError,
    Qresync,
    QuotaRoot,
    Rename,
    Search,
    SearchKey,
    SearchReturn,
    Section,
    SectionText,
    Select,
    SequenceKey,
    SequenceSet,
    SetQuota,
    SizeKey,
    Status,
    Store,
    TextKey,
    UidExpunge,
    UnknownCharset,
)

T = TypeVar("T")

_NUMBER_MAX: Final = 2**32 - 1  # number, nz-number
_NUMBER64_MAX: Final = 2**63 - 1  # number64, mod-sequence-value (RFC 7162 §7)
_MAX_DIGITS: Final = 20  # longer digit strings are refused before int() sees them
_MAX_DEPTH: Final = 64  # SEARCH nesting: NOT, OR and parentheses
_MAX_ECHO: Final = 30  # characters of a client's word repeated in an error message

# The grammar's character classes (RFC 9051 §9): CTL and 8-bit bytes are in none of them.
_TAG = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+')  # ASTRING-CHAR except "+"
_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')  # ATOM-CHAR
_ASTRING = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')  # ASTRING-CHAR
_LIST_CHARS = re.compile(rb'[^\x00-\x20\x7f-\xff(){"\\]+')  # list-char: wildcards allowed
_FLAG = re.compile(rb'\\?[^\x00-\x20\x7f-\xff(){%*"\\\]]+')  # flag: ["\"] atom
_QUOTED = re.compile(rb'"([^"\\\r\n\x00]*(?:\\["\\][^"\\\r\n\x00]*)*)"')
_QUOTED_SPECIAL = re.compile(rb'\\(["\\])')
_LITERAL = re.compile(rb"(~?)\{([0-9]+)\+?\}\r\n")  # literal, literal8, LITERAL+ (RFC 7888)
_LITERAL_COUNT = re.compile(rb"([0-9]+)(\+?)")
_DIGITS = re.compile(rb"[0-9]+")
_SEQUENCE = re.compile(rb"[0-9*:,]+")
_BASE64 = re.compile(rb"[A-Za-z0-9+/=]+")
_FETCH_NAME = re.compile(rb"[A-Za-z0-9.]+")
_STORE_ITEM = re.compile(rb"[+-]?[A-Za-z.]+")
_SECTION_SPEC = re.compile(rb"([0-9]+(?:\.[0-9]+)*)?(\.)?([A-Za-z]+(?:\.[A-Za-z]+)*)?")
_SECTION_PART = re.compile(rb"[0-9]+(?:\.[0-9]+)*")
_DATE = re.compile(rb'("?)([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})\1')
_DATE_TIME = re.compile(
    rb'"( [0-9]|[0-9]{1,2})-([A-Za-z]{3})-([0-9]{4}) '
    rb'([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"'
)
_MONTHS: Final = {
    month: number
    for number, month in enumerate(
        b"JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(),
        start=1,
    )
}

_SP, _OPEN, _CLOSE, _QUOTE = b" ", b"(", b")", b'"'
_STRING_STARTS: Final = frozenset(b'"{')
_SEQUENCE_STARTS: Final = frozenset(b"0123456789*")


class _Cursor:
    """A position in one command's bytes, reading one grammar token at a time; every failure
    is a ParseError that carries the tag once it was read."""

    __slots__ = ("data", "pos", "tag", "utf8")

    def __init__(self, data: bytes, *, utf8: bool) -> None:
        self.data = data
        self.pos = 0
        self.tag: str | None = None
        self.utf8 = utf8

    def fail(self, message: str) -> NoReturn:
        raise ParseError(message, self.tag)

    def expected(self, what: str) -> NoReturn:
        if self.pos >= len(self.data):
            self.fail(f"missing {what}")
        if self.data[self.pos] >= 0x80:
            self.fail(f"8-bit byte where {what} belongs")
        self.fail(f"expected {what}")

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def peek(self) -> int:
        """The next byte, or -1 at the end."""
        return self.data[self.pos] if self.pos < len(self.data) else -1

    def take(self, byte: bytes) -> bool:
        if self.data.startswith(byte, self.pos):
            self.pos += 1
            return True
        return False

    def expect(self, byte: bytes) -> None:
        if not self.take(byte):
            self.expected(f'"{byte.decode()}"')

    def space(self) -> None:
        if not self.take(_SP):
            if self.at_end():
                self.fail("missing arguments")
            self.expected("a space")

    def take_word(self, word: bytes) -> bool:
        """Reads `word` (upper-case, matched in any case) and the space after it, if next."""
        end = self.pos + len(word)
        if self.data[self.pos : end].upper() == word and self.data.startswith(_SP, end):
            self.pos = end + 1
            return True
        return False

    def match(self, pattern: re.Pattern[bytes], what: str) -> re.Match[bytes]:
        found = pattern.match(self.data, self.pos)
        if found is None:
            self.expected(what)
        self.pos = found.end()
        return found

    def keyword(self, what: str) -> str:
        """An atom, upper-cased: command names, options, search keys."""
        return self.match(_ATOM, what).group().decode("ascii").upper()

    def choice(self, choices: Mapping[str, T], what: str) -> T:
        name = self.keyword(what)
        if name not in choices:
            self.fail(f"unknown {what} {name[:_MAX_ECHO]}")
        return choices[name]

    def word(self, word: str, what: str) -> None:
        """The one keyword `word` (upper-case, read in any case)."""
        self.choice({word: None}, what)

    # -- numbers ---------------------------------------------------------------------------

    def checked(self, digits: bytes, what: str, *, limit: int, zero: bool) -> int:
        if len(digits) > _MAX_DIGITS or int(digits) > limit:
            self.fail(f"{what} too large")
        value = int(digits)
        if value == 0 and not zero:
            self.fail(f"{what} must not be 0")
        return value

    def number(self, *, limit: int = _NUMBER_MAX, zero: bool = True) -> int:
        """number (RFC 9051 §9); nz-number with zero False, number64 with _NUMBER64_MAX."""
        return self.checked(
            self.match(_DIGITS, "a number").group(), "number", limit=limit, zero=zero
        )

    def mod_sequence(self, *, zero: bool = False) -> int:
        """mod-sequence-value, or mod-sequence-valzer with zero True (RFC 7162 §7)."""
        digits = self.match(_DIGITS, "a mod-sequence").group()
        return self.checked(digits, "mod-sequence", limit=_NUMBER64_MAX, zero=zero)

    def sequence_set(self, *, star: bool = True) -> SequenceSet:
        """sequence-set (RFC 9051 §9); known-uids and the like allow no "*" (RFC 7162 §7)."""
        ranges = []
        for item in self.match(_SEQUENCE, "a sequence set").group().split(b","):
            ends = item.split(b":")
            if len(ends) > 2:
                self.fail("bad sequence set")
            low = self._sequence_number(ends[0], star)
            ranges.append((low, self._sequence_number(ends[1], star) if len(ends) == 2 else low))
        return SequenceSet(tuple(ranges))

    def _sequence_number(self, token: bytes, star: bool) -> int:
        if token == b"*" and star:
            return STAR
        if not token.isdigit():
            self.fail("bad sequence set")
        return self.checked(token, "sequence number", limit=_NUMBER_MAX, zero=False)

    # -- strings ---------------------------------------------------------------------------

    def literal(self, *, binary: bool = False) -> tuple[bytes, bool]:
        """literal, or literal8 (RFC 3516 §4.2) where `binary` allows it: (bytes, was literal8)."""
        found = self.match(_LITERAL, "a literal")
        is_literal8 = bool(found.group(1))
        if is_literal8 and not binary:
            self.fail("literal8 not allowed here")
        start = found.end()
        end = start + self.checked(found.group(2), "literal", limit=_NUMBER64_MAX, zero=True)
        if end > len(self.data):
            self.fail("literal shorter than announced")
        if not is_literal8 and self.data.find(b"\0", start, end) >= 0:
            self.fail("NUL in a literal")
        self.pos = end
        return self.data[start:end], is_literal8

    def at_string(self) -> bool:
        """Whether a quoted string or a literal comes next ("~" alone is an atom's)."""
        return self.peek() in _STRING_STARTS or self.data.startswith(b"~{", self.pos)

    def string(self) -> bytes:
        """string: quoted or literal."""
        if self.peek() == _QUOTE[0]:
            quoted = self.match(_QUOTED, "a quoted string").group(1)
            return _QUOTED_SPECIAL.sub(rb"\1", quoted) if b"\\" in quoted else quoted
        if self.at_string():
            return self.literal()[0]
        self.expected("a string")

    def astring(self, chars: re.Pattern[bytes] = _ASTRING) -> bytes:
        """astring, or with `chars` _LIST_CHARS a list-mailbox (RFC 9051 §9)."""
        if self.at_string():
            return self.string()
        return self.match(chars, "a string").group()

    def nstring(self) -> bytes | None:
        if self.at_string():
            return self.string()
        if self.keyword("a string or NIL") != "NIL":
            self.fail("expected a string or NIL")
        return None

    def text(self) -> str:
        """An astring as text: UTF-8, invalid bytes kept as surrogate escapes."""
        return self.astring().decode("utf-8", "surrogateescape")

    def search_text(self) -> str:
        try:
            return self.astring().decode("utf-8")
        except UnicodeDecodeError:
            self.fail("search string is not UTF-8")

    def mailbox(self) -> str:
        """mailbox (RFC 9051 §9): INBOX in any case is INBOX."""
        name = self._mailbox_name(self.astring())
        return "INBOX" if name.upper() == "INBOX" else name

    def list_mailbox(self) -> str:
        """list-mailbox (RFC 9051 §9): a pattern, with the wildcards * and % unquoted."""
        return self._mailbox_name(self.astring(_LIST_CHARS))

    def _mailbox_name(self, raw: bytes) -> str:
        if not self.utf8 and raw.isascii():
            try:
                return decode_utf7(raw.decode("ascii"))
            except ValueError:
                pass  # not modified UTF-7: taken as UTF-8 below, as Dovecot does
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail("mailbox name is not UTF-8")

    # -- lists, flags, dates ---------------------------------------------------------------

    def parenthesized(self, *, empty: bool = False) -> Iterator[None]:
        """Reads "(" and ")" and the spaces between elements: yields once per element, which
        the caller reads."""
        self.expect(_OPEN)
        if self.take(_CLOSE):
            if not empty:
                self.fail("empty list")
            return
        while True:
            yield
            if self.take(_CLOSE):
                return
            if self.at_end():
                self.fail("unbalanced parentheses")
            self.space()

    def list_of(self, read: Callable[[], T], *, empty: bool = False) -> tuple[T, ...]:
        return tuple(read() for _ in self.parenthesized(empty=empty))

    def several(self, read: Callable[[], T]) -> tuple[T, ...]:
        """One or more elements separated by spaces, up to the end or a ")"."""
        elements = [read()]
        while self.take(_SP):
            elements.append(read())
        return tuple(elements)

    def flag(self) -> str:
        return self.match(_FLAG, "a flag").group().decode("ascii")

    def flag_list(self) -> tuple[str, ...]:
        return self.list_of(self.flag, empty=True)

    # An unknown month name is month 0, which datetime refuses with the other out-of-range
    # values (30-Feb, 25:00, a zone of +2400).

    def date(self) -> datetime.date:
        """date (RFC 9051 §9), quoted or not: "1-Feb-1994"."""
        _, day, month, year = self.match(_DATE, "a date").groups()
        try:
            return datetime.date(int(year), _MONTHS.get(month.upper(), 0), int(day))
        except ValueError:
            self.fail("invalid date")

    def date_time(self) -> datetime.datetime:
        """date-time (RFC 9051 §9): "17-Jul-1996 02:44:25 -0700", timezone-aware."""
        found = self.match(_DATE_TIME, "a date-time")
        day, year, hour, minute, second, zone_hours, zone_minutes = map(
            int, found.group(1, 3, 4, 5, 6, 8, 9)
        )
        if zone_minutes > 59:
            self.fail("invalid date-time")
        offset = datetime.timedelta(hours=zone_hours, minutes=zone_minutes)
        try:
            zone = datetime.timezone(-offset if found.group(7) == b"-" else offset)
            month = _MONTHS.get(found.group(2).upper(), 0)
            return datetime.datetime(year, month, day, hour, minute, second, tzinfo=zone)
        except ValueError:
            self.fail("invalid date-time")


# -- commands ----------------------------------------------------------------------------------


def parse_command(data: bytes, *, utf8: bool = False) -> Command:
    """The command in `data` (see the module notes for its form); `utf8` once the client has
    enabled UTF8=ACCEPT or IMAP4rev2 (RFC 6855 §3). Raises ParseError."""
    cursor = _Cursor(data, utf8=utf8)
    cursor.tag = cursor.match(_TAG, "a tag").group().decode("ascii")
    if cursor.at_end():
        cursor.fail("missing command")
    cursor.space()
    name = cursor.keyword("a command name")
    uid = name == "UID"
    if uid:
        cursor.space()
        name = cursor.keyword("a command name")
    parser = (_UID_COMMANDS if uid else _COMMANDS).get(name)
    if parser is None:
        cursor.fail(f"unknown command {'UID ' if uid else ''}{name[:_MAX_ECHO]}")
    arguments = parser(cursor)
    if not cursor.at_end():
        cursor.fail(_TRAILING.get(cursor.peek(), "unexpected characters after the arguments"))
    return Command(tag=cursor.tag, name=name, arguments=arguments, uid=uid)


_TRAILING: Final = {_SP[0]: "too many arguments", _CLOSE[0]: "unbalanced parentheses"}


def literal_at_end(line: bytes) -> tuple[int, bool] | None:
    """The literal `line` (without CRLF) announces at its end, as (octets, non-synchronizing):
    `{n}`, `{n+}` (RFC 7888), `~{n}` and `~{n+}` (RFC 3516); None when it announces none."""
    if not line.endswith(b"}"):
        return None
    start = line.rfind(b"{")
    count = line[start + 1 : -1]
    # A "{" that opens no literal sits in a quoted string, which must close before the end.
    if start < 0 or _QUOTE in count:
        return None
    found = _LITERAL_COUNT.fullmatch(count)
    if found is None:
        raise ParseError("malformed literal")
    digits, plus = found.groups()
    if len(digits) > _MAX_DIGITS or int(digits) > _NUMBER64_MAX:
        raise ParseError("literal too large")
    return int(digits), plus == b"+"


def _no_arguments(cursor: _Cursor) -> None:
    return None


# RFC 9051 §6.2.2 AUTHENTICATE, with RFC 4959 SASL-IR's initial response.
def _authenticate(cursor: _Cursor) -> Authenticate:
    cursor.space()
    mechanism = cursor.keyword("a mechanism")
    if not cursor.take(_SP):
        return Authenticate(mechanism)
    encoded = cursor.match(_BASE64, "an initial response").group()
    if encoded == b"=":
        return Authenticate(mechanism, b"")
    try:
        return Authenticate(mechanism, base64.b64decode(encoded, validate=True))
    except binascii.Error:
        cursor.fail("invalid base64")


# RFC 9051 §6.2.3
def _login(cursor: _Cursor) -> Login:
    cursor.space()
    user = cursor.text()
    cursor.space()
    return Login(user, cursor.text())


# RFC 2971 §3.1
def _id(cursor: _Cursor) -> Id:
    cursor.space()
    if cursor.peek() != _OPEN[0]:
        cursor.word("NIL", "ID argument")
        return Id(None)
    fields: dict[str, str | None] = {}
    for _ in cursor.parenthesized(empty=True):
        name = cursor.string().decode("utf-8", "surrogateescape")
        cursor.space()
        value = cursor.nstring()
        fields[name] = None if value is None else value.decode("utf-8", "surrogateescape")
    return Id(fields)


# RFC 5161 §3.1
def _enable(cursor: _Cursor) -> Enable:
    cursor.space()
    return Enable(cursor.several(lambda: cursor.keyword("a capability")))


# RFC 9051 §6.3.2 and §6.3.3; RFC 7162 §3.1.8 and §3.2.5 (CONDSTORE and QRESYNC parameters).
def _select(cursor: _Cursor, *, read_only: bool) -> Select:
    cursor.space()
    mailbox = cursor.mailbox()
    condstore, qresync = False, None
    if cursor.take(_SP):
        for _ in cursor.parenthesized():
            if cursor.choice(_SELECT_PARAMETERS, "SELECT parameter") == "CONDSTORE":
                condstore = True
            else:
                cursor.space()
                qresync = _qresync(cursor)
    return Select(mailbox, read_only, condstore, qresync)


_SELECT_PARAMETERS: Final = {"CONDSTORE": "CONDSTORE", "QRESYNC": "QRESYNC"}


# RFC 7162 §3.2.5: (uidvalidity modseq [known-uids] [(known-sequence-set known-uid-set)])
def _qresync(cursor: _Cursor) -> Qresync:
    cursor.expect(_OPEN)
    uidvalidity = cursor.number(zero=False)
    cursor.space()
    modseq = cursor.mod_sequence()
    known_uids, sequence_match = None, None
    more = cursor.take(_SP)
    if more and cursor.peek() != _OPEN[0]:
        known_uids = cursor.sequence_set(star=False)
        more = cursor.take(_SP)
    if more:
        cursor.expect(_OPEN)
        sequences = cursor.sequence_set(star=False)
        cursor.space()
        sequence_match = (sequences, cursor.sequence_set(star=False))
        cursor.expect(_CLOSE)
    cursor.expect(_CLOSE)
    return Qresync(uidvalidity, modseq, known_uids, sequence_match)


# RFC 9051 §6.3.5, §6.3.7, §6.3.8 (DELETE, SUBSCRIBE, UNSUBSCRIBE); RFC 9208 §4.3 GETQUOTAROOT.
def _mailbox_name(cursor: _Cursor) -> MailboxName:
    cursor.space()
    return MailboxName(cursor.mailbox())


# RFC 9051 §6.3.4, with RFC 6154 §3's USE parameter.
def _create(cursor: _Cursor) -> Create:
    cursor.space()
    mailbox = cursor.mailbox()
    special_use: tuple[str, ...] = ()
    if cursor.take(_SP):
        for _ in cursor.parenthesized():
            cursor.word("USE", "CREATE parameter")
            cursor.space()
            special_use = cursor.list_of(lambda: _special_use(cursor), empty=True)
    return Create(mailbox, special_use)


def _special_use(cursor: _Cursor) -> str:
    flag = cursor.flag()
    if not flag.startswith("\\"):
        cursor.fail("expected a special-use attribute")
    return flag


# RFC 9051 §6.3.6
def _rename(cursor: _Cursor) -> Rename:
    cursor.space()
    old = cursor.mailbox()
    cursor.space()
    return Rename(old, cursor.mailbox())


# RFC 9051 §6.3.9 with RFC 5258 §6 (LIST-EXTENDED), RFC 5819 §2 (LIST-STATUS), RFC 6154 §5.
def _list(cursor: _Cursor) -> ListCommand:
    cursor.space()
    selection: frozenset[str] = frozenset()
    if cursor.peek() == _OPEN[0]:
        selection = frozenset(
            cursor.list_of(lambda: cursor.choice(_LIST_SELECTIONS, "LIST option"), empty=True)
        )
        # RFC 5258 §3.1: RECURSIVEMATCH alone is a BAD.
        if "RECURSIVEMATCH" in selection and not selection & {"SUBSCRIBED", "SPECIAL-USE"}:
            cursor.fail("RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE")
        cursor.space()
    reference = cursor.mailbox()
    cursor.space()
    if cursor.peek() == _OPEN[0]:
        patterns = cursor.list_of(lambda: cursor.list_mailbox())
    else:
        patterns = (cursor.list_mailbox(),)
    returns: set[str] = set()
    status = None
    if cursor.take(_SP):
        cursor.word("RETURN", "LIST option")
        cursor.space()
        for _ in cursor.parenthesized(empty=True):
            option = cursor.choice(_LIST_RETURNS, "LIST return option")
            if option == "STATUS":
                cursor.space()
                status = _status_items(cursor)
            else:
                returns.add(option)
    return ListCommand(reference, patterns, selection, frozenset(returns), status)


def _names(*names: str) -> dict[str, str]:
    return {name: name for name in names}


_LIST_SELECTIONS: Final = _names("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE")
_LIST_RETURNS: Final = _names("SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS")


# RFC 9051 §6.3.10 LSUB (RFC 3501; kept for IMAP4rev1 clients).
def _lsub(cursor: _Cursor) -> ListCommand:
    cursor.space()
    reference = cursor.mailbox()
    cursor.space()
    return ListCommand(reference, (cursor.list_mailbox(),), lsub=True)


# RFC 9051 §6.3.11
def _status(cursor: _Cursor) -> Status:
    cursor.space()
    mailbox = cursor.mailbox()
    cursor.space()
    return Status(mailbox, _status_items(cursor))


def _status_items(cursor: _Cursor) -> tuple[str, ...]:
    return cursor.list_of(lambda: cursor.choice(_STATUS_ITEMS, "STATUS item"))


_STATUS_ITEMS: Final = _names(
    "MESSAGES",
    "UIDNEXT",
    "UIDVALIDITY",
    "UNSEEN",
    "DELETED",
    "SIZE",
    "RECENT",
    "HIGHESTMODSEQ",
    "APPENDLIMIT",
)


# RFC 9051 §6.3.12, with RFC 3516 §4.2's literal8.
def _append(cursor: _Cursor) -> Append:
    cursor.space()
    mailbox = cursor.mailbox()
    cursor.space()
    flags: tuple[str, ...] = ()
    if cursor.peek() == _OPEN[0]:
        flags = cursor.flag_list()
        cursor.space()
    internal_date = None
    if cursor.peek() == _QUOTE[0]:
        internal_date = cursor.date_time()
        cursor.space()
    message, binary = cursor.literal(binary=True)
    return Append(mailbox, message, flags, internal_date, binary)


# RFC 4315 §2.1
def _uid_expunge(cursor: _Cursor) -> UidExpunge:
    cursor.space()
    return UidExpunge(cursor.sequence_set())


# RFC 9051 §6.4.7 COPY, RFC 6851 §3.1 MOVE
def _copy(cursor: _Cursor) -> Copy:
    cursor.space()
    sequence = cursor.sequence_set()
    cursor.space()
    return Copy(sequence, cursor.mailbox())


# RFC 9051 §6.4.6, with RFC 7162 §3.1.3's UNCHANGEDSINCE.
def _store(cursor: _Cursor) -> Store:
    cursor.space()
    sequence = cursor.sequence_set()
    cursor.space()
    unchanged_since = None
    if cursor.peek() == _OPEN[0]:
        for _ in cursor.parenthesized():
            cursor.word("UNCHANGEDSINCE", "STORE modifier")
            cursor.space()
            unchanged_since = cursor.mod_sequence(zero=True)
        cursor.space()
    item = cursor.match(_STORE_ITEM, "FLAGS").group().decode("ascii").upper()
    if item not in _STORE_ITEMS:
        cursor.fail(f"unknown STORE item {item[:_MAX_ECHO]}")
    mode, silent = _STORE_ITEMS[item]
    cursor.space()
    flags = cursor.flag_list() if cursor.peek() == _OPEN[0] else cursor.several(cursor.flag)
    return Store(sequence, mode, silent, flags, unchanged_since)


_STORE_ITEMS: Final[dict[str, tuple[Literal["add", "remove", "replace"], bool]]] = {
    "+FLAGS": ("add", False),
    "+FLAGS.SILENT": ("add", True),
    "-FLAGS": ("remove", False),
    "-FLAGS.SILENT": ("remove", True),
    "FLAGS": ("replace", False),
    "FLAGS.SILENT": ("replace", True),
}


# RFC 9208 §4.2 GETQUOTA
def _get_quota(cursor: _Cursor) -> QuotaRoot:
    cursor.space()
    return QuotaRoot(cursor.text())


# RFC 9208 §4.4 SETQUOTA
def _set_quota(cursor: _Cursor) -> SetQuota:
    cursor.space()
    root = cursor.text()
    cursor.space()
    limits = []
    for _ in cursor.parenthesized(empty=True):
        resource = cursor.keyword("a resource name")
        cursor.space()
        limits.append((resource, cursor.number(limit=_NUMBER64_MAX)))
    return SetQuota(root, tuple(limits))


# -- SEARCH ------------------------------------------------------------------------------------


# RFC 9051 §6.4.4, with RFC 4731 §3.1's RETURN options.
def _search(cursor: _Cursor) -> Search:
    cursor.space()
    returns = None
    if cursor.take_word(b"RETURN"):
        options = cursor.list_of(
            lambda: cursor.choice(_SEARCH_RETURNS, "RETURN option"), empty=True
        )
        returns = tuple(dict.fromkeys(options)) or ("ALL",)
        cursor.space()
    charset = None
    if cursor.take_word(b"CHARSET"):
        charset = cursor.text().upper()
        if charset not in ("UTF-8", "US-ASCII"):
            raise UnknownCharset(charset, cursor.tag)
        cursor.space()
    return Search(_all_of(cursor.several(lambda: _search_key(cursor, 1))), charset, returns)


_SEARCH_RETURNS: Final[dict[str, SearchReturn]] = {
    "MIN": "MIN",
    "MAX": "MAX",
    "ALL": "ALL",
    "COUNT": "COUNT",
    "SAVE": "SAVE",
}


def _all_of(keys: tuple[SearchKey, ...]) -> SearchKey:
    return keys[0] if len(keys) == 1 else And(keys)


# RFC 9051 §6.4.4 search-key, RFC 3501's NEW, OLD and RECENT, RFC 7162 §3.1.5 MODSEQ.
def _search_key(cursor: _Cursor, depth: int) -> SearchKey:
    if depth > _MAX_DEPTH:
        cursor.fail("search keys nested too deeply")
    if cursor.peek() == _OPEN[0]:
        return _all_of(cursor.list_of(lambda: _search_key(cursor, depth + 1)))
    if cursor.peek() in _SEQUENCE_STARTS:
        return SequenceKey(cursor.sequence_set(), uid=False)
    name = cursor.keyword("a search key")
    if name in _FLAG_SEARCHES:
        return _FLAG_SEARCHES[name]
    if name not in _SEARCHES_WITH_ARGUMENTS:
        cursor.fail(f"unknown search key {name[:_MAX_ECHO]}")
    cursor.space()
    if name in _HEADER_SEARCHES:
        return HeaderKey(_HEADER_SEARCHES[name], cursor.search_text())
    if name in _TEXT_SEARCHES:
        return TextKey(_TEXT_SEARCHES[name], cursor.search_text())
    if name in _DATE_SEARCHES:
        which, relation = _DATE_SEARCHES[name]
        return DateKey(which, relation, cursor.date())
    if name in _SIZE_SEARCHES:
        return SizeKey(_SIZE_SEARCHES[name], cursor.number(limit=_NUMBER64_MAX))
    if name == "HEADER":
        field = cursor.text().lower()
        cursor.space()
        return HeaderKey(field, cursor.search_text())
    if name in ("KEYWORD", "UNKEYWORD"):
        return FlagKey(cursor.match(_ATOM, "a keyword").group().decode("ascii"), name == "KEYWORD")
    if name == "NOT":
        return Not(_search_key(cursor, depth + 1))
    if name == "OR":
        left = _search_key(cursor, depth + 1)
        cursor.space()
        return Or(left, _search_key(cursor, depth + 1))
    if name == "UID":
        return SequenceKey(cursor.sequence_set(), uid=True)
    return _modseq_key(cursor)


# RFC 7162 §3.1.5: MODSEQ ["/flags/<flag>" priv|shared|all] mod-sequence-valzer
def _modseq_key(cursor: _Cursor) -> ModSeqKey:
    if cursor.peek() == _QUOTE[0]:
        if not cursor.string().lower().startswith(b"/flags/"):
            cursor.fail("bad MODSEQ entry name")
        cursor.space()
        cursor.choice(_names("PRIV", "SHARED", "ALL"), "MODSEQ entry type")
        cursor.space()
    return ModSeqKey(cursor.mod_sequence(zero=True))


_RECENT: Final = FlagKey("\\Recent", True)
_FLAG_SEARCHES: Final[dict[str, SearchKey]] = {
    "ALL": All(),
    "RECENT": _RECENT,
    "NEW": And((_RECENT, FlagKey("\\Seen", False))),
    "OLD": Not(_RECENT),
    **{
        prefix + flag.upper(): FlagKey("\\" + flag, prefix == "")
        for flag in ("Answered", "Deleted", "Draft", "Flagged", "Seen")
        for prefix in ("", "UN")
    },
}
_HEADER_SEARCHES: Final = {name: name.lower() for name in ("BCC", "CC", "FROM", "SUBJECT", "TO")}
_TEXT_SEARCHES: Final[dict[str, Literal["body", "text"]]] = {"BODY": "body", "TEXT": "text"}
_DATE_SEARCHES: Final[
    dict[str, tuple[Literal["internal", "sent"], Literal["before", "on", "since"]]]
] = {
    "BEFORE": ("internal", "before"),
    "ON": ("internal", "on"),
    "SINCE": ("internal", "since"),
    "SENTBEFORE": ("sent", "before"),
    "SENTON": ("sent", "on"),
    "SENTSINCE": ("sent", "since"),
}
_SIZE_SEARCHES: Final[dict[str, Literal["larger", "smaller"]]] = {
    "LARGER": "larger",
    "SMALLER": "smaller",
}
_SEARCHES_WITH_ARGUMENTS: Final = frozenset(
    {*_HEADER_SEARCHES, *_TEXT_SEARCHES, *_DATE_SEARCHES, *_SIZE_SEARCHES}
    | {"HEADER", "KEYWORD", "UNKEYWORD", "NOT", "OR", "UID", "MODSEQ"}
)


# -- FETCH -------------------------------------------------------------------------------------


# RFC 9051 §6.4.5, with RFC 7162 §3.1.4 CHANGEDSINCE and §3.2.6 VANISHED.
def _fetch(cursor: _Cursor, *, uid: bool) -> Fetch:
    cursor.space()
    sequence = cursor.sequence_set()
    cursor.space()
    if cursor.peek() == _OPEN[0]:
        attributes = cursor.list_of(lambda: _fetch_attribute(cursor, _fetch_name(cursor)))
    else:
        name = _fetch_name(cursor)
        attributes = _FETCH_MACROS.get(name) or (_fetch_attribute(cursor, name),)
    changed_since, vanished = None, False
    if cursor.take(_SP):
        for _ in cursor.parenthesized():
            if cursor.choice(_FETCH_MODIFIERS, "FETCH modifier") == "VANISHED":
                vanished = True
            else:
                cursor.space()
                changed_since = cursor.mod_sequence()
    # RFC 7162 §3.2.6: VANISHED only with UID FETCH and CHANGEDSINCE, else BAD.
    if vanished and not (uid and changed_since is not None):
        cursor.fail("VANISHED needs UID FETCH and CHANGEDSINCE")
    return Fetch(sequence, attributes, changed_since, vanished)


_FETCH_MODIFIERS: Final = _names("CHANGEDSINCE", "VANISHED")


def _fetch_name(cursor: _Cursor) -> str:
    return cursor.match(_FETCH_NAME, "a FETCH attribute").group().decode("ascii").upper()


def _fetch_attribute(cursor: _Cursor, name: str) -> FetchAttribute:
    if cursor.peek() != b"["[0]:
        if name not in _PLAIN_FETCHES:
            cursor.fail(f"unknown FETCH attribute {name[:_MAX_ECHO]}")
        return _PLAIN_FETCHES[name]
    if name in ("BODY", "BODY.PEEK"):
        section = _section(cursor)
        return FetchAttribute("BODY", section, name == "BODY.PEEK", _partial(cursor))
    if name in ("BINARY", "BINARY.PEEK"):
        section = _binary_section(cursor)
        return FetchAttribute("BINARY", section, name == "BINARY.PEEK", _partial(cursor))
    if name == "BINARY.SIZE":
        return FetchAttribute("BINARY.SIZE", _binary_section(cursor))
    cursor.fail(f"unknown FETCH attribute {name[:_MAX_ECHO]}[")


# RFC 9051 §9 section: "[" [part ["." text] | text] "]", MIME only after a part.
def _section(cursor: _Cursor) -> Section:
    cursor.expect(b"[")
    numbers, dot, name = cursor.match(_SECTION_SPEC, "a section").groups()
    text = None if name is None else _SECTION_TEXTS.get(name.decode("ascii").upper())
    if (
        (name is not None and text is None)
        or (dot is not None) != (numbers is not None and name is not None)
        or (text == "MIME" and numbers is None)
    ):
        cursor.fail("bad section")
    fields: tuple[str, ...] = ()
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        cursor.space()
        fields = cursor.list_of(lambda: cursor.text().upper())
    cursor.expect(b"]")
    return Section(_part(cursor, numbers), text, fields)


_SECTION_TEXTS: Final[dict[str, SectionText]] = {
    "HEADER": "HEADER",
    "HEADER.FIELDS": "HEADER.FIELDS",
    "HEADER.FIELDS.NOT": "HEADER.FIELDS.NOT",
    "TEXT": "TEXT",
    "MIME": "MIME",
}


# RFC 3516 §4.2 section-binary: "[" [part] "]"
def _binary_section(cursor: _Cursor) -> Section:
    cursor.expect(b"[")
    numbers = None
    if cursor.peek() != b"]"[0]:
        numbers = cursor.match(_SECTION_PART, "a part number").group()
    cursor.expect(b"]")
    return Section(_part(cursor, numbers))


def _part(cursor: _Cursor, numbers: bytes | None) -> tuple[int, ...]:
    if numbers is None:
        return ()
    return tuple(
        cursor.checked(number, "part number", limit=_NUMBER_MAX, zero=False)
        for number in numbers.split(b".")
    )


# RFC 9051 §9 partial: "<" number64 "." nz-number64 ">"
def _partial(cursor: _Cursor) -> tuple[int, int] | None:
    if not cursor.take(b"<"):
        return None
    offset = cursor.number(limit=_NUMBER64_MAX)
    cursor.expect(b".")
    length = cursor.number(limit=_NUMBER64_MAX, zero=False)
    cursor.expect(b">")
    return offset, length


_PLAIN_FETCHES: Final = {
    name: FetchAttribute(name)
    for name in (
        "UID",
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
        "ENVELOPE",
        "BODYSTRUCTURE",
        "BODY",
        "MODSEQ",
    )
} | {
    # The RFC822 forms are BODY sections under another name (RFC 9051 §6.4.5).
    "RFC822": FetchAttribute("RFC822", Section()),
    "RFC822.HEADER": FetchAttribute("RFC822.HEADER", Section(text="HEADER"), peek=True),
    "RFC822.TEXT": FetchAttribute("RFC822.TEXT", Section(text="TEXT")),
}
_FAST: Final = tuple(_PLAIN_FETCHES[name] for name in ("FLAGS", "INTERNALDATE", "RFC822.SIZE"))
_FETCH_MACROS: Final = {  # RFC 9051 §6.4.5
    "FAST": _FAST,
    "ALL": (*_FAST, _PLAIN_FETCHES["ENVELOPE"]),
    "FULL": (*_FAST, _PLAIN_FETCHES["ENVELOPE"], _PLAIN_FETCHES["BODY"]),
}


# -- the command table -------------------------------------------------------------------------

_NO_ARGUMENTS: Final = (
    "CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "IDLE", "NAMESPACE",
    "CHECK", "CLOSE", "UNSELECT", "EXPUNGE",
)  # fmt: skip
_COMMANDS: Final[dict[str, Callable[[_Cursor], Arguments]]] = {
    **dict.fromkeys(_NO_ARGUMENTS, _no_arguments),
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "ID": _id,
    "ENABLE": _enable,
    "SELECT": functools.partial(_select, read_only=False),
    "EXAMINE": functools.partial(_select, read_only=True),
    "CREATE": _create,
    "DELETE": _mailbox_name,
    "RENAME": _rename,
    "SUBSCRIBE": _mailbox_name,
    "UNSUBSCRIBE": _mailbox_name,
    "LIST": _list,
    "LSUB": _lsub,
    "STATUS": _status,
    "APPEND": _append,
    "SEARCH": _search,
    "FETCH": functools.partial(_fetch, uid=False),
    "STORE": _store,
    "COPY": _copy,
    "MOVE": _copy,
    "GETQUOTA": _get_quota,
    "GETQUOTAROOT": _mailbox_name,
    "SETQUOTA": _set_quota,
}
_UID_COMMANDS: Final[dict[str, Callable[[_Cursor], Arguments]]] = {
    "FETCH": functools.partial(_fetch, uid=True),
    "SEARCH": _search,
    "STORE": _store,
    "COPY": _copy,
    "MOVE": _copy,
    "EXPUNGE": _uid_expunge,
}
