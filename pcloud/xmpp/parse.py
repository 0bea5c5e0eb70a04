"""The XML stream parser: bytes in, stream events out (RFC 6120 §4, §11). Pure: no sockets.

A stream is one XML document whose root is <stream:stream>; each first-level child is an
element (a stanza, or a negotiation element such as <starttls/> or <auth/>), handed out whole
as an ElementTree element once its end tag is read.

Why expat directly rather than slixmpp's XMLStream parser (an ElementTree XMLPullParser): RFC
6120 §11.1 restricts the XML a stream may carry (no DTD, no comments, no processing
instructions, no entities but the predefined ones), and refusing those needs expat's own
handlers, which the pull parser hides. Refusing any DOCTYPE is also the defence against entity
expansion ("billion laughs") and external entities, as defusedxml does it.

Bounds: a first-level element (with any bytes the parser holds before it completes) is at most
`max_stanza_bytes`, nested at most MAX_DEPTH deep; beyond, a `policy-violation` error. Bytes
are UTF-8 whatever the document declares (RFC 6120 §11.6).
"""

from __future__ import annotations

import xml.parsers.expat
from dataclasses import dataclass
from xml.etree.ElementTree import Element, TreeBuilder

from pcloud.xmpp.errors import StreamError

STREAMS_NS = "http://etherx.jabber.org/streams"
MAX_DEPTH = 64  # below the stream element; serializing deeper trees would recurse too far


@dataclass(frozen=True)
class StreamOpen:
    """The stream header: its tag, attributes ("to", "{xml-ns}lang"…) and default namespace."""

    tag: str
    attributes: dict[str, str]
    default_namespace: str | None


@dataclass(frozen=True)
class StreamClose:
    """</stream:stream>"""


Event = StreamOpen | Element | StreamClose


def _qualified(name: str) -> str:
    """expat's "namespace}local" as ElementTree's "{namespace}local"."""
    return "{" + name if "}" in name else name


def _too_large(limit: int) -> StreamError:
    return StreamError("policy-violation", f"an element is larger than {limit} bytes")


class StreamParser:
    def __init__(self, max_stanza_bytes: int) -> None:
        self.max_stanza_bytes = max_stanza_bytes
        self._events: list[Event] = []
        self._depth = 0
        self._builder: TreeBuilder | None = None
        self._default_namespace: str | None = None
        self._fed = 0  # bytes fed so far
        self._boundary = 0  # where the element being read (or the next one) starts
        parser = xml.parsers.expat.ParserCreate("UTF-8", namespace_separator="}")
        parser.buffer_text = True
        parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text
        parser.StartNamespaceDeclHandler = self._namespace
        parser.XmlDeclHandler = self._declaration
        for restricted in (
            "StartDoctypeDeclHandler",
            "EntityDeclHandler",
            "UnparsedEntityDeclHandler",
            "NotationDeclHandler",
            "ExternalEntityRefHandler",
            "CommentHandler",
            "ProcessingInstructionHandler",
        ):
            setattr(parser, restricted, self._restricted)
        self._parser = parser

    def feed(self, data: bytes) -> list[Event]:
        """The events these bytes complete; raises StreamError when the stream must end."""
        self._fed += len(data)
        try:
            self._parser.Parse(data, False)
        except xml.parsers.expat.ExpatError as error:
            message = xml.parsers.expat.errors.messages[error.code]
            raise StreamError("not-well-formed", message) from None
        if self._fed - self._boundary > self.max_stanza_bytes:
            raise _too_large(self.max_stanza_bytes)
        events, self._events = self._events, []
        return events

    # -- expat handlers -------------------------------------------------------------------------

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        for key in attributes:
            if "}" in key:  # rare (xml:lang): the others are used as expat made them
                attributes = {_qualified(key): value for key, value in attributes.items()}
                break
        if self._depth == 0:
            self._events.append(StreamOpen(_qualified(name), attributes, self._default_namespace))
            self._boundary = self._parser.CurrentByteIndex
        else:
            if self._depth > MAX_DEPTH:
                raise StreamError("policy-violation", "elements are nested too deeply")
            if self._builder is None:
                self._builder = TreeBuilder()
                self._boundary = self._parser.CurrentByteIndex  # a first-level element begins
            self._builder.start(_qualified(name), attributes)
        self._depth += 1

    def _end(self, name: str) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._events.append(StreamClose())
        elif self._builder is not None:
            self._builder.end(_qualified(name))
            if self._depth == 1:
                # a whole element in one feed too (the bytes fed are checked after it)
                if self._parser.CurrentByteIndex - self._boundary > self.max_stanza_bytes:
                    raise _too_large(self.max_stanza_bytes)
                self._events.append(self._builder.close())
                self._builder = None
                self._boundary = self._parser.CurrentByteIndex

    def _text(self, text: str) -> None:
        if self._builder is not None:
            self._builder.data(text)
        elif text.strip():
            raise StreamError("bad-format", "text is not allowed between stanzas")
        else:
            self._boundary = self._parser.CurrentByteIndex  # whitespace keepalives

    def _namespace(self, prefix: str | None, uri: str) -> None:
        if self._depth == 0 and prefix is None:
            self._default_namespace = uri

    def _declaration(self, version: str, encoding: str | None, standalone: int) -> None:
        if encoding is not None and encoding.lower() not in ("utf-8", "utf8"):
            raise StreamError("unsupported-encoding", "streams are UTF-8")

    def _restricted(self, *_: object) -> None:
        raise StreamError(
            "restricted-xml", "DTDs, entities, comments and processing instructions are refused"
        )
