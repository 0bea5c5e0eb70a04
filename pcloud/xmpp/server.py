"""XMPP client connections: reading the stream within bounds, STARTTLS, stream restarts and
stream errors (RFC 6120 §4, §5), and the two listeners (5222 with STARTTLS required, 5223 with
TLS from the start, XEP-0368).

A connection is an asyncio protocol: what a read brings is parsed and handled at once, in the
event loop's callback, with no task or future per read (a fifth less server CPU per message in
bench/xmpp.py than on asyncio streams). Stanzas are handled in order: a handler that waits
(negotiation, an IQ handler on a worker thread) returns an awaitable, and reading pauses until
it is done; what came meanwhile waits for it.

Bounds on what a client controls: each first-level element at most `[xmpp] max_stanza_bytes`
(parse.py); reading slows to `rate_bytes_per_second` on average with two seconds' worth of burst
(a token bucket: like ejabberd's shapers and Prosody's mod_limits, a fast client is slowed
rather than cut off); a connection must have signed in and bound a resource within `[xmpp]
login_seconds` of connecting (`connection-timeout`), so that idle or slow half-open logins cannot
hold sockets; connections from one address (IPv6: one /64) beyond `max_connections_per_address`
get `policy-violation` at once; reading pauses while a client does not take its output, and
output it does not take beyond MAX_PENDING_OUTPUT closes it.

STARTTLS (RFC 6120 §5.4): anything sent after <starttls/> before the TLS handshake would be
read as if it came over TLS (a command injection, as CVE-2011-0411 in Postfix): it is refused
with a TLS <failure/> and the stream's end. After SASL success the stream restarts with a new
parser; bytes that came in the same read after the <auth>/<response> are dropped (a client
waits for <success/> before opening the new stream).

Output to a connection is gathered and written once a read is handled (or, when it comes
otherwise, at the end of this turn of the event loop): the stanzas routed to it from one read of
another client's leave in one TLS record and system call (this tripled the rate of pipelined
messages in bench/xmpp.py).

A stream that ends lingers for a moment before its connection closes (see `Connection.close`).
A bug in a handler is logged with the connection id and ends that stream with
`internal-server-error`; the server goes on.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable
from xml.etree.ElementTree import Element

from pcloud.listeners import Stop
from pcloud.services import Services
from pcloud.xmpp import archive, stream_management
from pcloud.xmpp.errors import StreamError
from pcloud.xmpp.parse import Event, StreamClose, StreamOpen, StreamParser
from pcloud.xmpp.router import Router, router_for
from pcloud.xmpp.session import Session
from pcloud.xmpp.wire import STREAM_END, TLS_NS, serialize, stream_error, stream_header

log = logging.getLogger(__name__)

MAX_PENDING_OUTPUT = 8 * 1024 * 1024
BURST_SECONDS = 2
LINGER_SECONDS = 2
CLOSE_SECONDS = 5  # what the server's stop waits for its connections to close
_STARTTLS = f"{{{TLS_NS}}}starttls"

_ids = itertools.count(1)


class Connection(asyncio.Protocol):
    def __init__(
        self, services: Services, router: Router, connections: set[Connection], *, tls: bool
    ) -> None:
        self.services = services
        self.router = router
        self.tls = tls
        self.id = f"x{next(_ids)}"
        self.remote = ""
        self.parser = StreamParser(services.config.xmpp.max_stanza_bytes)
        self.header_sent = False
        self.closing = False  # the stream ended: output is dropped, input too
        self.last_read = time.monotonic()  # what liveness.py watches
        self.session = Session(services, router, self)  # a resumed one replaces it (XEP-0198)
        self.transport: asyncio.Transport
        self._loop = asyncio.get_running_loop()
        self.closed = self._loop.create_future()  # done once the connection is closed
        self._connections = connections
        self._address_key: str | None = None
        self._rate = services.config.xmpp.rate_bytes_per_second
        self._tokens = float(self._rate * BURST_SECONDS)
        self._last = time.monotonic()
        self._output = bytearray()  # written once the read being handled is (see send_bytes)
        self._flush_scheduled = False
        self._events: deque[Event] = deque()  # parsed, to handle in order
        self._unread = bytearray()  # came while a handler waited: parsed after it
        self._partial = False  # the last read ended within an element
        self._waiting: asyncio.Task[None] | None = None  # a handler being awaited
        self._paused: set[str] = set()  # why reading is paused
        self._timer: asyncio.TimerHandle | None = None  # the login deadline, then the linger
        self._over = False  # the stream is over: the session ended or detached

    # -- the transport ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._use(transport)
        self.remote = transport.get_extra_info("peername")[0]
        self._connections.add(self)
        limit = self.services.config.xmpp.max_connections_per_address
        self._address_key = self.router.connections.admit_address(self.remote, limit)
        if self._address_key is None:
            log.warning("xmpp connection refused: too many remote=%s", self.remote)
            self.end("policy-violation", "too many connections from your address")
            self.close()
            return
        log.info("xmpp connected conn=%s remote=%s tls=%s", self.id, self.remote, self.tls)
        login = self.services.config.xmpp.login_seconds
        self._timer = self._loop.call_later(login, self._login_expired)

    def _use(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        if self._paused:
            transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        self.last_read = time.monotonic()
        if self.closing:
            return  # lingering: dropped
        if self._waiting is not None:
            self._unread += data  # parsed once the handler is done (by a new parser, maybe)
            return
        self._throttle(len(data))
        self._process(data)

    def eof_received(self) -> bool:
        self.close(linger=False)
        self.transport.close()  # had it lingered, it need not any more
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed.done():
            return
        if exc is not None and not self.closing:
            log.info("xmpp disconnected conn=%s reason=%s", self.id, exc or type(exc).__name__)
        self.close()
        self.closing = True
        if self._timer is not None:
            self._timer.cancel()
        if self._address_key is not None:
            self.router.connections.release(self._address_key)
            self._address_key = None
        self._connections.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)
            log.info("xmpp closed conn=%s", self.id)

    def pause_writing(self) -> None:
        self._pause("output")  # the client does not take its output: take no input from it

    def resume_writing(self) -> None:
        self._resume("output")

    def _pause(self, reason: str) -> None:
        if not self._paused and not self.transport.is_closing():
            self.transport.pause_reading()
        self._paused.add(reason)

    def _resume(self, reason: str) -> None:
        self._paused.discard(reason)
        if not self._paused and not self.transport.is_closing():  # a closed TLS one would fail
            self.transport.resume_reading()

    def _throttle(self, size: int) -> None:
        """A token bucket of bytes: reading pauses when this read overdrew it."""
        if not self._rate:
            return
        now = time.monotonic()
        burst = self._rate * BURST_SECONDS
        self._tokens = min(burst, self._tokens + (now - self._last) * self._rate) - size
        self._last = now
        if self._tokens < 0 and "rate" not in self._paused:
            self._pause("rate")
            self._loop.call_later(-self._tokens / self._rate, self._resume, "rate")

    def _login_expired(self) -> None:
        if self.session.jid is None and not self.closing:
            log.info("xmpp stream error conn=%s condition=connection-timeout", self.id)
            self.end("connection-timeout", "not signed in in time")
            self.close()

    # -- input --------------------------------------------------------------------------------

    def _process(self, data: bytes) -> None:
        """Parse what came, and handle what is complete, in order, until a handler waits;
        then write the output this gave to any connection."""
        unflushed: list[Connection] = [self]
        self.router.unflushed = unflushed
        try:
            if data:
                self._events += self.parser.feed(data)
                self._partial = not data.rstrip().endswith(b">")
            while self._events and self._waiting is None and not self.closing:
                pending = self._handle(self._events.popleft())
                if pending is not None:
                    self._pause("handler")
                    self._waiting = self._loop.create_task(self._finish(pending))
        except StreamError as error:
            self._stream_error(error)
        except Exception:
            log.exception("xmpp internal error conn=%s", self.id)
            self.end("internal-server-error")
        finally:
            self.router.unflushed = None
        for connection in unflushed:
            connection.flush()
        if self.closing:
            self.close()

    def _handle(self, event: Event) -> Awaitable[None] | None:
        session = self.session  # <resume/> replaces it (XEP-0198)
        if isinstance(event, StreamOpen):
            session.stream_opened(event)
        elif isinstance(event, StreamClose):
            self.end()
        elif event.tag == _STARTTLS:
            return self._starttls()
        else:
            return session.handle(event)
        return None

    async def _finish(self, pending: Awaitable[None]) -> None:
        """Wait for a handler, then go on with what came meanwhile."""
        try:
            await pending
        except StreamError as error:
            self._stream_error(error)
        except Exception:
            log.exception("xmpp internal error conn=%s", self.id)
            self.end("internal-server-error")
        self._waiting = None
        self._resume("handler")
        data, self._unread = bytes(self._unread), bytearray()
        if data and not self.closing:
            self._throttle(len(data))
        self._process(data if not self.closing else b"")

    def _stream_error(self, error: StreamError) -> None:
        log.info("xmpp stream error conn=%s condition=%s text=%s",
                 self.id, error.condition, error.text)  # fmt: skip
        self.end(error.condition, error.text)

    def restart(self) -> None:
        """A new stream begins on this connection (after TLS or SASL): a new parser, and what
        the old one still held is dropped."""
        self.parser = StreamParser(self.services.config.xmpp.max_stanza_bytes)
        self._events.clear()
        self.header_sent = False

    # RFC 6120 §5.4
    def _starttls(self) -> Awaitable[None] | None:
        if self.tls or self._events or self._partial:
            self.send_bytes(f"<failure xmlns='{TLS_NS}'/>".encode())
            self.end()
            return None
        self.send_bytes(f"<proceed xmlns='{TLS_NS}'/>".encode())
        self.flush()
        return self._upgrade()

    async def _upgrade(self) -> None:
        context = self.services.tls.server_context
        try:
            transport = await self._loop.start_tls(self.transport, self, context, server_side=True)
        except BaseException as error:
            # The plain transport is closed, and no longer tells this protocol.
            log.info("xmpp disconnected conn=%s reason=%s", self.id, error or type(error).__name__)
            self.connection_lost(None)
            if not isinstance(error, Exception):
                raise
            return
        assert isinstance(transport, asyncio.Transport)
        self._use(transport)
        self.tls = True
        self.restart()

    # -- output -------------------------------------------------------------------------------

    def send(self, element: Element) -> None:
        self.send_bytes(serialize(element))

    def send_bytes(self, data: bytes) -> None:
        """Queue output: what one read of any client's sends to a connection (the stanzas it
        routes there, say) leaves in one TLS record and system call."""
        if self.closing:
            return
        self._output += data
        if not self._flush_scheduled:
            self._flush_scheduled = True
            unflushed = self.router.unflushed
            if unflushed is None:  # not while a read is handled: at the end of this turn
                self._loop.call_soon(self.flush)
            else:
                unflushed.append(self)

    def flush(self) -> None:
        self._flush_scheduled = False
        if not self._output or self.transport.is_closing():
            return
        self.transport.write(bytes(self._output))
        self._output.clear()
        if self.transport.get_write_buffer_size() > MAX_PENDING_OUTPUT:
            log.warning("xmpp client not reading conn=%s: closed", self.id)
            self.closing = True
            self.transport.abort()

    def send_header(self, domain: str, to: str | None) -> None:
        self.send_bytes(stream_header(domain, to))
        self.header_sent = True

    def end(self, condition: str | None = None, text: str = "") -> None:
        """End the stream (RFC 6120 §4.4), with a stream error when given (§4.9.1.1: after our
        own header, even if the client's was never read). The connection then closes (see
        `close`)."""
        if self.closing:
            return
        if not self.header_sent:
            self.send_header(self.services.config.server.domain, None)
        self.send_bytes(stream_error(condition, text) if condition else STREAM_END)
        self.closing = True

    def close(self, *, linger: bool = True) -> None:
        """The stream is over: its session ends (or, dropped rather than closed with stream
        management, waits for its resumption), and the connection closes. After a stream's
        end, it lingers: what the client still sends is read and dropped until it closes or for
        LINGER_SECONDS, since closing with unread input makes the kernel reset the connection,
        and the client may then lose the stream error before reading it (a client flooding a
        stanza, say)."""
        if self._over:
            return
        self._over = True
        session = self.session  # another's, if this connection resumed it
        if session.connection is not self:
            pass  # a newer connection resumed the session (XEP-0198)
        elif not self.closing and session.sm is not None and session.sm.resumable:
            stream_management.detach(session)  # dropped, not closed: it may come back
        else:
            session.end()
        lingering = linger and self.closing and not self.transport.is_closing()
        self.closing = True
        self.flush()
        if self._timer is not None:
            self._timer.cancel()
        if lingering:
            self._paused.clear()
            self.transport.resume_reading()
            self._timer = self._loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()

    def shutdown(self) -> None:
        """The server is stopping: no lingering."""
        if self._waiting is not None:
            self._waiting.cancel()
        self.end("system-shutdown", "the server is stopping")
        self.flush()
        self.close(linger=False)
        self.transport.close()


async def _serve(services: Services, sock: socket.socket, *, direct_tls: bool) -> Stop:
    router = router_for(services)
    connections: set[Connection] = set()

    def connection() -> Connection:
        return Connection(services, router, connections, tls=direct_tls)

    tls = services.tls.server_context if direct_tls else None
    server = await asyncio.get_running_loop().create_server(connection, sock=sock, ssl=tls)

    async def stop() -> None:
        server.close()
        closing = list(connections)
        for each in closing:
            each.shutdown()
        if closing:
            await asyncio.wait([each.closed for each in closing], timeout=CLOSE_SECONDS)
        await server.wait_closed()
        archive.write(router)  # what the last WRITE_DELAY gathered

    return stop


async def serve_starttls(services: Services, sock: socket.socket) -> Stop:
    return await _serve(services, sock, direct_tls=False)


async def serve_direct_tls(services: Services, sock: socket.socket) -> Stop:
    return await _serve(services, sock, direct_tls=True)
