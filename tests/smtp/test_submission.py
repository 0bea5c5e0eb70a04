"""Submission (587 with STARTTLS, 465 with TLS): sign-in, sender ownership, local delivery."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from pcloud.testing import RunningServer

PASSWORD = "correct horse battery"


@pytest.fixture
def alice(server: RunningServer) -> RunningServer:
    server.add_user("alice@example.org", PASSWORD)
    server.add_user("bob@example.org", PASSWORD)
    server.services.directory.add_alias("info@example.org", ["alice@example.org"])
    return server


def message(sender: str, to: str = "bob@example.org", subject: str = "Hi") -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = subject
    mail.set_content("Hello.\n")
    return mail


@pytest.fixture
def starttls(alice: RunningServer) -> Iterator[smtplib.SMTP]:
    with smtplib.SMTP("127.0.0.1", alice.port("submission"), timeout=10) as client:
        client.starttls(context=alice.ssl_context())
        yield client


def test_nothing_but_starttls_before_tls(alice: RunningServer) -> None:
    with smtplib.SMTP("127.0.0.1", alice.port("submission"), timeout=10) as client:
        client.ehlo("laptop")
        assert client.has_extn("starttls") and not client.has_extn("auth")
        code, reply = client.docmd(
            "AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUub3JnAGNvcnJlY3QgaG9yc2UgYmF0dGVyeQ=="
        )
        assert code == 530 and b"STARTTLS" in reply
        assert client.mail("alice@example.org")[0] == 530
        assert client.noop()[0] == 250


def test_auth_plain_and_login_after_starttls(alice: RunningServer, starttls: smtplib.SMTP) -> None:
    starttls.ehlo("laptop")
    assert starttls.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
    starttls.login("alice@example.org", PASSWORD)
    starttls.send_message(message("Alice <alice@example.org>"))
    with smtplib.SMTP("127.0.0.1", alice.port("submission"), timeout=10) as other:
        other.starttls(context=alice.ssl_context())
        other.ehlo("laptop")
        other.user, other.password = "alice@example.org", PASSWORD
        assert other.auth("LOGIN", other.auth_login)[0] == 235
    [stored] = alice.messages("bob@example.org")
    assert b"with ESMTPSA id " in stored and b"Subject: Hi" in stored


def test_implicit_tls_and_an_app_password(alice: RunningServer) -> None:
    secret = alice.services.directory.add_app_password("alice@example.org", "phone")
    with smtplib.SMTP_SSL(
        "localhost", alice.port("submissions"), context=alice.ssl_context(), timeout=10
    ) as client:
        client.login("alice@example.org", secret)
        client.send_message(message("alice@example.org", subject="from the phone"))
    assert b"Subject: from the phone" in alice.messages("bob@example.org")[0]


def test_a_wrong_password_is_refused(starttls: smtplib.SMTP) -> None:
    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        starttls.login("alice@example.org", "wrong password")
    assert refused.value.smtp_code == 535
    assert starttls.mail("alice@example.org")[0] == 530


@pytest.mark.parametrize(
    ("envelope", "header", "refused_at"),
    [
        ("bob@example.org", "alice@example.org", "MAIL"),
        ("someone@elsewhere.net", "alice@example.org", "MAIL"),
        ("<>", "alice@example.org", "MAIL"),
        ("alice@example.org", "Bob <bob@example.org>", "DATA"),
        ("alice@example.org", "alice@example.org, bob@example.org", "DATA"),
        ("alice@example.org", "ceo@elsewhere.net", "DATA"),
    ],
)
def test_sending_as_someone_else_is_refused(
    alice: RunningServer, starttls: smtplib.SMTP, envelope: str, header: str, refused_at: str
) -> None:
    starttls.login("alice@example.org", PASSWORD)
    sender = "" if envelope == "<>" else envelope
    code, reply = starttls.mail(sender)
    if refused_at == "MAIL":
        assert code == 553 and b"may not send as" in reply
        return
    assert code == 250
    assert starttls.rcpt("bob@example.org")[0] == 250
    code, reply = starttls.data(message(header).as_bytes())
    assert code == 553 and b"may not send as From:" in reply
    assert alice.messages("bob@example.org") == []


def test_an_alias_of_the_user_may_be_the_sender(
    alice: RunningServer, starttls: smtplib.SMTP
) -> None:
    starttls.login("alice@example.org", PASSWORD)
    starttls.send_message(message("Info <info@example.org>"), from_addr="info@example.org")
    assert len(alice.messages("bob@example.org")) == 1


def test_implicit_tls_needs_auth_too(alice: RunningServer) -> None:
    with smtplib.SMTP_SSL(
        "localhost", alice.port("submissions"), context=alice.ssl_context(), timeout=10
    ) as client:
        client.ehlo("laptop")
        assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        assert client.mail("alice@example.org") == (530, b"5.7.0 Authentication required")
        assert client.rcpt("bob@example.org")[0] == 503
