"""The HTTPS app and the plain-HTTP redirect, through the wire."""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess

import aiohttp
import pytest

from pcloud.testing import RunningServer
from tests.conftest import require_tool
from tests.transcript import Transcript


def test_healthz_over_tls_trusting_the_local_ca(server: RunningServer) -> None:
    connection = http.client.HTTPSConnection(
        "localhost", server.port("https"), context=server.ssl_context(), timeout=10
    )
    connection.request("GET", "/healthz")
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["status"] == "ok"


def test_curl_with_the_ca_file(server: RunningServer) -> None:
    curl = require_tool("curl")
    result = subprocess.run(
        [curl, "-sS", "--fail", "--cacert", str(server.ca_file), server.url("/healthz")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "ok"


@pytest.mark.parametrize(
    "name",
    [
        "localhost",
        "mail.example.org",
        "autoconfig.example.org",
        "autodiscover.example.org",
        "example.org",
        "127.0.0.1",
    ],
)
def test_certificate_names_the_server_names(server: RunningServer, name: str) -> None:
    import socket

    with (
        socket.create_connection(("127.0.0.1", server.port("https")), timeout=10) as raw,
        server.ssl_context().wrap_socket(raw, server_hostname=name) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_an_unknown_name_and_an_untrusting_client_are_refused(server: RunningServer) -> None:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", server.port("https"), context=ssl.create_default_context(), timeout=10
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        connection.request("GET", "/healthz")


async def test_aiohttp_client_and_unknown_paths(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(server.url("/healthz"), ssl=server.ssl_context()) as response:
            assert response.status == 200
        async with session.get(server.url("/nothing-here"), ssl=server.ssl_context()) as response:
            assert response.status == 404


async def test_plain_http_only_redirects_to_https(server: RunningServer) -> None:
    session = await Transcript.open("127.0.0.1", server.port("http"))
    await session.send("POST /dav/calendars?x=1 HTTP/1.1")
    await session.send("Host: mail.example.org:8080")
    await session.send("Content-Length: 0")
    reply = await session.expect("", "")
    assert reply == ["HTTP/1.1 308 Permanent Redirect"]
    headers = await session.expect("Location:")
    assert headers[-1] == (
        f"Location: https://mail.example.org:{server.port('https')}/dav/calendars?x=1"
    )
    await session.close()


async def test_plain_http_on_the_tls_port_gets_no_answer(server: RunningServer) -> None:
    session = await Transcript.open("127.0.0.1", server.port("https"))
    await session.send("GET /healthz HTTP/1.0\r\n")
    assert await session.closed()
