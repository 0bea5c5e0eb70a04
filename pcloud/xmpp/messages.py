"""Message routing among local users (RFC 6121 §8.5), with offline storage (XEP-0160) and
carbons (carbons.py).

To a full JID: the session with that resource, whatever its presence (§8.5.3.1); if there is
none, chat and normal messages are handled as if sent to the bare JID, groupchat gets
`service-unavailable`, the rest is dropped (§8.5.3.2.1). To a bare JID: normal, chat and
headline messages go to every available resource with a non-negative priority (the "all
resources" choice §8.5.2.1.1 allows, which needs no carbons); groupchat gets
`service-unavailable`; errors are dropped. With no such resource, normal and chat messages are
kept (up to `max_offline_messages`, else `service-unavailable`) and delivered, with a delay
stamp (XEP-0203), after the user's next initial presence; messages with nothing but chat states
(XEP-0085) are not worth keeping and are dropped.

A message to a user who does not exist gets `service-unavailable` (chat and normal) or is
dropped (§8.5.1); to another domain, `remote-server-not-found` (no federation yet).
"""

from __future__ import annotations

import datetime
import logging
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

from slixmpp import JID
from slixmpp.plugins.xep_0203.stanza import Delay

from pcloud.xmpp import archive, carbons
from pcloud.xmpp.errors import XMPPError
from pcloud.xmpp.wire import to_text

if TYPE_CHECKING:
    from pcloud.xmpp.router import Router
    from pcloud.xmpp.session import Session

log = logging.getLogger(__name__)

CHATSTATES_NS = "http://jabber.org/protocol/chatstates"


def outbound(session: Session, element: Element, to: JID | None) -> None:
    """A message a user's resource sent: to its recipient, with carbons for its other ones."""
    target = to or JID(session.bare)  # no 'to': the user's own account (RFC 6120 §10.3.1)
    if not session.router.is_local(target.domain):
        if element.get("type") == "error":
            return
        raise XMPPError("remote-server-not-found", f"{target.domain} is not served here")
    archive.strip_claimed_ids(session.router, element)
    entries = archive.prepare(session, element, target)
    try:
        deliver(session.router, element, target)
    except XMPPError:
        if entries:  # refused: not archived, and the error reply has no archive id
            element.remove(element[-1])  # the stanza-id `prepare` appended
        raise
    archive.record(session.router, entries)
    carbons.sent(session, element)


def deliver(router: Router, element: Element, to: JID) -> None:
    kind = element.get("type") or "normal"
    answered = kind in ("normal", "chat", "groupchat")  # the others are dropped, not refused
    if not to.user or not router.user_exists(to.bare):
        if answered:
            raise XMPPError("service-unavailable", "no such user")
        return
    if to.resource:
        target = router.session(to.bare, to.resource)
        if target is not None:
            target.send(element)
            carbons.received(router, to.bare, element, target)
            return
        if kind not in ("normal", "chat"):
            if kind == "groupchat":
                raise XMPPError("service-unavailable", "no such resource")
            return
    if kind in ("groupchat", "error"):
        if kind == "groupchat":
            raise XMPPError("service-unavailable", "not a chat room")
        return
    targets = [s for s in router.available(to.bare) if s.priority >= 0]
    for target in targets:
        target.send(element)
    if not targets and kind in ("normal", "chat"):
        _keep(router, element, to.bare)


def _keep(router: Router, element: Element, owner: str) -> None:
    if all(child.tag.startswith(f"{{{CHATSTATES_NS}}}") for child in element):
        return
    limit = router.services.config.xmpp.max_offline_messages
    if not router.services.xmpp.store_offline(owner, to_text(element), limit):
        log.info("xmpp offline storage full owner=%s", owner)
        raise XMPPError("service-unavailable", "the recipient's storage is full", etype="wait")


def deliver_offline(session: Session) -> None:
    """XEP-0160: the messages kept while the user was away, to their first available resource
    with a non-negative priority."""
    for text, stored in session.services.xmpp.take_offline(session.bare):
        element = ET.fromstring(text)  # written by to_text: no DTD, nothing to expand
        delay = Delay()
        delay["from"] = session.domain
        delay["stamp"] = datetime.datetime.fromtimestamp(stored, datetime.UTC)
        delay["text"] = "Offline storage"
        element.append(delay.xml)
        session.send(element)
