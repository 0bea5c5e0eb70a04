"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3), as IMAP clients without UTF8=ACCEPT write them.

Printable US-ASCII stands for itself, except "&", written "&-"; any other run of characters is
"&" + the base64 of its UTF-16BE form with "," for "/" and no padding + "-". Python's "utf-7"
codec is RFC 2152 UTF-7 ("+" shifts, "/" in base64, optional "-"), which IMAP does not use, so
this small codec sits on base64 and UTF-16 instead.

Decoding is strict, so that one name has one spelling: a printable ASCII character written in
base64, an empty "&...-" run, nonzero padding bits, lone surrogates and bytes outside printable
ASCII are all ValueError.
"""

from __future__ import annotations

import base64
import binascii
import re

_SHIFTED = re.compile(r"&([A-Za-z0-9+,]*)-")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_DIRECT = re.compile(r"[\x20-\x7e]+")


def encode_utf7(name: str) -> str:
    """`name` in modified UTF-7 (RFC 3501 §5.1.3)."""
    pieces = []
    position = 0
    for direct in _DIRECT.finditer(name):
        pieces.append(_shift(name[position : direct.start()]))
        pieces.append(direct.group().replace("&", "&-"))
        position = direct.end()
    pieces.append(_shift(name[position:]))
    return "".join(pieces)


def _shift(text: str) -> str:
    if not text:
        return ""
    encoded = base64.b64encode(text.encode("utf-16-be"), altchars=b"+,")
    return "&" + encoded.rstrip(b"=").decode("ascii") + "-"


def decode_utf7(name: str) -> str:
    """The name that modified UTF-7 `name` spells (RFC 3501 §5.1.3); ValueError if it is not
    modified UTF-7."""
    if not _PRINTABLE.fullmatch(name):
        raise ValueError("modified UTF-7 is printable US-ASCII")
    pieces = []
    position = 0
    for shifted in _SHIFTED.finditer(name):
        pieces.append(_direct(name[position : shifted.start()]))
        pieces.append(_unshift(shifted.group(1)))
        position = shifted.end()
    pieces.append(_direct(name[position:]))
    return "".join(pieces)


def _direct(text: str) -> str:
    if "&" in text:
        raise ValueError("an unterminated & in modified UTF-7")
    return text


def _unshift(encoded: str) -> str:
    if not encoded:
        return "&"
    try:
        data = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"+,", validate=True)
    except binascii.Error as error:
        raise ValueError("invalid base64 in modified UTF-7") from error
    # Re-encoding catches what b64decode forgives: leftover bits that are not zero, and a
    # length no encoder writes (5 characters, say).
    if base64.b64encode(data, altchars=b"+,").rstrip(b"=").decode("ascii") != encoded:
        raise ValueError("non-canonical base64 in modified UTF-7")
    # UnicodeDecodeError, a ValueError, on an odd length or a lone surrogate.
    text = data.decode("utf-16-be")
    if _DIRECT.search(text):
        raise ValueError("printable US-ASCII written in base64 in modified UTF-7")
    return text
