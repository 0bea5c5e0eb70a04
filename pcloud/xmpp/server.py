"""XMPP client connections: reading the stream within bounds, STARTTLS, stream restarts and
stream errors (RFC 6120 §4, §5), and the two listeners (5222 with STARTTLS required, 5223 with
TLS from the start, XEP-0368).

Bounds on what a client controls: each first-level element at most `[xmpp] max_stanza_bytes`
(parse.py); reading slows to `rate_bytes_per_second` on average with two seconds' worth of burst
(a token bucket: like ejabberd's shapers and Prosody's mod_limits, a fast client is slowed
rather than cut off); a connection must have signed in and bound a resource within `[xmpp]
login_seconds` of connecting (`connection-timeout`), so that idle or slow half-open logins cannot
hold sockets; connections from one address (IPv6: one /64) beyond `max_connections_per_address`
get `policy-violation` at once; output a client does not take beyond MAX_PENDING_OUTPUT closes
it.

STARTTLS (RFC 6120 §5.4): anything sent after <starttls/> before the TLS handshake would be
read as if it came over TLS (a command injection, as CVE-2011-0411 in Postfix): it is refused
with a TLS <failure/> and the stream's end. After SASL success the stream restarts with a new
parser; bytes that came in the same read after the <auth>/<response> are dropped (a client
waits for <success/> before opening the new stream).

Output to a connection is gathered and written once per turn of the event loop: the stanzas
routed to it from one read of another client's leave in one TLS record and system call (this
tripled the rate of pipelined messages in bench/xmpp.py).

A bug in a handler is logged with the connection id and ends that stream with
`internal-server-error`; the server goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import ssl
import time
from xml.etree.ElementTree import Element

from pcloud.listeners import Stop, serve_streams
from pcloud.services import Services
from pcloud.xmpp import archive, stream_management
from pcloud.xmpp.errors import StreamError
from pcloud.xmpp.parse import StreamClose, StreamOpen, StreamParser
from pcloud.xmpp.router import Router, router_for
from pcloud.xmpp.session import Session
from pcloud.xmpp.wire import STREAM_END, TLS_NS, serialize, stream_error, stream_header

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
MAX_PENDING_OUTPUT = 8 * 1024 * 1024
BURST_SECONDS = 2
LINGER_SECONDS = 2
_STARTTLS = f"{{{TLS_NS}}}starttls"

_ids = itertools.count(1)


class Connection:
    def __init__(
        self,
        services: Services,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        tls: bool,
    ) -> None:
        self.services = services
        self.reader = reader
        self.writer = writer
        self.tls = tls
        self.id = f"x{next(_ids)}"
        self.remote: str = writer.get_extra_info("peername")[0]
        self.parser = StreamParser(services.config.xmpp.max_stanza_bytes)
        self.restarts = 0
        self.header_sent = False
        self.closing = False
        self._rate = services.config.xmpp.rate_bytes_per_second
        self._tokens = float(self._rate * BURST_SECONDS)
        self._last = time.monotonic()
        self._output = bytearray()  # written at the end of this turn of the event loop
        self.session: Session  # set by _serve_admitted; a resumed one replaces it (XEP-0198)
        self._flush_scheduled = False
        self.last_read = time.monotonic()  # what liveness.py watches

    # -- output -------------------------------------------------------------------------------

    def send(self, element: Element) -> None:
        self.send_bytes(serialize(element))

    def send_bytes(self, data: bytes) -> None:
        """Queue output: what a turn of the event loop sends to a connection (the stanzas routed
        from one read of another client's, say) leaves in one TLS record and system call."""
        if self.closing:
            return
        self._output += data
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if not self._output or self.writer.is_closing():
            return
        self.writer.write(self._output)
        self._output.clear()
        if self.writer.transport.get_write_buffer_size() > MAX_PENDING_OUTPUT:
            log.warning("xmpp client not reading conn=%s: closed", self.id)
            self.closing = True
            self.writer.transport.abort()

    def send_header(self, domain: str, to: str | None) -> None:
        self.send_bytes(stream_header(domain, to))
        self.header_sent = True

    def end(self, condition: str | None = None, text: str = "") -> None:
        """End the stream (RFC 6120 §4.4), with a stream error when given (§4.9.1.1: after our
        own header, even if the client's was never read). The read loop then closes the
        connection (see `linger`)."""
        if self.closing:
            return
        if not self.header_sent:
            self.send_header(self.services.config.server.domain, None)
        self.send_bytes(stream_error(condition, text) if condition else STREAM_END)
        self.closing = True

    async def linger(self) -> None:
        """Read and drop what the client still sends, for a moment, before closing: closing
        with unread input makes the kernel reset the connection, and the client may then lose
        the stream error before reading it (a client flooding a stanza, say)."""
        self.flush()
        with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(LINGER_SECONDS):
                await self.writer.drain()
                while await self.reader.read(READ_SIZE):
                    pass

    def restart(self) -> None:
        """A new stream begins on this connection (after TLS or SASL): a new parser."""
        self.parser = StreamParser(self.services.config.xmpp.max_stanza_bytes)
        self.header_sent = False
        self.restarts += 1

    # -- input --------------------------------------------------------------------------------

    async def read(self, timeout: float | None) -> bytes:
        if timeout is None:  # signed in: no deadline, and no wait_for to pay for each read
            return await self.reader.read(READ_SIZE)
        try:
            return await asyncio.wait_for(self.reader.read(READ_SIZE), timeout)
        except TimeoutError:
            raise StreamError("connection-timeout", "not signed in in time") from None

    async def throttle(self, size: int) -> None:
        """A token bucket of bytes: wait when this read overdrew it."""
        if not self._rate:
            return
        now = time.monotonic()
        burst = self._rate * BURST_SECONDS
        self._tokens = min(burst, self._tokens + (now - self._last) * self._rate) - size
        self._last = now
        if self._tokens < 0:
            await asyncio.sleep(-self._tokens / self._rate)

    def pending_input(self) -> bool:
        """Whether bytes wait in the reader; StreamReader has no public way to ask."""
        return bool(self.reader._buffer)  # type: ignore[attr-defined]


async def _serve_connection(
    services: Services,
    router: Router,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    tls: bool,
) -> None:
    connection = Connection(services, reader, writer, tls=tls)
    limit = services.config.xmpp.max_connections_per_address
    address_key = router.connections.admit_address(connection.remote, limit)
    if address_key is None:
        log.warning("xmpp connection refused: too many remote=%s", connection.remote)
        connection.end("policy-violation", "too many connections from your address")
        await connection.linger()
        writer.close()
        return
    try:
        await _serve_admitted(connection, router)
    finally:
        router.connections.release(address_key)


async def _serve_admitted(connection: Connection, router: Router) -> None:
    services, writer = connection.services, connection.writer
    connection.session = Session(services, router, connection)
    tls = connection.tls
    log.info("xmpp connected conn=%s remote=%s tls=%s", connection.id, connection.remote, tls)
    try:
        await _read_loop(connection)
    except StreamError as error:
        log.info("xmpp stream error conn=%s condition=%s text=%s",
                 connection.id, error.condition, error.text)  # fmt: skip
        connection.end(error.condition, error.text)
    except (ConnectionError, ssl.SSLError) as error:
        log.info("xmpp disconnected conn=%s reason=%s",
                 connection.id, error or type(error).__name__)  # fmt: skip
    except asyncio.CancelledError:
        connection.end("system-shutdown", "the server is stopping")
        connection.flush()
        writer.close()  # no lingering: the server is stopping
        raise
    except Exception:
        log.exception("xmpp internal error conn=%s", connection.id)
        connection.end("internal-server-error")
    finally:
        session = connection.session  # another's, if this connection resumed it
        if session.connection is not connection:
            pass  # a newer connection resumed the session (XEP-0198)
        elif not connection.closing and session.sm is not None and session.sm.resumable:
            stream_management.detach(session)  # dropped, not closed: it may come back
        else:
            session.end()
        if connection.closing and not writer.is_closing():
            await connection.linger()
        connection.closing = True
        connection.flush()
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 5)
        log.info("xmpp closed conn=%s", connection.id)


async def _read_loop(connection: Connection) -> None:
    loop = asyncio.get_running_loop()
    login_deadline = loop.time() + connection.services.config.xmpp.login_seconds
    while not connection.closing:
        bound = connection.session.jid is not None
        data = await connection.read(None if bound else login_deadline - loop.time())
        if not data:
            return
        connection.last_read = time.monotonic()
        events = connection.parser.feed(data)
        restarts = connection.restarts
        for index, event in enumerate(events):
            if connection.closing or connection.restarts != restarts:
                break  # the stream ended, or restarted: the rest belonged to the old one
            session = connection.session  # <resume/> replaces it (XEP-0198)
            if isinstance(event, StreamOpen):
                session.stream_opened(event)
            elif isinstance(event, StreamClose):
                connection.end()
            elif event.tag == _STARTTLS:
                trailing = index + 1 < len(events) or not data.rstrip().endswith(b">")
                await _starttls(connection, session, trailing=trailing)
            else:
                await session.handle(event)
        await connection.throttle(len(data))
        connection.flush()
        await connection.writer.drain()


# RFC 6120 §5.4
async def _starttls(connection: Connection, session: Session, *, trailing: bool) -> None:
    if connection.tls or trailing or connection.pending_input():
        connection.send_bytes(f"<failure xmlns='{TLS_NS}'/>".encode())
        connection.end()
        return
    connection.send_bytes(f"<proceed xmlns='{TLS_NS}'/>".encode())
    connection.flush()
    await connection.writer.drain()
    await connection.writer.start_tls(connection.services.tls.server_context)
    connection.tls = True
    connection.restart()


async def _serve(services: Services, sock: socket.socket, *, direct_tls: bool) -> Stop:
    router = router_for(services)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_connection(services, router, reader, writer, tls=direct_tls)

    tls = services.tls.server_context if direct_tls else None
    stop_serving = await serve_streams(sock, handle, ssl_context=tls, limit=READ_SIZE)

    async def stop() -> None:
        await stop_serving()
        archive.write(router)  # what the last WRITE_DELAY gathered

    return stop


async def serve_starttls(services: Services, sock: socket.socket) -> Stop:
    return await _serve(services, sock, direct_tls=False)


async def serve_direct_tls(services: Services, sock: socket.socket) -> Stop:
    return await _serve(services, sock, direct_tls=True)
