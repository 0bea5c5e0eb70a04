"""The one streaming WSGI bridge (PEP 3333): WSGI applications (Radicale, WsgiDAV) under aiohttp.

A bridge is mounted on a path prefix of the one aiohttp application:

    bridge = WsgiBridge(app, max_body_bytes=..., script_name="/dav")
    web_app.router.add_route("*", "/dav{tail:.*}", bridge.handle)

Implementation notes:
- The application runs only in the bridge's own thread pool, never on the event loop: the call
  (with `iter()` of what it returns), each `next()`, and `close()`. A plain list or tuple (the
  usual one-chunk body) is taken whole in the call, and then gets a Content-Length.
- The request body is read and spooled (memory up to `spool_bytes`, then a temporary file)
  before the application is called, so a slow client never holds a thread. More than
  `max_body_bytes` (announced or received) is refused with 413, and aiohttp then reads and
  drops the rest for its lingering time; malformed framing is aiohttp's 400. The body is
  de-chunked: the application sees CONTENT_LENGTH and no Transfer-Encoding. A client that
  leaves mid-upload gets (in the access log) nginx's 499, and the application is not called.
- Request headers whose names hold "_" are dropped (as nginx, Apache and gunicorn do): "X_User"
  would pass for "X-User" in the environ. Repeated headers are joined with ",".
- The response is streamed: the next chunk is fetched from the application once the previous
  one was written (`response.write` waits while the client is slow), so a request holds a
  chunk or so in memory. Headers go out with the first non-empty chunk, or at the end (and
  then with a Content-Length). A Content-Length from the application is kept; otherwise
  HTTP/1.1 clients get chunked encoding. Hop-by-hop headers from the application are dropped.
  HEAD, 1xx, 204 and 304 responses stop the iteration once the headers went out.
- Errors: an exception from the application before any header went out becomes a 500, logged
  with its traceback; after that, the connection is closed so the client sees a truncated
  response (also when the body falls short of its Content-Length). A client that goes away
  stops the iteration quietly. The iterable's `close()` runs in every case, once the last call
  into the application has returned (when aiohttp cancels the handler, it is chained to that
  call).
- Strings in the environ and in start_response are PEP 3333 "bytes as latin-1" strings; header
  values are handed to aiohttp (which writes UTF-8) so that the bytes on the wire are the
  application's whenever they are valid UTF-8 (always, in practice: ASCII).

Not supported: `wsgi.file_wrapper` (an application's file is read chunk by chunk like any
iterable), a write() callable that streams (its data goes out after the call or `next()` that
wrote it returns), HTTP trailers, and refusing an announced size before 100 Continue (aiohttp's
default expect handler sends it before the handler runs).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import logging
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, Any, TypeVar, TypeVarTuple
from urllib.parse import unquote_to_bytes
from wsgiref.types import WSGIApplication, WSGIEnvironment

from aiohttp import hdrs, web
from multidict import CIMultiDict

log = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

# Request bodies are read in chunks of this size.
CHUNK_BYTES = 64 * 1024
# RFC 9110 §7.6.1 and RFC 2616 §13.5.1 (the list PEP 3333 cites), and the common
# Proxy-Connection.
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
        "te", "trailer", "trailers", "transfer-encoding", "upgrade",
    }
)  # fmt: skip
_STATUS = re.compile(r"([1-9][0-9]{2}) ([\t\x20-\x7e\x80-\xff]*)")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_END = object()


class WsgiBridge:
    """Serves one WSGI application as an aiohttp handler (see the module notes)."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        threads: int = 4,
        max_body_bytes: int,
        script_name: str = "",
        spool_bytes: int = 1 << 20,
        environ_extra: Callable[[web.Request], dict[str, object]] | None = None,
    ) -> None:
        """`script_name` is the mount point ("/dav", ASCII, no trailing slash; "" for the root);
        `environ_extra` adds keys to each request's environ (called on the event loop)."""
        if script_name and (not script_name.startswith("/") or script_name.endswith("/")):
            raise ValueError(f"script_name must start and not end with '/': {script_name!r}")
        self._app = app
        self._max_body_bytes = max_body_bytes
        self._script_name = script_name
        self._spool_bytes = spool_bytes
        self._environ_extra = environ_extra
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=f"wsgi{script_name.replace('/', '-')}"
        )

    def close(self) -> None:
        """Stops the thread pool without waiting: calls under way finish, and the iterables'
        close() already queued still run; nothing new is accepted. Call it after the HTTP
        server stopped handing out requests."""
        self._pool.shutdown(wait=False)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path_info = self._path_info(request)
        if path_info is None:
            raise web.HTTPNotFound()
        extra = self._environ_extra(request) if self._environ_extra is not None else {}
        try:
            body, size = await self._read_body(request)
        except ConnectionError:
            # The client left mid-upload: its doing, not an error. Only the access log sees
            # this status (nginx's "client closed request").
            return web.Response(status=499, reason="Client Closed Request")
        exchange = _Exchange(self._environ(request, path_info, body, size, extra))
        try:
            response = await self._respond(request, exchange)
        except BaseException:
            # Cancelled (by aiohttp's shutdown or handler cancellation): the application may
            # still be inside a call, and its iterable must not be closed concurrently with it.
            self._cleanup_after(exchange)
            raise
        # Shielded: a cancellation now must not drop the cleanup from the pool's queue.
        await asyncio.shield(asyncio.wrap_future(self._pool.submit(exchange.cleanup)))
        return response

    def _path_info(self, request: web.Request) -> str | None:
        """PATH_INFO below the mount point, percent-decoded bytes as latin-1 (PEP 3333), or
        None when the path is not under the mount point."""
        path = unquote_to_bytes(request.rel_url.raw_path).decode("latin-1")
        if not self._script_name:
            return path
        if path != self._script_name and not path.startswith(self._script_name + "/"):
            return None
        return path[len(self._script_name) :]

    async def _read_body(
        self, request: web.Request
    ) -> tuple[tempfile.SpooledTemporaryFile[bytes], int]:
        announced = request.content_length
        if announced is not None and announced > self._max_body_bytes:
            raise web.HTTPRequestEntityTooLarge(self._max_body_bytes, announced)
        # Closed by the exchange's cleanup, after the application is done with it.
        body = tempfile.SpooledTemporaryFile(max_size=self._spool_bytes)  # noqa: SIM115
        size = 0
        try:
            async for chunk in request.content.iter_chunked(CHUNK_BYTES):
                size += len(chunk)
                if size > self._max_body_bytes:
                    raise web.HTTPRequestEntityTooLarge(self._max_body_bytes, size)
                if size > self._spool_bytes:
                    # Past the spool size the file is on disk: write (and roll over) off the loop.
                    await asyncio.to_thread(body.write, chunk)
                else:
                    body.write(chunk)
            body.seek(0)
        except BaseException:
            body.close()
            raise
        return body, size

    def _environ(
        self,
        request: web.Request,
        path_info: str,
        body: tempfile.SpooledTemporaryFile[bytes],
        size: int,
        extra: dict[str, object],
    ) -> WSGIEnvironment:
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        server_name, server_port = (str(sockname[0]), str(sockname[1])) if sockname else ("", "")
        environ: WSGIEnvironment = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": self._script_name,
            "PATH_INFO": path_info,
            "QUERY_STRING": request.rel_url.raw_query_string,
            "CONTENT_LENGTH": str(size),
            "SERVER_NAME": server_name,
            "SERVER_PORT": server_port,
            "SERVER_PROTOCOL": f"HTTP/{request.version.major}.{request.version.minor}",
            "REMOTE_ADDR": request.remote or "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": request.scheme,
            "wsgi.input": body,
            "wsgi.errors": _ErrorStream(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for raw_name, raw_value in request.raw_headers:
            # "X_User" and "X-User" would both become HTTP_X_USER, so a client could pass a
            # header as another one; servers drop names with "_" for that reason.
            if b"_" in raw_name:
                continue
            name = raw_name.decode("latin-1").upper().replace("-", "_")
            if name in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                continue  # the body was de-chunked, and CONTENT_LENGTH is what arrived
            key = name if name == "CONTENT_TYPE" else "HTTP_" + name
            value = raw_value.decode("latin-1")
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        environ.update(extra)
        return environ

    async def _run(self, exchange: _Exchange, call: Callable[[*Ts], T], *args: *Ts) -> T:
        future = self._pool.submit(call, *args)
        exchange.in_flight = future
        return await asyncio.wrap_future(future)

    def _cleanup_after(self, exchange: _Exchange) -> None:
        """Queues the exchange's cleanup behind the call into the application that may still
        be running (its iterable must not be closed while a next() is under way)."""

        def submit(_: object = None) -> None:
            try:
                self._pool.submit(exchange.cleanup)
            except RuntimeError:
                # The pool was shut down: run it in the thread whose call just returned.
                exchange.cleanup()

        # add_done_callback runs at once, here on the loop, when the call is already done;
        # submit() only hands the cleanup to the pool, so no application code runs here.
        if exchange.in_flight is None:
            submit()
        else:
            exchange.in_flight.add_done_callback(submit)

    async def _respond(self, request: web.Request, exchange: _Exchange) -> web.StreamResponse:
        try:
            iterator = await self._run(exchange, exchange.call, self._app)
        except Exception:
            return _failed(request, None)
        # A list or tuple was taken whole (the usual single-chunk body): the end is known.
        ended = iterator is None
        response: web.StreamResponse | None = None
        sent = 0
        while True:
            if response is None and (ended or any(exchange.pending)):
                try:
                    response = exchange.response(ended)
                except Exception:
                    return _failed(request, None)
            if response is not None:
                written = await _deliver(request, response, exchange)
                if written is None:
                    return response  # the client went away: stop quietly
                sent += written
                if exchange.bodiless:
                    break
            if ended:
                break
            assert iterator is not None
            try:
                ended = await self._run(exchange, exchange.fetch, iterator)
            except Exception:
                return _failed(request, response)
        assert response is not None
        declared = response.content_length
        if not exchange.bodiless and declared is not None and sent < declared:
            log.warning(
                "wsgi response shorter than its Content-Length method=%s path=%s sent=%d length=%d",
                request.method, request.path, sent, declared,
            )  # fmt: skip
            _cut(request, response)
        return response


class _Exchange:
    """One request as the application sees it. Its methods that call the application, and the
    start_response and write() callables, run in the pool; the loop reads the state between
    calls (each call's future orders the two)."""

    def __init__(self, environ: WSGIEnvironment) -> None:
        self.environ = environ
        # Kept apart from the environ, which the application may change.
        self.body: IO[bytes] = environ["wsgi.input"]
        self.errors: _ErrorStream = environ["wsgi.errors"]
        self.result: Iterable[bytes] | None = None
        self.status: tuple[int, str] | None = None
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.headers_sent = False
        # Body chunks (from the iterable and from write()) not yet handed to aiohttp.
        self.pending: list[bytes] = []
        self.in_flight: concurrent.futures.Future[Any] | None = None

    def call(self, app: WSGIApplication) -> Iterator[bytes] | None:
        """Calls the application; returns its iterator, or None when the whole body is in
        `pending` already (a list or tuple)."""
        self.result = app(self.environ, self.start_response)
        # Exact types: walking a subclass could run application code.
        if type(self.result) in (list, tuple):
            self.pending.extend(map(_checked, self.result))
            return None
        return iter(self.result)

    def fetch(self, iterator: Iterator[bytes]) -> bool:
        """Moves the next chunk to `pending`; True at the end of the body."""
        chunk = next(iterator, _END)
        if chunk is _END:
            return True
        self.pending.append(_checked(chunk))
        return False

    def cleanup(self) -> None:
        """After the last call into the application: its iterable's close() (PEP 3333 requires
        it, whatever happened), then the request body and the error stream."""
        close = getattr(self.result, "close", None)
        try:
            if close is not None:
                close()
        except Exception:
            log.exception("wsgi iterable close() failed")
        finally:
            self.errors.flush()
            self.body.close()

    # PEP 3333 "The start_response() Callable"
    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | tuple[None, None, None] | None = None,
    ) -> Callable[[bytes], object]:
        if exc_info is not None and exc_info[1] is not None:
            if self.headers_sent:
                raise exc_info[1].with_traceback(exc_info[2])
            # The error page replaces the response, and what it wrote so far.
            self.pending.clear()
        elif self.status is not None:
            raise RuntimeError("start_response called a second time without exc_info")
        match = _STATUS.fullmatch(status) if isinstance(status, str) else None
        if match is None:
            raise ValueError(f"bad WSGI status {status!r}")
        fields: CIMultiDict[str] = CIMultiDict()
        for name, value in headers:
            if not (isinstance(name, str) and _TOKEN.fullmatch(name)):
                raise ValueError(f"bad WSGI header name {name!r}")
            if not (isinstance(value, str) and _FIELD_VALUE.fullmatch(value)):
                raise ValueError(f"bad WSGI header value {name}: {value!r}")
            if name.lower() == "content-length" and not (value.isascii() and value.isdigit()):
                raise ValueError(f"bad WSGI Content-Length {value!r}")
            if name.lower() not in HOP_BY_HOP:
                fields.add(name, _wire(value))
        self.status = (int(match[1]), _wire(match[2]))
        self.headers = fields
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's write() callable: its data goes out after the call that wrote it."""
        self.pending.append(_checked(data))

    @property
    def bodiless(self) -> bool:
        """True when the response has no body (RFC 9110 §9.3.2, §15.2, §15.3.5, §15.4.5)."""
        assert self.status is not None
        code = self.status[0]
        return self.environ["REQUEST_METHOD"] == "HEAD" or code < 200 or code in (204, 304)

    def response(self, ended: bool) -> web.StreamResponse:
        """The response with the status and headers the application gave; when the body is
        all in `pending` already, it gets a Content-Length instead of chunked encoding."""
        if self.status is None:
            raise RuntimeError("the WSGI application sent a body without calling start_response")
        code, reason = self.status
        response = web.StreamResponse(status=code, reason=reason, headers=self.headers)
        if ended and not self.bodiless and hdrs.CONTENT_LENGTH not in self.headers:
            response.content_length = sum(map(len, self.pending))
        self.headers_sent = True
        return response


class _ErrorStream(io.TextIOBase):
    """wsgi.errors: each line the application writes becomes a warning in the log."""

    def __init__(self) -> None:
        super().__init__()
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            log.warning("wsgi application: %s", line)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            log.warning("wsgi application: %s", self._partial)
            self._partial = ""


async def _deliver(
    request: web.Request, response: web.StreamResponse, exchange: _Exchange
) -> int | None:
    """Sends the headers (once) and the pending chunks; returns the body bytes written, or
    None when the client went away."""
    pending, exchange.pending = exchange.pending, []
    written = 0
    try:
        if not response.prepared:
            await response.prepare(request)
        if not exchange.bodiless:
            for data in pending:
                if data:
                    await response.write(data)
                    written += len(data)
    except ConnectionError:
        return None
    return written


def _failed(request: web.Request, response: web.StreamResponse | None) -> web.StreamResponse:
    """After an exception from the application: a 500 while no header has gone out, else a
    cut connection, the only way left to tell the client that the response is incomplete."""
    log.exception("wsgi application failed method=%s path=%s", request.method, request.path)
    if response is None:
        return web.Response(status=500, text="500 Internal Server Error\n")
    _cut(request, response)
    return response


def _cut(request: web.Request, response: web.StreamResponse) -> None:
    # Closing the transport (after what was written) keeps aiohttp from ending a chunked body
    # with its last chunk, which would make the truncated body look complete.
    response.force_close()
    if request.transport is not None:
        request.transport.close()


def _checked(chunk: object) -> bytes:
    if not isinstance(chunk, bytes):
        raise TypeError(f"a WSGI body chunk must be bytes, not {type(chunk).__name__}")
    return chunk


def _wire(text: str) -> str:
    """A PEP 3333 string (bytes as latin-1) as the str aiohttp writes (in UTF-8) as the same
    bytes. Bytes that are not UTF-8 have no such str; they go out as the UTF-8 of their
    latin-1 reading."""
    if text.isascii():
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return text
