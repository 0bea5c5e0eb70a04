"""What goes on the wire: namespaces, the stream header, stream errors, and elements serialized
(RFC 6120 §4.7, §4.9, §11).

Stanzas leave in the stream's default namespace (jabber:client, not repeated on each stanza);
<stream:features> and <stream:error> get the "stream:" prefix the header binds (some clients
match on it).

Elements are written as slixmpp's `tostring` writes them (the same bytes: a namespace declared
where it changes, double quotes, the five XML escapes, attributes in other namespaces than xml:
left out), by a serializer of our own: every stanza routed is written at least once, and
slixmpp's, escaping character by character, cost a quarter of the server's time per message.
"""

from __future__ import annotations

import secrets
from xml.etree.ElementTree import Element
from xml.sax.saxutils import quoteattr

from slixmpp.stanza import StreamError

from pcloud.xmpp.parse import STREAMS_NS

CLIENT_NS = "jabber:client"
XML_NS = "http://www.w3.org/XML/1998/namespace"
TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND_NS = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION_NS = "urn:ietf:params:xml:ns:xmpp-session"
STANZA_ERRORS_NS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def serialize(element: Element) -> bytes:
    """An element as it is written to a client's stream."""
    out: list[str] = []
    if element.tag.startswith(_STREAMS_PREFIX):  # features and errors: no attributes, no text
        name = element.tag[len(_STREAMS_PREFIX) :]
        out.append(f"<stream:{name}>")
        for child in element:
            _write(child, STREAMS_NS, out)
        out.append(f"</stream:{name}>")
    else:  # in the stream's namespace (or none: nothing to declare either)
        _write(element, CLIENT_NS if element.tag[0] == "{" else "", out)
    return "".join(out).encode()


def to_text(element: Element) -> str:
    """An element on its own, its namespace declared (for storage: see `pcloud.store.xmpp`)."""
    out: list[str] = []
    _write(element, "", out)
    return "".join(out)


_STREAMS_PREFIX = f"{{{STREAMS_NS}}}"
_XML_PREFIX = f"{{{XML_NS}}}"


def _escape(text: str) -> str:
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "'" in text:
        text = text.replace("'", "&apos;")
    if '"' in text:
        text = text.replace('"', "&quot;")
    return text


def _write(element: Element, outer: str, out: list[str]) -> None:
    """An element inside one whose namespace is `outer`."""
    tag = element.tag
    namespace, _, name = tag[1:].partition("}") if tag[0] == "{" else ("", "", tag)
    out.append(f'<{name} xmlns="{namespace}"' if namespace != outer else f"<{name}")
    for key, value in element.attrib.items():
        if key[0] != "{":
            out.append(f' {key}="{_escape(value)}"')
        elif key.startswith(_XML_PREFIX):
            out.append(f' xml:{key[len(_XML_PREFIX) :]}="{_escape(value)}"')
    if element.text or len(element):
        out.append(">")
        if element.text:
            out.append(_escape(element.text))
        for child in element:
            _write(child, namespace, out)
        out.append(f"</{name}>")
    else:
        out.append(" />")
    if element.tail:
        out.append(_escape(element.tail))


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
