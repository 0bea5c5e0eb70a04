"""Connection limits: connections per address, and the time a connection has to sign in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcloud.testing import RunningServer, running_server
from tests.xmpp.conftest import Connect, RawStream

LOGIN_SECONDS = 5
HEADER = (
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    " to='example.org' version='1.0'>"
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    settings = {"xmpp": {"max_connections_per_address": 3, "login_seconds": LOGIN_SECONDS}}
    with running_server(tmp_path / "data", settings=settings) as running:
        yield running


async def test_connections_per_address_are_limited(server: RunningServer, connect: Connect) -> None:
    alice = await connect("alice@example.org/laptop")
    first = await RawStream.open(server)
    await first.open_stream()
    second = await RawStream.open(server, direct_tls=False)  # both listeners count
    await second.open_stream()
    third = await RawStream.open(server)
    reply = await third.expect("</stream:stream>")
    assert '<policy-violation xmlns="urn:ietf:params:xml:ns:xmpp-streams"' in reply, reply
    assert await third.closed()
    await first.close()
    for _ in range(100):  # counted out once the server has seen it close
        again = await RawStream.open(server)
        reply = await again.expect("</stream:", HEADER)  # features, or an error
        if "policy-violation" not in reply:
            break
        await again.closed()
        await asyncio.sleep(0.05)
    else:
        pytest.fail("a closed connection is still counted")
    # the signed-in client was never disturbed
    alice.send_message("alice@example.org/laptop", "to myself")
    assert (await alice.message())["body"] == "to myself"
    await again.close()
    await second.close()


async def test_a_connection_that_does_not_sign_in_in_time_is_closed(
    server: RunningServer, connect: Connect
) -> None:
    # A client that keeps talking but never finishes signing in: each read comes in time, the
    # whole does not.
    slow = await RawStream.open(server)
    await slow.open_stream()
    alice = await connect("alice@example.org/laptop")
    loop = asyncio.get_running_loop()
    started = loop.time()
    while "</stream:stream>" not in slow.received.decode():
        assert loop.time() - started < LOGIN_SECONDS * 3, "still open"
        await slow.send(" ")  # a whitespace keepalive (RFC 6120 §4.6.1) keeps each read in time
        with contextlib.suppress(TimeoutError):
            slow.received += await asyncio.wait_for(slow.reader.read(65536), 1)
    reply = slow.received.decode()
    assert '<connection-timeout xmlns="urn:ietf:params:xml:ns:xmpp-streams"' in reply, reply
    assert await slow.closed()
    await slow.close()
    # the client that signed in in time stays, past the deadline
    alice.send_message("alice@example.org/laptop", "still here")
    assert (await alice.message())["body"] == "still here"
