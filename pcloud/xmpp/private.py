"""Private XML storage (XEP-0049, jabber:iq:private): a user's own XML, one element per
namespace, that only they can read. Clients keep settings there; profanity, Psi and older
Gajim keep their chat room bookmarks (XEP-0048 storage:bookmarks) there.

A set replaces the element of each namespace it carries; a get of a namespace nobody stored
returns the empty element asked for (§3.3). An element must have a namespace other than the
client's own ones (§3.5: jabber:client, jabber:iq:private, and the like: `not-acceptable`).
Bounds: each element at most MAX_ELEMENT_BYTES, at most MAX_NAMESPACES per user (the rest is
`not-acceptable`, `resource-constraint`). Only the user's own account is served: a query to
another's gets `service-unavailable` from the session, as every IQ to an account does.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

from slixmpp.stanza import Iq

from pcloud.xmpp.errors import XMPPError
from pcloud.xmpp.wire import CLIENT_NS, to_text

if TYPE_CHECKING:
    from pcloud.xmpp.session import Session

PRIVATE_NS = "jabber:iq:private"
MAX_ELEMENT_BYTES = 64 * 1024  # bookmarks of a few hundred rooms
MAX_NAMESPACES = 100
_RESERVED = (CLIENT_NS, PRIVATE_NS, "jabber:server", "http://etherx.jabber.org/streams")


def handle(session: Session, iq: Iq) -> Element | None:
    query = iq.xml[0]
    if len(query) != 1:  # XEP-0049 §3.2: exactly one child
        raise XMPPError("not-acceptable", "one element in the query")
    element = query[0]
    namespace = element.tag[1:].split("}")[0] if element.tag.startswith("{") else ""
    if not namespace or namespace in _RESERVED:
        raise XMPPError("not-acceptable", "the element needs a namespace of its own")
    store = session.services.xmpp
    if iq["type"] == "get":
        stored = store.private_element(session.bare, namespace)
        answer = Element(f"{{{PRIVATE_NS}}}query")
        answer.append(ET.fromstring(stored) if stored else Element(element.tag))
        return answer  # written by to_text: nothing to expand
    text = to_text(element)
    if len(text.encode()) > MAX_ELEMENT_BYTES:
        raise XMPPError("not-acceptable", f"at most {MAX_ELEMENT_BYTES} bytes")
    if not store.put_private_element(session.bare, namespace, text, MAX_NAMESPACES):
        raise XMPPError("resource-constraint", "too many namespaces stored", etype="wait")
    return None
