"""FETCH (RFC 9051 §6.4.5), with BINARY (RFC 3516), CONDSTORE's CHANGEDSINCE and QRESYNC's
VANISHED (RFC 7162), and the resynchronisation at SELECT (QRESYNC).

Implementation notes:
- Messages are fetched in batches (BATCH_MESSAGES, or BATCH_BYTES of message content): one
  index query and one worker-thread hop per batch, and responses are flushed to the client as
  they are produced, so a FETCH 1:* of a big mailbox holds one batch in memory.
- UID, FLAGS, INTERNALDATE, RFC822.SIZE, MODSEQ and ENVELOPE come from the index; only body
  parts and BODYSTRUCTURE read the message file, and HEADER sections read only up to the end
  of the header.
- A message expunged by another session between the SELECT view and the fetch is skipped (the
  client learns of the expunge at the next moment allowed, RFC 9051 §7.5.1).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pcloud.imap.errors import ImapError, bad
from pcloud.imap.message import (
    UnknownTransferEncoding,
    binary_section,
    bodystructure,
    envelope,
    header_fields,
    partial,
    section_bytes,
)
from pcloud.imap.mime import Part, parse_structure
from pcloud.imap.search import compress_sequence
from pcloud.imap.values import Command, Fetch, FetchAttribute, Qresync, Section
from pcloud.imap.wire import NIL, flag_list, literal, parenthesized
from pcloud.store.index import header_block
from pcloud.store.mail_values import Message

if TYPE_CHECKING:
    from pcloud.imap.session import Session

BATCH_MESSAGES = 500
BATCH_BYTES = 8 * 1024 * 1024
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
INDEX_ONLY = frozenset({"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "MODSEQ", "ENVELOPE"})
HEADER_ONLY = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"})


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


def _batches(pairs: list[tuple[int, int]]) -> Iterator[list[tuple[int, int]]]:
    for start in range(0, len(pairs), BATCH_MESSAGES):
        yield pairs[start : start + BATCH_MESSAGES]


def _by_size(
    batch: list[tuple[int, int]], found: dict[int, Message]
) -> Iterator[list[tuple[int, int]]]:
    """A batch cut where its messages' content would exceed BATCH_BYTES in memory."""
    group: list[tuple[int, int]] = []
    group_bytes = 0
    for pair in batch:
        message = found.get(pair[1])
        size = message.size if message is not None else 0
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
    headers = any(a.name == "ENVELOPE" for a in attributes)
    content = [a for a in attributes if a.name not in INDEX_ONLY]
    header_only = all(_reads_header_only(a) for a in content)
    sets_seen = not selected.read_only and any(_sets_seen(a) for a in attributes)
    for batch in _batches(pairs):
        rows = await session.store_call(
            account.messages, selected.name, uid_ranges([uid for _, uid in batch]),
            headers=headers, changed_since=arguments.changed_since,
        )  # fmt: skip
        found = {message.uid: message for message in rows}
        seen_now: set[int] = set()
        if sets_seen:
            seen_now = {uid for uid, m in found.items() if "\\Seen" not in m.flags}
            await _mark_seen(session, seen_now)
        files = {}
        if content:
            files = await session.store_call(account.message_files, selected.name, found)
        for group in _by_size(batch, found):
            contents: dict[int, bytes | None] = {}
            if content:
                wanted = {uid: files[uid] for _, uid in group if uid in files}
                contents = await asyncio.to_thread(_read_all, wanted, header_only)
            for number, uid in group:
                message = found.get(uid)
                data = contents.get(uid)
                if message is None or (content and data is None):
                    continue  # expunged meanwhile (or unchanged since CHANGEDSINCE)
                if uid in seen_now:
                    flags = tuple(sorted({*message.flags, "\\Seen"}))
                    message = dataclasses.replace(message, flags=flags)
                body = _Body(data) if data is not None else None
                items = [_item(session, a, message, body) for a in attributes]
                if uid in seen_now and not any(a.name == "FLAGS" for a in attributes):
                    items.append(b"FLAGS " + flag_list(message.flags))
                session.untagged(b"%d FETCH " % number + parenthesized(items))
                await session.connection.flush_if_full()
    return "FETCH completed"


async def _mark_seen(session: Session, uids: set[int]) -> None:
    if not uids:
        return
    selected = session.require_selected()
    account = session.require_account()
    change = await session.store_call(account.set_flags, selected.name, uids, ["\\Seen"], "add")
    if change.modseq == selected.modseq + 1:  # nothing else changed: no need to report ours
        selected.modseq = change.modseq


def _item(
    session: Session, attribute: FetchAttribute, message: Message, body: _Body | None
) -> bytes:
    """One FETCH data item (RFC 9051 §7.5.2)."""
    name = attribute.name
    if name == "UID":
        return b"UID %d" % message.uid
    if name == "FLAGS":
        return b"FLAGS " + flag_list(message.flags)
    if name == "INTERNALDATE":
        return b"INTERNALDATE " + internal_date(message.internal_date)
    if name == "RFC822.SIZE":
        return b"RFC822.SIZE %d" % message.size
    if name == "MODSEQ":
        return b"MODSEQ (%d)" % message.modseq
    if name == "ENVELOPE":
        return b"ENVELOPE " + envelope(message.headers, utf8=session.utf8)
    assert body is not None
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
        return _section_item(b"BODY[" + section.label().encode() + b"]", value, attribute)
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
