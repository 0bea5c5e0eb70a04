"""Delivery of queued mail to other servers: RFC 5321 §5 (MX lookup, with the A/AAAA fallback and
RFC 7505 null MX), §4.5.4 (retries), RFC 3207 (STARTTLS when offered), RFC 3464 bounces.

A worker started by the supervisor takes due messages from the queue, one at a time: a personal
server sends little, and a slow remote server only delays the rest by its timeouts.

Implementation notes: STARTTLS to other MX hosts is opportunistic and unverified (as most MTAs do
without MTA-STS or DANE, neither of which is implemented yet); a smarthost's certificate is
verified. Only the sender's copy of a bounce is kept: a bounce is never bounced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import smtplib
import ssl
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

import dns.exception
import dns.resolver

from pcloud.config import SmtpSection, split_host_port
from pcloud.directory.addresses import domain_of
from pcloud.services import Services
from pcloud.smtp.bounce import return_to_sender
from pcloud.smtp.recipients import Recipients
from pcloud.store.queue import Queued

log = logging.getLogger(__name__)

POLL_SECONDS = 30  # also picks up `pcloud queue retry` from another process
CONNECT_TIMEOUT = 60
_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass(frozen=True)
class Outcome:
    kind: Literal["sent", "deferred", "failed"]
    status: str  # enhanced status code, e.g. 5.1.1
    reply: str

    @classmethod
    def from_reply(cls, code: int, text: bytes | str) -> Outcome:
        reply = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        match = _ENHANCED.match(reply)
        status = match.group(1) if match else f"{code // 100}.0.0"
        kind: Literal["sent", "deferred", "failed"] = (
            "sent" if code < 400 else "deferred" if code < 500 else "failed"
        )
        return cls(kind, status, f"{code} {reply}")


class PermanentFailure(Exception):
    def __init__(self, status: str, reply: str) -> None:
        super().__init__(reply)
        self.status = status


def mail_hosts(domain: str, settings: SmtpSection) -> list[tuple[str, int]]:
    """Addresses to try for a domain, best MX first (RFC 5321 §5.1)."""
    if settings.smarthost:
        return [split_host_port(settings.smarthost, 587)]
    try:
        records = sorted(dns.resolver.resolve(domain, "MX"), key=lambda r: r.preference)
        exchanges = [str(r.exchange).rstrip(".") for r in records]
    except dns.resolver.NXDOMAIN:
        raise PermanentFailure("5.1.2", f"domain {domain} does not exist") from None
    except dns.resolver.NoAnswer:
        exchanges = [domain]  # no MX: the domain itself is its mail host
    if exchanges == [""]:
        raise PermanentFailure("5.1.10", f"domain {domain} accepts no mail (null MX)")
    hosts = []
    for exchange in exchanges:
        for record_type in ("A", "AAAA"):
            try:
                addresses = dns.resolver.resolve(exchange, record_type)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            hosts += [(str(address), settings.outbound_port) for address in addresses]
    return hosts


def send(
    settings: SmtpSection, local_hostname: str, sender: str, recipients: list[str], message: bytes
) -> dict[str, Outcome]:
    """Deliver one message to recipients that share a domain; blocking (run it in a thread)."""
    domain = domain_of(recipients[0])
    try:
        hosts = mail_hosts(domain, settings)
    except PermanentFailure as failure:
        return {r: Outcome("failed", failure.status, str(failure)) for r in recipients}
    except dns.exception.DNSException as error:
        return {r: Outcome("deferred", "4.4.3", f"DNS lookup failed: {error}") for r in recipients}
    last_error = f"no mail host found for {domain}"
    for host, port in hosts:
        try:
            return _send_to_host(settings, local_hostname, host, port, sender, recipients, message)
        except (OSError, smtplib.SMTPException, UnicodeError) as error:
            last_error = f"{host}:{port}: {error}"
            log.info("outbound host failed host=%s port=%d error=%s", host, port, error)
    return {r: Outcome("deferred", "4.4.1", last_error) for r in recipients}


def _send_to_host(
    settings: SmtpSection,
    local_hostname: str,
    host: str,
    port: int,
    sender: str,
    recipients: list[str],
    message: bytes,
) -> dict[str, Outcome]:
    implicit_tls = bool(settings.smarthost) and port == 465
    client = (
        smtplib.SMTP_SSL(host, port, local_hostname, timeout=CONNECT_TIMEOUT,
                         context=ssl.create_default_context())
        if implicit_tls
        else smtplib.SMTP(host, port, local_hostname, timeout=CONNECT_TIMEOUT)
    )  # fmt: skip
    try:
        client.ehlo()
        if not implicit_tls and (client.has_extn("starttls") or settings.smarthost):
            context = ssl.create_default_context()
            if not settings.smarthost:  # opportunistic: any certificate beats plain text
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            client.starttls(context=context)
            client.ehlo()
        if settings.smarthost and settings.smarthost_login:
            client.login(settings.smarthost_login, settings.smarthost_password)
        return _transaction(client, sender, recipients, message)
    finally:
        # After the other server's 250 the message is theirs: a failed QUIT changes nothing.
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()


def _transaction(
    client: smtplib.SMTP, sender: str, recipients: list[str], message: bytes
) -> dict[str, Outcome]:
    """MAIL, RCPT for each, DATA (RFC 5321 §3.3); SMTPUTF8 (RFC 6531) when an address needs it."""
    options = [f"SIZE={len(message)}"] if client.has_extn("size") else []
    if not all(address.isascii() for address in (sender, *recipients)):
        if not client.has_extn("smtputf8"):
            refused = Outcome("failed", "5.6.7", "the receiving server cannot take this address")
            return dict.fromkeys(recipients, refused)
        options.append("SMTPUTF8")
    code, reply = client.mail(sender, options)
    if code >= 300:
        return dict.fromkeys(recipients, Outcome.from_reply(code, reply))
    outcomes = {}
    for recipient in recipients:
        code, reply = client.rcpt(recipient)
        outcomes[recipient] = Outcome.from_reply(code, reply)
    accepted = [r for r, o in outcomes.items() if o.kind == "sent"]
    if accepted:
        code, reply = client.data(message)
        outcomes.update(dict.fromkeys(accepted, Outcome.from_reply(code, reply)))
    return outcomes


async def deliver(services: Services, recipients: Recipients, queued: Queued) -> None:
    """One attempt at every due recipient of a queued message."""
    queue = services.queue
    settings = services.config.smtp
    message = await asyncio.to_thread(queue.read, queued.id)
    if message is None:  # deleted meanwhile (`pcloud queue delete`)
        return
    by_domain: dict[str, list[str]] = defaultdict(list)
    for recipient in queued.recipients:
        by_domain[domain_of(recipient.address)].append(recipient.address)
    expired = time.time() - queued.created > settings.queue_lifetime_hours * 3600
    failures: dict[str, tuple[str, str]] = {}
    for addresses in by_domain.values():
        outcomes = await asyncio.to_thread(
            send, settings, services.config.server.mail_host, queued.sender, addresses, message
        )
        for address, outcome in outcomes.items():
            log.info("outbound id=%s to=%s result=%s reply=%s",
                     queued.id, address, outcome.kind, outcome.reply)  # fmt: skip
            if outcome.kind == "sent":
                await asyncio.to_thread(queue.done, queued.id, address)
            elif outcome.kind == "failed" or expired:
                failures[address] = (outcome.status, outcome.reply)
            else:
                await asyncio.to_thread(queue.defer, queued.id, address, outcome.reply)
    if failures:
        await return_to_sender(services, recipients, queued.sender, failures, message)
        for address in failures:
            await asyncio.to_thread(queue.done, queued.id, address)


async def run(services: Services) -> None:
    """The delivery worker: runs until cancelled."""
    queue = services.queue
    wake = asyncio.Event()
    loop = asyncio.get_running_loop()

    def wake_up() -> None:  # called from any thread
        loop.call_soon_threadsafe(wake.set)

    queue.on_enqueue = wake_up
    recipients = Recipients(services.directory, services.srs_secret)
    while True:
        wake.clear()
        for queued in await asyncio.to_thread(queue.due, time.time()):
            try:
                await deliver(services, recipients, queued)
            except Exception:
                log.exception("outbound delivery failed id=%s", queued.id)
                for recipient in queued.recipients:  # not again at once: wait like any failure
                    address = recipient.address
                    await asyncio.to_thread(queue.defer, queued.id, address, "local error")
        next_due = await asyncio.to_thread(queue.next_due)
        timeout = POLL_SECONDS if next_due is None else min(POLL_SECONDS, next_due - time.time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), max(timeout, 0.05))
