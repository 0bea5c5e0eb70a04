"""What FETCH sends of a message's content: ENVELOPE, BODYSTRUCTURE, BODY[section] and
BINARY[section] (RFC 9051 §6.4.5 and §7.5.2, RFC 3516). Pure functions over a message's bytes.

Notes:
- ENVELOPE, and HEADER.FIELDS of the fields the index keeps (a message list's request), are
  made from those fields (pcloud.store.index), so that listing a mailbox opens no files;
  enclosed messages' envelopes come from their parsed header blocks.
- Header values go as written, unfolded: RFC 2047 encoded words are not decoded (as Dovecot and
  Cyrus do); 8-bit text is a quoted UTF-8 string to UTF8=ACCEPT clients, a literal to others.
- BODYSTRUCTURE upper-cases types, subtypes, parameter names, encodings and dispositions, as
  the RFC's examples do; values are as written. RFC 2231 parameters are joined but stay encoded
  (NAME* "utf-8''caf%C3%A9"), as Dovecot sends them.
- Sizes and line counts are of the bytes as stored (a message stored with bare LF line ends has
  fewer octets than its CRLF form).
- BODY[section] of a part that does not exist is None, which the caller answers as NIL (RFC
  9051 §7.5.2 allows nstring) rather than "", which would claim an empty part; BINARY of one is
  empty, so that BINARY.SIZE stays a number.
- Every function that parses the message takes the parse_structure() tree as `structure` when
  the caller has it already (one FETCH often asks for BODYSTRUCTURE and several sections).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

from pcloud.imap.mime import IDENTITY_ENCODINGS, Parameters, Part, parse_structure, unfold
from pcloud.imap.values import Section
from pcloud.imap.wire import NIL, parenthesized, string
from pcloud.store.index import occurs_once


class UnknownTransferEncoding(Exception):
    """BINARY of a part whose Content-Transfer-Encoding cannot be undone: the reply is
    `NO [UNKNOWN-CTE]` (RFC 3516 §4.3)."""

    def __init__(self, encoding: str) -> None:
        super().__init__(f"unknown Content-Transfer-Encoding {encoding!r}")
        self.encoding = encoding


# -- ENVELOPE (RFC 9051 §7.5.2) -----------------------------------------------------------------


def envelope(headers: Mapping[str, str], *, utf8: bool) -> bytes:
    """The ENVELOPE of a message from the first value of each of its envelope header fields, by
    lower-case name (as written, folding kept: pcloud.store.index.first_values)."""

    def text(name: str) -> bytes:
        value = headers.get(name)
        return NIL if value is None else _string(unfold(value), utf8)

    def addresses(name: str) -> bytes | None:
        found = _addresses(unfold(headers.get(name, "")))
        if not found:
            return None
        return b"(" + b"".join(parenthesized(_nstring(v, utf8) for v in a) for a in found) + b")"

    sender = addresses("from")
    # Sender and Reply-To, absent or empty, are the From addresses
    return parenthesized(
        [
            text("date"),
            text("subject"),
            sender or NIL,
            addresses("sender") or sender or NIL,
            addresses("reply-to") or sender or NIL,
            *(addresses(name) or NIL for name in ("to", "cc", "bcc")),
            text("in-reply-to"),
            text("message-id"),
        ]
    )


_Address = tuple[str | None, str | None, str | None, str | None]  # name, adl, mailbox, host
_GROUP_END: _Address = (None, None, None, None)


class _Token(NamedTuple):
    kind: str  # "word" (atom, quoted string, encoded word), "special", "literal", "comment"
    text: str  # quoted strings and comments without their quotes and escapes
    spaced: bool  # white space or a comment before it


# RFC 5322 §3.2 lexical tokens, all but comments, which nest (see _tokens). An RFC 2047 encoded
# word is one token even when its text holds specials, as some mailers write.
_TOKEN = re.compile(
    r"""(?P<space>[ \t]+)
      | "(?P<quoted>(?:[^"\\]|\\.)*)"?
      | (?P<literal>\[(?:[^\]\\]|\\.)*\]?)
      | (?P<encoded>=\?[^?\s]*\?[bBqQ]\?[^?\s]*\?=)
      | (?P<special>[<>@,:;.])
      | (?P<atom>[^ \t"(\[<>@,:;.]+)""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _tokens(value: str) -> list[_Token]:
    tokens = []
    position, spaced = 0, False
    while position < len(value):
        if value[position] == "(":
            end, depth = position, 0
            while end < len(value):
                char = value[end]
                if char == "(":
                    depth += 1
                elif char == ")":
                    depth -= 1
                    if depth == 0:
                        break
                end += 2 if char == "\\" else 1
            comment = _ESCAPE.sub(r"\1", value[position + 1 : end]).strip()
            tokens.append(_Token("comment", comment, spaced))
            position, spaced = end + 1, True
            continue
        match = _TOKEN.match(value, position)
        assert match is not None  # some alternative matches every character but "("
        kind = match.lastgroup or ""
        position = match.end()
        if kind == "space":
            spaced = True
            continue
        text = match.group(kind)
        if kind == "quoted":
            text = _ESCAPE.sub(r"\1", text)
        tokens.append(
            _Token("word" if kind in ("quoted", "encoded", "atom") else kind, text, spaced)
        )
        spaced = False
    return tokens


def _addresses(value: str) -> list[_Address]:
    """An address-list (RFC 5322 §3.4) as ENVELOPE addresses, groups between their start and
    end markers (RFC 9051 §7.5.2). Written here because the email package either forgets groups
    (getaddresses) or decodes encoded words (headerregistry). Never fails: what is not an
    address reads as a mailbox with an empty host, as Dovecot does."""
    found: list[_Address] = []
    pending: list[_Token] = []
    in_group = in_angle = False
    for token in _tokens(value):
        mark = token.text if token.kind == "special" and not in_angle else ""
        if token.kind == "special" and token.text in "<>":
            in_angle = token.text == "<"
        if mark == ":" and not in_group:
            found.append((None, None, _phrase(pending) or "", None))
            pending, in_group = [], True
        elif mark in (",", ";"):
            found.extend(_mailbox(pending))
            pending = []
            if mark == ";" and in_group:
                found.append(_GROUP_END)
                in_group = False
        else:
            pending.append(token)
    found.extend(_mailbox(pending))
    if in_group:
        found.append(_GROUP_END)
    return found


def _mailbox(tokens: list[_Token]) -> list[_Address]:
    """A mailbox (RFC 5322 §3.4), [] for nothing: "name <route:local@host>", or "local@host"
    whose name may be in a comment ("user@host (Name)")."""
    words = [token for token in tokens if token.kind != "comment"]
    if not words:
        return []
    comment = next((t.text for t in tokens if t.kind == "comment" and t.text), None)
    opening = _find_special(words, "<")
    name, route, spec = comment, None, words
    if opening is not None:
        name = _phrase(words[:opening]) or comment
        spec = words[opening + 1 :]
        closing = _find_special(spec, ">")
        spec = spec[:closing]
        colon = _find_special(spec, ":")
        # an obsolete source route (RFC 5322 §4.4): <@relay,@relay:local@host>
        if colon is not None and _find_special(spec, "@") == 0:
            route, spec = "".join(token.text for token in spec[:colon]), spec[colon + 1 :]
    at = _find_special(spec, "@", last=True)
    if at is None:
        return [(name, route, "".join(token.text for token in spec), "")]
    local, host = spec[:at], spec[at + 1 :]
    return [(name, route, "".join(t.text for t in local), "".join(t.text for t in host))]


def _find_special(tokens: list[_Token], special: str, *, last: bool = False) -> int | None:
    found = [
        i for i, token in enumerate(tokens) if token.kind == "special" and token.text == special
    ]
    return (found[-1] if last else found[0]) if found else None


def _phrase(tokens: list[_Token]) -> str | None:
    """A display name: its words with one space where the header had space or a comment."""
    words = [token for token in tokens if token.kind != "comment"]
    text = "".join(" " + word.text if word.spaced else word.text for word in words).strip()
    return text or None


def _string(value: str, utf8: bool) -> bytes:
    # RFC 6855 §3: a UTF8=ACCEPT client's quoted strings are UTF-8; other 8-bit text (a Latin-1
    # header, say) still goes, as a literal
    if utf8 and not value.isascii():
        try:
            value.encode("utf-8", "surrogateescape").decode("utf-8")
        except UnicodeDecodeError:
            utf8 = False
    return string(value, utf8=utf8)


def _nstring(value: str | None, utf8: bool) -> bytes:
    return NIL if value is None else _string(value, utf8)


# -- BODYSTRUCTURE (RFC 9051 §7.5.2, RFC 3501 §7.4.2) -------------------------------------------

_DEFAULT_TEXT_PARAMS: Parameters = (("charset", "us-ascii"),)  # RFC 2045 §5.2


def bodystructure(
    message: bytes, *, extensible: bool, utf8: bool, structure: Part | None = None
) -> bytes:
    """BODYSTRUCTURE (extensible) or BODY (not) of a message."""
    return _body(structure or parse_structure(message), extensible, utf8)


def _body(part: Part, extensible: bool, utf8: bool) -> bytes:
    if part.children:
        fields = [
            b"".join(_body(child, extensible, utf8) for child in part.children),
            _string(part.subtype.upper(), utf8),
        ]
        if extensible:
            fields += [_parameters(part.params, utf8), *_disposition_language_location(part, utf8)]
        return parenthesized(fields)
    params = part.params or (_DEFAULT_TEXT_PARAMS if part.media_type == "text" else ())
    fields = [
        _string(part.media_type.upper(), utf8),
        _string(part.subtype.upper(), utf8),
        _parameters(params, utf8),
        _nstring(part.id, utf8),
        _nstring(part.description, utf8),
        _string(part.encoding.upper(), utf8),
        b"%d" % part.size,
    ]
    if part.message is not None:
        fields += [
            envelope(part.message.envelope_fields or {}, utf8=utf8),
            _body(part.message, extensible, utf8),
            b"%d" % part.lines,
        ]
    elif part.media_type == "text":
        fields.append(b"%d" % part.lines)
    if extensible:
        fields += [_nstring(part.md5, utf8), *_disposition_language_location(part, utf8)]
    return parenthesized(fields)


def _parameters(params: Parameters, utf8: bool) -> bytes:
    if not params:
        return NIL
    return parenthesized(
        _string(text, utf8) for name, value in params for text in (name.upper(), value)
    )


def _disposition_language_location(part: Part, utf8: bool) -> list[bytes]:
    """The extension data a single part and a multipart share (RFC 9051 §9 body-ext-1part and
    body-ext-mpart, after MD5 or the parameters)."""
    disposition = NIL
    if part.disposition is not None:
        kind, params = part.disposition
        disposition = parenthesized([_string(kind.upper(), utf8), _parameters(params, utf8)])
    language = NIL
    if part.language is not None:
        tags = [_string(tag, utf8) for tag in part.language]
        language = tags[0] if len(tags) == 1 else parenthesized(tags)
    return [disposition, language, _nstring(part.location, utf8)]


# -- BODY[section], BINARY[section] (RFC 9051 §6.4.5, RFC 3516 §4.2) -----------------------------


def section_bytes(
    message: bytes, section: Section, *, structure: Part | None = None
) -> bytes | None:
    """The bytes of BODY[section], None when the message has no such part.

    Part 1 of a message that is not multipart is its body; a part number after a message/rfc822
    part counts in the enclosed message, and so do HEADER, HEADER.FIELDS and TEXT after one
    (they name nothing after another part). MIME is the part's own header block."""
    if not section.part and section.text is None:
        return message
    root = structure or parse_structure(message)
    target: Part | None = root
    if section.part:
        node = _find(root, section.part)
        if node is None:
            return None
        if section.text is None:
            return message[node.body_start : node.end]
        if section.text == "MIME":
            return message[node.start : node.body_start]
        target = node.message
    elif section.text == "MIME":
        target = None  # MIME only follows a part number
    if target is None:
        return None
    header = message[target.start : target.body_start]
    if section.text == "HEADER":
        return header
    if section.text == "TEXT":
        return message[target.body_start : target.end]
    return header_fields(header, section.fields, exclude=section.text == "HEADER.FIELDS.NOT")


def _find(root: Part, numbers: tuple[int, ...]) -> Part | None:
    """The part a part number names (RFC 9051 §6.4.5)."""
    parts = _parts_of_message(root)
    node = None
    for number in numbers:
        if not 1 <= number <= len(parts):
            return None
        node = parts[number - 1]
        if node.children:
            parts = node.children
        elif node.message is not None:
            parts = _parts_of_message(node.message)
        else:
            parts = ()
    return node


def _parts_of_message(message: Part) -> tuple[Part, ...]:
    # a message that is not multipart has one part, its body (with the message's header as MIME)
    return message.children or (message,)


def header_fields(header_block: bytes, fields: Sequence[str], *, exclude: bool) -> bytes:
    """HEADER.FIELDS (or, with exclude, HEADER.FIELDS.NOT) of a header block: the fields named
    (or all others) with their folded lines, then the empty line; lines end in CRLF."""
    names = {name.upper().encode("utf-8", "surrogateescape") for name in fields}
    kept = []
    keep = False
    for line in header_block.split(b"\n"):
        line = line.removesuffix(b"\r")
        if not line:
            break
        if line[:1] not in (b" ", b"\t"):  # else a folded line of the field above
            name, colon, _ = line.partition(b":")
            keep = bool(colon) and (name.strip().upper() in names) != exclude
        if keep:
            kept.append(line + b"\r\n")
    return b"".join(kept) + b"\r\n"


def cached_header_fields(cached: Mapping[str, str], fields: Collection[str]) -> bytes | None:
    """What header_fields() would cut from the message, made from the fields the index keeps
    (pcloud.store.index.cached_header_lines); `fields` are lower-case names of CACHED_FIELDS. None
    when one of them occurs more than once: the index keeps a field's occurrences together, not
    their order among other fields' lines."""
    kept = [lines for name, lines in cached.items() if name in fields]  # in the message's order
    text = "".join(kept)
    # One line per field, as is usual, is one occurrence of each: no need to look closer.
    if text.count("\n") != len(kept) and not all(occurs_once(lines) for lines in kept):
        return None
    return (text + "\r\n").encode("utf-8", "surrogateescape")


def binary_section(message: bytes, section: Section, *, structure: Part | None = None) -> bytes:
    """BINARY[section]: the part's body with its Content-Transfer-Encoding undone (RFC 3516
    §4.2); BINARY[] is the message as it is, a part that does not exist is empty. Only the part
    number of `section` counts. Raises UnknownTransferEncoding."""
    if not section.part:
        return message
    node = _find(structure or parse_structure(message), section.part)
    if node is None:
        return b""
    return _decode(message[node.body_start : node.end], node.encoding)


def binary_size(message: bytes, section: Section, *, structure: Part | None = None) -> int:
    """BINARY.SIZE[section] (RFC 3516 §4.2): the octets BINARY[section] sends."""
    return len(binary_section(message, section, structure=structure))


_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_BASE64 = bytes(byte for byte in range(256) if byte not in _BASE64_ALPHABET)


def _decode(body: bytes, encoding: str) -> bytes:
    if encoding in IDENTITY_ENCODINGS:
        return body
    if encoding == "quoted-printable":
        return binascii.a2b_qp(body)  # lenient: a bad escape stays as written
    if encoding == "base64":
        # binascii refuses wrong padding, which mail has; keep the alphabet, drop a dangling
        # sixth bit group, pad the rest, as lenient readers do (RFC 2045 §6.8 says to ignore
        # characters outside the alphabet)
        chars = body.translate(None, _NOT_BASE64)
        if len(chars) % 4 == 1:
            chars = chars[:-1]  # six bits that make no octet
        return binascii.a2b_base64(chars + b"=" * (-len(chars) % 4))
    raise UnknownTransferEncoding(encoding)


def partial(data: bytes, offset_length: tuple[int, int] | None) -> bytes:
    """A section's <offset.length> (RFC 9051 §6.4.5): at most length octets from offset, none
    when offset is past the end."""
    if offset_length is None:
        return data
    offset, length = offset_length
    return data[offset : offset + length]
