"""The message after DATA: where it ends, what it holds, and what is left for the next command."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from pcloud.smtp.data import DataRefused, read_data
from pcloud.testing import RunningServer, running_server
from tests.smtp.sessions import mx, reply

LINE_LIMIT = 1001  # aiosmtpd's, which is also its stream's limit
NEXT = b"MAIL FROM:<bob@other.net>\r\n"  # a pipelined command after the message


async def read(pieces: Sequence[bytes], max_bytes: int | None = None) -> tuple[bytes | str, bytes]:
    """The message read from a stream that gets `pieces` one at a time (or the refusal), and
    what it left in the stream."""
    reader = asyncio.StreamReader(limit=LINE_LIMIT)

    async def feed() -> None:
        for piece in pieces:
            reader.feed_data(piece)
            await asyncio.sleep(0)  # let the reader see each piece on its own
        reader.feed_eof()

    feeding = asyncio.create_task(feed())
    try:
        message: bytes | str = await read_data(reader, max_bytes=max_bytes, max_line=LINE_LIMIT)
    except DataRefused as refusal:
        message = str(refusal)
    finally:
        await feeding
    return message, await reader.read()


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        (b".\r\n", b""),
        (b"Subject: x\r\n\r\nHello.\r\n.\r\n", b"Subject: x\r\n\r\nHello.\r\n"),
        (b"..\r\n...\r\n.x\r\n.\r\n", b".\r\n..\r\nx\r\n"),  # dot-stuffing undone
        (b"a\r\n. \r\n.\r\n", b"a\r\n \r\n"),  # only a line of "." alone ends it
        # A CR or LF alone is part of its line: neither ends the message (no SMTP smuggling).
        (b"a\n.\nb\r\n.\r\n", b"a\n.\nb\r\n"),
        (b"a\n.\r\nb\r\n.\r\n", b"a\n.\r\nb\r\n"),
        (b"a\r\n.\nb\r\n.\r\n", b"a\r\n\nb\r\n"),
        (b"a\r.\r\nb\r\n.\r\n", b"a\r.\r\nb\r\n"),
    ],
)
async def test_the_message_ends_at_a_line_of_a_dot_alone(sent: bytes, message: bytes) -> None:
    assert await read([sent + NEXT]) == (message, NEXT)


async def test_the_end_split_anywhere_across_packets_is_found_and_not_read_past() -> None:
    lines = [b"line %d" % n + b"x" * (n % 80) for n in range(60)] + [b".stuffed", b""]
    sent = b"\r\n".join(lines) + b"\r\n.\r\n"
    expected = sent.replace(b"\r\n.stuffed", b"\r\nstuffed")[: -len(b".\r\n")]
    for cut in range(len(sent) - 8, len(sent) + len(NEXT)):
        stream = sent + NEXT
        assert await read([stream[:cut], stream[cut:]]) == (expected, NEXT), cut
    assert await read([bytes([byte]) for byte in sent + NEXT]) == (expected, NEXT)
    pieces, rest = [], sent + NEXT
    rng = random.Random(5321)
    while rest:
        size = rng.randint(1, 3000)
        pieces.append(rest[:size])
        rest = rest[size:]
    assert await read(pieces) == (expected, NEXT)


async def test_a_message_over_the_size_limit_is_refused_once_read_to_its_end() -> None:
    body = b"y" * 78 + b"\r\n"
    too_big = ("552 5.3.4 Message too big", NEXT)
    assert await read([body * 100, body * 100, b".\r\n" + NEXT], max_bytes=10_000) == too_big
    assert await read([body * 200 + b".\r\n" + NEXT], max_bytes=10_000) == too_big
    assert await read([body * 100 + b".\r\n"], max_bytes=len(body) * 100) == (body * 100, b"")


async def test_a_line_over_the_limit_is_refused() -> None:
    fits = b"z" * (LINE_LIMIT - 2) + b"\r\n"
    assert await read([fits + b".\r\n"]) == (fits, b"")
    refused, rest = await read([b"z" + fits + b".\r\n" + NEXT])
    assert str(refused).startswith("500 ") and rest == NEXT


async def test_a_stream_that_ends_before_the_message_does_is_an_incomplete_read() -> None:
    for pieces in ([b"Subject: half\r\n\r\nhalf a mess"], [b"Subject: x\r\n\r\nx\r\n"], []):
        with pytest.raises(asyncio.IncompleteReadError):
            await read(pieces)


# Through the wire.


@pytest.fixture
def alice(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(tmp_path / "data") as server:
        server.add_user("alice@example.org")
        yield server


async def test_pipelined_transactions_after_data_are_all_answered_in_order(
    alice: RunningServer,
) -> None:
    session = await mx(alice)
    envelope = b"MAIL FROM:<bob@other.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n"
    session.writer.write(envelope)
    assert [(await session.expect(""))[-1][:3] for _ in range(3)] == ["250", "250", "354"]
    # The end of one message, the next transaction and its message, the end split in two.
    session.writer.write(b"Subject: one\r\n\r\n.first\r\n.\r\n" + envelope)
    assert [(await session.expect(""))[-1][:3] for _ in range(4)] == ["250", "250", "250", "354"]
    session.writer.write(b"Subject: two\r\n\r\nsecond\r\n.")
    await session.writer.drain()
    await asyncio.sleep(0.2)
    session.writer.write(b"\r\nNOOP\r\n")
    assert [(await session.expect(""))[-1][:3] for _ in range(2)] == ["250", "250"]
    await session.close()
    first, second = alice.messages("alice@example.org")
    assert first.endswith(b"\r\nSubject: one\r\n\r\nfirst\r\n")
    assert second.endswith(b"\r\nSubject: two\r\n\r\nsecond\r\n")


async def test_a_too_long_line_gets_500_and_the_session_goes_on(alice: RunningServer) -> None:
    session = await mx(alice)
    assert (await reply(session, "MAIL FROM:<bob@other.net>")).startswith("250")
    assert (await reply(session, "RCPT TO:<alice@example.org>")).startswith("250")
    assert (await reply(session, "DATA")).startswith("354")
    await session.send("Subject: long\r\n\r\n" + "w" * 5_000)
    assert (await reply(session, ".")).startswith("500 5.5.2 ")
    assert (await reply(session, "RCPT TO:<alice@example.org>")).startswith("503")  # reset
    await session.close()
    assert alice.messages("alice@example.org") == []
