"""The two kinds of XMPP errors (RFC 6120 §4.9, §8.3), turned into wire replies in one place each:

- `StreamError`: ends the whole stream with <stream:error> (server.py writes it).
- slixmpp's `XMPPError`: a stanza error; raised by a handler, it becomes the error reply to the
  stanza that caused it (session.py), and the stream goes on.
"""

from __future__ import annotations

from slixmpp.exceptions import XMPPError

__all__ = ["StreamError", "XMPPError"]


class StreamError(Exception):
    """Input that ends the stream, with the stream error condition to send (RFC 6120 §4.9.3)."""

    def __init__(self, condition: str, text: str = "") -> None:
        super().__init__(text or condition)
        self.condition = condition
        self.text = text
