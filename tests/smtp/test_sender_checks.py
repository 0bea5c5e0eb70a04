"""Mail from other servers is checked (SPF, DKIM, DMARC): the verdict is written in an
Authentication-Results header, a DMARC reject policy refuses the message, quarantine files it
under Junk, and nobody can forge this server's verdict."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcloud.testing import RunningServer, running_server

PASSWORD = "correct horse battery"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    records = {
        ("good.test", "TXT"): ['"v=spf1 ip4:127.0.0.1 -all"'],
        ("_dmarc.good.test", "TXT"): ['"v=DMARC1; p=reject"'],
        ("strict.test", "TXT"): ['"v=spf1 ip4:192.0.2.1 -all"'],
        ("_dmarc.strict.test", "TXT"): ['"v=DMARC1; p=reject"'],
        ("careful.test", "TXT"): ['"v=spf1 -all"'],
        ("_dmarc.careful.test", "TXT"): ['"v=DMARC1; p=quarantine"'],
    }
    with running_server(tmp_path / "data", dns_records=records) as running:
        running.add_user("alice@example.org", PASSWORD)
        yield running


def send(server: RunningServer, sender: str, extra_headers: str = "") -> tuple[int, bytes]:
    message = (
        f"From: {sender}\r\nTo: alice@example.org\r\nSubject: check\r\n{extra_headers}\r\nHi.\r\n"
    )
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=30) as client:
        client.ehlo("mx.sender.test")
        client.mail(sender)
        client.rcpt("alice@example.org")
        return client.data(message.encode())


def results_of(message: bytes) -> bytes:
    return message.split(b"Authentication-Results: ")[1].split(b"\r\n")[0]


def test_a_sender_that_passes_is_delivered_with_its_results(server: RunningServer) -> None:
    assert send(server, "bob@good.test")[0] == 250
    [message] = server.messages("alice@example.org", "INBOX")
    assert message.startswith(
        b"Return-Path: <bob@good.test>\r\nReceived: from mx.sender.test ([127.0.0.1])"
    )
    results = results_of(message)
    assert results.startswith(b"mail.example.org; spf=pass")
    assert b"smtp.mailfrom=good.test" in results
    assert b"dkim=none" in results and b"dmarc=pass" in results


def test_dmarc_reject_refuses_the_message(server: RunningServer) -> None:
    code, reply = send(server, "ceo@strict.test")
    assert code == 550 and reply.startswith(b"5.7.1")
    assert (
        server.messages("alice@example.org", "INBOX") == []
        and server.messages("alice@example.org", "Junk") == []
    )


def test_dmarc_quarantine_files_it_under_junk(server: RunningServer) -> None:
    assert send(server, "news@careful.test")[0] == 250
    assert server.messages("alice@example.org", "INBOX") == []
    [message] = server.messages("alice@example.org", "Junk")
    assert b"spf=fail" in results_of(message) and b"dmarc=fail" in results_of(message)


def test_unknown_domains_are_delivered_as_none(server: RunningServer) -> None:
    assert send(server, "someone@unknown.test")[0] == 250
    [message] = server.messages("alice@example.org", "INBOX")
    assert b"spf=none" in results_of(message) and b"dmarc=none" in results_of(message)


def test_a_forged_verdict_in_this_servers_name_is_removed(server: RunningServer) -> None:
    forged = (
        "Authentication-Results: mail.example.org; spf=pass; dkim=pass;\r\n"
        "\tdmarc=pass header.from=strict.test\r\n"
        "Authentication-Results: other.example; spf=pass\r\n"
    )
    assert send(server, "someone@unknown.test", forged)[0] == 250
    [message] = server.messages("alice@example.org", "INBOX")
    assert message.count(b"Authentication-Results: mail.example.org;") == 1
    assert b"dmarc=pass header.from=strict.test" not in message
    assert b"Authentication-Results: other.example; spf=pass" in message
