"""Signing in to IMAP: only inside TLS, through the directory (app passwords, throttling), with
an administrator's impersonation; connection limits."""

from __future__ import annotations

import base64
import imaplib
import logging
from pathlib import Path

import pytest

from pcloud.testing import RunningServer, running_server
from tests.imap.conftest import PASSWORD, Connect
from tests.transcript import Transcript


def test_before_tls_login_is_disabled_and_starttls_enables_it(server: RunningServer) -> None:
    server.add_user("alice@example.org", PASSWORD)
    client = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=10)
    assert "LOGINDISABLED" in client.capabilities
    assert "STARTTLS" in client.capabilities
    assert not any(c.startswith("AUTH=") for c in client.capabilities)
    typ, data = client._simple_command("LOGIN", "alice@example.org", '"' + PASSWORD + '"')
    assert (typ, data) == ("NO", [b"[PRIVACYREQUIRED] Sign in only over TLS (STARTTLS first)"])
    client.starttls(ssl_context=server.ssl_context())
    assert "AUTH=PLAIN" in client.capabilities and "LOGINDISABLED" not in client.capabilities
    typ, _ = client.login("alice@example.org", PASSWORD)
    assert typ == "OK"
    assert client.select("INBOX")[0] == "OK"
    client.logout()


def test_login_on_993_with_password_and_app_password(
    server: RunningServer, connect: Connect
) -> None:
    client = connect()
    _typ, data = client.capability()
    assert "IDLE" in data[0].decode() and "CONDSTORE" in data[0].decode()
    secret = server.services.directory.add_app_password("alice@example.org", "phone")
    other = connect(None, login=False)
    assert other.login("alice@example.org", secret)[0] == "OK"


def test_wrong_passwords_are_refused(server: RunningServer, connect: Connect) -> None:
    server.add_user("alice@example.org", PASSWORD)
    client = connect(None, login=False)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login("alice@example.org", "wrong")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login("nobody@example.org", "wrong")
    assert client.login("alice@example.org", PASSWORD)[0] == "OK"


def test_authenticate_plain_with_and_without_initial_response(
    server: RunningServer, connect: Connect
) -> None:
    server.add_user("alice@example.org", PASSWORD)
    client = connect(None, login=False)
    response = f"\0alice@example.org\0{PASSWORD}".encode()
    assert client.authenticate("PLAIN", lambda _: response)[0] == "OK"
    assert client.select("INBOX")[0] == "OK"

    async def with_initial_response() -> list[str]:
        session = await Transcript.open("127.0.0.1", server.port("imaps"), tls=server.ssl_context())
        await session.expect("* OK")
        encoded = base64.b64encode(response).decode()
        lines = await session.expect("a1 ", f"a1 AUTHENTICATE PLAIN {encoded}")
        await session.close()
        return lines

    assert server.call(with_initial_response())[-1].startswith("a1 OK")


def test_an_admin_may_act_as_another_user_and_others_may_not(
    server: RunningServer, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    server.add_user("root@example.org", PASSWORD, is_admin=True)
    server.add_user("alice@example.org", PASSWORD)
    server.add_user("bob@example.org", PASSWORD)
    server.services.mail.account("alice@example.org").create_mailbox("Alice's own")
    admin = connect(None, login=False)
    with caplog.at_level(logging.INFO):
        typ, _ = admin.authenticate(
            "PLAIN", lambda _: f"alice@example.org\0root@example.org\0{PASSWORD}".encode()
        )
    assert typ == "OK"
    assert any("impersonation login=root@example.org as=alice@example.org" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    assert b"Alice's own" in b" ".join(admin.list()[1])
    bob = connect(None, login=False)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHORIZATIONFAILED"):
        bob.authenticate(
            "PLAIN", lambda _: f"alice@example.org\0bob@example.org\0{PASSWORD}".encode()
        )


def test_commands_in_the_wrong_state_get_bad(server: RunningServer) -> None:
    server.add_user("alice@example.org", PASSWORD)

    async def talk() -> None:
        session = await Transcript.open("127.0.0.1", server.port("imaps"), tls=server.ssl_context())
        await session.expect("* OK")
        await session.expect("a1 BAD SELECT is not allowed before signing in", "a1 SELECT INBOX")
        await session.expect("a2 OK", f'a2 LOGIN alice@example.org "{PASSWORD}"')
        await session.expect("a3 BAD FETCH is not allowed without a selected mailbox",
                             "a3 FETCH 1 FLAGS")  # fmt: skip
        await session.expect("a4 BAD", "a4 LOGIN alice@example.org again")
        await session.expect("* BYE", "a5 LOGOUT")
        await session.close()

    server.call(talk())


def test_connections_per_user_are_limited(tmp_path: Path) -> None:
    settings = {"imap": {"max_connections_per_user": 2}}
    with running_server(tmp_path / "data", settings=settings) as server:
        server.add_user("alice@example.org", PASSWORD)
        clients = []
        for _ in range(2):
            client = imaplib.IMAP4_SSL(
                "127.0.0.1", server.port("imaps"), ssl_context=server.ssl_context(), timeout=10
            )
            client.login("alice@example.org", PASSWORD)
            clients.append(client)
        third = imaplib.IMAP4_SSL(
            "127.0.0.1", server.port("imaps"), ssl_context=server.ssl_context(), timeout=10
        )
        with pytest.raises(imaplib.IMAP4.error, match="LIMIT"):
            third.login("alice@example.org", PASSWORD)
        clients[0].logout()
        assert third.login("alice@example.org", PASSWORD)[0] == "OK"
        for client in [third, clients[1]]:
            client.logout()


def test_connections_per_address_are_limited(tmp_path: Path) -> None:
    settings = {"imap": {"max_connections_per_address": 2}}
    with running_server(tmp_path / "data", settings=settings) as server:
        first = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=10)
        second = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=10)
        with pytest.raises(imaplib.IMAP4.error):  # the greeting is a BYE
            imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=10)
        first.logout()
        second.logout()
