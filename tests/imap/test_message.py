"""ENVELOPE, BODYSTRUCTURE, body sections and BINARY of messages well and badly formed."""

from __future__ import annotations

import base64
import contextlib
import random
from email import policy
from email.message import EmailMessage

import pytest

from pcloud.imap import mime
from pcloud.imap.message import (
    UnknownTransferEncoding,
    binary_section,
    binary_size,
    bodystructure,
    cached_header_fields,
    envelope,
    header_fields,
    partial,
    section_bytes,
)
from pcloud.imap.mime import parse_structure
from pcloud.imap.values import Section
from pcloud.store.index import cached_header_lines, first_values, header_block

# Dovecot's src/lib-imap/test-imap-bodystructure.c message, with CRLF line ends: Dovecot counts
# sizes as CRLF, so the sizes below are Dovecot's.
DOVECOT = (
    b"From: user@domain.org\n"
    b"Date: Sat, 24 Mar 2007 23:00:00 +0200\n"
    b"Mime-Version: 1.0\n"
    b'Content-Type: multipart/mixed; boundary="foo\n'
    b' bar"\n'
    b"\n"
    b"Root MIME prologue\n"
    b"\n"
    b"--foo bar\n"
    b'Content-Type: text/x-myown; charset=us-ascii; foo="quoted\\"string"\n'
    b"Content-ID: <foo@example.com>\n"
    b"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
    b"Content-Disposition: inline; foo=bar\n"
    b"Content-Description: hellodescription\n"
    b"Content-Language: en, fi, se\n"
    b"Content-Location: http://example.com/test.txt\n"
    b"\n"
    b"hello\n"
    b"\n"
    b"--foo bar\n"
    b"Content-Type: message/rfc822\n"
    b"\n"
    b"From: sub@domain.org\n"
    b"To: sub-to1@domain.org, sub-to2@domain.org\n"
    b"Date: Sun, 12 Aug 2012 12:34:56 +0300\n"
    b"Subject: submsg\n"
    b'Content-Type: multipart/alternative; boundary="sub1"\n'
    b"\n"
    b"Sub MIME prologue\n"
    b"--sub1\n"
    b"Content-Type: text/html\n"
    b"Content-Transfer-Encoding: 8bit\n"
    b"\n"
    b"<p>Hello world</p>\n"
    b"\n"
    b"--sub1\n"
    b"Content-Type: text/plain\n"
    b"Content-Transfer-Encoding: ?invalid\n"
    b"\n"
    b"Hello another world\n"
    b"\n"
    b"--sub1--\n"
    b"Sub MIME epilogue\n"
    b"\n"
    b"--foo bar--\n"
    b"Root MIME epilogue\n"
).replace(b"\n", b"\r\n")

# Dovecot's answer, upper-cased where pcloud upper-cases; Dovecot also reads the invalid
# "?invalid" encoding as "7bit", pcloud sends it as written.
DOVECOT_ENVELOPE = (
    b'("Sun, 12 Aug 2012 12:34:56 +0300" "submsg" ((NIL NIL "sub" "domain.org")) '
    b'((NIL NIL "sub" "domain.org")) ((NIL NIL "sub" "domain.org")) '
    b'((NIL NIL "sub-to1" "domain.org")(NIL NIL "sub-to2" "domain.org")) NIL NIL NIL NIL)'
)
DOVECOT_BODYSTRUCTURE = (
    b'(("TEXT" "X-MYOWN" ("CHARSET" "us-ascii" "FOO" "quoted\\"string") "<foo@example.com>" '
    b'"hellodescription" "7BIT" 7 1 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("INLINE" ("FOO" "bar")) '
    b'("en" "fi" "se") "http://example.com/test.txt")'
    b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 412 ' + DOVECOT_ENVELOPE + b" "
    b'(("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "8BIT" 20 1 NIL NIL NIL NIL)'
    b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "?INVALID" 21 1 NIL NIL NIL NIL) '
    b'"ALTERNATIVE" ("BOUNDARY" "sub1") NIL NIL NIL) 21 NIL NIL NIL NIL) '
    b'"MIXED" ("BOUNDARY" "foo bar") NIL NIL NIL)'
)
DOVECOT_BODY = (
    b'(("TEXT" "X-MYOWN" ("CHARSET" "us-ascii" "FOO" "quoted\\"string") "<foo@example.com>" '
    b'"hellodescription" "7BIT" 7 1)'
    b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 412 ' + DOVECOT_ENVELOPE + b" "
    b'(("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "8BIT" 20 1)'
    b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "?INVALID" 21 1) "ALTERNATIVE") 21) '
    b'"MIXED")'
)


def test_bodystructure_as_dovecot() -> None:
    assert bodystructure(DOVECOT, extensible=True, utf8=False) == DOVECOT_BODYSTRUCTURE
    assert bodystructure(DOVECOT, extensible=False, utf8=False) == DOVECOT_BODY


def test_bare_lf_counts_the_bytes_as_stored() -> None:
    lf = DOVECOT.replace(b"\r\n", b"\n")
    expected = DOVECOT_BODY.replace(b" 7 1)", b" 6 1)").replace(b" 412 ", b" 391 ")
    expected = expected.replace(b" 20 1)", b" 19 1)").replace(b" 21 1)", b" 20 1)")
    assert bodystructure(lf, extensible=False, utf8=False) == expected


def test_rfc3501_example() -> None:
    # RFC 3501 §7.4.2: ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)
    body = b"".join(b"x" * 31 + b"\r\n" for _ in range(91)) + b"y" * 23 + b"\r\n"
    message = b"Subject: a\r\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n" + body
    assert bodystructure(message, extensible=False, utf8=False) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)'
    )


def test_defaults_without_mime_headers() -> None:
    message = b"From: a@example.org\r\nSubject: plain\r\n\r\nHello\r\nthere\r\n"
    assert bodystructure(message, extensible=True, utf8=False) == (
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 14 2 NIL NIL NIL NIL)'
    )
    assert section_bytes(message, Section(part=(1,))) == b"Hello\r\nthere\r\n"
    assert section_bytes(message, Section(part=(1,), text="MIME")) == message[:-14]
    assert section_bytes(message, Section(part=(2,))) is None
    assert section_bytes(message, Section(part=(1, 1))) is None
    assert section_bytes(message, Section(part=(1,), text="HEADER")) is None  # not a message


def test_header_only_message() -> None:
    message = b"Subject: nothing else"
    part = parse_structure(message)
    assert (part.body_start, part.end) == (len(message), len(message))
    assert section_bytes(message, Section(text="HEADER")) == message
    assert section_bytes(message, Section(text="TEXT")) == b""


# -- a message as mail programs write it ---------------------------------------------------------


def mixed() -> bytes:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "Alice <alice@example.org>"
    message["To"] = "bob@example.net"
    message["Subject"] = "Photos"
    message.set_content("See attached.\n")
    message.add_alternative("<p>See attached.</p>\n", subtype="html")
    message.add_attachment(b"\x00\x01binary" * 10, "application", "octet-stream", filename="a.bin")
    inner = EmailMessage(policy=policy.SMTP)
    inner["From"] = "carol@example.com"
    inner["Subject"] = "Inner"
    inner.set_content("Inner body\n")
    message.add_attachment(inner)
    return message.as_bytes()


def test_bodystructure_of_a_mixed_message() -> None:
    data = mixed()
    boundaries = [
        part.params[0][1] for part in (parse_structure(data), parse_structure(data).children[0])
    ]
    assert bodystructure(data, extensible=True, utf8=False) == (
        b'((("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 15 1 NIL NIL NIL NIL)'
        b'("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 22 1 NIL NIL NIL NIL) "ALTERNATIVE" '
        b'("BOUNDARY" "%s") NIL NIL NIL)'
        b'("APPLICATION" "OCTET-STREAM" NIL NIL NIL "BASE64" 112 NIL '
        b'("ATTACHMENT" ("FILENAME" "a.bin")) NIL NIL)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "8BIT" 150 (NIL "Inner" '
        b'((NIL NIL "carol" "example.com")) ((NIL NIL "carol" "example.com")) '
        b'((NIL NIL "carol" "example.com")) NIL NIL NIL NIL NIL) '
        b'("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 12 1 NIL NIL NIL NIL) 7 '
        b'NIL ("ATTACHMENT" NIL) NIL NIL) "MIXED" ("BOUNDARY" "%s") NIL NIL NIL)'
    ) % (boundaries[1].encode(), boundaries[0].encode())


def test_sections_of_a_mixed_message() -> None:
    data = mixed()
    inner = (
        b"From: carol@example.com\r\nSubject: Inner\r\n"
        b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: 7bit\r\n'
        b"MIME-Version: 1.0\r\n\r\nInner body\r\n"
    )
    structure = parse_structure(data)
    assert section_bytes(data, Section()) == data
    assert section_bytes(data, Section(part=(1, 1))) == b"See attached.\r\n"
    assert section_bytes(data, Section(part=(1, 2))) == b"<p>See attached.</p>\r\n"
    alternative = section_bytes(data, Section(part=(1,)))  # the multipart's body, delimiters too
    assert alternative is not None
    assert alternative.startswith(b"--") and alternative.endswith(b"--\r\n")
    assert section_bytes(data, Section(part=(2,))) == base64.encodebytes(
        b"\x00\x01binary" * 10
    ).replace(b"\n", b"\r\n")
    assert section_bytes(data, Section(part=(3,)), structure=structure) == inner
    assert section_bytes(data, Section(part=(3, 1))) == b"Inner body\r\n"
    assert section_bytes(data, Section(part=(3, 2))) is None
    assert (
        section_bytes(data, Section(part=(3,), text="HEADER")) == inner[: inner.index(b"Inner b")]
    )
    assert section_bytes(data, Section(part=(3,), text="TEXT")) == b"Inner body\r\n"
    assert section_bytes(data, Section(part=(3,), text="HEADER.FIELDS", fields=("SUBJECT",))) == (
        b"Subject: Inner\r\n\r\n"
    )
    assert section_bytes(data, Section(part=(1, 1), text="MIME")) == (
        b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n'
    )
    assert section_bytes(data, Section(part=(2,), text="TEXT")) is None
    assert section_bytes(data, Section(part=(4,))) is None
    assert section_bytes(data, Section(part=(0,))) is None
    assert section_bytes(data, Section(text="MIME")) is None
    header = data[: data.index(b"\r\n\r\n") + 4]
    assert section_bytes(data, Section(text="HEADER")) == header
    assert section_bytes(data, Section(text="TEXT")) == data[len(header) :]
    assert section_bytes(data, Section(text="HEADER.FIELDS", fields=("FROM", "TO"))) == (
        b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n\r\n"
    )


def test_binary() -> None:
    data = mixed()
    assert binary_section(data, Section(part=(2,))) == b"\x00\x01binary" * 10
    assert binary_size(data, Section(part=(2,))) == 80
    assert binary_section(data, Section(part=(1, 1))) == b"See attached.\r\n"
    assert binary_section(data, Section(part=(9,))) == b""
    assert binary_section(data, Section()) == data
    quoted = (
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: Quoted-Printable\r\n\r\n"
        b"caf=C3=A9 au =\r\nlait =XY\r\n"
    )
    assert binary_section(quoted, Section(part=(1,))) == "café au lait =XY\r\n".encode()
    unknown = b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 a\r\n"
    with pytest.raises(UnknownTransferEncoding):
        binary_section(unknown, Section(part=(1,)))


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        (b"aGVsbG8=", b"hello"),
        (b"aGVs\r\nbG8=\r\n", b"hello"),
        (b"aGVsbG8", b"hello"),  # padding missing
        (b"aGVsbG8==", b"hello"),  # too much
        (b"aGVs bG8*!", b"hello"),  # characters outside the alphabet
        (b"aGVsbG8hI", b"hello!"),  # a dangling sixth bit group
        (b"", b""),
    ],
)
def test_base64_is_decoded_leniently(encoded: bytes, decoded: bytes) -> None:
    message = b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded
    assert binary_section(message, Section(part=(1,))) == decoded


# -- header fields -------------------------------------------------------------------------------


def test_header_fields() -> None:
    block = (
        b"Received: from a\r\n\tby b\r\nSubject: Hello\r\n  world\r\nX-Empty:\r\n"
        b"subject : again\r\nnot a field\r\nTo: x@example.org\n\r\nbody: no\r\n"
    )
    assert header_fields(block, ["subject", "X-EMPTY"], exclude=False) == (
        b"Subject: Hello\r\n  world\r\nX-Empty:\r\nsubject : again\r\n\r\n"
    )
    assert header_fields(block, ["SUBJECT", "X-EMPTY"], exclude=True) == (
        b"Received: from a\r\n\tby b\r\nTo: x@example.org\r\n\r\n"
    )
    assert header_fields(block, ["BODY"], exclude=False) == b"\r\n"
    assert header_fields(b"", ["A"], exclude=True) == b"\r\n"


@pytest.mark.parametrize(
    "head",
    [
        b"From: a@example.org\r\nReceived: x\r\nSUBJECT:Hello\r\n  world\r\n\r\n",
        b"subject :  caf\xc3\xa9 \xe9t\xe9\nX-A: 1\nFrom:\n b@example.org\nDate: now\n\n",
        b"Date: 1 Jan 2024\r\nnot a field\r\nFrom: c\r\n",  # no empty line: all header
        b" folded before any field\r\nTo: x\r\n\r\n",
    ],
)
def test_the_index_answers_header_fields_as_the_message_would(head: bytes) -> None:
    data = head + b"Subject: in the body, unless the header has no end\r\n"
    kept = cached_header_lines(data)
    for fields in (["FROM", "SUBJECT", "DATE"], ["Subject"], ["to", "x-priority"], ["bcc"]):
        names = {name.lower() for name in fields}
        expected = header_fields(header_block(data), fields, exclude=False)
        assert cached_header_fields(kept, names) == expected


def test_a_repeated_field_is_left_to_the_message() -> None:
    kept = cached_header_lines(b"To: a\r\nFrom: b\r\nTo: c\r\n d\r\nSubject: e\r\n\r\n")
    assert kept["to"] == "To: a\r\nTo: c\r\n d\r\n"  # the occurrences together, out of order
    assert cached_header_fields(kept, {"to", "from"}) is None
    assert cached_header_fields(kept, {"from", "subject"}) == b"From: b\r\nSubject: e\r\n\r\n"
    assert first_values(kept) == {"to": "a", "from": "b", "subject": "e"}


def test_partial() -> None:
    assert partial(b"0123456789", None) == b"0123456789"
    assert partial(b"0123456789", (2, 3)) == b"234"
    assert partial(b"0123456789", (8, 10)) == b"89"
    assert partial(b"0123456789", (10, 1)) == b""
    assert partial(b"0123456789", (20, 1)) == b""


# -- ENVELOPE ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # Dovecot's src/lib-imap/test-imap-envelope.c
        (
            b"Message-ID: <msg@id>\nIn-Reply-To: <reply@to.id>\n"
            b"Date: Thu, 15 Feb 2007 01:02:03 +0200\nSubject: subject header\n"
            b"From: From Real <fromuser@fromdomain.org>\nTo: To Real <touser@todomain.org>\n"
            b"Cc: Cc Real <ccuser@ccdomain.org>\nBcc: Bcc Real <bccuser@bccdomain.org>\n"
            b"Sender: Sender Real <senderuser@senderdomain.org>\n"
            b"Reply-To: ReplyTo Real <replytouser@replytodomain.org>\n",
            b'("Thu, 15 Feb 2007 01:02:03 +0200" "subject header" '
            b'(("From Real" NIL "fromuser" "fromdomain.org")) '
            b'(("Sender Real" NIL "senderuser" "senderdomain.org")) '
            b'(("ReplyTo Real" NIL "replytouser" "replytodomain.org")) '
            b'(("To Real" NIL "touser" "todomain.org")) (("Cc Real" NIL "ccuser" "ccdomain.org")) '
            b'(("Bcc Real" NIL "bccuser" "bccdomain.org")) "<reply@to.id>" "<msg@id>")',
        ),
        (
            b"Date: Thu, 15 Feb 2007 01:02:03 +0200\nFrom: user@domain\n",
            b'("Thu, 15 Feb 2007 01:02:03 +0200" NIL ((NIL NIL "user" "domain")) '
            b'((NIL NIL "user" "domain")) ((NIL NIL "user" "domain")) NIL NIL NIL NIL NIL)',
        ),
        (
            b"From: user@domain (Real Name)\n"
            b"To: group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;\n"
            b"Cc: group:;, group2: (foo) ;\n",
            b'(NIL NIL (("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) '
            b'(("Real Name" NIL "user" "domain")) '
            b'((NIL NIL "group" NIL)(NIL NIL "g1" "d1.org")(NIL NIL "g2" "d2.org")'
            b'(NIL NIL NIL NIL)(NIL NIL "group2" NIL)(NIL NIL "g3" "d3.org")(NIL NIL NIL NIL)) '
            b'((NIL NIL "group" NIL)(NIL NIL NIL NIL)(NIL NIL "group2" NIL)(NIL NIL NIL NIL)) '
            b"NIL NIL NIL)",
        ),
        (
            b"From: user@domain (Real Name)\nSender: \nReply-To: \n",
            b'(NIL NIL (("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) '
            b'(("Real Name" NIL "user" "domain")) NIL NIL NIL NIL NIL)',
        ),
        (
            b"From: <@route:user@domain>\n",
            b'(NIL NIL ((NIL "@route" "user" "domain")) ((NIL "@route" "user" "domain")) '
            b'((NIL "@route" "user" "domain")) NIL NIL NIL NIL NIL)',
        ),
        # and more
        (
            b"Subject: =?utf-8?q?caf=C3=A9?=\r\n  folded\r\n"
            b'From: "Doe, John" <john.doe@example.org>, =?utf-8?b?SsO2cmc=?= <j@[127.0.0.1]>\r\n'
            b"To: undisclosed-recipients:;\r\nCc: hello <user>, @domain, (only a comment), ,\r\n"
            b'Bcc: "quoted local"@example.org, A (middle) B . C <a@b>, broken <x@y\r\n',
            b'(NIL "=?utf-8?q?caf=C3=A9?=  folded" '  # unfolding only drops the CRLF
            b'(("Doe, John" NIL "john.doe" "example.org")'
            b'("=?utf-8?b?SsO2cmc=?=" NIL "j" "[127.0.0.1]")) '
            b'(("Doe, John" NIL "john.doe" "example.org")'
            b'("=?utf-8?b?SsO2cmc=?=" NIL "j" "[127.0.0.1]")) '
            b'(("Doe, John" NIL "john.doe" "example.org")'
            b'("=?utf-8?b?SsO2cmc=?=" NIL "j" "[127.0.0.1]")) '
            b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) '
            b'(("hello" NIL "user" "")(NIL NIL "" "domain")) '
            b'((NIL NIL "quoted local" "example.org")("A B . C" NIL "a" "b")'
            b'("broken" NIL "x" "y")) NIL NIL)',
        ),
    ],
)
def test_envelope(header: bytes, expected: bytes) -> None:
    assert envelope(first_values(cached_header_lines(header + b"\n")), utf8=False) == expected


def test_envelope_of_8bit_headers() -> None:
    # as the index should cache them: 8-bit bytes as surrogates
    raw = "Jörg <j@example.org>".encode().decode("ascii", "surrogateescape")
    headers = {"subject": "café", "from": raw, "to": "\udce9t\udce9 <a@b>"}
    as_utf8 = envelope(headers, utf8=True)
    assert as_utf8.startswith('(NIL "café" (("Jörg" NIL "j" "example.org"))'.encode())
    assert b'(({3}\r\n\xe9t\xe9 NIL "a" "b"))' in as_utf8  # not UTF-8: a literal still
    assert envelope(headers, utf8=False).startswith(
        b'(NIL {5}\r\ncaf\xc3\xa9 (({5}\r\nJ\xc3\xb6rg NIL "j" "example.org"))'
    )


def test_enclosed_envelope_keeps_8bit_bytes() -> None:
    message = (
        b"Content-Type: message/rfc822\r\n\r\n"
        b"Subject: caf\xc3\xa9\r\nFrom: J\xc3\xb6rg <j@example.org>\r\n\r\nbody\r\n"
    )
    structure = bodystructure(message, extensible=False, utf8=True)
    assert '(NIL "café" (("Jörg" NIL "j" "example.org"))'.encode() in structure


# -- parameters ----------------------------------------------------------------------------------


def test_rfc2231_parameters_are_joined_and_kept_encoded() -> None:
    message = (
        b"Content-Type: application/pdf;\r\n name*0*=utf-8''caf%C3%A9;\r\n name*1*=%20au%20lait;"
        b' title*0="two "; title*1="pieces"\r\n'
        b"Content-Disposition: ATTACHMENT; filename*=iso-8859-1'fr'd%E9j%E0.pdf\r\n"
        b'Content-Language: fr\r\nContent-Location: "x"\r\n\r\n%PDF'
    )
    assert bodystructure(message, extensible=True, utf8=False) == (
        b'("APPLICATION" "PDF" ("NAME*" "utf-8\'\'caf%C3%A9%20au%20lait" "TITLE" "two pieces") '
        b'NIL NIL "7BIT" 4 NIL ("ATTACHMENT" ("FILENAME*" "iso-8859-1\'fr\'d%E9j%E0.pdf")) '
        b'"fr" "\\"x\\"")'
    )


def test_8bit_parameters_are_kept() -> None:
    message = b'Content-Type: text/plain; name="caf\xc3\xa9.txt"\r\n\r\nx'
    assert b'("NAME" "caf\xc3\xa9.txt")' in bodystructure(message, extensible=False, utf8=True)
    assert b'("NAME" {9}\r\ncaf\xc3\xa9.txt)' in bodystructure(
        message, extensible=False, utf8=False
    )


# -- malformed mail ------------------------------------------------------------------------------


def test_missing_closing_delimiter() -> None:
    message = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\npreamble\r\n"
        b"--b\r\n\r\none\r\n--b \r\nContent-Type: text/html\r\n\r\ntwo\r\n"
    )
    assert bodystructure(message, extensible=False, utf8=False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 3 0)'
        b'("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "7BIT" 5 1) "MIXED")'
    )
    assert section_bytes(message, Section(part=(2,))) == b"two\r\n"


def test_longer_boundary_lines_are_not_delimiters() -> None:
    message = (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\n"
        b"Content-Type: multipart/alternative; boundary=b2\n\n--b2\n\ninner\n--b2--\n"
        b"--b--x\n--b--\n"
    )
    structure = parse_structure(message)
    assert [child.subtype for child in structure.children] == ["alternative"]
    assert section_bytes(message, Section(part=(1, 1))) == b"inner"
    assert section_bytes(message, Section(part=(1,))) == b"--b2\n\ninner\n--b2--\n--b--x"


@pytest.mark.parametrize(
    ("message", "params"),
    [
        (b"Content-Type: multipart/mixed\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n", b"NIL"),
        (b"Content-Type: multipart/mixed; boundary=b\r\n\r\nno line\r\n", b'("BOUNDARY" "b")'),
    ],
)
def test_multipart_without_parts_is_opaque(message: bytes, params: bytes) -> None:
    body = message[message.index(b"\r\n\r\n") + 4 :]
    assert bodystructure(message, extensible=False, utf8=False) == (
        b'("APPLICATION" "OCTET-STREAM" %s NIL NIL "7BIT" %d)' % (params, len(body))
    )
    assert section_bytes(message, Section(part=(1,))) == body


def test_encoded_message_is_opaque() -> None:
    message = (
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"U3ViamVjdDogeA==\r\n"
    )
    assert bodystructure(message, extensible=False, utf8=False) == (
        b'("APPLICATION" "OCTET-STREAM" NIL NIL NIL "BASE64" 18)'
    )


def test_digest_parts_are_messages() -> None:
    message = (
        b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n"
        b"Subject: one\r\n\r\nfirst\r\n--d--\r\n"
    )
    structure = parse_structure(message)
    assert structure.children[0].message is not None
    assert section_bytes(message, Section(part=(1,), text="HEADER")) == b"Subject: one\r\n\r\n"


def test_header_block_without_empty_line() -> None:
    message = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nthis is no header\r\n--b--\r\n"
    )
    part = parse_structure(message).children[0]
    assert part.body_start == part.start
    assert section_bytes(message, Section(part=(1,))) == b"this is no header"
    assert section_bytes(message, Section(part=(1,), text="MIME")) == b""


def test_deep_nesting_is_bounded() -> None:
    depth = mime.MAX_DEPTH + 20
    message = b""
    for level in reversed(range(depth)):
        message = (
            b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n%s\r\n--b%d--\r\n"
            % (level, level, message, level)
        )
    structure = bodystructure(message, extensible=True, utf8=False)
    assert structure.count(b'"MIXED"') == mime.MAX_DEPTH
    assert b'"APPLICATION" "OCTET-STREAM"' in structure
    assert section_bytes(message, Section(part=(1,) * mime.MAX_DEPTH)) is not None


def test_part_count_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mime, "MAX_PARTS", 5)
    message = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n\r\nx\r\n" * 10
    assert len(parse_structure(message).children) == 4


def corrupted(rng: random.Random, originals: list[bytes]) -> bytes:
    data = bytearray(rng.choice(originals))
    for _ in range(rng.randrange(1, 8)):
        at = rng.randrange(len(data))
        action = rng.randrange(4)
        if action == 0:
            del data[at : at + rng.randrange(1, 30)]
        elif action == 1:
            data[at:at] = rng.choice(
                [b"\r\n", b"\n\n", b"--", b":", b"(", b'"', b"<", b";", b"=?", b"\xff", b"\0"]
            )
        elif action == 2:
            data[at] = rng.randrange(256)
        else:
            start = rng.randrange(len(data))
            data[at:at] = data[start : start + rng.randrange(1, 300)]
    return bytes(data)


def test_corrupted_messages_never_raise() -> None:
    rng = random.Random(20261122)
    sections = [
        Section(),
        Section(text="HEADER"),
        Section(text="TEXT"),
        Section(text="HEADER.FIELDS", fields=("SUBJECT", "FROM")),
        Section(part=(1,)),
        Section(part=(2,), text="MIME"),
        Section(part=(2, 1)),
        Section(part=(2,), text="TEXT"),
        Section(part=(2, 1, 2)),
    ]
    originals = [mixed(), DOVECOT, DOVECOT.replace(b"\r\n", b"\n")]
    for _ in range(500):
        data = corrupted(rng, originals)
        structure = parse_structure(data)
        for extensible in (True, False):
            for utf8 in (True, False):
                assert bodystructure(data, extensible=extensible, utf8=utf8, structure=structure)
        assert envelope(first_values(cached_header_lines(data)), utf8=False).startswith(b"(")
        for section in sections:
            section_bytes(data, section, structure=structure)
            with contextlib.suppress(UnknownTransferEncoding):
                binary_section(data, section, structure=structure)


def test_garbage_addresses_never_raise() -> None:
    rng = random.Random(7)
    alphabet = '<>@,:;."()[]\\ ab=?'
    for _ in range(2000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randrange(30)))
        assert envelope({"from": value, "to": value}, utf8=False).startswith(b"(")


# -- speed ---------------------------------------------------------------------------------------
