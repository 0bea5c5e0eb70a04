"""IMAP SEARCH (RFC 9051 §6.4.4, RFC 3501 §6.4.4, RFC 7162 §3.1.5 MODSEQ): which messages of a
session's view of a mailbox match a search key.

Pure: the session hands in its candidates (sequence number, the store's `Message`, \\Recent) and
a way to read a message's bytes; nothing here touches sockets or the store.

Implementation notes:
- The key is compiled once into tests, each knowing its cost: the index (flags, sizes, dates,
  sequence sets, MODSEQ, the envelope fields the index keeps), the header block, or the whole
  message. An And tries cheaper tests first and stops at the first miss, an Or at the first match,
  so a message is read only while its outcome is undecided, and at most once per search.
- Strings match as casefolded substrings of decoded text: header values unfolded, with 8-bit
  bytes read as UTF-8 and RFC 2047 encoded words decoded (any occurrence of a field may match);
  bodies per text/* part after their Content-Transfer-Encoding and charset. Undecodable input is
  read as well as it can be, never raised on.
- The fields the index keeps (From, To, Subject, ...: CACHED_FIELDS) come from it, the first
  occurrence of each (RFC 5322 §3.6 allows only one of most); others are read from the message.
  A search on a kept field asks the index for only the messages that may hold the string
  (text_needle): a big mailbox's other rows are not even decoded.
- BEFORE/ON/SINCE take the internal date's day in UTC. SENTBEFORE/SENTON/SENTSINCE take the day
  written in the Date: header (its own time zone, RFC 9051 §6.4.4), or, when Date: is missing or
  unreadable, the internal date's (as Dovecot does).

Not yet: BODY does not search the header of an attached message (message/rfc822), only its text
parts (TEXT searches both); non-text parts (attachments) are not searched.
"""

from __future__ import annotations

import binascii
import datetime
import functools
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.message import Message as EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from email.utils import parsedate_tz
from typing import assert_never

from pcloud.imap.values import (
    All,
    And,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    Not,
    Or,
    SearchKey,
    SequenceKey,
    SizeKey,
    TextKey,
)
from pcloud.store.index import CACHED_FIELDS, header_block
from pcloud.store.mail_values import SYSTEM_FLAGS, Message


@dataclass(frozen=True)
class Candidate:
    """A message as the session sees it."""

    number: int  # message sequence number
    message: Message
    recent: bool


def search(
    key: SearchKey,
    candidates: Sequence[Candidate],
    *,
    largest_number: int,
    largest_uid: int,
    read_message: Callable[[int], bytes],
) -> list[Candidate]:
    """The candidates that match `key`, in the order given.

    `candidates` are the messages of the session's view that may match (all, or those the index
    lets through for text_needle), in sequence-number order; `largest_number` and `largest_uid`
    are the view's "*" in a sequence set and in a UID set. `read_message(uid)` returns a
    message's bytes; its errors propagate."""
    test, _ = _compile(key, largest_number, largest_uid)
    return [
        candidate
        for candidate in candidates
        if test(candidate, _Content(read_message, candidate.message.uid))
    ]


def highest_modseq(matches: Iterable[Candidate]) -> int:
    """The (MODSEQ n) of a SEARCH or ESEARCH reply (RFC 7162 §3.1.5); 0 when nothing matched,
    and then the reply has none."""
    return max((candidate.message.modseq for candidate in matches), default=0)


def _walk(key: SearchKey) -> Iterator[SearchKey]:
    yield key
    match key:
        case Not(inner):
            yield from _walk(inner)
        case Or(left, right):
            yield from _walk(left)
            yield from _walk(right)
        case And(keys):
            for inner in keys:
                yield from _walk(inner)


def mentions_modseq(key: SearchKey) -> bool:
    """Whether the key has a MODSEQ criterion, which makes the reply carry the highest MODSEQ
    (RFC 7162 §3.1.5)."""
    return any(isinstance(inner, ModSeqKey) for inner in _walk(key))


def header_fields_read(key: SearchKey) -> frozenset[str]:
    """The fields of the candidates' `Message.headers` (those the index keeps) that the key
    reads: the session loads only those, which a big mailbox's search feels in its memory and
    time."""
    fields = set()
    for inner in _walk(key):
        if isinstance(inner, HeaderKey) and inner.field in CACHED_FIELDS:
            fields.add(inner.field)
        elif isinstance(inner, DateKey) and inner.which == "sent":
            fields.add("date")
    return frozenset(fields)


def text_needle(key: SearchKey) -> str | None:
    """A string that every message matching the key has in a field the index keeps: the
    longest of the header keys that must all match (the key, or those of an And); the
    index then hands over only the messages that may hold it. None when there is none."""
    needles = [
        inner.value.casefold()
        for inner in _required(key)
        if isinstance(inner, HeaderKey) and inner.field in CACHED_FIELDS and inner.value.strip()
    ]
    return max(needles, key=len, default=None)


def _required(key: SearchKey) -> Iterator[SearchKey]:
    """The keys that must all match for `key` to match."""
    if isinstance(key, And):
        for inner in key.keys:
            yield from _required(inner)
    else:
        yield key


def compress_sequence(numbers: Iterable[int]) -> str:
    """Numbers as a sequence set, runs of consecutive ones as ranges: 1 2 3 7 9 10 is
    "1:3,7,9:10"; "" for none. The order is kept: COPYUID pairs its source and destination UIDs
    by position (RFC 4315 §3)."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ",".join(str(low) if low == high else f"{low}:{high}" for low, high in runs)


# -- the message beyond the index --------------------------------------------------------------


class _Content:
    """One message's bytes and what is decoded from them, each at most once per search."""

    def __init__(self, read_message: Callable[[int], bytes], uid: int) -> None:
        self._read_message = read_message
        self._uid = uid

    @functools.cached_property
    def raw(self) -> bytes:
        return self._read_message(self._uid)

    @functools.cached_property
    def parsed(self) -> EmailMessage:
        # compat32: the parser that registers defects instead of raising on malformed mail.
        return BytesParser(policy=compat32).parsebytes(self.raw)

    @functools.cached_property
    def header(self) -> EmailMessage:
        if "parsed" in self.__dict__:  # the whole message is parsed already
            return self.parsed
        return BytesHeaderParser(policy=compat32).parsebytes(header_block(self.raw))

    def header_values(self, field: str) -> list[str]:
        # raw_items: get_all() would turn 8-bit bytes into U+FFFD before they could be decoded.
        return [value for name, value in self.header.raw_items() if name.lower() == field]

    @functools.cached_property
    def body(self) -> list[str]:
        """The decoded text of each text/* part (a message without MIME is one), casefolded."""
        texts = []
        for part in self.parsed.walk():
            if part.get_content_maintype() != "text":
                continue
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                texts.append(_decode(data, part.get_content_charset("utf-8")).casefold())
        return texts

    @functools.cached_property
    def text(self) -> list[str]:
        """TEXT's haystack: every header line (of the message and its MIME parts), then the body."""
        headers = [
            _header_text(f"{name}: {value}")
            for part in self.parsed.walk()
            for name, value in part.raw_items()
        ]
        return headers + self.body


# -- compiling a key into tests ----------------------------------------------------------------

_Test = Callable[[Candidate, _Content], bool]
_INDEX, _HEADER, _WHOLE = 0, 1, 2  # what a test reads, cheapest first
_ALWAYS: tuple[_Test, int] = ((lambda c, content: True), _INDEX)


def _compile(key: SearchKey, largest_number: int, largest_uid: int) -> tuple[_Test, int]:
    """A test for the key and its cost (the most expensive thing it may read)."""
    match key:
        case All():
            return _ALWAYS
        case Not(inner):
            test, cost = _compile(inner, largest_number, largest_uid)
            return (lambda c, content: not test(c, content)), cost
        case Or(left, right):
            compiled = [_compile(inner, largest_number, largest_uid) for inner in (left, right)]
            (first, _), (second, cost) = sorted(compiled, key=lambda pair: pair[1])
            return (lambda c, content: first(c, content) or second(c, content)), cost
        case And(keys):
            compiled = sorted(
                (_compile(inner, largest_number, largest_uid) for inner in keys),
                key=lambda pair: pair[1],
            )
            return functools.reduce(_both, compiled[1:], compiled[0]) if compiled else _ALWAYS
        case FlagKey(flag, present):
            return _flag_test(flag, present), _INDEX
        case HeaderKey(field, value):
            return _header_test(field, value.casefold())
        case TextKey(where, value):
            needle = value.casefold()
            if where == "body":
                return (lambda c, content: any(needle in text for text in content.body)), _WHOLE
            return (lambda c, content: any(needle in text for text in content.text)), _WHOLE
        case DateKey():
            return _date_test(key), _INDEX
        case SizeKey(relation, size):
            if relation == "larger":
                return (lambda c, content: c.message.size > size), _INDEX
            return (lambda c, content: c.message.size < size), _INDEX
        case SequenceKey(sequence, uid):
            ranges = sequence.resolve(largest_uid if uid else largest_number)
            lows = [low for low, _ in ranges]
            highs = [high for _, high in ranges]

            def in_ranges(number: int) -> bool:
                i = bisect_right(lows, number) - 1
                return i >= 0 and number <= highs[i]

            if uid:
                return (lambda c, content: in_ranges(c.message.uid)), _INDEX
            return (lambda c, content: in_ranges(c.number)), _INDEX
        case ModSeqKey(modseq):
            return (lambda c, content: c.message.modseq >= modseq), _INDEX
    assert_never(key)


def _both(first: tuple[_Test, int], second: tuple[_Test, int]) -> tuple[_Test, int]:
    """And of two tests, `first` the cheaper; nested closures run faster than all() over a list."""
    (left, _), (right, cost) = first, second
    return (lambda c, content: left(c, content) and right(c, content)), cost


def _flag_test(flag: str, present: bool) -> _Test:
    """RFC 9051 §6.4.4 flag keys; flag names compare case-insensitively (RFC 9051 §2.3.2)."""
    wanted = flag.lower()
    if wanted == "\\recent":
        return lambda c, content: c.recent == present
    system = SYSTEM_FLAGS.get(wanted)
    if system is not None:  # the store spells system flags one way
        return lambda c, content: (system in c.message.flags) == present
    return lambda c, content: any(name.lower() == wanted for name in c.message.flags) == present


def _header_test(field: str, needle: str) -> tuple[_Test, int]:
    """FROM, TO, CC, BCC, SUBJECT and HEADER (RFC 9051 §6.4.4): a substring of the decoded value;
    an empty string matches any message with the field."""
    if field in CACHED_FIELDS:

        def indexed(candidate: Candidate, content: _Content) -> bool:
            raw = candidate.message.headers.get(field)
            return raw is not None and needle in _header_text(raw)

        return indexed, _INDEX

    def read(candidate: Candidate, content: _Content) -> bool:
        return any(needle in _header_text(raw) for raw in content.header_values(field))

    return read, _HEADER


_EPOCH_DAY = datetime.date(1970, 1, 1).toordinal()


def _internal_day(message: Message) -> int:
    return _EPOCH_DAY + message.internal_date // 86400


def _sent_day(message: Message) -> int:
    # The day as written is the day in the header's own zone; no need to build a datetime.
    parsed = parsedate_tz(message.headers.get("date", ""))
    if parsed is not None:
        try:
            return datetime.date(*parsed[:3]).toordinal()
        except ValueError:  # 31 Feb, year 99999
            pass
    return _internal_day(message)


def _date_test(key: DateKey) -> _Test:
    """BEFORE/ON/SINCE and SENTBEFORE/SENTON/SENTSINCE (RFC 9051 §6.4.4), days compared as
    ordinals."""
    wanted = key.date.toordinal()
    day = _internal_day if key.which == "internal" else _sent_day
    if key.relation == "before":
        return lambda c, content: day(c.message) < wanted
    if key.relation == "on":
        return lambda c, content: day(c.message) == wanted
    return lambda c, content: day(c.message) >= wanted


# -- decoding ----------------------------------------------------------------------------------

# RFC 2047 §2: charset and encoded text are printable ASCII without "?" (nor space).
_WORD = r"=\?([!->@-~]+)\?([bBqQ])\?([!->@-~]*)\?="
_ENCODED_WORD = re.compile(_WORD)
_ENCODED_RUN = re.compile(rf"{_WORD}(?:\s+{_WORD})*")


def _header_text(raw: str) -> str:
    """A header value as searched: unfolded, 8-bit bytes (kept by the parser as surrogates) read
    as UTF-8 (RFC 6532), encoded words decoded, casefolded. Plain ASCII costs one casefold."""
    if not raw.isascii():
        raw = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if "\n" in raw:
        raw = raw.replace("\r\n", "").replace("\n", "")
    if "=?" in raw:
        raw = _ENCODED_RUN.sub(_decode_run, raw)
    return raw.casefold()


def _decode_run(run: re.Match[str]) -> str:
    """Encoded words next to each other (RFC 2047 §6.2): the space between them goes, and words in
    one charset are decoded together, as a character may be split across two."""
    pieces: list[tuple[str, bytes]] = []
    for word in _ENCODED_WORD.finditer(run.group()):
        charset, encoding, text = word.groups()
        charset = charset.partition("*")[0].lower()  # RFC 2231 §5: a language after "*"
        try:
            if encoding in "qQ":
                data = binascii.a2b_qp(text, header=True)
            else:  # lenient about missing padding, as mail programs are
                data = binascii.a2b_base64(text + "=" * (-len(text) % 4))
        except binascii.Error:
            charset, data = "ascii", word.group().encode()  # searched as written
        if pieces and pieces[-1][0] == charset:
            pieces[-1] = (charset, pieces[-1][1] + data)
        else:
            pieces.append((charset, data))
    return "".join(_decode(data, charset) for charset, data in pieces)


def _decode(data: bytes, charset: str) -> str:
    """Bytes in a charset a message named; an unknown or unusable one is read as UTF-8."""
    try:
        return data.decode(charset, "replace")
    except (LookupError, UnicodeError):  # "x-unknown"; "idna" refuses errors="replace"
        return data.decode("utf-8", "replace")
