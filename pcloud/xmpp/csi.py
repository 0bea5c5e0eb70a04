"""Client state indication (XEP-0352, urn:xmpp:csi:0): a phone says <inactive/> when nobody looks
at it, and the server holds back what is not urgent so that its radio may sleep; <active/>
writes what waited.

Offered as a stream feature after authentication; the nonzas are taken once a resource is bound
(before, they end the stream as any unexpected element does). While the client is inactive
(§5 leaves the policy to the server):
- held, in order: presence broadcasts (available and unavailable; only the latest of each
  sender's full JID is kept, in the latest's place) and messages that carry nothing but chat
  states (XEP-0085), hints (XEP-0334) or a thread, carbon copies of those included;
- urgent, written at once after all that waited: everything else, as messages with a body, an
  encrypted payload (OMEMO, OpenPGP) or a receipt, error messages, subscription presence, IQs;
- more than MAX_HELD waiting: all are written.

Stream management (XEP-0198) counts a stanza when it is written, not when it is held: the
client's <a h/> counts what reached it, and a stanza counted while held would wait both here and
in the resend queue, and come twice after a resumption. A session that ends drops what it held
(none of it is worth keeping offline); a resumed session stays in the state it was in.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

from slixmpp.plugins.xep_0352.stanza import ClientStateIndication

from pcloud.xmpp.carbons import CARBONS_NS, HINTS_NS
from pcloud.xmpp.errors import StreamError
from pcloud.xmpp.messages import CHATSTATES_NS
from pcloud.xmpp.wire import CLIENT_NS

if TYPE_CHECKING:
    from pcloud.xmpp.session import Session

CSI_NS = "urn:xmpp:csi:0"
FORWARD_NS = "urn:xmpp:forward:0"
MAX_HELD = 500
_MESSAGE = f"{{{CLIENT_NS}}}message"
_PRESENCE = f"{{{CLIENT_NS}}}presence"
_THREAD = f"{{{CLIENT_NS}}}thread"
_CARBON = f"{{{FORWARD_NS}}}forwarded/{_MESSAGE}"


class Held:
    """What waits for an inactive client: presence by its sender, messages by their order."""

    def __init__(self) -> None:
        self.stanzas: dict[str | int, Element] = {}
        self.count = 0


def feature() -> Element:
    return ClientStateIndication().xml


def handle(session: Session, element: Element) -> None:
    name = element.tag.rpartition("}")[2]
    if name == "inactive":
        if session.csi is None:
            session.csi = Held()
    elif name == "active":
        flush(session)
        session.csi = None
    else:
        raise StreamError("unsupported-stanza-type", f"{element.tag} is not expected here")


def held(session: Session, element: Element) -> bool:
    """Whether a stanza for an inactive client waits; an urgent one has what waited written
    before it."""
    state = session.csi
    assert state is not None
    if not _may_wait(element) or len(state.stanzas) >= MAX_HELD:
        flush(session)
        return False
    key: str | int
    if element.tag == _PRESENCE:
        key = element.get("from", "")
        state.stanzas.pop(key, None)  # only the latest counts
    else:
        state.count += 1
        key = state.count
    # A copy: presence.send_to readdresses the same element for each of its targets.
    state.stanzas[key] = copy.copy(element)
    return True


def flush(session: Session) -> None:
    state = session.csi
    if state is None or not state.stanzas:
        return
    waiting, state.stanzas = state.stanzas, {}
    for element in waiting.values():
        session.write(element)


def _may_wait(element: Element) -> bool:
    if element.tag == _PRESENCE:
        return element.get("type") in (None, "unavailable")
    return element.tag == _MESSAGE and element.get("type") != "error" and _idle(element)


def _idle(message: Element) -> bool:
    """Whether a message carries nothing but chat states and hints, or is a carbon copy of
    one."""
    for child in message:
        namespace = child.tag[1:].partition("}")[0]
        if namespace == CARBONS_NS:
            inner = child.find(_CARBON)
            if inner is None or not _idle(inner):
                return False
        elif namespace not in (CHATSTATES_NS, HINTS_NS) and child.tag != _THREAD:
            return False
    return True
