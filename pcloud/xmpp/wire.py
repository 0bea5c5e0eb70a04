"""What goes on the wire: namespaces, the stream header, stream errors, and elements serialized
with slixmpp's `tostring` (RFC 6120 §4.7, §4.9, §11).

Stanzas leave in the stream's default namespace (jabber:client, not repeated on each stanza);
<stream:features> and <stream:error> get the "stream:" prefix the header binds (some clients
match on it), written here: slixmpp's tostring doubles a mapped prefix ("stream:stream:error").
"""

from __future__ import annotations

import secrets
from typing import Any, ClassVar, cast
from xml.etree.ElementTree import Element
from xml.sax.saxutils import quoteattr

from slixmpp.stanza import StreamError
from slixmpp.xmlstream.tostring import tostring

from pcloud.xmpp.parse import STREAMS_NS

CLIENT_NS = "jabber:client"
XML_NS = "http://www.w3.org/XML/1998/namespace"
TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND_NS = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION_NS = "urn:ietf:params:xml:ns:xmpp-session"
STANZA_ERRORS_NS = "urn:ietf:params:xml:ns:xmpp-stanzas"


class _StreamNamespaces:
    """What slixmpp's tostring reads of the stream an element is written to."""

    default_ns = CLIENT_NS
    stream_ns = ""
    use_cdata = False
    namespace_map: ClassVar[dict[str, str]] = {XML_NS: "xml"}


_STREAM = cast(Any, _StreamNamespaces())


def serialize(element: Element) -> bytes:
    """An element as it is written to a client's stream."""
    namespace, _, name = element.tag[1:].partition("}")
    if namespace == STREAMS_NS:  # features and errors: no attributes, no text
        inner = "".join(tostring(child, xmlns=STREAMS_NS, stream=_STREAM) for child in element)
        return f"<stream:{name}>{inner}</stream:{name}>".encode()
    return tostring(element, xmlns=CLIENT_NS, stream=_STREAM, top_level=True).encode()


def to_text(element: Element) -> str:
    """An element on its own, its namespace declared (for storage: see `pcloud.store.xmpp`)."""
    return tostring(element, top_level=True)


def stream_header(domain: str, to: str | None) -> bytes:
    """RFC 6120 §4.7: the server's response stream header, with a fresh stream id."""
    attributes = f" from={quoteattr(domain)} id={quoteattr(secrets.token_hex(12))}"
    if to:
        attributes += f" to={quoteattr(to)}"
    return (
        f"<?xml version='1.0'?><stream:stream xmlns='{CLIENT_NS}' xmlns:stream='{STREAMS_NS}'"
        f"{attributes} version='1.0' xml:lang='en'>"
    ).encode()


STREAM_END = b"</stream:stream>"


def stream_error(condition: str, text: str = "") -> bytes:
    """RFC 6120 §4.9: the error that ends a stream, and the stream's end."""
    error = StreamError()
    error["condition"] = condition
    if text:
        error["text"] = text
    return serialize(error.xml) + STREAM_END
