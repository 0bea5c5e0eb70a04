"""Who really sent a message from another server: SPF (RFC 7208), DKIM (RFC 6376) and DMARC
(RFC 7489), checked with authheaders (pyspf, dkimpy and the public suffix list underneath),
reported in an Authentication-Results header (RFC 8601).

DNS lookups go to dnspython's default resolver, which pcloud points at `smtp.dns_server` when
set (see pcloud.dns_records.configure_resolver).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass

import authheaders  # type: ignore[import-untyped]  # no type hints shipped
import authheaders.dmarc_lookup  # type: ignore[import-untyped]
import publicsuffix2  # type: ignore[import-untyped]
from authres import AuthenticationResultsHeader, DKIMAuthenticationResult  # type: ignore[import-untyped]

from pcloud.store.index import header_block

log = logging.getLogger(__name__)
_suffixes_lock = threading.Lock()


def _organizational_domain(domain: str) -> str | None:
    """publicsuffix2's answer, from its one parsed copy of the list. Its first call parses
    the list (0.3 s of CPU): the lock keeps worker threads that check their first messages at
    the same time from each parsing it."""
    with _suffixes_lock:
        return publicsuffix2.get_sld(domain)  # type: ignore[no-any-return]


# authheaders parses the whole public suffix list again for each organizational-domain lookup
# (60 ms of CPU, several times per message, holding the interpreter); publicsuffix2, which it
# uses underneath, keeps one parsed copy. Same list, same answers, once.
authheaders.get_org_domain = _organizational_domain
authheaders.dmarc_lookup.get_org_domain = _organizational_domain
# dkimpy logs a signature that does not verify as an error; here it is an ordinary result,
# written into Authentication-Results.
logging.getLogger("dkimpy").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Verdict:
    header: bytes  # the Authentication-Results field, ready to prepend
    dmarc: str  # pass, fail, none, temperror, permerror
    policy: str  # the From: domain's DMARC policy when it failed: none, quarantine, reject


VERDICT_SECONDS = 10.0  # how long a verdict is reused (see SenderChecks)
VERDICTS_KEPT = 1000  # beyond this many senders, the reused verdicts are dropped
_FROM_FIELDS = re.compile(rb"^from:.*(?:\r?\n[ \t].*)*", re.I | re.M)


class SenderChecks:
    """check(), reusing verdicts. The verdict on an unsigned message depends only on the
    client's address, its HELO, the envelope sender, the From: fields and DNS: it is reused
    for VERDICT_SECONDS, so that a stream of messages from one sender is checked once (SPF and
    DMARC took a seventh of a delivery's CPU even with DNS answers cached). A DNS change reaches
    the checks that much later, as it would through a DNS cache. Worker threads share it
    without a lock: dict operations are atomic."""

    def __init__(self) -> None:
        # (authserv_id, ip, mail_from, helo, From: fields) -> (until when, verdict)
        self._verdicts: dict[tuple[str | bytes, ...], tuple[float, Verdict]] = {}

    def check(
        self, message: bytes, *, authserv_id: str, ip: str, mail_from: str, helo: str
    ) -> Verdict:
        """Blocking: DNS lookups. Run it in a worker thread."""
        head = header_block(message)
        if _signed(head):
            return check(message, authserv_id=authserv_id, ip=ip, mail_from=mail_from, helo=helo)
        key = (authserv_id, ip, mail_from, helo, *_FROM_FIELDS.findall(head))
        known = self._verdicts.get(key)
        if known is not None and known[0] > time.monotonic():
            return known[1]
        verdict = check(message, authserv_id=authserv_id, ip=ip, mail_from=mail_from, helo=helo)
        if verdict.dmarc != "temperror" and b"spf=temperror" not in verdict.header:
            if len(self._verdicts) >= VERDICTS_KEPT:
                self._verdicts.clear()
            self._verdicts[key] = (time.monotonic() + VERDICT_SECONDS, verdict)
        return verdict


def _signed(head: bytes) -> bool:
    return b"\ndkim-signature:" in b"\n" + head.lower()


def check(message: bytes, *, authserv_id: str, ip: str, mail_from: str, helo: str) -> Verdict:
    """Blocking: DNS lookups. Run it in a worker thread."""
    head = header_block(message)
    spf = authheaders.check_spf(ip, mail_from, helo)
    if _signed(head):
        dkim = authheaders.check_dkim(message)
    else:  # authheaders would say "fail" for a message that is simply not signed
        dkim = DKIMAuthenticationResult(result="none")
    try:
        dmarc = authheaders.check_dmarc(head, spf, dkim)  # From: is enough
    except Exception as error:  # a broken DMARC record must not stop delivery
        log.info("dmarc check failed error=%r", error)
        dmarc = None
    results = [spf, dkim] + ([dmarc] if dmarc is not None else [])
    header = str(AuthenticationResultsHeader(authserv_id=authserv_id, results=results))
    outcome = dmarc.result if dmarc is not None else "temperror"
    policy = (dmarc.policy or "none") if dmarc is not None and outcome == "fail" else "none"
    return Verdict(header.encode() + b"\r\n", outcome, policy)


def without_forged_results(message: bytes, authserv_id: str) -> bytes:
    """Drop Authentication-Results fields that claim to come from this server (RFC 8601 §5):
    only this server may say what this server found."""
    pattern = re.compile(
        rb"authentication-results:\s*" + re.escape(authserv_id.encode()) + rb"\b", re.I
    )
    return without_fields(message, pattern)


def without_fields(message: bytes, pattern: re.Pattern[bytes]) -> bytes:
    """The message without the header fields (folded lines included) that `pattern` matches
    from their start: fields only this server may write, forged by a sender."""
    head = header_block(message)
    if not pattern.search(head):  # nearly always: nothing to look for field by field
        return message
    fields = re.split(rb"\r?\n(?![ \t])", head.rstrip(b"\r\n"))
    kept = [field for field in fields if not pattern.match(field)]
    if len(kept) == len(fields):
        return message
    return b"\r\n".join(kept) + b"\r\n\r\n" + message[len(head) :]
