"""The stream parser (pcloud.xmpp.parse), without sockets."""

from __future__ import annotations

import pytest

from pcloud.xmpp.errors import StreamError
from pcloud.xmpp.parse import StreamClose, StreamOpen, StreamParser

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0' "
    b"xml:lang='en'>"
)


def test_header_stanzas_and_end_in_any_chunks() -> None:
    parser = StreamParser(1000)
    data = HEADER + b"<message to='a@b'><body>x &amp; y</body></message> <iq type='get'/>"
    events = [event for byte in data for event in parser.feed(bytes([byte]))]
    assert events[0] == StreamOpen(
        "{http://etherx.jabber.org/streams}stream",
        {"to": "example.org", "version": "1.0", "{http://www.w3.org/XML/1998/namespace}lang": "en"},
        "jabber:client",
    )
    message, iq = events[1:]
    assert message.tag == "{jabber:client}message" and message.get("to") == "a@b"
    assert message.findtext("{jabber:client}body") == "x & y"
    assert iq.tag == "{jabber:client}iq"
    assert parser.feed(b"</stream:stream>") == [StreamClose()]


@pytest.mark.parametrize(
    ("data", "condition"),
    [
        (b"<!DOCTYPE x [<!ENTITY a 'aaaa'>]>" + HEADER, "restricted-xml"),
        (b"<!DOCTYPE x SYSTEM 'file:///etc/passwd'>" + HEADER, "restricted-xml"),
        (HEADER + b"<!-- hi -->", "restricted-xml"),
        (HEADER + b"<?target data?>", "restricted-xml"),
        (HEADER + b"<message>&custom;</message>", "not-well-formed"),
        (HEADER + b"<message></iq>", "not-well-formed"),
        (HEADER + b"<message>\xff</message>", "not-well-formed"),
        (b"<?xml version='1.0' encoding='UTF-16'?>" + HEADER, "unsupported-encoding"),
        (HEADER + b"words", "bad-format"),
        (HEADER + b"<a>" * 70, "policy-violation"),
    ],
)
def test_refused_input(data: bytes, condition: str) -> None:
    with pytest.raises(StreamError) as raised:
        StreamParser(1000).feed(data)
    assert raised.value.condition == condition


def test_element_size_is_bounded_across_chunks() -> None:
    parser = StreamParser(300)  # the header is an element too: about 180 bytes here
    parser.feed(HEADER)
    parser.feed(b"<message>" + b"a" * 250)
    with pytest.raises(StreamError) as raised:
        parser.feed(b"a" * 50)
    assert raised.value.condition == "policy-violation"
    # an unfinished tag counts too: expat holds it without telling
    parser = StreamParser(300)
    parser.feed(HEADER)
    with pytest.raises(StreamError):
        parser.feed(b"<message to='" + b"a" * 400)


def test_whitespace_keepalives_and_many_small_stanzas_stay_within_the_bound() -> None:
    parser = StreamParser(300)
    parser.feed(HEADER)
    for _ in range(1000):
        assert len(parser.feed(b" <iq type='get' id='1'/>\n")) == 1
