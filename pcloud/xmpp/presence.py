"""Presence among local users (RFC 6121 §4): availability broadcast, probes, directed presence.
Subscription requests and answers are roster.py's.

A session's initial available presence goes to its contacts with a "from" or "both"
subscription and to all of the user's available resources, itself included (§4.2.2); the
server then probes the contacts the user is subscribed to ("to", "both"): here, since they are
local, it sends the user their available resources' last presence at once (§4.3). Then the
user's other resources' presence, the messages kept while they were offline (if the priority
is not negative), and the subscription requests still awaiting their answer (§3.1.3) follow.
Later available presence is broadcast the same way, without probes. Unavailable presence (sent,
or made by the server when the stream ends) goes to the same contacts and resources, and to
every JID the session sent directed presence to (§4.6).

Presence to a user who does not exist, and probes sent by clients, are dropped (§8.5.1, §4.3).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

from slixmpp import JID
from slixmpp.stanza import Presence

from pcloud.xmpp import blocking, messages, pep
from pcloud.xmpp.errors import XMPPError
from pcloud.xmpp.wire import CLIENT_NS

if TYPE_CHECKING:
    from pcloud.xmpp.router import Router
    from pcloud.xmpp.session import Session


def outbound(session: Session, element: Element, to: JID | None) -> None:
    kind = element.get("type") or "available"
    if kind == "probe":
        return
    if kind not in ("available", "unavailable", "error"):
        raise XMPPError("bad-request", f"{kind} is not a presence type")
    if to is not None and to.full != session.bare:
        _directed(session, element, to, kind)
    elif kind == "available":
        _available(session, element)
    elif kind == "unavailable":
        _unavailable(session, element, include_self=True)


def _priority(element: Element) -> int:
    try:
        priority = int(element.findtext(f"{{{CLIENT_NS}}}priority") or 0)
    except ValueError:
        raise XMPPError("bad-request", "a priority is an integer") from None
    if not -128 <= priority <= 127:
        raise XMPPError("bad-request", "a priority is from -128 to 127")
    return priority


def send_to(targets: Iterable[Session], element: Element) -> None:
    """Deliver one presence to several sessions, each with its own full JID as 'to'."""
    for target in blocking.unblocked(targets, element.get("from", "")):
        if target.jid is not None:
            element.set("to", target.jid.full)
            target.send(element)


def subscribers(session: Session) -> list[Session]:
    """The available sessions of the user's contacts who see their presence."""
    return [
        contact_session
        for item in session.services.xmpp.items(session.bare)
        if item.subscription in ("from", "both")
        for contact_session in session.router.available(item.contact)
    ]


def _available(session: Session, element: Element) -> None:
    priority = _priority(element)
    initial = session.presence is None
    session.presence, session.priority = element, priority
    router, user = session.router, session.bare
    send_to([*subscribers(session), *router.available(user)], element)
    pep.available(session, element, initial=initial)  # caps, and the last items (XEP-0163 §6.2)
    if not initial:
        return
    for item in session.services.xmpp.items(user):
        if item.subscription in ("to", "both"):
            for contact_session in router.available(item.contact):
                send_to([session], _presence_of(contact_session))
    for other in router.available(user):
        if other is not session:
            send_to([session], _presence_of(other))
    if priority >= 0:
        messages.deliver_offline(session)
    for item in session.services.xmpp.items(user, pending_in=True):
        request = Presence()
        request["type"] = "subscribe"
        request["from"] = item.contact
        send_to([session], request.xml)


def _presence_of(session: Session) -> Element:
    assert session.presence is not None
    return session.presence


def _unavailable(session: Session, element: Element, *, include_self: bool) -> None:
    router = session.router
    own = [s for s in router.available(session.bare) if include_self or s is not session]
    directed = [
        target
        for full in session.directed
        if (target := _session_at(router, JID(full))) is not None
    ]
    targets = {id(s): s for s in [*subscribers(session), *own, *directed]}
    session.presence = None
    session.directed.clear()
    send_to(targets.values(), element)


def _session_at(router: Router, jid: JID) -> Session | None:
    return router.session(jid.bare, jid.resource)


def gone(session: Session) -> None:
    """The session ended without saying goodbye: the server says it (RFC 6121 §4.5.2)."""
    if session.presence is None and not session.directed:
        return
    assert session.jid is not None
    goodbye = Presence()
    goodbye["type"] = "unavailable"
    goodbye["from"] = session.jid.full
    _unavailable(session, goodbye.xml, include_self=False)


def _directed(session: Session, element: Element, to: JID, kind: str) -> None:
    """RFC 6121 §4.6: presence sent to one entity only."""
    router = session.router
    if not router.is_local(to.domain):
        raise XMPPError("remote-server-not-found", f"{to.domain} is not served here")
    if to.resource:
        target = router.session(to.bare, to.resource)
        targets = [target] if target is not None else []
    else:
        targets = router.available(to.bare)
    for target in targets:
        target.send(element)
    if kind == "available":
        session.directed.update(t.jid.full for t in targets if t.jid is not None)
    else:
        session.directed.difference_update(t.jid.full for t in targets if t.jid is not None)
