"""What every SMTP listener does with recipients and messages: resolve, check, deliver.

`Handler` holds the aiosmtpd hooks the inbound MX and submission share; each of them narrows
who may send (see inbound.py, submission.py).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import secrets
import ssl
from dataclasses import dataclass, field
from typing import Any

import srslib  # type: ignore[import-untyped]  # no type hints shipped
from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException

from pcloud.directory import InvalidValue
from pcloud.directory.addresses import AddressError, domain_of, normalize_address
from pcloud.services import Services
from pcloud.smtp import auth_checks
from pcloud.smtp.signing import sign
from pcloud.store.mail_values import NoSuchAccount, QuotaExceeded
from pcloud.store.maildir import INBOX

log = logging.getLogger(__name__)


@dataclass
class Routing:
    """Where the accepted recipients of the current message go."""

    local: set[str] = field(default_factory=set)  # accounts to deliver to
    remote: set[str] = field(default_factory=set)  # addresses elsewhere


def routing(envelope: Envelope) -> Routing:
    found = getattr(envelope, "pcloud_routing", None)
    if found is None:
        found = Routing()
        envelope.pcloud_routing = found  # type: ignore[attr-defined]
    return found


def peer_address(session: Session) -> str:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


class Handler:
    """aiosmtpd hooks (RFC 5321 §3.3) shared by the MX and submission listeners."""

    protocol = "ESMTP"
    # Mail from other servers is checked (SPF, DKIM, DMARC); users' own mail is not.
    checks_senders = True

    def __init__(self, services: Services) -> None:
        self.services = services
        self.directory = services.directory
        # Forwarded mail leaves with its sender rewritten (SRS), so that the next server's SPF
        # check sees this server's domain; bounces to such an address go back to the sender.
        self.srs = srslib.SRS(services.srs_secret)

    # RFC 5321 §4.1.1.1 (EHLO), with RFC 2920 PIPELINING and RFC 2034 ENHANCEDSTATUSCODES.
    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException | ssl.SSLError | ConnectionError):
            # The client's doing: it gave up on the handshake, or went away.
            log.info("smtp connection failed error=%r", error.__cause__ or error)
        else:
            log.error("smtp session failed", exc_info=error)
        return "451 4.3.0 Local error; please try again later"

    def resolve(self, address: str) -> list[str] | None:
        """The final addresses for a recipient, None when nothing here takes it (InvalidValue
        when it is no plain address). A bare
        `postmaster` is the main domain's; every hosted domain's postmaster reaches an
        administrator even without an alias (RFC 5321 §4.5.1)."""
        if "@" not in address and address.lower() == "postmaster":
            address = f"postmaster@{self.directory.default_domain}"
        local, _, domain = address.rpartition("@")
        hosted = domain.lower() in self.directory.domains()
        if hosted and srslib.SRS.is_srs_address(address):
            try:
                return [self.srs.reverse(address)]
            except srslib.Error:
                return None
        targets = self.directory.resolve(address)
        if targets is None and hosted and local.lower() == "postmaster":
            admins = [user.address for user in self.directory.users() if user.is_admin]
            return admins[:1] or None
        return targets

    # RFC 5321 §4.1.1.3
    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= self.services.config.smtp.max_recipients:
            return "452 4.5.3 Too many recipients"
        try:
            targets = await asyncio.to_thread(self.resolve, address)
        except InvalidValue:
            return "553 5.1.3 Recipient address not accepted here"
        if targets is None:
            return await self.unknown_recipient(session, envelope, address)
        route = routing(envelope)
        hosted = await asyncio.to_thread(self.directory.domains)
        local = [t for t in targets if domain_of(t) in hosted]
        remote = [t for t in targets if t not in local]
        size = _declared_size(envelope.mail_options)
        for account in local:
            if not await asyncio.to_thread(self._has_room, account, size):
                log.info("smtp recipient full rcpt=%s", address)
                return f"452 4.2.2 Mailbox of {address} is full"
        route.local.update(local)
        route.remote.update(remote)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Recipient OK"

    async def unknown_recipient(self, session: Session, envelope: Envelope, address: str) -> str:
        """A recipient no hosted address takes: unknown here, or someone elsewhere."""
        try:
            normalized = normalize_address(address)
        except AddressError:
            return "553 5.1.3 Recipient address not accepted here"
        if domain_of(normalized) in self.directory.domains():
            return "550 5.1.1 No such user here"
        if not self.may_send_elsewhere(session):
            log.info("smtp relay refused remote=%s rcpt=%s", peer_address(session), address)
            return "554 5.7.1 Relay access denied"
        routing(envelope).remote.add(normalized)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Recipient OK"

    def may_send_elsewhere(self, session: Session) -> bool:
        """The MX takes mail for hosted addresses only: it is never a relay."""
        return False

    def outgoing_sender(self, session: Session, sender: str) -> str:
        """The envelope sender for copies that leave for other servers: someone else's mail
        that an alias forwards gets an SRS address of this server's main domain."""
        if not sender:
            return sender  # a bounce stays a bounce
        return str(self.srs.forward(sender, self.directory.default_domain))

    def _has_room(self, account: str, size: int) -> bool:
        user = self.directory.user(account)
        if user is None or not user.quota_bytes:
            return True
        used, _ = self.services.mail.account(account).usage()
        return used + max(size, 1) <= user.quota_bytes

    # RFC 5321 §4.1.1.4
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        junk = False
        if self.checks_senders:
            verdict = await asyncio.to_thread(
                auth_checks.check,
                content,
                authserv_id=server.hostname,
                ip=peer_address(session),
                mail_from=envelope.mail_from or "",
                helo=session.host_name or "",
            )
            log.info("smtp sender checks from=%s result=%s",
                     envelope.mail_from, verdict.header.decode().strip())  # fmt: skip
            if verdict.policy == "reject":
                return "550 5.7.1 Rejected: the sender's domain asks for it (DMARC)"
            junk = verdict.policy == "quarantine"
            content = verdict.header + auth_checks.without_forged_results(content, server.hostname)
        message = self.received_header(server, session, envelope).encode() + content
        sender = "" if envelope.mail_from in (None, "<>") else envelope.mail_from  # <>: a bounce
        route = routing(envelope)
        try:
            # RFC 5321 §4.4: final delivery records the envelope sender.
            delivered = f"Return-Path: <{sender}>\r\n".encode() + message
            for address in sorted(route.local):
                account = self.services.mail.account(address)
                mailbox = account.special_mailbox("\\Junk") if junk else INBOX
                stored = await asyncio.to_thread(account.deliver, delivered, mailbox=mailbox)
                log.info(
                    "smtp delivered from=%s to=%s mailbox=%s uid=%d size=%d remote=%s",
                    envelope.mail_from, address, mailbox, stored.uid, len(message),
                    peer_address(session),
                )  # fmt: skip
            if route.remote:
                outgoing = await asyncio.to_thread(sign, message, self.services.dkim)
                await asyncio.to_thread(
                    self.services.queue.enqueue,
                    self.outgoing_sender(session, sender),
                    sorted(route.remote),
                    outgoing,
                )
        except QuotaExceeded:
            return "552 5.2.2 Mailbox full"
        except NoSuchAccount:
            return "450 4.2.0 Mailbox unavailable; try again later"
        return "250 2.0.0 Message accepted for delivery"

    def received_header(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """RFC 5321 §4.4 trace header."""
        with_ = self.protocol
        implicit_tls = server.transport is not None and server.transport.get_extra_info(
            "sslcontext"
        )
        if session.ssl is not None or implicit_tls:
            with_ += "S"
        if session.authenticated:
            with_ += "A"
        remote = peer_address(session)
        recipient = f"\r\n\tfor <{envelope.rcpt_tos[0]}>" if len(envelope.rcpt_tos) == 1 else ""
        identifier = secrets.token_hex(8)
        return (
            f"Received: from {session.host_name} ([{remote}])\r\n"
            f"\tby {server.hostname} (pcloud) with {with_} id {identifier}{recipient};\r\n"
            f"\t{email.utils.format_datetime(email.utils.localtime())}\r\n"
        )


def _declared_size(options: list[Any]) -> int:
    """The SIZE= the client declared in MAIL FROM (RFC 1870), else 0."""
    for option in options:
        name, _, value = str(option).partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0
