"""The signed-in setup documents (Apple profile, setup page, CA download), and the proof that the
advertised settings work: a client that knows only what autoconfig told it signs in to IMAP
(with IDLE, as Delta Chat does) and sends through submission, on every advertised port."""

from __future__ import annotations

import imaplib
import plistlib
import smtplib
import socket
import ssl
from email.message import EmailMessage
from typing import Any
from xml.etree import ElementTree

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from pcloud.testing import RunningServer
from tests.https import PASSWORD, fetch

ALICE = "alice@example.org"


@pytest.fixture
def alice(server: RunningServer) -> RunningServer:
    server.add_user(ALICE, PASSWORD, display_name="Alice Liddell")
    return server


def payloads(body: bytes) -> dict[str, dict[str, Any]]:
    profile = plistlib.loads(body)
    assert profile["PayloadType"] == "Configuration"
    assert profile["PayloadVersion"] == 1
    content = profile["PayloadContent"]
    for payload in content:
        assert payload["PayloadIdentifier"].startswith(profile["PayloadIdentifier"] + ".")
        assert len({payload["PayloadUUID"] for payload in content}) == len(content)
    return {payload["PayloadType"]: payload for payload in content}


def test_the_apple_profile_needs_a_sign_in(alice: RunningServer) -> None:
    status, headers, _ = fetch(alice, "/setup/apple.mobileconfig")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic")
    status, _, _ = fetch(alice, "/setup/apple.mobileconfig", user=ALICE, password="wrong")
    assert status == 401


def test_the_apple_profile_without_a_password(alice: RunningServer) -> None:
    status, headers, body = fetch(alice, "/setup/apple.mobileconfig", user=ALICE)
    assert status == 200
    assert headers["Content-Type"].startswith("application/x-apple-aspen-config")
    assert "attachment" in headers["Content-Disposition"]
    found = payloads(body)
    assert set(found) == {
        "com.apple.security.root",
        "com.apple.mail.managed",
        "com.apple.caldav.account",
        "com.apple.carddav.account",
    }
    mail = found["com.apple.mail.managed"]
    assert mail["EmailAddress"] == ALICE
    assert mail["EmailAccountName"] == "Alice Liddell"
    assert mail["EmailAccountType"] == "EmailTypeIMAP"
    assert mail["IncomingMailServerHostName"] == "mail.example.org"
    assert mail["IncomingMailServerPortNumber"] == alice.port("imaps")
    assert mail["OutgoingMailServerPortNumber"] == alice.port("submissions")
    assert mail["IncomingMailServerUseSSL"] is True and mail["OutgoingMailServerUseSSL"] is True
    assert mail["IncomingMailServerUsername"] == ALICE
    for kind, prefix in (("caldav", "CalDAV"), ("carddav", "CardDAV")):
        dav = found[f"com.apple.{kind}.account"]
        assert dav[f"{prefix}HostName"] == "mail.example.org"
        assert dav[f"{prefix}Port"] == alice.port("https")
        assert dav[f"{prefix}UseSSL"] is True
        assert dav[f"{prefix}Username"] == ALICE
        assert dav[f"{prefix}PrincipalURL"].endswith(f"/dav/{ALICE}/")
    secrets = {"IncomingPassword", "OutgoingPassword", "CalDAVPassword", "CardDAVPassword"}
    assert not any(secrets & payload.keys() for payload in found.values())
    ca = x509.load_der_x509_certificate(found["com.apple.security.root"]["PayloadContent"])
    assert ca == x509.load_pem_x509_certificate(alice.ca_file.read_bytes())
    assert alice.services.directory.app_passwords(ALICE) == []


def test_the_apple_profile_with_a_new_app_password(alice: RunningServer) -> None:
    status, _, body = fetch(alice, "/setup/apple.mobileconfig", method="POST", user=ALICE)
    assert status == 200
    found = payloads(body)
    password = found["com.apple.mail.managed"]["IncomingPassword"]
    assert found["com.apple.mail.managed"]["OutgoingPasswordSameAsIncomingPassword"] is True
    assert found["com.apple.caldav.account"]["CalDAVPassword"] == password
    assert found["com.apple.carddav.account"]["CardDAVPassword"] == password
    (app_password,) = alice.services.directory.app_passwords(ALICE)
    assert app_password.label.startswith("Apple profile ")
    with imaplib.IMAP4_SSL(
        "localhost", alice.port("imaps"), ssl_context=alice.ssl_context()
    ) as imap:
        assert imap.login(ALICE, password)[0] == "OK"


def test_a_cross_site_form_cannot_make_app_passwords(alice: RunningServer) -> None:
    status, _, _ = fetch(
        alice,
        "/setup/apple.mobileconfig",
        method="POST",
        headers={"Origin": "https://evil.example"},
        user=ALICE,
    )
    assert status == 403
    assert alice.services.directory.app_passwords(ALICE) == []


def test_the_setup_page(alice: RunningServer) -> None:
    status, _, _ = fetch(alice, "/setup")
    assert status == 401
    status, headers, body = fetch(alice, "/setup", user=ALICE)
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    page = body.decode()
    for text in (
        ALICE,
        "mail.example.org",
        f"<td>{alice.port('imaps')}</td><td>SSL/TLS</td>",
        f"<td>{alice.port('submission')}</td><td>STARTTLS</td>",
        f"https://mail.example.org:{alice.port('https')}/dav/{ALICE}/",
        'href="/ca.pem"',
        x509.load_pem_x509_certificate(alice.ca_file.read_bytes())
        .fingerprint(hashes.SHA256())
        .hex(":")
        .upper(),
        'action="/setup/apple.mobileconfig"',
    ):
        assert text in page
    platforms = ("iPhone", "Android", "DAVx5", "Delta Chat", "Conversations", "Thunderbird")
    for platform in (*platforms, "Outlook"):
        assert platform in page


def test_the_ca_certificate_downloads(server: RunningServer) -> None:
    status, _, pem = fetch(server, "/ca.pem")
    assert status == 200 and pem == server.ca_file.read_bytes()
    status, _, der = fetch(server, "/ca.crt")
    assert status == 200
    assert x509.load_der_x509_certificate(der) == x509.load_pem_x509_certificate(pem)


# -- the advertised settings work ------------------------------------------------------------


def connect_as(host: str, port: int) -> socket.socket:
    """Reach the advertised host name on this machine: the test network has no DNS for it."""
    assert host == "mail.example.org"
    return socket.create_connection(("127.0.0.1", port), timeout=10)


class AdvertisedImap(imaplib.IMAP4):
    def _create_socket(self, timeout: float | None) -> socket.socket:
        return connect_as(self.host, self.port)


class AdvertisedImapTls(imaplib.IMAP4_SSL):
    def _create_socket(self, timeout: float | None) -> socket.socket:
        return self.ssl_context.wrap_socket(  # type: ignore[attr-defined, no-any-return]
            connect_as(self.host, self.port), server_hostname=self.host
        )


class AdvertisedSmtp(smtplib.SMTP):
    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return connect_as(host, port)


class AdvertisedSmtpTls(smtplib.SMTP_SSL):
    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return self.context.wrap_socket(connect_as(host, port), server_hostname=host)  # type: ignore[attr-defined, no-any-return]


def test_every_advertised_server_works(alice: RunningServer) -> None:
    _, _, body = fetch(
        alice, f"/mail/config-v1.1.xml?emailaddress={ALICE}", host="autoconfig.example.org"
    )
    document = ElementTree.fromstring(body)
    context: ssl.SSLContext = alice.ssl_context()  # verifies mail.example.org's certificate
    sent = 0
    for element in [*document.iter("incomingServer"), *document.iter("outgoingServer")]:
        host, port = element.findtext("hostname", ""), int(element.findtext("port", "0"))
        tls = element.findtext("socketType")
        login = element.findtext("username", "").replace("%EMAILADDRESS%", ALICE)
        if element.tag == "incomingServer":
            if tls == "SSL":
                imap: imaplib.IMAP4 = AdvertisedImapTls(host, port, ssl_context=context)
            else:
                imap = AdvertisedImap(host, port)
                imap.starttls(context)
            assert imap.login(login, PASSWORD)[0] == "OK"
            assert "IDLE" in imap.capabilities  # Delta Chat waits for mail with IDLE
            imap.logout()
        else:
            if tls == "SSL":
                smtp: smtplib.SMTP = AdvertisedSmtpTls(host, port, context=context)
            else:
                smtp = AdvertisedSmtp(host, port)
                smtp.starttls(context=context)
            smtp.login(login, PASSWORD)
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = ALICE, ALICE, f"via {port}"
            message.set_content("Sent with the advertised settings.")
            smtp.send_message(message)
            smtp.quit()
            sent += 1
    assert sent == 2
    subjects = sorted(m.split(b"Subject: ")[1].split(b"\r\n")[0] for m in alice.messages(ALICE))
    ports = sorted(alice.port(name) for name in ("submission", "submissions"))
    assert subjects == sorted(f"via {port}".encode() for port in ports)
