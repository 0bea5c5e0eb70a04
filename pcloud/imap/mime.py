"""The MIME structure of a message, with where each part lies in its bytes (RFC 2045, RFC 2046).

IMAP names parts by number (BODY[1.2], BODY[2.MIME]) and describes them (BODYSTRUCTURE) with
the sizes and line counts of the bytes as stored, so each part must know where its header block
and its body begin and end. Python's email package does not keep the offsets of parts, so the
splitting is done here: header blocks end at their empty line, bodies at boundary delimiter
lines. The email package parses each header block (Content-Type parameters with RFC 2231
continuations, defaults and so on).

Notes:
- Lines end in CRLF or a bare LF; a bare CR ends no line.
- The line break before a delimiter line belongs to the delimiter (RFC 2046 §5.1.1), not to the
  body above it; the preamble and epilogue belong to no part.
- Malformed mail is read as far as it goes: without a closing delimiter the last part runs to
  the end of the multipart; a header block without its empty line ends at the first line that
  is not a header field.
- A multipart or message/rfc822 entity that is not descended into (no boundary, no delimiter
  line, a transfer encoding that RFC 2046 §5.2.1 forbids a message, nesting deeper than
  MAX_DEPTH, more than MAX_PARTS parts in all) is one opaque application/octet-stream part:
  BODYSTRUCTURE has no way to show a multipart without parts or a message without a body.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import Compat32

from pcloud.store.index import ENVELOPE_FIELDS

MAX_DEPTH = 50  # nested multiparts and messages; deeper ones are opaque
MAX_PARTS = 10_000  # parts of one message; later ones are left out

IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})  # RFC 2045 §6.2: nothing to undo
_MESSAGE_SUBTYPES = frozenset({"rfc822", "global"})  # RFC 6532 §3.5: message/global encloses too

Parameters = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Part:
    """One entity: the whole message, a body part of a multipart, or an enclosed message.

    Offsets are into the message's bytes: the header block is [start, body_start) with its empty
    line, the body [body_start, end). Types and the encoding are lower-case; other values are as
    written, unfolded, with 8-bit bytes as surrogates (surrogateescape)."""

    start: int
    body_start: int
    end: int
    media_type: str  # "text"
    subtype: str  # "plain"
    params: Parameters  # Content-Type's, RFC 2231 ones as name* "charset'lang'%XX" (joined)
    id: str | None
    description: str | None
    encoding: str  # Content-Transfer-Encoding, "7bit" when absent
    md5: str | None
    disposition: tuple[str, Parameters] | None
    language: tuple[str, ...] | None
    location: str | None
    lines: int  # line ends in the body, for text/* and enclosed messages (0 otherwise)
    children: tuple[Part, ...] = ()  # of a multipart
    message: Part | None = None  # the enclosed message of message/rfc822 and message/global
    envelope_fields: Mapping[str, str] | None = None  # of a message: ENVELOPE_FIELDS present

    @property
    def size(self) -> int:
        return self.end - self.body_start


def unfold(value: str) -> str:
    """A header value on one line (RFC 5322 §2.2.3). Stray CR, LF and NUL, which only malformed
    mail has, go too: no IMAP string may carry them."""
    return value.translate(_UNFOLD).strip(" \t")


_UNFOLD = {0: None, 10: None, 13: None}


class _RawValues(Compat32):
    """compat32, except that header values come back as unfolded str: compat32 turns a value
    with 8-bit bytes into a Header object, whose str() replaces those bytes with U+FFFD."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return unfold(value)


_POLICY = _RawValues()

# Field lines with their folded continuations (RFC 5322 §2.2): where a header block ends when it
# has no empty line. Field names are printable US-ASCII without ":" (RFC 5322 §3.6.8).
_HEADER_LINES = re.compile(rb"(?:[!-9;-~]+[ \t]*:[^\n]*(?:\n|\Z)(?:[ \t][^\n]*(?:\n|\Z))*)*")

# RFC 2231 §7 attribute-char, besides those urllib.parse.quote always leaves: what need not be
# percent-encoded in an extended parameter value.
_ATTRIBUTE_CHARS = "!#$&+^`{|}"


def parse_structure(message: bytes) -> Part:
    """The MIME tree of a message. Never raises: malformed mail gives some tree."""
    return _Parser(message).entity(0, len(message), 0, "text/plain", is_message=True)


class _Parser:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.parts_left = MAX_PARTS

    def entity(
        self, start: int, end: int, depth: int, default_type: str, *, is_message: bool
    ) -> Part:
        """The entity in data[start:end] (RFC 2045 §2.4): a header block, then a body."""
        data = self.data
        self.parts_left -= 1
        header_lines = _HEADER_LINES.match(data, start, end)
        assert header_lines is not None  # the pattern matches the empty string too
        body_start = header_lines.end()
        for empty_line in (b"\r\n", b"\n"):
            if data.startswith(empty_line, body_start, end):
                body_start += len(empty_line)
                break
        headers = BytesHeaderParser(policy=_POLICY).parsebytes(data[start:body_start])
        headers.set_default_type(default_type)
        media_type, _, subtype = headers.get_content_type().partition("/")
        encoding = _value(headers, "content-transfer-encoding").lower() or "7bit"
        descend = depth < MAX_DEPTH and self.parts_left > 0
        encloses = media_type == "message" and subtype in _MESSAGE_SUBTYPES

        children: list[Part] = []
        enclosed = None
        if media_type == "multipart" and descend:
            boundary = headers.get_boundary()
            # RFC 2046 §5.1.5: a digest's parts are messages unless they say otherwise
            child_type = "message/rfc822" if subtype == "digest" else "text/plain"
            for child_start, child_end in _split(data, body_start, end, boundary):
                if self.parts_left <= 0:
                    break
                children.append(
                    self.entity(child_start, child_end, depth + 1, child_type, is_message=False)
                )
        elif encloses and descend and encoding in IDENTITY_ENCODINGS:
            enclosed = self.entity(body_start, end, depth + 1, "text/plain", is_message=True)
        if (media_type == "multipart" and not children) or (encloses and enclosed is None):
            media_type, subtype = "application", "octet-stream"

        counted = media_type == "text" or enclosed is not None
        disposition = _parameters(headers, "content-disposition")
        language = [tag.strip() for tag in _value(headers, "content-language").split(",")]
        return Part(
            start=start,
            body_start=body_start,
            end=end,
            media_type=media_type,
            subtype=subtype,
            params=_parameters(headers, "content-type")[1],
            id=headers.get("content-id"),
            description=headers.get("content-description"),
            encoding=encoding,
            md5=headers.get("content-md5"),
            disposition=disposition if disposition[0] else None,
            language=tuple(tag for tag in language if tag) or None,
            location=headers.get("content-location"),
            lines=data.count(b"\n", body_start, end) if counted else 0,
            children=tuple(children),
            message=enclosed,
            envelope_fields=(
                {name: headers[name] for name in ENVELOPE_FIELDS if name in headers}
                if is_message
                else None
            ),
        )


def _value(headers: Message, name: str) -> str:
    return str(headers.get(name, ""))


def _parameters(headers: Message, name: str) -> tuple[str, Parameters]:
    """The value of a Content-Type-like field without its parameters, and its parameters (RFC
    2045 §5.1) with RFC 2231 continuations joined; ("", ()) when the field is absent."""
    found = headers.get_params(header=name)
    if not found:
        return "", ()
    params = []
    for key, value in found[1:]:
        if not key:
            continue  # an empty piece between semicolons
        if isinstance(value, tuple):
            # RFC 2231 §4: kept encoded (joined, re-escaped) so that the value stays ASCII; the
            # email package decoded the %XX escapes as Latin-1, which encodes back to the bytes.
            charset, language, text = value
            escaped = urllib.parse.quote(
                text.encode("latin-1", "surrogateescape"), safe=_ATTRIBUTE_CHARS
            )
            params.append((key + "*", f"{charset or ''}'{language or ''}'{escaped}"))
        else:
            params.append((key, value))
    return found[0][0], tuple(params)


def _split(data: bytes, start: int, end: int, boundary: str | None) -> list[tuple[int, int]]:
    """The (start, end) of each body part of the multipart body data[start:end] (RFC 2046
    §5.1.1): between delimiter lines, "--" boundary, optional "--" when closing, then only
    white space. A line that starts with the delimiter but goes on (a nested multipart's longer
    boundary) is no delimiter."""
    if not boundary:
        return []
    delimiter = b"--" + boundary.encode("utf-8", "surrogateescape")
    spans: list[tuple[int, int]] = []
    part_start = None
    position = start
    while (found := data.find(delimiter, position, end)) != -1:
        position = found + len(delimiter)
        if found != start and data[found - 1] != 0x0A:
            continue  # not at the start of a line
        line_end = data.find(b"\n", position, end)
        line_end = end if line_end == -1 else line_end + 1
        rest = data[position:line_end]
        closing = rest.startswith(b"--")
        if rest[2 if closing else 0 :].strip(b" \t\r\n"):
            continue
        if part_start is not None:
            spans.append((part_start, _before_line_end(data, part_start, found)))
        if closing:
            return spans
        part_start = position = line_end
    if part_start is not None:
        spans.append((part_start, end))
    return spans


def _before_line_end(data: bytes, start: int, delimiter: int) -> int:
    """Where the body before a delimiter line ends: before the line end the delimiter owns."""
    for line_end in (b"\r\n", b"\n"):
        if delimiter - len(line_end) >= start and data.startswith(
            line_end, delimiter - len(line_end)
        ):
            return delimiter - len(line_end)
    return delimiter
