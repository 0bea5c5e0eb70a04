"""HTTP file upload (XEP-0363): slixmpp's plugin finds the service and asks for slots; the file
goes up and comes down over HTTPS with aiohttp, as a chat program's HTTP side would."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from slixmpp import JID
from slixmpp.exceptions import IqError

from pcloud.testing import RunningServer, running_server
from pcloud.xmpp import upload
from tests.xmpp.conftest import Client, Connect

UPLOAD_NS = "urn:xmpp:http:upload:0"
DATA = bytes(range(256)) * 6000  # 1.5 MB: more than one chunk, and than aiohttp's body limit


class _Here(AbstractResolver):
    """Every name is 127.0.0.1: the URLs name mail.example.org, which is this test server."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET, proto=0,
                flags=0,
            )
        ]  # fmt: skip

    async def close(self) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """The whole server, with the [xmpp] settings a test may give as its parameter."""
    settings = {"xmpp": getattr(request, "param", {})}
    with running_server(tmp_path / "data", settings=settings) as running:
        yield running


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=server.ssl_context(), resolver=_Here())
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def _uploader(connect: Connect, jid: str = "alice@example.org") -> Client:
    client = await connect(jid)
    client.xmpp.register_plugin("xep_0363")
    return client


async def _slot(client: Client, name: str, size: int, kind: str = "image/jpeg") -> Any:
    reply = await client.xmpp.plugin["xep_0363"].request_slot(
        JID("example.org"), name, size, kind, timeout=10
    )
    return reply["http_upload_slot"]


async def test_a_file_goes_up_and_comes_down(
    server: RunningServer, connect: Connect, http: aiohttp.ClientSession
) -> None:
    alice = await _uploader(connect)
    bob = await connect("bob@example.org")
    info = await alice.xmpp.plugin["xep_0363"].find_upload_service(timeout=10)
    assert info is not None and info["from"] == JID("example.org")
    forms = [form["values"] for form in info["disco_info"].iterables]
    limit = server.services.config.xmpp.upload_max_bytes
    assert {"FORM_TYPE": [UPLOAD_NS], "max-file-size": str(limit)} in forms

    slot = await _slot(alice, "holiday photo.jpg", len(DATA))
    put, get = slot["put"]["url"], slot["get"]["url"]
    assert urlsplit(get).netloc == f"mail.example.org:{server.port('https')}"
    assert get.endswith("/holiday%20photo.jpg") and put.startswith(get + "?")
    headers = {"Content-Type": "image/jpeg"}
    async with http.put(put, data=DATA, headers=headers) as response:
        assert response.status == 201, await response.text()

    alice.send_message("bob@example.org", get)
    assert (await bob.message())["body"] == get
    async with http.get(get) as response:  # no credentials: the URL is the key
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        assert await response.read() == DATA
    async with http.head(get) as response:
        assert response.headers["Content-Length"] == str(len(DATA))
        assert response.headers["Content-Security-Policy"] == "sandbox"

    # In alice's files, where WebDAV and SFTP see it, counted in her usage.
    files = server.services.files.user("alice@example.org")
    month, slot_id, name = unquote(urlsplit(get).path).split("/")[3:]
    path = f"Chat uploads/{month}/{slot_id}/{name}"
    assert name == "holiday photo.jpg"
    assert b"".join(files.read_chunks(path)) == DATA
    assert files.usage().files == len(DATA)
    on_disk = server.data_dir / "files" / "alice@example.org" / "tree" / path
    assert on_disk.read_bytes() == DATA

    # A slot is used once: a second PUT does not replace the file.
    async with http.put(put, data=b"x" * len(DATA)) as response:
        assert response.status == 409
    assert b"".join(files.read_chunks(path)) == DATA

    # Deleting the file ends its URL.
    files.delete(path)
    async with http.get(get) as response:
        assert response.status == 404


async def test_the_body_must_be_the_size_announced(
    server: RunningServer, connect: Connect, http: aiohttp.ClientSession
) -> None:
    alice = await _uploader(connect)
    slot = await _slot(alice, "notes.txt", 10, "text/plain")
    async with http.options(slot["put"]["url"]) as response:  # a web client's preflight
        assert "PUT" in response.headers["Access-Control-Allow-Methods"]
    async with http.put(slot["put"]["url"], data=b"0123456789ab") as response:
        assert response.status == 400
    async with http.get(slot["get"]["url"]) as response:
        assert response.status == 404
    async with http.put(slot["put"]["url"], data=b"0123456789") as response:
        assert response.status == 201
    async with http.get(slot["get"]["url"]) as response:
        assert await response.read() == b"0123456789"
        assert response.headers["Content-Disposition"].startswith("attachment")


async def test_a_put_without_its_token_is_refused(
    server: RunningServer, connect: Connect, http: aiohttp.ClientSession
) -> None:
    alice = await _uploader(connect)
    slot = await _slot(alice, "secret.pdf", 3, "application/pdf")
    put = slot["put"]["url"]
    url = put.split("?")[0]
    forged = put.replace("token=", "token=0")
    bigger = put.replace("size=3", "size=4")
    elsewhere = put.replace("alice%40example.org", "bob%40example.org").replace(
        "alice@example.org", "bob@example.org"
    )
    assert elsewhere != put
    huge = f"{url}?size={'9' * 5000}&expires=1&token=0"
    guesses = [(url, b"abc"), (forged, b"abc"), (bigger, b"abcd"), (elsewhere, b"abc")]
    for guess, body in [*guesses, (huge, b"abc")]:
        async with http.put(guess, data=body) as response:
            assert response.status == 403, guess
    # A slot as the server signs it (the test runs in its process), but an hour old.
    month, slot_id, name = unquote(urlsplit(url).path).split("/")[3:]
    expired = int(time.time()) - 3600
    token = upload._sign("alice@example.org", month, slot_id, name, 3, expired)
    async with http.put(f"{url}?size=3&expires={expired}&token={token}", data=b"abc") as response:
        assert response.status == 403
        assert "expired" in await response.text()
    assert server.services.files.user("alice@example.org").listdir("") == []


async def test_too_large_a_file_is_refused_with_the_limit(connect: Connect) -> None:
    alice = await _uploader(connect)
    with pytest.raises(IqError) as refused:
        await _slot(alice, "film.mkv", 100 * 1024 * 1024 + 1, "video/x-matroska")
    error = refused.value.iq["error"]
    assert (error["type"], error["condition"]) == ("modify", "not-acceptable")
    limit = error.xml.find(f"{{{UPLOAD_NS}}}file-too-large/{{{UPLOAD_NS}}}max-file-size")
    assert limit is not None and limit.text == str(100 * 1024 * 1024)


async def test_the_quota_is_asked_before_the_upload(
    server: RunningServer, connect: Connect
) -> None:
    server.add_user("carol@example.org", quota_bytes=1000)
    carol = await _uploader(connect, "carol@example.org")
    assert (await _slot(carol, "small.png", 1000))["get"]["url"]
    with pytest.raises(IqError) as refused:
        await _slot(carol, "big.png", 1001)
    assert refused.value.iq["error"]["condition"] == "resource-constraint"


async def test_the_quota_holds_when_the_bytes_come(
    server: RunningServer, connect: Connect, http: aiohttp.ClientSession
) -> None:
    server.add_user("carol@example.org", quota_bytes=1000)
    carol = await _uploader(connect, "carol@example.org")
    slot = await _slot(carol, "small.png", 1000)
    server.services.directory.set_quota("carol@example.org", 500)  # lowered meanwhile
    async with http.put(slot["put"]["url"], data=b"x" * 1000) as response:
        assert response.status == 507
    async with http.get(slot["get"]["url"]) as response:
        assert response.status == 404
    # No empty slot folder is left behind.
    month = unquote(urlsplit(slot["get"]["url"]).path).split("/")[3]
    assert server.services.files.user("carol@example.org").listdir(f"Chat uploads/{month}") == []


@pytest.mark.parametrize(("name", "size"), [("../escape", "5"), ("", "5"), ("a.txt", "-1")])
async def test_bad_requests_are_refused(connect: Connect, name: str, size: str) -> None:
    alice = await _uploader(connect)
    iq = alice.xmpp.make_iq_get(ito="example.org")
    iq["http_upload_request"]["filename"] = name
    iq["http_upload_request"]["size"] = size
    with pytest.raises(IqError) as refused:
        await iq.send(timeout=10)
    assert refused.value.iq["error"]["condition"] == "bad-request"


async def test_unknown_uploads_are_not_found(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    server.add_user("alice@example.org")
    base = server.url("/upload/alice@example.org")
    for path in ("/2026-01/" + "0" * 32 + "/a.txt", "/2026-01/short/a.txt", "/x/y/z/a.txt"):
        async with http.get(base + path) as response:
            assert response.status == 404, path


@pytest.mark.parametrize("server", [{"upload_max_bytes": 0}], indirect=True)
async def test_uploads_can_be_turned_off(connect: Connect) -> None:
    alice = await _uploader(connect)
    assert await alice.xmpp.plugin["xep_0363"].find_upload_service(timeout=10) is None
    with pytest.raises(IqError) as refused:
        await _slot(alice, "a.txt", 1)
    assert refused.value.iq["error"]["condition"] == "service-unavailable"
