"""The two kinds of XMPP errors (RFC 6120 §4.9, §8.3), turned into wire replies in one place each:

- `StreamError`: ends the whole stream with <stream:error> (server.py writes it).
- slixmpp's `XMPPError`: a stanza error; raised by a handler, it becomes the error reply to the
  stanza that caused it (session.py), and the stream goes on.
"""

from __future__ import annotations

from slixmpp.exceptions import XMPPError

__all__ = ["LEGACY_CODES", "StreamError", "XMPPError"]

# XEP-0086's legacy error codes, sent beside the condition: some clients still read only the
# code (profanity takes an OMEMO device list as missing only on code 404, as ejabberd sends it).
LEGACY_CODES = {
    "bad-request": "400",
    "conflict": "409",
    "feature-not-implemented": "501",
    "forbidden": "403",
    "internal-server-error": "500",
    "item-not-found": "404",
    "jid-malformed": "400",
    "not-acceptable": "406",
    "not-allowed": "405",
    "not-authorized": "401",
    "recipient-unavailable": "404",
    "remote-server-not-found": "404",
    "resource-constraint": "500",
    "service-unavailable": "503",
}


class StreamError(Exception):
    """Input that ends the stream, with the stream error condition to send (RFC 6120 §4.9.3)."""

    def __init__(self, condition: str, text: str = "") -> None:
        super().__init__(text or condition)
        self.condition = condition
        self.text = text
