"""Mail from other servers (the MX listener) through smtplib: who gets it, and what is stored."""

from __future__ import annotations

import datetime
import email.policy
import email.utils
import smtplib
import time
from email.message import EmailMessage

import pytest

from pcloud.smtp.delivery import local_date
from pcloud.testing import RunningServer

PASSWORD = "correct horse battery"


def message(to: str, subject: str = "Hello", size: int = 0) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Bob <bob@example.net>"
    mail["To"] = to
    mail["Subject"] = subject
    mail.set_content("Hi there.\n" + ("x" * 69 + "\n") * (size // 70))
    return mail


def mx(server: RunningServer) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10)


def test_delivery_to_a_user_alias_and_catch_all(server: RunningServer) -> None:
    server.add_user("alice@example.org", PASSWORD)
    server.add_user("carol@example.org", PASSWORD)
    directory = server.services.directory
    directory.add_alias("team@example.org", ["alice@example.org", "carol@example.org"])
    with mx(server) as client:
        client.send_message(message("alice@example.org", "direct"))
        client.send_message(message("team@example.org", "to the team"))
    directory.add_alias("@example.org", ["carol@example.org"])
    with mx(server) as client:
        client.send_message(message("anything@example.org", "catch-all"))
    alice = server.messages("alice@example.org")
    carol = server.messages("carol@example.org")
    assert [b"Subject: direct" in m for m in alice] == [True, False]
    assert b"Subject: to the team" in alice[1] and b"Subject: to the team" in carol[0]
    assert b"Subject: catch-all" in carol[1]


def test_the_stored_message_has_a_received_header_and_the_exact_content(
    server: RunningServer,
) -> None:
    server.add_user("alice@example.org", PASSWORD)
    mail = message("alice@example.org", "exact")
    with mx(server) as client:
        client.ehlo("sender.example.net")
        client.starttls(context=server.ssl_context())
        client.ehlo("sender.example.net")
        client.send_message(mail)
    [stored] = server.messages("alice@example.org")
    header, _, rest = stored.partition(b"\r\n\r\n")
    assert header.startswith(
        b"Return-Path: <bob@example.net>\r\nReceived: from sender.example.net ([127.0.0.1])\r\n"
    )
    assert b"by mail.example.org (pcloud) with ESMTPS id " in header
    assert b"for <alice@example.org>;" in header
    stamp = header.split(b"for <alice@example.org>;\r\n\t")[1].split(b"\r\n")[0].decode()
    assert abs(email.utils.parsedate_to_datetime(stamp).timestamp() - time.time()) < 600
    assert rest.replace(b"\r\n", b"\n") == mail.get_content().encode()


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/St_Johns"])
def test_received_dates_are_written_as_the_email_package_writes_them(
    zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        for seconds in (0, 1_700_000_000.5, 1_790_000_000):
            expected = email.utils.format_datetime(
                datetime.datetime.fromtimestamp(seconds).astimezone()
            )
            assert local_date(seconds) == expected
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_mx_offers_starttls_and_no_auth(server: RunningServer) -> None:
    with mx(server) as client:
        code, _ = client.ehlo("sender.example.net")
        assert code == 250
        for extension in ("starttls", "size", "8bitmime", "smtputf8", "pipelining",
                          "enhancedstatuscodes"):  # fmt: skip
            assert client.has_extn(extension), extension
        assert not client.has_extn("auth")
        assert client.esmtp_features["size"] == str(25 * 1024 * 1024)
        assert client.docmd("AUTH", "PLAIN AGFsaWNlAHdyb25n")[0] >= 500


def test_unknown_users_get_550_at_rcpt(server: RunningServer) -> None:
    server.add_user("alice@example.org", PASSWORD)
    with mx(server) as client:
        client.ehlo("sender.example.net")
        client.mail("bob@example.net")
        assert client.rcpt("nobody@example.org") == (550, b"5.1.1 No such user here")
        assert client.rcpt("alice@example.org")[0] == 250
        client.rset()
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("bob@example.net", ["ghost@example.org"], b"Subject: x\r\n\r\nx\r\n")
    assert server.messages("alice@example.org") == []


def test_a_full_mailbox_is_refused_at_rcpt_and_an_oversized_message_at_data(
    server: RunningServer,
) -> None:
    server.add_user("alice@example.org", PASSWORD, quota_bytes=20_000)
    with mx(server) as client:
        client.send_message(message("alice@example.org", "fits", size=5_000))
        # No SIZE declared: the message is refused when it arrives.
        client.ehlo("sender.example.net")
        client.mail("bob@example.net")
        assert client.rcpt("alice@example.org")[0] == 250
        big = message("alice@example.org", "too big", size=30_000)
        code, _ = client.data(big.as_bytes(policy=email.policy.SMTP))
        assert code == 552
        # SIZE declared: refused at RCPT already (RFC 1870).
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.send_message(message("alice@example.org", "too big", size=30_000))
        assert refused.value.recipients["alice@example.org"] == (
            452,
            b"4.2.2 Mailbox of alice@example.org is full",
        )
    [stored] = server.messages("alice@example.org")
    assert b"Subject: fits" in stored


def test_a_quota_set_while_the_server_runs_applies_to_the_next_message(
    server: RunningServer,
) -> None:
    """The route to a recipient is reused for a moment (RCPT then needs no lookup), but the
    quota is checked again when the message is stored."""
    server.add_user("alice@example.org", PASSWORD)
    with mx(server) as client:
        client.send_message(message("alice@example.org", "first", size=5_000))
        server.services.directory.set_quota("alice@example.org", 1_000)
        client.ehlo("sender.example.net")
        client.mail("bob@example.net")
        code, reply = client.rcpt("alice@example.org")
        if code == 250:  # the route was reused: the store refuses it
            code, reply = client.data(message("alice@example.org", "second").as_bytes())
            assert (code, reply[:5]) == (552, b"5.2.2")
        else:  # over a second later: looked up again
            assert (code, reply[:5]) == (452, b"4.2.2")
    [stored] = server.messages("alice@example.org")
    assert b"Subject: first" in stored


def test_a_recipient_that_cannot_take_it_is_bounced_while_the_others_get_it(
    server: RunningServer,
) -> None:
    server.add_user("alice@example.org", PASSWORD, quota_bytes=1_000)
    server.add_user("carol@example.org", PASSWORD)
    with mx(server) as client:
        client.ehlo("sender.example.net")
        # No SIZE: alice looks as if she had room. (The sender's domain answers no DNS: the
        # bounce stays in the queue for the test to see.)
        client.mail("bob@sender.broken.test")
        assert client.rcpt("alice@example.org")[0] == 250
        assert client.rcpt("carol@example.org")[0] == 250
        code, _ = client.data(message("both", size=2_000).as_bytes(policy=email.policy.SMTP))
        assert code == 250  # carol has it: the reply cannot be a failure
    assert server.messages("alice@example.org") == []
    assert len(server.messages("carol@example.org")) == 1
    [bounce] = server.services.queue.entries()
    assert bounce.sender == ""
    assert [r.address for r in bounce.recipients] == ["bob@sender.broken.test"]
