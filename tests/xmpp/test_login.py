"""Signing in: TLS first, then SASL SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN, then a resource."""

from __future__ import annotations

import asyncio
import base64
import logging
import sqlite3

import pytest

from pcloud.testing import RunningServer
from tests.xmpp.conftest import (
    TIMEOUT,
    Connect,
    RawStream,
    forget_client_errors,
    new_client,
)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"])
@pytest.mark.parametrize("direct_tls", [True, False], ids=["xmpps", "starttls"])
async def test_login_with_each_mechanism_over_tls(
    connect: Connect, mechanism: str, direct_tls: bool
) -> None:
    client = await connect("alice@example.org/laptop", mechanism=mechanism, direct_tls=direct_tls)
    assert client.jid == "alice@example.org/laptop"
    assert client.xmpp.is_connected()


def _plain(login: str, password: str) -> str:
    return base64.b64encode(f"\0{login}\0{password}".encode()).decode()


async def test_nothing_but_starttls_before_tls(server: RunningServer) -> None:
    server.add_user("alice@example.org", "correct horse battery")
    stream = await RawStream.open(server, direct_tls=False)
    features = await stream.open_stream()
    assert '<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"><required' in features
    assert "mechanism" not in features
    # a password before TLS is refused without being checked, and the stream goes on
    reply = await stream.expect(
        "</failure>",
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
        f"{_plain('alice', 'correct horse battery')}</auth>",
    )
    assert "<encryption-required" in reply
    reply = await stream.expect("</stream:stream>", "<message to='bob@example.org'/>")
    assert "<not-authorized" in reply
    assert await stream.closed()


async def test_wrong_password_is_refused(
    server: RunningServer, logged_errors: list[logging.LogRecord]
) -> None:
    server.add_user("alice@example.org", "correct horse battery")
    for mechanism in ("SCRAM-SHA-256", "PLAIN"):
        xmpp = new_client(server, "alice@example.org", "wrong password", mechanism=mechanism)
        failed = asyncio.Event()
        xmpp.add_event_handler("failed_all_auth", lambda _, failed=failed: failed.set())
        xmpp.connect("127.0.0.1", server.port("xmpps"))
        await asyncio.wait_for(failed.wait(), TIMEOUT)
        xmpp.abort()
    forget_client_errors(logged_errors)
    stream = await RawStream.open(server)
    await stream.open_stream()
    reply = await stream.expect(
        "</failure>",
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
        f"{_plain('alice', 'wrong password')}</auth>",
    )
    assert "<not-authorized" in reply
    reply = await stream.expect(
        "</failure>", "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-NONE'/>"
    )
    assert "<invalid-mechanism" in reply
    await stream.close()


async def test_app_passwords_sign_in_with_plain_only(
    server: RunningServer, connect: Connect, logged_errors: list[logging.LogRecord]
) -> None:
    server.add_user("alice@example.org", "correct horse battery")
    secret = server.services.directory.add_app_password("alice@example.org", "phone")
    client = await connect("alice@example.org/phone", mechanism="PLAIN", password=secret)
    assert client.jid == "alice@example.org/phone"
    with pytest.raises(AssertionError, match="login failed"):
        await connect("alice@example.org/phone2", mechanism="SCRAM-SHA-256", password=secret)
    forget_client_errors(logged_errors)


async def test_a_resource_bound_again_replaces_the_old_session(connect: Connect) -> None:
    first = await connect("alice@example.org/phone")
    second = await connect("alice@example.org/phone")
    error = await asyncio.wait_for(first.stream_errors.get(), TIMEOUT)
    assert error["condition"] == "conflict"
    await asyncio.wait_for(first.disconnected.wait(), TIMEOUT)
    bob = await connect("bob@example.org/desk")
    bob.send_message("alice@example.org/phone", "still there?")
    message = await second.message()
    assert message["body"] == "still there?"


async def test_a_domain_not_hosted_is_refused(server: RunningServer) -> None:
    stream = await RawStream.open(server)
    reply = await stream.expect(
        "</stream:stream>",
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
        " to='elsewhere.test' version='1.0'>",
    )
    assert "<host-unknown" in reply
    assert await stream.closed()


async def test_nothing_may_follow_starttls_in_the_clear(server: RunningServer) -> None:
    stream = await RawStream.open(server, direct_tls=False)
    await stream.open_stream()
    reply = await stream.expect(
        "</stream:stream>",
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><iq type='get' id='x'/>",
    )
    assert "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" in reply
    assert "<proceed" not in reply
    assert await stream.closed()


async def test_failed_logins_are_throttled(server: RunningServer) -> None:
    server.add_user("alice@example.org", "correct horse battery")
    limit = server.services.config.login.address_lockout_failures
    for _ in range(limit):
        stream = await RawStream.open(server)
        await stream.open_stream()
        await stream.expect(
            "</failure>",
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
            f"{_plain('alice', 'wrong password')}</auth>",
        )
        await stream.close()
    stream = await RawStream.open(server)
    await stream.open_stream()
    reply = await stream.expect(
        "</failure>",
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
        f"{_plain('alice', 'correct horse battery')}</auth>",
    )
    assert "<not-authorized" in reply  # locked out: even the right password
    await stream.close()


async def test_scram_works_for_old_passwords_after_one_plain_login(
    server: RunningServer, connect: Connect, logged_errors: list[logging.LogRecord]
) -> None:
    server.add_user("alice@example.org", "correct horse battery")
    db = sqlite3.connect(server.data_dir / "directory.sqlite3")
    with db:
        db.execute("DELETE FROM scram_keys")  # as for a password set before they were kept
    with pytest.raises(AssertionError, match="login failed"):
        await connect("alice@example.org/a", mechanism="SCRAM-SHA-256")
    forget_client_errors(logged_errors)
    await connect("alice@example.org/b", mechanism="PLAIN")
    client = await connect("alice@example.org/c", mechanism="SCRAM-SHA-256")
    assert client.jid == "alice@example.org/c"


async def test_the_client_sees_the_servers_features(connect: Connect) -> None:
    client = await connect()
    info = await client.xmpp.plugin["xep_0030"].get_info(jid="example.org", timeout=TIMEOUT)
    features = info["disco_info"]["features"]
    assert "urn:xmpp:ping" in features and "urn:xmpp:carbons:2" in features
    assert ("server", "im", None, "pcloud") in info["disco_info"]["identities"]
    await client.xmpp.plugin["xep_0199"].ping(jid="example.org", timeout=TIMEOUT)
    version = await client.xmpp.plugin["xep_0092"].get_version("example.org", timeout=TIMEOUT)
    assert version["software_version"]["name"] == "pcloud"
