"""Mail between two pcloud servers (two data folders, two domains, on 127.0.0.1), found through
a test DNS server's MX answer; bounces for what the other server refuses; the queue commands."""

from __future__ import annotations

import io
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import dkim  # type: ignore[import-untyped]
import dns.message
import dns.rcode
import dns.rrset
import pytest

from pcloud.cli import Context, run
from pcloud.testing import RunningServer, running_server

PASSWORD = "correct horse battery"


class DnsServer:
    """Answers MX and A questions from a table; names under `broken.test` get SERVFAIL (a
    temporary failure); everything else does not exist."""

    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        self.records = records
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while self.running:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(wire)
            response = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text().rstrip(".")
            kind = dns.rdatatype.to_text(question.rdtype)
            answers = self.records.get((name, kind))
            if name.endswith("broken.test"):
                response.set_rcode(dns.rcode.SERVFAIL)
            elif answers is not None:
                response.answer.append(
                    dns.rrset.from_text_list(question.name, 60, "IN", kind, answers)
                )
            elif not any(key[0] == name for key in self.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[RunningServer, RunningServer]]:
    with running_server(tmp_path / "b", domain="b.test") as b:
        b.add_user("bob@b.test", PASSWORD)
        dns_server = DnsServer({
            ("b.test", "MX"): ["10 mx.b.test."],
            ("mx.b.test", "A"): ["127.0.0.1"],
            ("nomail.test", "MX"): ["0 ."],
        })  # fmt: skip
        settings = {"smtp": {"dns_server": f"127.0.0.1:{dns_server.port}",
                             "outbound_port": b.port("smtp")}}  # fmt: skip
        try:
            with running_server(tmp_path / "a", domain="a.test", settings=settings) as a:
                a.add_user("alice@a.test", PASSWORD)
                yield a, b
        finally:
            dns_server.close()


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
    deadline = time.monotonic() + 20
    while not (result := found()):
        assert time.monotonic() < deadline, f"{what} did not arrive"
        time.sleep(0.1)
    return result


def inbox(server: RunningServer, address: str) -> Callable[[], list[bytes]]:
    def read() -> list[bytes]:
        account = server.services.mail.account(address)
        return [
            account.message_file("INBOX", m.uid).read_bytes() for m in account.messages("INBOX")
        ]

    return read


def test_mail_goes_from_one_server_to_the_other(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    a, b = servers
    submit(a, "Bob <bob@b.test>", "across")
    [received] = wait_for(inbox(b, "bob@b.test"), "the message")
    assert b"Subject: across" in received
    # Two Received lines: a's submission, then b's MX (on top).
    assert received.index(b"by mail.b.test") < received.index(b"by mail.a.test")
    assert a.services.queue.entries() == []
    assert not list((a.data_dir / "queue" / "messages").iterdir())


def test_mail_to_other_servers_is_dkim_signed(servers: tuple[RunningServer, RunningServer]) -> None:
    a, b = servers
    submit(a, "bob@b.test", "signed")
    [received] = wait_for(inbox(b, "bob@b.test"), "the message")
    key = a.services.dkim.get("a.test")
    assert key is not None and received.startswith(b"Received: ")
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
    [bounce] = wait_for(inbox(a, "alice@a.test"), "the bounce")
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
    [bounce] = wait_for(inbox(a, "alice@a.test"), "the bounce")
    assert b"Status: 5.1.10" in bounce


def test_an_unreachable_domain_is_retried_and_the_queue_can_be_managed(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    a, _ = servers
    # Nothing answers DNS for this domain in time: a temporary failure, kept for later.
    submit(a, "friend@broken.test", "later")

    def deferred() -> list[bytes]:
        entries = a.services.queue.entries()
        return [b"x"] if entries and entries[0].recipients[0].attempts else []

    wait_for(deferred, "the first attempt")
    [entry] = a.services.queue.entries()
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
    assert inbox(a, "alice@a.test")() == []  # deleting is silent: no bounce
