"""Mail between two pcloud servers (two data folders, two domains, on 127.0.0.1), found through
a test DNS server's MX answer; bounces for what the other server refuses; the queue commands."""

from __future__ import annotations

import io
import smtplib
import socket
import sqlite3
import ssl
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import dkim  # type: ignore[import-untyped]
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword

from pcloud.cli import Context, run
from pcloud.smtp.recipients import Recipients
from pcloud.store.queue import Queued
from pcloud.testing import RunningServer, running_server

PASSWORD = "correct horse battery"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[RunningServer, RunningServer]]:
    records = {
        ("b.test", "MX"): ["10 mx.b.test."],
        ("mx.b.test", "A"): ["127.0.0.1"],
        ("nomail.test", "MX"): ["0 ."],
        ("a.test", "TXT"): ['"v=spf1 ip4:127.0.0.1 -all"'],
        ("_dmarc.a.test", "TXT"): ['"v=DMARC1; p=reject"'],
    }
    with running_server(tmp_path / "b", domain="b.test") as b:
        b.add_user("bob@b.test", PASSWORD)
        settings = {"smtp": {"outbound_port": b.port("smtp")}}
        with running_server(
            tmp_path / "a", domain="a.test", settings=settings, dns_records=records
        ) as a:
            a.add_user("alice@a.test", PASSWORD)
            yield a, b


def submit(server: RunningServer, to: str, subject: str) -> None:
    mail = EmailMessage()
    mail["From"] = "Alice <alice@a.test>"
    mail["To"] = to
    mail["Subject"] = subject
    mail.set_content("Hello from a.\n")
    with smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=10) as client:
        client.starttls(context=server.ssl_context())
        client.login("alice@a.test", PASSWORD)
        client.send_message(mail)


def wait_for(found: Callable[[], list[bytes]], what: str) -> list[bytes]:
    deadline = time.monotonic() + 60  # generous: CI machines are shared
    while not (result := found()):
        assert time.monotonic() < deadline, f"{what} did not arrive"
        time.sleep(0.1)
    return result


def test_mail_goes_from_one_server_to_the_other(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    a, b = servers
    submit(a, "Bob <bob@b.test>", "across")
    [received] = wait_for(lambda: b.messages("bob@b.test"), "the message")
    assert b"Subject: across" in received
    # Two Received lines: a's submission, then b's MX (on top).
    assert received.index(b"by mail.b.test") < received.index(b"by mail.a.test")
    assert a.services.queue.entries() == []
    assert not list((a.data_dir / "queue" / "messages").iterdir())


def test_mail_to_other_servers_is_dkim_signed_and_passes_the_checks_there(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    a, b = servers
    key = a.services.dkim.get("a.test")
    assert key is not None
    a.dns_records[(key.dns_name, "TXT")] = [f'"{key.dns_value[:250]}" "{key.dns_value[250:]}"']
    submit(a, "bob@b.test", "signed")
    [received] = wait_for(lambda: b.messages("bob@b.test"), "the message")
    assert received.startswith(b"Return-Path: <alice@a.test>\r\nReceived: ")
    results = received.split(b"Authentication-Results: ")[1].split(b"\r\n")[0]
    assert results.startswith(b"mail.b.test; spf=pass")
    assert b"dkim=pass" in results and b"dmarc=pass" in results
    signature = received.split(b"DKIM-Signature:")[1].split(b"\r\nFrom:")[0]
    assert b"d=a.test;" in signature and b"s=pcloud;" in signature

    def published(name: bytes, timeout: float = 5) -> bytes:
        assert name == b"pcloud._domainkey.a.test."
        return key.dns_value.encode()

    assert dkim.verify(received, dnsfunc=published)
    assert not dkim.verify(received.replace(b"signed", b"forged"), dnsfunc=published)


def test_an_unknown_user_bounces_back_to_the_sender(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    a, _ = servers
    submit(a, "nobody@b.test", "to nobody")
    [bounce] = wait_for(lambda: a.messages("alice@a.test"), "the bounce")
    assert b"Subject: Undelivered mail returned to sender" in bounce
    assert b'multipart/report; report-type="delivery-status"' in bounce
    assert b"Final-Recipient: rfc822; nobody@b.test" in bounce
    assert b"Status: 5.1.1" in bounce
    assert b"Subject: to nobody" in bounce  # the original's headers come back
    assert a.services.queue.entries() == []


def test_a_domain_with_a_null_mx_bounces_at_once(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    a, _ = servers
    submit(a, "someone@nomail.test", "to nowhere")
    [bounce] = wait_for(lambda: a.messages("alice@a.test"), "the bounce")
    assert b"Status: 5.1.10" in bounce


def first_attempt_made(server: RunningServer) -> Queued:
    """The one queued message, once its first attempt has failed for the time being."""

    def deferred() -> list[bytes]:
        entries = server.services.queue.entries()
        return [b"x"] if entries and entries[0].recipients[0].attempts else []

    wait_for(deferred, "the first attempt")
    [entry] = server.services.queue.entries()
    return entry


def test_an_unreachable_domain_is_retried_and_the_queue_can_be_managed(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    a, _ = servers
    # Nothing answers DNS for this domain in time: a temporary failure, kept for later.
    submit(a, "friend@broken.test", "later")
    entry = first_attempt_made(a)
    assert entry.recipients[0].next_attempt > time.time() + 200

    def cli(*argv: str) -> str:
        out, err = io.StringIO(), io.StringIO()
        assert run([*argv, "--data", str(a.data_dir)], Context(out, err)) == 0, err.getvalue()
        return out.getvalue()

    listing = cli("queue", "list")
    assert entry.id in listing and "to <friend@broken.test>  attempts=1" in listing
    assert cli("queue", "retry", entry.id) == "1 recipients due now\n"
    assert cli("queue", "delete", entry.id) == f"deleted {entry.id}\n"
    assert a.services.queue.entries() == []
    assert a.messages("alice@a.test") == []  # deleting is silent: no bounce


def test_mail_that_outlives_the_queue_lifetime_is_returned_to_its_sender(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    a, _ = servers
    submit(a, "friend@broken.test", "too late")
    entry = first_attempt_made(a)
    assert a.messages("alice@a.test") == []  # a temporary failure: no bounce yet
    # Queued longer ago than queue_lifetime_hours allows: the next attempt is its last.
    lifetime = a.services.config.smtp.queue_lifetime_hours * 3600
    db = sqlite3.connect(a.data_dir / "queue" / "queue.sqlite3")
    with db:
        db.execute("UPDATE messages SET created = created - ?", (lifetime + 60,))
    db.close()
    a.services.queue.retry_now(entry.id)
    [bounce] = wait_for(lambda: a.messages("alice@a.test"), "the bounce")
    assert b'multipart/report; report-type="delivery-status"' in bounce
    report = bounce.split(b"Content-Type: message/delivery-status")[1]
    assert b"Final-Recipient: rfc822; friend@broken.test" in report
    assert b"Action: failed" in report
    assert b"Status: 4." in report  # what kept it waiting, now final (RFC 3464 §2.3.4)
    assert b"Subject: too late" in bounce  # the original's headers come back
    assert a.services.queue.entries() == []
    assert not list((a.data_dir / "queue" / "messages").iterdir())


def test_an_alias_forwards_with_a_rewritten_sender_and_bounces_find_their_way_back(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    a, b = servers
    a.services.directory.add_alias("fwd@a.test", ["bob@b.test"])
    with smtplib.SMTP("127.0.0.1", a.port("smtp"), timeout=10) as client:
        client.sendmail(
            "carol@c.broken.test", ["fwd@a.test"], b"From: carol@c.broken.test\r\n\r\nHi.\r\n"
        )
    [received] = wait_for(lambda: b.messages("bob@b.test"), "the forwarded message")
    return_path = received.split(b"\r\n")[0].decode()
    assert return_path.startswith("Return-Path: <SRS0=") and return_path.endswith(
        "=c.broken.test=carol@a.test>"
    )
    srs_address = return_path.removeprefix("Return-Path: <").removesuffix(">")

    # A bounce to that address goes to carol (and waits in the queue: her DNS is broken).
    with smtplib.SMTP("127.0.0.1", a.port("smtp"), timeout=10) as client:
        client.sendmail("", [srs_address], b"From: postmaster@b.test\r\n\r\nBounce.\r\n")
        client.ehlo("b.test")
        client.mail("")
        forged = srs_address.replace("SRS0=", "SRS0=x")
        assert client.rcpt(forged)[0] in (550, 553)
    deadline = time.monotonic() + 30
    while not any(q.sender == "" for q in a.services.queue.entries()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    [bounce] = [q for q in a.services.queue.entries() if q.sender == ""]
    assert [r.address for r in bounce.recipients] == ["carol@c.broken.test"]


def test_queued_mail_survives_a_restart_and_is_sent_once(tmp_path: Path) -> None:
    records = {("b.test", "MX"): ["10 mx.b.test."], ("mx.b.test", "A"): ["127.0.0.1"]}
    with socket.socket() as probe:  # a port where nothing listens: b is "down"
        probe.bind(("127.0.0.1", 0))
        down = probe.getsockname()[1]
    with running_server(tmp_path / "b", domain="b.test") as b:
        b.add_user("bob@b.test", PASSWORD)
        settings = {"smtp": {"outbound_port": down}}
        with running_server(
            tmp_path / "a", domain="a.test", settings=settings, dns_records=records
        ) as a:
            a.add_user("alice@a.test", PASSWORD)
            submit(a, "bob@b.test", "persistent")

            def deferred() -> list[bytes]:
                entries = a.services.queue.entries()
                return [b"x"] if entries and entries[0].recipients[0].attempts else []

            wait_for(deferred, "the first attempt")
        settings = {"smtp": {"outbound_port": b.port("smtp")}}
        with running_server(
            tmp_path / "a", domain="a.test", settings=settings, dns_records=records
        ) as a:
            [entry] = a.services.queue.entries()
            assert "Connection refused" in entry.recipients[0].last_error
            a.services.queue.retry_now()
            [received] = wait_for(lambda: b.messages("bob@b.test"), "the message")
            assert b"Subject: persistent" in received
            wait_for(lambda: [] if a.services.queue.entries() else [b"empty"], "an empty queue")
        time.sleep(0.5)
        assert len(b.messages("bob@b.test")) == 1


def test_a_smarthost_takes_all_outgoing_mail_over_verified_tls_with_auth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The smarthost here is aiosmtpd's own test server, standing in for a provider's."""
    with running_server(tmp_path / "provider") as provider:  # only lends its certificate
        tls = provider.data_dir / "tls"
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls / "server.pem", tls / "server.key")
        monkeypatch.setenv("SSL_CERT_FILE", str(tls / "ca.pem"))  # a's trust in that provider
    received: list[tuple[str, list[str], bytes]] = []

    class Provider:
        async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
            assert envelope.original_content is not None
            received.append(
                (envelope.mail_from or "", envelope.rcpt_tos, envelope.original_content)
            )
            return "250 2.0.0 queued"

    def login(
        server: object, session: object, envelope: object, mechanism: str, auth_data: object
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"provider secret"
        return AuthResult(success=ok)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smarthost = Controller(
        Provider(), hostname="127.0.0.1", port=port, tls_context=context,
        require_starttls=True, auth_required=True, authenticator=login,
    )  # fmt: skip
    smarthost.start()
    try:
        settings = {"smtp": {"smarthost": f"localhost:{port}", "smarthost_login": "alice",
                             "smarthost_password": "provider secret"}}  # fmt: skip
        with running_server(tmp_path / "a", domain="a.test", settings=settings) as a:
            a.add_user("alice@a.test", PASSWORD)
            submit(a, "friend@anywhere.test", "via the provider")
            deadline = time.monotonic() + 30
            while not received:
                assert time.monotonic() < deadline, a.services.queue.entries()
                time.sleep(0.1)
    finally:
        smarthost.stop()
    [(sender, recipients, content)] = received
    assert (sender, recipients) == ("alice@a.test", ["friend@anywhere.test"])
    assert b"Subject: via the provider" in content and b"DKIM-Signature:" in content


def test_forwarded_mail_is_not_signed_and_its_failures_go_back_to_the_sender(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    a, b = servers
    a.services.directory.add_alias("fwd@a.test", ["bob@b.test"])
    a.services.directory.add_alias("lost@a.test", ["nobody@b.test"])
    del a.dns_records[("_dmarc.a.test", "TXT")]  # else DMARC already refuses the forgery
    with smtplib.SMTP("127.0.0.1", a.port("smtp"), timeout=10) as client:
        # A stranger claims to be a.test's CEO: forwarded as it is, never signed by a.test.
        client.sendmail("x@c.broken.test", ["fwd@a.test"], b"From: ceo@a.test\r\n\r\nPay.\r\n")
        client.sendmail(
            "carol@c.broken.test", ["lost@a.test"], b"From: carol@c.broken.test\r\n\r\nHi.\r\n"
        )
    [received] = wait_for(lambda: b.messages("bob@b.test"), "the forwarded message")
    assert b"DKIM-Signature" not in received
    # b refuses nobody@b.test: the bounce goes to carol, through the SRS address it was sent as.
    deadline = time.monotonic() + 30
    while not any(q.sender == "" for q in a.services.queue.entries()):
        assert time.monotonic() < deadline, a.services.queue.entries()
        time.sleep(0.1)
    [bounce] = [q for q in a.services.queue.entries() if q.sender == ""]
    assert [r.address for r in bounce.recipients] == ["carol@c.broken.test"]


def test_only_bounces_may_use_a_rewritten_sender_address(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    a, _ = servers
    srs_address = Recipients(a.services.directory, a.services.srs_secret).forwarding_sender(
        "carol@c.broken.test"
    )
    with smtplib.SMTP("127.0.0.1", a.port("smtp"), timeout=10) as client:
        client.ehlo("spammer.test")
        client.mail("spam@spammer.test")
        assert client.rcpt(srs_address)[0] == 550
        client.rset()
        client.mail("")
        assert client.rcpt(srs_address)[0] == 250
