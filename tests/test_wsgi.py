"""The WSGI bridge through the wire: small WSGI applications behind a real aiohttp server."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import ssl
import sys
import threading
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment
from wsgiref.validate import validator

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from pcloud.tls import ensure_local_certificates
from pcloud.wsgi import WsgiBridge

KIB = 1024
MIB = 1024 * KIB
TEXT = [("Content-Type", "text/plain")]


@dataclass
class Served:
    url: URL  # the mount point, "/dav"
    port: int
    cancelled: asyncio.Event  # set when aiohttp cancelled a handler

    def at(self, path: str) -> URL:
        """A URL under the mount point, with `path` sent as written (already percent-encoded)."""
        return URL(str(self.url) + path, encoded=True)


@contextlib.asynccontextmanager
async def serve(
    app: WSGIApplication,
    *,
    tls: ssl.SSLContext | None = None,
    handler_cancellation: bool = False,
    lingering_time: float = 10.0,
    max_body_bytes: int = MIB,
    **options: Any,
) -> AsyncIterator[Served]:
    """`app` mounted at /dav as pcloud mounts it. aiohttp cancels the handlers of clients that
    go away only when asked (as its test server always does); after a refused upload it reads
    (and drops) the rest of the body for `lingering_time` seconds."""
    bridge = WsgiBridge(app, max_body_bytes=max_body_bytes, script_name="/dav", **options)
    cancelled = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await bridge.handle(request)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    web_app = web.Application()
    web_app.router.add_route("*", "/dav{tail:.*}", handle)
    runner = web.AppRunner(
        web_app, handler_cancellation=handler_cancellation, lingering_time=lingering_time
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if tls else "http"
    try:
        yield Served(URL(f"{scheme}://localhost:{port}/dav"), port, cancelled)
    finally:
        await runner.cleanup()
        bridge.close()


def environ_echo(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """The environ's string and simple values, as JSON, and the thread it ran in."""
    shown = {k: v for k, v in environ.items() if isinstance(v, str | bool | int | tuple)}
    shown["thread"] = threading.current_thread().name
    shown["input"] = type(environ["wsgi.input"]).__name__
    body = json.dumps(shown).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def body_echo(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """The body's length, digest, and what CONTENT_LENGTH and Transfer-Encoding said."""
    data = environ["wsgi.input"].read()
    summary = {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "CONTENT_LENGTH": environ["CONTENT_LENGTH"],
        "HTTP_TRANSFER_ENCODING": environ.get("HTTP_TRANSFER_ENCODING"),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(summary).encode()]


class Body:
    """A response iterable that counts the chunks taken and records its close()."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = iter(chunks)
        self.taken = 0
        self.threads: set[str] = set()
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        self.threads.add(threading.current_thread().name)
        chunk = next(self.chunks)
        self.taken += 1
        return chunk

    def close(self) -> None:
        self.threads.add(threading.current_thread().name)
        self.closed.set()


def app_of(body: Body, headers: list[tuple[str, str]] = TEXT) -> WSGIApplication:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Body:
        start_response("200 OK", headers)
        return body

    return app


async def wait_for(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 30)


async def until(condition: Callable[[], bool]) -> None:
    """Waits (at most about 30 s) for something another task or thread does."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


def pep_3333(text: str) -> str:
    """What a UTF-8 string looks like in a WSGI environ (its bytes read as latin-1)."""
    return text.encode().decode("latin-1")


# Environ


async def test_the_environ_holds_what_pep_3333_asks() -> None:
    def extra(request: web.Request) -> dict[str, object]:
        return {"pcloud.remote": request.remote}

    async with serve(environ_echo, environ_extra=extra) as served:
        headers = [
            ("X-Repeated", "one"), ("X-Repeated", "two"), ("X_Repeated", "spoof"),
            ("Content-Type", "text/calendar"), ("X-Latin", "café"),
        ]  # fmt: skip
        async with (
            aiohttp.ClientSession() as session,
            session.get(served.at("/a%20b/caf%C3%A9?x=%20y&z"), headers=headers) as response,
        ):
            environ = await response.json()
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["SCRIPT_NAME"] == "/dav"
    assert environ["PATH_INFO"] == pep_3333("/a b/café")
    assert environ["QUERY_STRING"] == "x=%20y&z"
    assert environ["CONTENT_TYPE"] == "text/calendar"
    assert environ["CONTENT_LENGTH"] == "0"
    assert "HTTP_CONTENT_TYPE" not in environ and "HTTP_CONTENT_LENGTH" not in environ
    assert environ["SERVER_NAME"] == "127.0.0.1"
    assert environ["SERVER_PORT"] == str(served.port)
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["HTTP_HOST"] == f"localhost:{served.port}"
    assert environ["HTTP_X_REPEATED"] == "one,two"  # and never the "_" spelling
    assert environ["HTTP_X_LATIN"] == pep_3333("café")
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["pcloud.remote"] == "127.0.0.1"
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.version"] == [1, 0]
    assert environ["wsgi.multithread"] is True
    assert environ["wsgi.multiprocess"] is False
    assert environ["wsgi.run_once"] is False
    assert environ["input"] == "SpooledTemporaryFile"
    assert environ["thread"].startswith("wsgi-dav")


@pytest.mark.parametrize(
    ("path", "path_info"),
    [
        ("", ""),
        ("/", "/"),
        ("/caf%C3%A9/%E9", pep_3333("/café/") + "\xe9"),  # not UTF-8: still one byte, é
        ("/a%2Fb/./../c", "/a/b/./../c"),  # decoded, not normalized: the application's call
        ("/%64av", "/dav"),
    ],
)
async def test_path_info_is_the_decoded_rest_of_the_path(path: str, path_info: str) -> None:
    async with (
        serve(environ_echo) as served,
        aiohttp.ClientSession() as session,
        session.get(served.at(path)) as response,
    ):
        assert response.status == 200
        assert (await response.json())["PATH_INFO"] == path_info


async def test_a_path_that_only_starts_like_the_mount_point_is_not_found() -> None:
    async with (
        serve(environ_echo) as served,
        aiohttp.ClientSession() as session,
        session.get(served.at("x/y")) as response,  # /davx/y
    ):
        assert response.status == 404


async def test_the_url_scheme_is_https_over_tls(tmp_path: Path) -> None:
    ensure_local_certificates(tmp_path, ["localhost"])
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    client_context = ssl.create_default_context(cafile=tmp_path / "ca.pem")
    async with (
        serve(environ_echo, tls=server_context) as served,
        aiohttp.ClientSession() as session,
        session.get(served.at("/"), ssl=client_context) as response,
    ):
        assert (await response.json())["wsgi.url_scheme"] == "https"


# Request body


async def chunks_of(size: int, chunk: int = 64 * KIB) -> AsyncIterator[bytes]:
    block = bytes(range(256)) * (chunk // 256)
    for start in range(0, size, chunk):
        yield block[: min(chunk, size - start)]


def digest(size: int, chunk: int = 64 * KIB) -> str:
    block = bytes(range(256)) * (chunk // 256)
    hasher = hashlib.sha256()
    for start in range(0, size, chunk):
        hasher.update(block[: min(chunk, size - start)])
    return hasher.hexdigest()


@pytest.mark.parametrize("chunked", [False, True])
async def test_the_body_is_spooled_and_given_whole(chunked: bool) -> None:
    size = 3 * MIB + 5  # past the spool size: on disk
    async with serve(body_echo, max_body_bytes=4 * MIB, spool_bytes=64 * KIB) as served:
        headers = {} if chunked else {"Content-Length": str(size)}
        async with (
            aiohttp.ClientSession() as session,
            session.put(served.at("/f"), data=chunks_of(size), headers=headers) as response,
        ):
            assert response.status == 200
            summary = await response.json()
    assert summary == {
        "size": size, "sha256": digest(size), "CONTENT_LENGTH": str(size),
        "HTTP_TRANSFER_ENCODING": None,
    }  # fmt: skip


async def test_a_client_that_leaves_mid_upload_is_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    called = threading.Event()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        called.set()
        start_response("204 No Content", [])
        return []

    async with serve(app) as served:
        for framing in (b"Content-Length: 1000\r\n", b"Transfer-Encoding: chunked\r\n"):
            _, writer = await asyncio.open_connection("127.0.0.1", served.port)
            writer.write(b"PUT /dav/f HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n")
            writer.write(b"a" * 10 if b"Length" in framing else b"a\r\n0123456789\r\n")
            await writer.drain()
            await asyncio.sleep(0.1)  # the handler is reading the body by now
            writer.close()
            await writer.wait_closed()
        await until(lambda: caplog.text.count('PUT /dav/f HTTP/1.1" 499') == 2)
    assert not called.is_set()


def never_called(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    raise AssertionError("the application was called")


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_over_the_limit_is_refused_without_holding_it(chunked: bool) -> None:
    size = 20 * MIB
    async with serve(never_called, max_body_bytes=MIB, lingering_time=1) as served:
        headers = {} if chunked else {"Content-Length": str(size)}
        tracemalloc.start()
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.put(served.at("/f"), data=chunks_of(size), headers=headers) as response,
            ):
                assert response.status == 413
                await response.read()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 5 * MIB


async def test_a_body_just_at_the_limit_is_taken() -> None:
    async with serve(body_echo, max_body_bytes=MIB) as served, aiohttp.ClientSession() as session:
        for size, status in ((MIB, 200), (MIB + 1, 413)):
            async with session.put(served.at("/f"), data=b"x" * size) as response:
                assert response.status == status


# Response body


async def test_chunks_are_taken_as_the_client_reads() -> None:
    """The 17th chunk waits until the client has the first 16 (1 MiB): a bridge that gathered
    the body first would give the client nothing before then."""
    first_mib_read = threading.Event()
    taken_when_read: list[int] = []

    def chunks() -> Iterator[bytes]:
        for index in range(1600):  # 100 MiB
            if index == 16:
                first_mib_read.wait(30)
            yield bytes(64 * KIB)

    body = Body(chunks())
    async with serve(app_of(body)) as served, aiohttp.ClientSession() as session:
        async with session.get(served.at("/big")) as response:
            assert response.headers["Transfer-Encoding"] == "chunked"
            received = 0
            async for data in response.content.iter_any():
                received += len(data)
                if received >= MIB and not taken_when_read:
                    taken_when_read.append(body.taken)
                    first_mib_read.set()
        assert received == 100 * MIB
    assert taken_when_read[0] <= 16
    assert body.closed.is_set()
    assert all(name.startswith("wsgi-dav") for name in body.threads)


async def test_a_100_mib_response_streams_in_little_memory() -> None:
    chunk = bytes(64 * KIB)
    body = Body(chunk for _ in range(1600))
    async with serve(app_of(body)) as served, aiohttp.ClientSession() as session:
        tracemalloc.start()
        try:
            async with session.get(served.at("/big")) as response:
                received = 0
                async for data in response.content.iter_chunked(64 * KIB):
                    received += len(data)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert received == 100 * MIB
    assert peak < 10 * MIB


async def raw(served: Served, request: bytes) -> bytes:
    """What the server sends back to `request` until it closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(request)
    reply = await reader.read()
    writer.close()
    return reply


def list_app(
    body: list[bytes], headers: list[tuple[str, str]] = TEXT, status: str = "200 OK"
) -> WSGIApplication:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        start_response(status, headers)
        return body

    return app


async def test_a_list_body_gets_a_content_length_and_a_generator_is_chunked() -> None:
    async with aiohttp.ClientSession() as session:
        async with (
            serve(list_app([b"hello ", b"world"])) as served,
            session.get(served.at("/")) as response,
        ):
            assert await response.read() == b"hello world"
            assert response.headers["Content-Length"] == "11"
            assert "Transfer-Encoding" not in response.headers
        async with (
            serve(app_of(Body([b"hello ", b"", b"world"]))) as served,
            session.get(served.at("/")) as response,
        ):
            assert await response.read() == b"hello world"
            assert response.headers["Transfer-Encoding"] == "chunked"
        # Nothing but empty chunks: the end came before any header had to go out.
        async with (
            serve(app_of(Body([b"", b""]))) as served,
            session.get(served.at("/")) as response,
        ):
            assert await response.read() == b""
            assert response.headers["Content-Length"] == "0"


async def test_the_applications_headers_are_kept_but_hop_by_hop_ones() -> None:
    headers = [
        ("Content-Type", "text/plain"), ("Content-Length", "5"), ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"), ("Connection", "keep-alive"), ("Keep-Alive", "timeout=99"),
        ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"), ("X-Name", pep_3333("café")),
    ]  # fmt: skip
    async with (
        serve(app_of(Body([b"hel", b"lo"]), headers)) as served,
        aiohttp.ClientSession() as session,
        session.get(served.at("/")) as response,
    ):
        assert await response.read() == b"hello"
        assert response.headers["Content-Length"] == "5"
        assert response.headers.getall("Set-Cookie") == ["a=1", "b=2"]
        assert response.headers["X-Name"] == "café"  # the application's bytes, UTF-8 here
        for name in ("Keep-Alive", "Transfer-Encoding", "Upgrade"):
            assert name not in response.headers
        assert response.headers.get("Connection", "keep-alive") == "keep-alive"


@pytest.mark.parametrize(
    ("method", "status", "headers"),
    [
        ("HEAD", "200 OK", [("Content-Length", "12")]),
        ("HEAD", "200 OK", []),
        ("GET", "304 Not Modified", []),
        ("GET", "204 No Content", []),
    ],
)
async def test_responses_without_a_body_send_none(
    method: str, status: str, headers: list[tuple[str, str]]
) -> None:
    bodies: list[Body] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Body:
        bodies.append(Body(b"hello world!" for _ in range(100)))
        code = status if environ["PATH_INFO"] == "/x" else "200 OK"
        start_response(code, [*TEXT, *headers])
        return bodies[-1]

    async with serve(app) as served:
        first = f"{method} /dav/x HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        reply = await raw(
            served, first + b"GET /dav/y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        await wait_for(bodies[0].closed)
    head, _, rest = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 " + status.encode())
    # The next response follows the headers at once: no body bytes in between.
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
    if headers:
        assert b"\r\nContent-Length: 12\r\n" in head
    assert bodies[0].taken < 100  # not walked to its end for nothing


async def test_the_write_callable_sends_before_the_iterable() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"one ")
        write(b"two ")
        return iter([b"three"])

    def listed(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", TEXT)(b"one ")
        return [b"two"]

    async with aiohttp.ClientSession() as session:
        async with serve(app) as served, session.get(served.at("/")) as response:
            assert await response.read() == b"one two three"
        async with serve(listed) as served, session.get(served.at("/")) as response:
            assert await response.read() == b"one two"
            assert response.headers["Content-Length"] == "7"


async def test_wsgi_errors_lines_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        errors = environ["wsgi.errors"]
        errors.write("line one\nline t")
        errors.writelines(["wo\n", "no newline at the end"])
        start_response("200 OK", TEXT)
        return [b""]

    async with (
        serve(app) as served,
        aiohttp.ClientSession() as session,
        session.get(served.at("/")) as response,
    ):
        assert response.status == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "pcloud.wsgi"]
    assert lines == [
        "wsgi application: line one", "wsgi application: line two",
        "wsgi application: no newline at the end",
    ]  # fmt: skip


# Errors


def failing(where: str) -> WSGIApplication:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if where == "call":
            raise ValueError("boom")
        if where == "after start_response":
            start_response("200 OK", TEXT)
            raise ValueError("boom")
        if where == "no start_response":
            return [b"body"]
        if where == "str chunk":
            start_response("200 OK", TEXT)
            return ["text"]  # type: ignore[list-item]
        if where == "bad header":
            start_response("200 OK", [("X-Injected", "a\r\nSet-Cookie: b")])
        if where == "twice":
            start_response("200 OK", TEXT)
            start_response("200 OK", TEXT)

        def body() -> Iterator[bytes]:  # the first next() fails
            start_response("200 OK", TEXT)
            yield b""
            raise ValueError("boom")

        return body()

    return app


@pytest.mark.parametrize(
    "where",
    ["call", "after start_response", "no start_response", "str chunk", "bad header", "twice",
     "first chunk"],
)  # fmt: skip
async def test_an_error_before_any_header_is_a_500_logged_once(
    where: str, logged_errors: list[logging.LogRecord]
) -> None:
    async with (
        serve(failing(where)) as served,
        aiohttp.ClientSession() as session,
        session.get(served.at("/")) as response,
    ):
        assert response.status == 500
        assert await response.text() == "500 Internal Server Error\n"
    assert [(r.name, r.exc_info is not None) for r in logged_errors] == [("pcloud.wsgi", True)]
    logged_errors.clear()


@pytest.mark.parametrize("length", [None, str(2 * MIB)])
async def test_an_error_after_the_headers_cuts_the_connection(
    length: str | None, logged_errors: list[logging.LogRecord]
) -> None:
    def chunks() -> Iterator[bytes]:
        yield bytes(MIB)
        raise ValueError("boom")

    body = Body(chunks())
    headers = [*TEXT, ("Content-Length", length)] if length else TEXT
    async with serve(app_of(body, headers)) as served, aiohttp.ClientSession() as session:
        async with session.get(served.at("/")) as response:
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        await wait_for(body.closed)
    assert [(r.name, r.exc_info is not None) for r in logged_errors] == [("pcloud.wsgi", True)]
    logged_errors.clear()


async def test_start_response_with_exc_info_replaces_the_response_until_headers_went_out(
    logged_errors: list[logging.LogRecord],
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        write = start_response("200 OK", TEXT)
        try:
            write(b"partial")
            raise ValueError("caught")
        except ValueError:
            start_response("503 Try Later", TEXT, sys.exc_info())
        if environ["PATH_INFO"] == "/before":
            return iter([b"sorry"])

        def late() -> Iterator[bytes]:
            yield b"started"
            try:
                raise ValueError("too late")
            except ValueError:
                start_response("500 Oops", TEXT, sys.exc_info())  # raises: headers went out
            yield b"never"

        return late()

    async with serve(app) as served, aiohttp.ClientSession() as session:
        async with session.get(served.at("/before")) as response:
            assert (response.status, response.reason) == (503, "Try Later")
            assert await response.read() == b"sorry"
        assert logged_errors == []
        async with session.get(served.at("/after")) as response:
            assert response.status == 503
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
    [record] = logged_errors
    assert record.exc_info is not None and str(record.exc_info[1]) == "too late"
    logged_errors.clear()


async def test_a_body_shorter_than_its_content_length_cuts_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = list_app([b"abc"], [*TEXT, ("Content-Length", "10")])
    async with (
        serve(app) as served,
        aiohttp.ClientSession() as session,
        session.get(served.at("/")) as response,
    ):
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    assert "wsgi response shorter than its Content-Length" in caplog.text


# Clients that go away


@pytest.mark.parametrize("handler_cancellation", [False, True])
async def test_a_client_that_leaves_mid_response_stops_the_iteration(
    handler_cancellation: bool,
) -> None:
    body = Body(bytes(64 * KIB) for _ in range(16000))  # 1000 MiB
    async with serve(app_of(body), handler_cancellation=handler_cancellation) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(b"GET /dav/big HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readexactly(MIB)
        writer.close()
        await writer.wait_closed()
        await wait_for(body.closed)
    assert body.taken < 16000
    assert all(name.startswith("wsgi-dav") for name in body.threads)


@pytest.mark.parametrize("stuck_in", ["call", "next"])
async def test_a_cancelled_handler_closes_the_iterable_after_the_call_returns(
    stuck_in: str,
) -> None:
    """aiohttp cancels the handler while the application is inside a call; the iterable is
    closed once that call returns, not while it runs."""
    stuck, release = threading.Event(), threading.Event()
    events: list[str] = []

    class Recorded(Body):
        def close(self) -> None:
            events.append("closed")

    def chunks() -> Iterator[bytes]:
        try:
            yield b"first"
            stuck.set()
            release.wait(30)
            events.append("next returned")
            yield b"second"
        finally:
            events.append("closed")  # closing it while it runs would fail (and be logged)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        if stuck_in == "next":
            return chunks()
        stuck.set()
        release.wait(30)
        events.append("call returned")
        return Recorded([b"first"])

    async with serve(app, handler_cancellation=True) as served:
        _, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(b"GET /dav/x HTTP/1.1\r\nHost: x\r\n\r\n")
        await wait_for(stuck)
        writer.close()
        await served.cancelled.wait()
        release.set()
        await until(lambda: "closed" in events)
    assert events == [f"{stuck_in} returned", "closed"]


# PEP 3333, as the standard library checks it


@pytest.mark.filterwarnings("error::wsgiref.validate.WSGIWarning")
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
async def test_the_bridge_passes_the_wsgiref_validator() -> None:
    """wsgiref.validate checks the environ, the input and error streams, start_response and
    write(), and that the iterable is closed (an unclosed one fails as it is collected)."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        body = environ["wsgi.input"]
        head = body.read(5) + body.readline()
        rest = b"".join(body)
        environ["wsgi.errors"].write(f"read {len(head) + len(rest)} bytes\n")
        environ["wsgi.errors"].flush()
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(head)

        def chunks() -> Iterator[bytes]:
            yield rest
            yield b""
            yield environ["PATH_INFO"].encode("latin-1")

        return chunks()

    async with serve(validator(app)) as served, aiohttp.ClientSession() as session:
        for method, path, data in [
            ("GET", "/x?q=1", None), ("POST", "/form", b"first line\nsecond\nthird"),
            ("PUT", "/f", chunks_of(200 * KIB)), ("HEAD", "/x", None), ("GET", "", None),
        ]:  # fmt: skip
            async with session.request(method, served.at(path), data=data) as response:
                assert response.status == 200
                await response.read()
    gc.collect()
