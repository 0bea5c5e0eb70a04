"""Delivery status notifications (RFC 3464): telling a sender their mail could not be delivered."""

from __future__ import annotations

import asyncio
import email.utils
import logging
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP

from pcloud.directory import InvalidValue
from pcloud.directory.addresses import domain_of
from pcloud.services import Services
from pcloud.smtp.recipients import Recipients
from pcloud.store.index import header_block

log = logging.getLogger(__name__)


def failure_report(
    reporting_host: str, sender: str, failures: dict[str, tuple[str, str]], original: bytes
) -> bytes:
    """A multipart/report for `sender`: `failures` maps each recipient to its enhanced status
    code and the other server's reply (or pcloud's reason). Carries the original's headers."""
    report = MIMEMultipart("report", report_type="delivery-status")
    domain = reporting_host.removeprefix("mail.")
    report["From"] = f"Mail Delivery System <postmaster@{domain}>"
    report["To"] = sender
    report["Subject"] = "Undelivered mail returned to sender"
    report["Date"] = email.utils.formatdate(localtime=True)
    report["Message-ID"] = email.utils.make_msgid(domain=reporting_host)
    report["Auto-Submitted"] = "auto-replied"  # RFC 3834: no replies to this

    lines = [f"Your message could not be delivered to {len(failures)} recipient(s):", ""]
    lines += [f"  <{address}>: {reply}" for address, (_, reply) in sorted(failures.items())]
    report.attach(MIMEText("\n".join(lines) + "\n"))

    status = Message()
    status.set_type("message/delivery-status")
    per_message = Message()
    per_message["Reporting-MTA"] = f"dns; {reporting_host}"
    status.attach(per_message)
    for address, (code, reply) in sorted(failures.items()):
        per_recipient = Message()
        per_recipient["Final-Recipient"] = f"rfc822; {address}"
        per_recipient["Action"] = "failed"
        per_recipient["Status"] = code
        per_recipient["Diagnostic-Code"] = f"smtp; {' '.join(reply.split())}"
        status.attach(per_recipient)
    report.attach(status)

    headers = Message()
    headers.set_type("text/rfc822-headers")
    headers.set_payload(header_block(original).decode("ascii", "replace"))
    report.attach(headers)
    return report.as_bytes(policy=SMTP)


async def return_to_sender(
    services: Services,
    recipients: Recipients,
    sender: str,
    failures: dict[str, tuple[str, str]],
    original: bytes,
) -> None:
    """Bounce: into the sender's mailboxes when they are here, else queued to them from <>
    (an SRS address of ours means the original sender of forwarded mail)."""
    if not sender:
        log.warning("bounce dropped: the failed message was itself a bounce")
        return
    host = services.config.server.mail_host
    report = failure_report(host, sender, failures, original)
    try:
        targets = await asyncio.to_thread(recipients.resolve, sender)
    except InvalidValue:
        targets = None
    if targets is None:
        if await asyncio.to_thread(recipients.hosted, sender):
            log.warning("bounce dropped: no such sender here from=%s", sender)
            return
        targets = [sender]
    await asyncio.to_thread(_send_report, services, targets, report)
    log.info("bounce sent to=%s recipients=%s", sender, ",".join(sorted(failures)))


def _send_report(services: Services, targets: list[str], report: bytes) -> None:
    hosted = services.directory.domains()
    for target in targets:
        if domain_of(target) in hosted:
            services.mail.account(target).deliver(report)
        else:
            services.queue.enqueue("", [target], report)
