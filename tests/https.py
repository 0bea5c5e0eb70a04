"""HTTPS requests to the server under test, as a client on another machine sends them: through
127.0.0.1, trusting the server's CA, with the Host header and Basic credentials it would send."""

from __future__ import annotations

import http.client
from base64 import b64encode

from pcloud.testing import RunningServer

PASSWORD = "correct horse battery"  # RunningServer.add_user's default


def fetch(
    server: RunningServer,
    path: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    host: str = "localhost",
    user: str = "",
    password: str = PASSWORD,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request; `user` adds HTTP Basic credentials."""
    sent = {"Host": host, **(headers or {})}
    if user:
        credentials = b64encode(f"{user}:{password}".encode()).decode()
        sent["Authorization"] = f"Basic {credentials}"
    connection = http.client.HTTPSConnection(
        "localhost", server.port("https"), context=server.ssl_context(), timeout=10
    )
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def request(
    server: RunningServer,
    method: str,
    path: str,
    user: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """The DAV tests' shorthand: (status, body) of a request signed in as `user`."""
    status, _, content = fetch(
        server, path, method=method, body=body or None, headers=headers, user=user
    )
    return status, content
