"""DKIM signatures on mail that leaves for other servers (RFC 6376), made with dkimpy."""

from __future__ import annotations

import email.utils

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type hints

from pcloud.directory.addresses import domain_of
from pcloud.store.dkim_keys import DkimKeys
from pcloud.store.index import header_block

# The fields a signature covers: those a forger would change, and those receivers display.
SIGNED_HEADERS = (
    b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to", b"in-reply-to",
    b"references", b"mime-version", b"content-type", b"content-transfer-encoding",
)  # fmt: skip


def sign(message: bytes, keys: DkimKeys, hosted: list[str]) -> bytes:
    """The message with a DKIM-Signature for its From: domain, when that domain is hosted."""
    headers = email.message_from_bytes(header_block(message))
    senders = email.utils.getaddresses(headers.get_all("from", []))
    if len(senders) != 1 or "@" not in senders[0][1]:
        return message
    domain = domain_of(senders[0][1]).lower()
    key = keys.get(domain) if domain in hosted else None
    if key is None:
        return message
    signature: bytes = dkim.sign(
        message,
        key.selector.encode(),
        key.domain.encode(),
        key.private_pem,
        include_headers=list(SIGNED_HEADERS),
        canonicalize=(b"relaxed", b"relaxed"),
    )
    return signature + message
