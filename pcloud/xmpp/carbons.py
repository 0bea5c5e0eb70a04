"""Message carbons (XEP-0280): a user's other resources get copies of the chat messages that one
resource sends or receives, so that every device shows the whole conversation.

Copied: messages of type chat, and of type normal with a body (XEP-0280 §6), that carry no
<private/> carbons element and no <no-copy/> hint (XEP-0334); a copy is never copied again.
Messages to a bare JID reach every available resource already (messages.py), so only those to
a full JID are copied to the recipient's other resources.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element, SubElement

from slixmpp.plugins.xep_0280.stanza import ReceivedCarbon, SentCarbon
from slixmpp.plugins.xep_0297.stanza import Forwarded
from slixmpp.stanza import Iq, Message

from pcloud.xmpp.wire import CLIENT_NS

if TYPE_CHECKING:
    from pcloud.xmpp.router import Router
    from pcloud.xmpp.session import Session

CARBONS_NS = "urn:xmpp:carbons:2"
HINTS_NS = "urn:xmpp:hints"


def enable(session: Session, iq: Iq) -> None:
    session.carbons = True


def disable(session: Session, iq: Iq) -> None:
    session.carbons = False


def _eligible(element: Element) -> bool:
    kind = element.get("type") or "normal"
    if kind != "chat" and not (kind == "normal" and element.find(f"{{{CLIENT_NS}}}body")):
        return False
    excluded = (
        f"{{{CARBONS_NS}}}private",
        f"{{{CARBONS_NS}}}sent",
        f"{{{CARBONS_NS}}}received",
        f"{{{HINTS_NS}}}no-copy",
    )
    return not any(element.find(tag) is not None for tag in excluded)


def _copy(
    element: Element, owner: str, to: str, wrapper: type[SentCarbon | ReceivedCarbon]
) -> Element:
    copy = Message()
    copy["from"] = owner
    copy["to"] = to
    copy["type"] = element.get("type") or "normal"
    wrapped = wrapper()
    forwarded = Forwarded()
    forwarded.xml.append(element)
    wrapped.xml.append(forwarded.xml)
    copy.xml.append(wrapped.xml)
    SubElement(copy.xml, f"{{{HINTS_NS}}}no-store")  # an archive keeps the original
    return copy.xml


def sent(session: Session, element: Element) -> None:
    """Copies of a message a resource sent, for the user's other resources."""
    others = _others(session.router, session.bare, session)
    if others and _eligible(element):
        for other in others:
            other.send(_copy(element, session.bare, str(other.jid), SentCarbon))


def received(router: Router, owner: str, element: Element, delivered_to: Session) -> None:
    """Copies of a message delivered to one of the owner's resources, for the others."""
    others = _others(router, owner, delivered_to)
    if others and _eligible(element):
        for other in others:
            other.send(_copy(element, owner, str(other.jid), ReceivedCarbon))


def _others(router: Router, owner: str, session: Session) -> list[Session]:
    """The owner's other resources that want carbons (asked first: mostly there are none)."""
    if router.count(owner) < 2:
        return []
    return [other for other in router.sessions(owner) if other is not session and other.carbons]
