"""FETCH (RFC 9051 §6.4.5), with BINARY (RFC 3516), CONDSTORE's CHANGEDSINCE and QRESYNC's
VANISHED (RFC 7162), and the resynchronisation at SELECT (QRESYNC).

Implementation notes:
- Messages are fetched in batches (BATCH_MESSAGES, or BATCH_BYTES of message content, or
  INDEX_BATCH when the index answers): one index query and one worker-thread hop per batch, and
  responses are flushed to the client as they are produced, so a FETCH 1:* of a big mailbox
  holds one batch in memory.
- UID, FLAGS, INTERNALDATE, RFC822.SIZE, MODSEQ and ENVELOPE come from the index, and so does
  BODY[HEADER.FIELDS (...)] of fields it keeps (a message list's usual request); other body
  parts and BODYSTRUCTURE read the message file, and HEADER sections read only up to the end
  of the header.
- A message expunged by another session between the SELECT view and the fetch is skipped (the
  client learns of the expunge at the next moment allowed, RFC 9051 §7.5.1).
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pcloud.imap.errors import ImapError, bad
from pcloud.imap.message import (
    UnknownTransferEncoding,
    binary_section,
    bodystructure,
    cached_header_fields,
    envelope,
    header_fields,
    partial,
    section_bytes,
)
from pcloud.imap.mime import Part, parse_structure
from pcloud.imap.search import compress_sequence
from pcloud.imap.values import Command, Fetch, FetchAttribute, Qresync, Section
from pcloud.imap.wire import NIL, literal, parenthesized
from pcloud.store.index import CACHED_FIELDS, first_values, header_block, kept_fields
from pcloud.store.mail import MessageRow
from pcloud.store.mail_values import split_flags

if TYPE_CHECKING:
    from pcloud.imap.session import Session

BATCH_MESSAGES = 500
BATCH_BYTES = 8 * 1024 * 1024
INDEX_BATCH = 5000  # when no file is read: fewer thread hops, still a bounded response in memory
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
INDEX_ONLY = frozenset({"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "MODSEQ", "ENVELOPE"})
HEADER_ONLY = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"})
# The items that are one column of the index row, formatted: a FETCH of only these (a message
# list's UID FLAGS, say) is made with one template per message, several times quicker.
ROW_ITEMS = {
    "UID": ("UID %d", 0),
    "FLAGS": ("FLAGS (%s)", 1),  # flag_list() of the index's sorted text
    "MODSEQ": ("MODSEQ (%d)", 2),
    "RFC822.SIZE": ("RFC822.SIZE %d", 4),
}


def _reads_header_only(attribute: FetchAttribute) -> bool:
    if attribute.name == "RFC822.HEADER":
        return True
    section = attribute.section
    return (
        attribute.name == "BODY"
        and section is not None
        and not section.part
        and section.text in HEADER_ONLY
    )


def _sets_seen(attribute: FetchAttribute) -> bool:
    """RFC 9051 §6.4.5: BODY[...] and BINARY[...] (not .PEEK), RFC822 and RFC822.TEXT."""
    if attribute.name in ("RFC822", "RFC822.TEXT"):
        return True
    return (
        attribute.name in ("BODY", "BINARY")
        and attribute.section is not None
        and not attribute.peek
    )


def internal_date(timestamp: int) -> bytes:
    """RFC 9051 date-time, in UTC."""
    t = time.gmtime(timestamp)
    return b'"%02d-%s-%d %02d:%02d:%02d +0000"' % (
        t.tm_mday, MONTHS[t.tm_mon - 1].encode(), t.tm_year, t.tm_hour, t.tm_min, t.tm_sec,
    )  # fmt: skip


def _read(path: Path, header_only: bool) -> bytes | None:
    """A message's bytes, or only its header; None when it was expunged meanwhile."""
    try:
        with open(path, "rb") as file:
            if not header_only:
                return file.read()
            data = b""
            while chunk := file.read(16384):
                data += chunk
                if b"\n\r\n" in data or b"\n\n" in data:
                    break
            return header_block(data)
    except FileNotFoundError:
        return None


def _read_all(files: dict[int, Path], header_only: bool) -> dict[int, bytes | None]:
    return {uid: _read(path, header_only) for uid, path in files.items()}


@dataclass(frozen=True)
class _Wanted:
    """A FETCH data item asked for, with what is worked out once per command."""

    attribute: FetchAttribute
    label: bytes  # of a BODY[section] response: "BODY[HEADER.FIELDS (FROM)]"
    index_fields: frozenset[str] | None  # of a HEADER.FIELDS the index may answer: all it keeps

    @classmethod
    def of(cls, attribute: FetchAttribute) -> _Wanted:
        section = attribute.section
        if attribute.name != "BODY" or section is None:
            return cls(attribute, b"", None)
        fields = frozenset(name.lower() for name in section.fields)
        from_index = not section.part and section.text == "HEADER.FIELDS"
        return cls(
            attribute,
            b"BODY[" + section.label().encode() + b"]",
            fields if from_index and fields <= CACHED_FIELDS else None,
        )


def _row_format(wanted: list[_Wanted]) -> Callable[[int, MessageRow], bytes] | None:
    """What makes a FETCH response from the message number and the index row alone, when each
    item asked for is one of ROW_ITEMS; else None."""
    if not all(w.attribute.name in ROW_ITEMS for w in wanted):
        return None
    formats, indexes = zip(*(ROW_ITEMS[w.attribute.name] for w in wanted), strict=True)
    template = "%d FETCH (" + " ".join(formats) + ")"
    values = operator.itemgetter(*indexes)
    if len(indexes) == 1:  # itemgetter of one index gives the value, not a tuple
        return lambda number, row: (template % (number, values(row))).encode()
    return lambda number, row: (template % (number, *values(row))).encode()


def _row_item(name: str, row: MessageRow) -> bytes:
    form, index = ROW_ITEMS[name]
    return (form % row[index]).encode()


def _by_size(
    present: list[tuple[int, MessageRow]], files: dict[int, Path]
) -> Iterator[list[tuple[int, MessageRow]]]:
    """The messages cut where the content of those whose file is read would exceed BATCH_BYTES
    in memory."""
    group: list[tuple[int, MessageRow]] = []
    group_bytes = 0
    for pair in present:
        size = pair[1][4] if pair[1][0] in files else 0
        if group and group_bytes + size > BATCH_BYTES:
            yield group
            group, group_bytes = [], 0
        group.append(pair)
        group_bytes += size
    if group:
        yield group


class _Body:
    """A message's bytes, and its MIME structure, parsed at most once per FETCH."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._structure: Part | None = None

    @property
    def structure(self) -> Part:
        if self._structure is None:
            self._structure = parse_structure(self.data)
        return self._structure


def uid_ranges(uids: list[int]) -> list[tuple[int, int]]:
    """Sorted UIDs as (low, high) ranges, for index queries."""
    if uids and uids[-1] - uids[0] == len(uids) - 1:  # consecutive, as 1:* mostly is
        return [(uids[0], uids[-1])]
    ranges: list[tuple[int, int]] = []
    for uid in uids:
        if ranges and uid == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], uid)
        else:
            ranges.append((uid, uid))
    return ranges


# RFC 9051 §6.4.5, §6.4.9 (UID FETCH)
async def fetch(session: Session, command: Command) -> str:
    arguments = command.arguments
    assert isinstance(arguments, Fetch)
    selected = session.require_selected()
    account = session.require_account()
    attributes = list(arguments.attributes)
    if command.uid and not any(a.name == "UID" for a in attributes):
        attributes.insert(0, FetchAttribute("UID"))  # RFC 9051 §6.4.9
    if arguments.changed_since is not None or any(a.name == "MODSEQ" for a in attributes):
        session.enabled.add("CONDSTORE")  # RFC 7162 §3.1: using it enables it
        if not any(a.name == "MODSEQ" for a in attributes):
            attributes.append(FetchAttribute("MODSEQ"))
    pairs = selected.resolve(arguments.sequence, uid=command.uid)
    if arguments.vanished:
        if not command.uid or "QRESYNC" not in session.enabled or arguments.changed_since is None:
            raise bad("VANISHED needs UID FETCH, QRESYNC enabled and CHANGEDSINCE")
        ranges = arguments.sequence.resolve(selected.largest_uid)
        gone = await session.store_call(
            account.vanished, selected.name, arguments.changed_since, ranges
        )
        if gone:
            session.untagged(b"VANISHED (EARLIER) " + compress_sequence(gone).encode())
    if not pairs:
        return "FETCH completed"
    plan = _Plan.of(attributes, read_only=selected.read_only)
    limit = INDEX_BATCH if plan.from_index else BATCH_MESSAGES
    start = 0
    while start < len(pairs):
        # No bigger than all before it: the first responses leave early, the client starts.
        size = min(limit, max(BATCH_MESSAGES, start))
        await _fetch_batch(session, plan, pairs[start : start + size], arguments.changed_since)
        start += size
    return "FETCH completed"


@dataclass(frozen=True)
class _Plan:
    """How a FETCH is answered, worked out once for all its messages."""

    wanted: list[_Wanted]
    content: bool  # items beyond the index row and ENVELOPE
    from_index: bool  # every item from the index (but messages it cannot answer exactly)
    headers: bool  # the header fields the index keeps are used
    header_only: bool  # a message file is read only up to the end of its header
    sets_seen: bool
    row_format: Callable[[int, MessageRow], bytes] | None

    @classmethod
    def of(cls, attributes: list[FetchAttribute], *, read_only: bool) -> _Plan:
        wanted = [_Wanted.of(a) for a in attributes]
        content = [w for w in wanted if w.attribute.name not in INDEX_ONLY]
        from_index = all(w.index_fields is not None for w in content)
        return cls(
            wanted,
            bool(content),
            from_index,
            any(a.name == "ENVELOPE" for a in attributes) or (bool(content) and from_index),
            all(_reads_header_only(w.attribute) for w in content),
            not read_only and any(_sets_seen(a) for a in attributes),
            _row_format(wanted),
        )


async def _fetch_batch(
    session: Session, plan: _Plan, batch: list[tuple[int, int]], changed_since: int | None
) -> None:
    """The responses for a batch of (message number, UID)."""
    selected = session.require_selected()
    account = session.require_account()
    # What is ready leaves while the index is read: the client is not kept waiting.
    await session.connection.flush()
    rows = await session.store_call(
        account.message_rows, selected.name, uid_ranges([uid for _, uid in batch]),
        headers=plan.headers, changed_since=changed_since,
    )  # fmt: skip
    seen_now: set[int] = set()
    if plan.sets_seen:
        seen_now = {row[0] for row in rows if "\\Seen" not in split_flags(row[1])}
        await _mark_seen(session, seen_now)
        rows = [
            (row[0], " ".join(sorted({*split_flags(row[1]), "\\Seen"})), *row[2:])
            if row[0] in seen_now else row
            for row in rows
        ]  # fmt: skip
    # Skipped: expunged meanwhile (or unchanged since CHANGEDSINCE).
    found = {row[0]: row for row in rows}
    present = [(number, found[uid]) for number, uid in batch if uid in found]
    if plan.row_format is not None:  # nothing but the index row is asked for
        for number, row in present:
            session.untagged(plan.row_format(number, row))
        return
    made: dict[int, bytes | None] = {}  # the responses the index answers
    if plan.from_index:
        made = {
            row[0]: _response(session, plan.wanted, number, row, None, row[0] in seen_now)
            for number, row in present
        }
    unread = [row[0] for _, row in present if made.get(row[0]) is None] if plan.content else []
    files = {}
    if unread:
        files = await session.store_call(account.message_files, selected.name, unread)
    if not files:  # the index answered (or the rest was expunged meanwhile)
        for line in made.values():
            if line is not None:
                session.untagged(line)
        return
    for group in _by_size(present, files):
        to_read = {row[0]: files[row[0]] for _, row in group if row[0] in files}
        contents = {}
        if to_read:
            await session.connection.flush()
            contents = await asyncio.to_thread(_read_all, to_read, plan.header_only)
        for number, row in group:
            line = made.get(row[0])
            if line is None:
                data = contents.get(row[0])
                if data is None:
                    continue  # expunged meanwhile
                seen = row[0] in seen_now
                line = _response(session, plan.wanted, number, row, _Body(data), seen)
                assert line is not None
            session.untagged(line)
            await session.connection.flush_if_full()


async def _mark_seen(session: Session, uids: set[int]) -> None:
    if not uids:
        return
    selected = session.require_selected()
    account = session.require_account()
    change = await session.store_call(account.set_flags, selected.name, uids, ["\\Seen"], "add")
    if change.modseq == selected.modseq + 1:  # nothing else changed: no need to report ours
        selected.modseq = change.modseq


def _response(
    session: Session,
    wanted: list[_Wanted],
    number: int,
    row: MessageRow,
    body: _Body | None,
    seen_now: bool,
) -> bytes | None:
    """A message's FETCH response; None when it needs the message's bytes and `body` is None.
    A message whose \\Seen flag the fetch set gets its flags even when not asked (RFC 9051
    §6.4.5)."""
    kept = kept_fields(row[5]) if row[5] else {}
    items = []
    for item in wanted:
        data = _item(session, item, row, kept, body)
        if data is None:
            return None
        items.append(data)
    if seen_now and not any(w.attribute.name == "FLAGS" for w in wanted):
        items.append(_row_item("FLAGS", row))
    return b"%d FETCH " % number + parenthesized(items)


def _item(
    session: Session, wanted: _Wanted, row: MessageRow, kept: dict[str, str], body: _Body | None
) -> bytes | None:
    """One FETCH data item (RFC 9051 §7.5.2), from the message's index row and the header
    fields the index keeps (`kept`, when asked for); None when it needs the message's bytes
    and `body` is None."""
    attribute = wanted.attribute
    name = attribute.name
    if name in ROW_ITEMS:
        return _row_item(name, row)
    if name == "INTERNALDATE":
        return b"INTERNALDATE " + internal_date(row[3])
    if name == "ENVELOPE":
        return b"ENVELOPE " + envelope(first_values(kept), utf8=session.utf8)
    if body is None:
        if wanted.index_fields is None:
            return None
        cached = cached_header_fields(kept, wanted.index_fields)
        return None if cached is None else _section_item(wanted.label, cached, attribute)
    data = body.data
    if name in ("BODYSTRUCTURE", "BODY") and attribute.section is None:
        extensible = name == "BODYSTRUCTURE"
        structure = bodystructure(
            data, extensible=extensible, utf8=session.utf8, structure=body.structure
        )
        return name.encode() + b" " + structure
    if name == "RFC822":
        return b"RFC822 " + literal(data)
    if name == "RFC822.HEADER":
        return b"RFC822.HEADER " + literal(header_block(data))
    if name == "RFC822.TEXT":
        text = section_bytes(data, Section(text="TEXT"), structure=body.structure)
        return b"RFC822.TEXT " + literal(text or b"")
    section = attribute.section
    assert section is not None
    if name == "BODY":
        if not section.part and section.text != "TEXT":  # the header, or the whole message
            value: bytes | None = data
            if section.text is not None:
                fields, exclude = section.fields, section.text == "HEADER.FIELDS.NOT"
                value = header_block(data)
                if section.text != "HEADER":
                    value = header_fields(value, fields, exclude=exclude)
        else:
            value = section_bytes(data, section, structure=body.structure)
        return _section_item(wanted.label, value, attribute)
    try:
        decoded = binary_section(data, section, structure=body.structure)
    except UnknownTransferEncoding:
        raise ImapError("Unknown Content-Transfer-Encoding", code="UNKNOWN-CTE") from None
    label = ".".join(str(n) for n in section.part).encode()
    if name == "BINARY.SIZE":
        return b"BINARY.SIZE[" + label + b"] %d" % len(decoded)
    return _section_item(b"BINARY[" + label + b"]", decoded, attribute, binary=True)


def _section_item(
    label: bytes, value: bytes | None, attribute: FetchAttribute, *, binary: bool = False
) -> bytes:
    if attribute.partial is not None:
        label += b"<%d>" % attribute.partial[0]
        value = None if value is None else partial(value, attribute.partial)
    if value is None:
        return label + b" " + NIL
    if binary and b"\0" in value:
        return label + b" ~" + literal(value)  # literal8 (RFC 3516 §4.2)
    return label + b" " + literal(value)


# RFC 7162 §3.2.5.2: what changed since the client's last known state, at SELECT.
async def resync(session: Session, qresync: Qresync) -> None:
    selected = session.require_selected()
    account = session.require_account()
    known = qresync.known_uids.resolve(selected.largest_uid) if qresync.known_uids else None
    gone = await session.store_call(account.vanished, selected.name, qresync.modseq, known)
    if gone:
        session.untagged(b"VANISHED (EARLIER) " + compress_sequence(gone).encode())
    changed = await session.store_call(
        account.messages, selected.name, headers=False, changed_since=qresync.modseq
    )
    for message in changed:
        number = selected.number_of(message.uid)
        if number is not None:
            session.untagged(session.fetch_flags_line(number, message))
            await session.connection.flush_if_full()
