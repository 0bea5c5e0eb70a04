"""What every SMTP listener does with recipients and messages: resolve, check, deliver.

`Handler` holds the aiosmtpd hooks the inbound MX and submission share; each of them narrows
who may send (see inbound.py, submission.py). Everything that touches SQLite, files or DNS runs
in worker threads, one hop per message and one per RCPT whose route is not known yet: the event
loop only talks. A route found for a recipient (a hosted address, no quota on its accounts) is
reused for ROUTE_SECONDS without asking the directory again, so that a sender's stream of
messages to one address costs one hop each (a hop took a tenth of a delivery's CPU). A change in
the directory meanwhile (a user or alias deleted) reaches RCPT that much later; delivery itself
asks the mail store, which asks the directory, every time.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException

from pcloud.directory import InvalidValue
from pcloud.directory.addresses import AddressError, domain_of, normalize_address
from pcloud.services import Services
from pcloud.smtp import auth_checks
from pcloud.smtp.bounce import return_to_sender
from pcloud.smtp.recipients import Recipients
from pcloud.store import invitations
from pcloud.store.calendars import open_storage
from pcloud.store.mail_values import MailStoreError, QuotaExceeded
from pcloud.store.maildir import INBOX

log = logging.getLogger(__name__)

FORGED_INVITATION = re.compile(rb"x-calendar-invitation\s*:", re.I)
ROUTE_SECONDS = 1.0  # how long a recipient's route is reused (see the module docstring)
ROUTES_KEPT = 1000  # beyond this many (a catch-all takes any address), all are dropped


@dataclass
class Routing:
    """Where the accepted recipients of the current message go."""

    local: set[str] = field(default_factory=set)  # accounts to deliver to
    remote: set[str] = field(default_factory=set)  # addresses elsewhere


@dataclass(frozen=True)
class Origin:
    """Where a message comes from, for the sender checks."""

    server: str  # this server's name, which writes Authentication-Results
    ip: str
    helo: str


def routing(envelope: Envelope) -> Routing:
    found = getattr(envelope, "pcloud_routing", None)
    if found is None:
        found = Routing()
        envelope.pcloud_routing = found  # type: ignore[attr-defined]
    return found


def peer_address(session: Session) -> str:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


def envelope_sender(envelope: Envelope) -> str:
    """The reverse-path, "" for the null sender of bounces (aiosmtpd hands that in as "<>")."""
    return "" if envelope.mail_from in (None, "<>") else str(envelope.mail_from)


class Handler:
    """aiosmtpd hooks (RFC 5321 §3.3) shared by the MX and submission listeners."""

    protocol = "ESMTP"
    # Mail from other servers is checked (SPF, DKIM, DMARC); users' own mail is not.
    checks_senders = True

    def __init__(self, services: Services) -> None:
        self.services = services
        self.directory = services.directory
        self.recipients = Recipients(services.directory, services.srs_secret)
        self.calendars = open_storage(services.data_dir / "dav")
        self.sender_checks = auth_checks.SenderChecks()
        # (address, bounce) -> (until when, local accounts, remote addresses); event loop only.
        self._routes: dict[tuple[str, bool], tuple[float, list[str], list[str]]] = {}

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

    # RFC 5321 §4.1.1.3
    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= self.services.config.smtp.max_recipients:
            return "452 4.5.3 Too many recipients"
        refusal, local, remote = await self._route_of(address, envelope)
        if refusal is None and local is None:  # nobody here takes it
            if not self.may_send_elsewhere(session):
                log.info("smtp relay refused remote=%s rcpt=%s", peer_address(session), address)
                return "554 5.7.1 Relay access denied"
            local, remote = [], [normalize_address(address)]
        if refusal is not None:
            return refusal
        route = routing(envelope)
        route.local.update(local or [])
        route.remote.update(remote)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Recipient OK"

    async def _route_of(
        self, address: str, envelope: Envelope
    ) -> tuple[str | None, list[str] | None, list[str]]:
        """_route's answer, from the routes found lately if it is one of them."""
        bounce = not envelope_sender(envelope)
        known = self._routes.get((address, bounce))
        if known is not None and known[0] > time.monotonic():
            return None, known[1], known[2]
        size = _declared_size(envelope.mail_options)
        refusal, local, remote, reusable = await asyncio.to_thread(
            self._route, address, size, bounce
        )
        if reusable:
            assert local is not None
            if len(self._routes) >= ROUTES_KEPT:
                self._routes.clear()
            self._routes[address, bounce] = (time.monotonic() + ROUTE_SECONDS, local, remote)
        return refusal, local, remote

    def _route(
        self, address: str, size: int, bounce: bool
    ) -> tuple[str | None, list[str] | None, list[str], bool]:
        """Where a recipient's copy goes: (a refusal, or None; local accounts, or None when
        the address is someone's elsewhere; remote addresses; whether this route may be reused
        for a while: a hosted address whose accounts have no quota). Blocking: one thread hop
        for all the directory and mailbox questions."""
        if not bounce and self.recipients.is_srs(address):
            # Only bounces go back through a rewritten sender address; anything else would
            # let strangers send through this server to whoever once wrote to an alias.
            return "550 5.7.1 This address takes delivery status notifications only", [], [], False
        try:
            targets = self.recipients.resolve(address)
        except InvalidValue:
            return "553 5.1.3 Recipient address not accepted here", [], [], False
        if targets is None:
            try:
                normalized = normalize_address(address)
            except AddressError:
                return "553 5.1.3 Recipient address not accepted here", [], [], False
            if self.recipients.hosted(normalized):
                return "550 5.1.1 No such user here", [], [], False
            return None, None, [], False
        hosted = self.directory.domains()
        local = [t for t in targets if domain_of(t) in hosted]
        remote = [t for t in targets if t not in local]
        limited = False  # a quota applies: the answer depends on the mailbox's size
        for account in local:
            user = self.directory.user(account)
            if user is None or not user.quota_bytes:
                continue
            limited = True
            used, _ = self.services.mail.account(account).usage()
            if used + max(size, 1) > user.quota_bytes:
                log.info("smtp recipient full rcpt=%s", address)
                return f"452 4.2.2 Mailbox of {address} is full", [], [], False
        return None, local, remote, not limited

    def may_send_elsewhere(self, session: Session) -> bool:
        """The MX takes mail for hosted addresses only: it is never a relay."""
        return False

    def outgoing(self, sender: str, message: bytes) -> tuple[str, bytes]:
        """The envelope sender and message for copies that leave for other servers: mail that
        an alias forwards keeps its content (it is someone else's, so it is not signed here)
        and gets an SRS sender. Blocking."""
        return self.recipients.forwarding_sender(sender), message

    def _invitation(self, content: bytes) -> tuple[bytes, invitations.Invitation | None]:
        """The message with its calendar invitation named in a header (iMIP, RFC 6047), and
        the invitation; a sender's own header of that name is dropped (only this server says
        what it found)."""
        content = auth_checks.without_fields(content, FORGED_INVITATION)
        if b"text/calendar" not in content:  # the common case, without parsing MIME
            return content, None
        invitation = invitations.parse_invitation(content)
        if invitation is None:
            return content, None
        header = f"{invitations.HEADER_NAME}: {invitation.header}\r\n".encode()
        return header + content, invitation

    def _store(
        self,
        accounts: set[str],
        message: bytes,
        junk: bool,
        invitation: invitations.Invitation | None = None,
    ) -> tuple[list[str], dict[str, tuple[str, str]]]:
        """Deliver to each account (and place an invitation in their calendars, unless the
        message went to Junk: else a spammer could fill calendars); returns where each one
        that has it has it (`address:mailbox:uid`) and, for the others, the enhanced status
        code and reply. Blocking."""
        stored, failed = [], {}
        for address in sorted(accounts):
            try:
                account = self.services.mail.account(address)
                mailbox = account.special_mailbox("\\Junk") if junk else INBOX
                result = account.deliver(message, mailbox=mailbox)
            except QuotaExceeded:
                failed[address] = ("5.2.2", "552 5.2.2 Mailbox full")
                continue
            except MailStoreError as error:
                log.warning("smtp delivery failed to=%s error=%s", address, error)
                failed[address] = ("4.2.0", "450 4.2.0 Mailbox unavailable")
                continue
            stored.append(f"{address}:{mailbox}:{result.uid}")
            if invitation is not None and not junk:
                try:
                    invitations.apply_invitation(self.calendars, address, invitation)
                except Exception as error:  # the mail is delivered; the calendar is a bonus
                    log.warning("smtp invitation not placed to=%s error=%r", address, error)
        return stored, failed

    # RFC 5321 §4.1.1.4
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        sender = envelope_sender(envelope)
        origin = Origin(server.hostname, peer_address(session), session.host_name or "")
        received = self.received_header(server, session, envelope).encode()
        content = envelope.original_content or b""
        reply, failed, content = await asyncio.to_thread(
            self._accept, content, sender, routing(envelope), received, origin
        )
        if failed:  # some recipients have it: the reply is 250, the rest is bounced
            await return_to_sender(self.services, self.recipients, sender, failed, content)
        return reply

    def _accept(
        self, content: bytes, sender: str, route: Routing, received: bytes, origin: Origin
    ) -> tuple[str, dict[str, tuple[str, str]], bytes]:
        """Check the sender, queue the copies for other servers, deliver the local ones.
        Returns the reply, the recipients who could not have it (to bounce to), and the content
        as checked. Blocking: one thread hop per message for all of it."""
        junk, checks = False, "none"
        if self.checks_senders:
            verdict = self.sender_checks.check(
                content, authserv_id=origin.server, ip=origin.ip, mail_from=sender, helo=origin.helo
            )
            checks = verdict.header.decode().strip().partition("; ")[2]
            if verdict.policy == "reject":
                log.info("smtp refused from=%s checks=%s", sender, checks)
                return "550 5.7.1 Rejected: the sender's domain asks for it (DMARC)", {}, content
            junk = verdict.policy == "quarantine"
            content = verdict.header + auth_checks.without_forged_results(content, origin.server)
        content, invitation = self._invitation(content)
        message = received + content
        # Copies for other servers are queued first: if that fails, nothing was delivered
        # anywhere and the sender may simply try again.
        if route.remote:
            outgoing_sender, outgoing = self.outgoing(sender, message)
            self.services.queue.enqueue(outgoing_sender, sorted(route.remote), outgoing)
        # RFC 5321 §4.4: final delivery records the envelope sender.
        delivered = f"Return-Path: <{sender}>\r\n".encode() + message
        stored, failed = self._store(route.local, delivered, junk, invitation)
        # One line per message: with 20 clients, two a message took a tenth of the CPU.
        log.info("smtp message from=%s size=%d delivered=%s queued=%s refused=%s checks=%s",
                 sender, len(delivered), ",".join(stored), ",".join(sorted(route.remote)),
                 ",".join(sorted(failed)), checks)  # fmt: skip
        if failed and not stored and not route.remote:
            return next(iter(failed.values()))[1], {}, content
        return "250 2.0.0 Message accepted for delivery", failed, content

    def received_header(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """RFC 5321 §4.4 trace header."""
        with_ = self.protocol
        transport = server.transport
        implicit_tls = transport is not None and transport.get_extra_info("sslcontext")
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
            f"\t{local_date(time.time())}\r\n"
        )


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def local_date(seconds: float) -> str:
    """An RFC 5322 §3.3 date in local time, as email.utils.format_datetime(localtime()) writes
    it, in a tenth of the time: every message gets one."""
    t = time.localtime(seconds)
    sign, offset = ("+" if t.tm_gmtoff >= 0 else "-"), abs(t.tm_gmtoff) // 60
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year}"
        f" {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {sign}{offset // 60:02d}{offset % 60:02d}"
    )


def _declared_size(options: list[Any]) -> int:
    """The SIZE= the client declared in MAIL FROM (RFC 1870), else 0."""
    for option in options:
        name, _, value = str(option).partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0
