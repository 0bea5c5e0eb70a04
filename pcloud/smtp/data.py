"""The message after DATA (RFC 5321 §4.1.1.4, §4.5.2), read in chunks rather than line by line.

The message ends at a line holding only ".": the bytes CRLF "." CRLF, where the first CRLF may be
the one that ended the DATA command (an empty message is ".\r\n" alone). A client that pipelines
(RFC 2920) may send its next command in the same packet, so the reader never takes a byte past
that line from the stream: StreamReader.readuntil finds the end in what has arrived, the reader
takes only the bytes before it, and when what it took ends with the start of the end marker, it
reads exactly the bytes that could complete it, no more.

As aiosmtpd's own reader did: a CR or LF alone is part of its line; a line longer than
`max_line` bytes with its CRLF, or a message over `max_bytes`, is refused only once the whole
message has been read (RFC 5321 §4.2.5), and is not kept in memory meanwhile.
"""

from __future__ import annotations

import asyncio

END = b"\r\n.\r\n"
_DOT_LINE = END[2:]  # the end marker's own line, after the message's last CRLF
_DATA_COMMAND_END = END[:2]  # what came just before the message: it may start the end marker


class DataRefused(Exception):
    """The message was read to its end but is not taken; str() is the reply."""


def pending_end(tail: bytes) -> int:
    """How many bytes of the end marker the end of `tail` already holds (0 to 4)."""
    for held in range(len(END) - 1, 0, -1):
        if tail.endswith(END[:held]):
            return held
    return 0


def unstuff(raw: bytes) -> bytes:
    """The message from the bytes that came before its end marker's "." line: each line's
    leading "." dropped (RFC 5321 §4.5.2, transparency)."""
    if not raw.startswith(b".") and b"\r\n." not in raw:  # most messages: no copies needed
        return raw
    return (b"\r\n" + raw).replace(b"\r\n.", b"\r\n")[2:]


def longest_line(raw: bytes) -> int:
    """Bytes in the longest line, with its CRLF."""
    return max(map(len, raw.split(b"\r\n"))) + 2


async def read_data(reader: asyncio.StreamReader, *, max_bytes: int | None, max_line: int) -> bytes:
    """The message, unstuffed; DataRefused when it is too large or has too long a line."""
    chunks: list[bytes] = []
    size = 0
    tail = _DATA_COMMAND_END  # the last bytes read: all but one of END's at most
    while True:
        held = pending_end(tail)
        if held:  # the end may be only these bytes away: read no further than them
            chunk = await reader.readexactly(len(END) - held)
            done = (tail + chunk).endswith(END)
        else:
            try:
                chunk, done = await reader.readuntil(END), True
            except asyncio.LimitOverrunError as error:  # not within the stream's limit: take
                chunk, done = await reader.read(error.consumed), False  # what comes before it
        size += len(chunk)
        chunks.append(chunk)
        if max_bytes is not None and size - len(_DOT_LINE) > max_bytes:
            chunks.clear()  # refused anyway: read on to the end, keeping nothing
        tail = (tail + chunk[-len(END) :])[1 - len(END) :]
        if done:
            break
    if max_bytes is not None and size - len(_DOT_LINE) > max_bytes:
        raise DataRefused("552 5.3.4 Message too big")
    raw = b"".join(chunks)[: -len(_DOT_LINE)]
    if longest_line(raw) > max_line:
        raise DataRefused("500 5.5.2 Line too long (RFC 5321 §4.5.3.1.6)")
    return unstuff(raw)
