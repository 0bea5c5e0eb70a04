"""IMAP test helpers: imaplib clients signed in to the whole server."""

from __future__ import annotations

import contextlib
import imaplib
from collections.abc import Callable, Iterator

import pytest

from pcloud.testing import RunningServer

PASSWORD = "correct horse battery"
Connect = Callable[..., imaplib.IMAP4_SSL]


@pytest.fixture
def connect(server: RunningServer) -> Iterator[Connect]:
    """Opens imaplib clients on port 993's listener, signed in as `user` unless login=False;
    all are logged out at the end of the test."""
    clients: list[imaplib.IMAP4_SSL] = []

    def open_client(
        user: str | None = "alice@example.org", *, login: bool = True
    ) -> imaplib.IMAP4_SSL:
        if user is not None and server.services.directory.user(user) is None:
            server.add_user(user, PASSWORD)
        client = imaplib.IMAP4_SSL(
            "127.0.0.1", server.port("imaps"), ssl_context=server.ssl_context(), timeout=10
        )
        clients.append(client)
        if login and user is not None:
            client.login(user, PASSWORD)
        return client

    yield open_client
    for client in clients:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()


def message(
    subject: str = "Hello", body: str = "Hi there.\r\n", sender: str = "bob@example.net"
) -> bytes:
    return (
        f"From: Bob <{sender}>\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.net>\r\n"
        f"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n\r\n{body}"
    ).encode()
