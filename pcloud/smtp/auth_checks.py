"""Who really sent a message from another server: SPF (RFC 7208), DKIM (RFC 6376) and DMARC
(RFC 7489), checked with authheaders (pyspf, dkimpy and the public suffix list underneath),
reported in an Authentication-Results header (RFC 8601).

DNS lookups go to dnspython's default resolver, which pcloud points at `smtp.dns_server` when
set (see pcloud.dns_records.configure_resolver).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import authheaders  # type: ignore[import-untyped]  # no type hints shipped
import authheaders.dmarc_lookup  # type: ignore[import-untyped]
import publicsuffix2  # type: ignore[import-untyped]
from authres import AuthenticationResultsHeader, DKIMAuthenticationResult  # type: ignore[import-untyped]

from pcloud.store.index import header_block

log = logging.getLogger(__name__)

# authheaders parses the whole public suffix list again for each organizational-domain lookup
# (60 ms of CPU, several times per message, holding the interpreter); publicsuffix2, which it
# uses underneath, keeps one parsed copy. Same list, same answers, once.
authheaders.get_org_domain = publicsuffix2.get_sld
authheaders.dmarc_lookup.get_org_domain = publicsuffix2.get_sld
# dkimpy logs a signature that does not verify as an error; here it is an ordinary result,
# written into Authentication-Results.
logging.getLogger("dkimpy").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Verdict:
    header: bytes  # the Authentication-Results field, ready to prepend
    dmarc: str  # pass, fail, none, temperror, permerror
    policy: str  # the From: domain's DMARC policy when it failed: none, quarantine, reject


def check(message: bytes, *, authserv_id: str, ip: str, mail_from: str, helo: str) -> Verdict:
    """Blocking: DNS lookups. Run it in a worker thread."""
    spf = authheaders.check_spf(ip, mail_from, helo)
    if b"\ndkim-signature:" in b"\n" + header_block(message).lower():
        dkim = authheaders.check_dkim(message)
    else:  # authheaders would say "fail" for a message that is simply not signed
        dkim = DKIMAuthenticationResult(result="none")
    try:
        dmarc = authheaders.check_dmarc(header_block(message), spf, dkim)  # From: is enough
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
