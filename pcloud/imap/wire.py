"""How values are written in IMAP responses (RFC 9051 §4): atoms, quoted strings, literals, NIL,
parenthesised lists, and mailbox names (modified UTF-7, or UTF-8 once UTF8=ACCEPT is on)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from pcloud.imap.utf7 import encode_utf7

NIL = b"NIL"
_QUOTABLE = re.compile(rb"^[\x01-\x09\x0b\x0c\x0e-\x7f]*$")  # CHAR minus CR and LF
_UTF8_QUOTABLE = re.compile(rb"^[^\x00\r\n]*$")
_ATOM = re.compile(rb'^[^\x00-\x20\x7f-\xff(){%*"\\\]]+$')


def literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def string(value: str | bytes, *, utf8: bool = False) -> bytes:
    """A quoted string when the value allows it, else a literal. 8-bit text is quoted only when
    the client enabled UTF8=ACCEPT (RFC 6855) or IMAP4rev2."""
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(data) < 1000 and (
        _QUOTABLE.match(data)
        or (utf8 and b"\r" not in data and b"\n" not in data and b"\0" not in data)
    ):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(data)


def nstring(value: str | bytes | None, *, utf8: bool = False) -> bytes:
    return NIL if value is None else string(value, utf8=utf8)


def astring(value: str | bytes, *, utf8: bool = False) -> bytes:
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if _ATOM.match(data) and data.upper() != NIL:
        return data
    return string(data, utf8=utf8)


def mailbox(name: str, *, utf8: bool) -> bytes:
    """A mailbox name as the client expects it (RFC 9051 §5.1; RFC 3501 §5.1.3 modified UTF-7)."""
    return astring(name if utf8 else encode_utf7(name), utf8=utf8)


def parenthesized(items: Iterable[bytes]) -> bytes:
    return b"(" + b" ".join(items) + b")"


def flag_list(flags: Iterable[str]) -> bytes:
    return parenthesized(flag.encode() for flag in flags)
