"""Signing in: TLS first, then SASL SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN, then a resource."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import logging
import re
import sqlite3
from pathlib import Path

import pytest
import scramp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from pcloud.testing import RunningServer
from pcloud.tls import server_end_point
from tests.xmpp.conftest import (
    PASSWORD,
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
        failed, gone = asyncio.Event(), asyncio.Event()
        xmpp.add_event_handler("failed_all_auth", lambda _, failed=failed: failed.set())
        xmpp.add_event_handler("disconnected", lambda _, gone=gone: gone.set())
        xmpp.connect("127.0.0.1", server.port("xmpps"))
        await asyncio.wait_for(failed.wait(), TIMEOUT)
        xmpp.disconnect()  # closed, not aborted: no task of the client's is left pending
        await asyncio.wait_for(gone.wait(), TIMEOUT)
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


# -- channel binding (SCRAM -PLUS, XEP-0440), with scramp as the client ----------------------

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


def _end_point(der: bytes) -> bytes:
    """RFC 5929 §4.1 for the test certificates (ECDSA with SHA-256): SHA-256 of the DER."""
    return hashlib.sha256(der).digest()


async def _scram_exchange(
    stream: RawStream, mechanism: str, client: scramp.ScramClient, *, first: str | None = None
) -> str:
    """Runs a SCRAM exchange; returns the server's last reply (<success> or <failure>)."""
    first = first or client.get_client_first()
    reply = await stream.expect(
        "</",
        f"<auth xmlns='{SASL}' mechanism='{mechanism}'>"
        f"{base64.b64encode(first.encode()).decode()}</auth>",
    )
    if "<challenge" not in reply:
        return reply
    server_first = base64.b64decode(re.search(r">([^<]+)</challenge", reply)[1]).decode()
    client.set_server_first(server_first)
    final = base64.b64encode(client.get_client_final().encode()).decode()
    reply = await stream.expect("</", f"<response xmlns='{SASL}'>{final}</response>")
    if "<success" in reply:
        server_final = re.search(r">([^<]+)</success", reply)[1]
        client.set_server_final(base64.b64decode(server_final).decode())  # the server's proof
    return reply


async def test_scram_plus_binds_the_login_to_the_tls_connection(server: RunningServer) -> None:
    server.add_user("alice@example.org", PASSWORD)
    stream = await RawStream.open(server)
    features = await stream.open_stream()
    assert "<mechanism>SCRAM-SHA-256-PLUS</mechanism>" in features
    assert "<mechanism>SCRAM-SHA-1-PLUS</mechanism>" in features
    assert re.search(r"sasl-channel-binding xmlns=\"urn:xsf:sasl-cb:0\">"
                     r"<channel-binding type=\"tls-server-end-point\"", features)  # fmt: skip
    certificate = stream.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    binding = ("tls-server-end-point", _end_point(certificate))
    client = scramp.ScramClient(["SCRAM-SHA-256-PLUS"], "alice", PASSWORD, channel_binding=binding)
    reply = await _scram_exchange(stream, "SCRAM-SHA-256-PLUS", client)
    assert "<success" in reply
    await stream.close()


async def test_scram_plus_with_another_certificate_is_refused(server: RunningServer) -> None:
    """What a man in the middle with a certificate of its own would relay."""
    server.add_user("alice@example.org", PASSWORD)
    stream = await RawStream.open(server)
    await stream.open_stream()
    other = x509.load_pem_x509_certificate(Path(server.ca_file).read_bytes())
    binding = ("tls-server-end-point", _end_point(other.public_bytes(Encoding.DER)))
    client = scramp.ScramClient(["SCRAM-SHA-256-PLUS"], "alice", PASSWORD, channel_binding=binding)
    reply = await _scram_exchange(stream, "SCRAM-SHA-256-PLUS", client)
    assert "<failure" in reply and "<not-authorized" in reply
    await stream.close()


@pytest.mark.parametrize(
    "mechanism, gs2_flag",
    [("SCRAM-SHA-256", "y"), ("SCRAM-SHA-256-PLUS", "p=tls-exporter")],
    ids=["downgraded", "unoffered-binding"],
)
async def test_scram_channel_binding_refusals(
    server: RunningServer, mechanism: str, gs2_flag: str
) -> None:
    """'y': the client could bind but was told the server cannot, so the -PLUS mechanisms were
    stripped on the way (RFC 5802 §6); a binding type not offered cannot be checked."""
    server.add_user("alice@example.org", PASSWORD)
    stream = await RawStream.open(server)
    await stream.open_stream()
    client = scramp.ScramClient(["SCRAM-SHA-256"], "alice", PASSWORD)
    first = gs2_flag + client.get_client_first()[1:]
    reply = await _scram_exchange(stream, mechanism, client, first=first)
    assert "<failure" in reply and "<not-authorized" in reply
    await stream.close()


def test_server_end_point_uses_the_certificates_own_hash(tmp_path: Path) -> None:
    """RFC 5929 §4.1: the certificate's own signature hash, SHA-384 for one signed with SHA-384
    (as Let's Encrypt's ECDSA chain signs), not always SHA-256."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.org")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    for algorithm, expected in (
        (hashes.SHA384(), hashlib.sha384),
        (hashes.SHA512(), hashlib.sha512),
    ):
        certificate = builder.sign(key, algorithm)
        pem = certificate.public_bytes(Encoding.PEM)
        der = certificate.public_bytes(Encoding.DER)
        assert server_end_point(pem) == expected(der).digest()
