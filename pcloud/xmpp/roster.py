"""Rosters (RFC 6121 §2) and presence subscriptions (RFC 6121 §3), kept by pcloud.store.xmpp.

Roster get returns the listed items, or nothing when the client already has the current
version (§2.6); a session that asked for the roster gets roster pushes. Roster set changes an
item's name and groups only: the subscription and ask attributes a client sends are ignored
(§2.1.2); "remove" cancels the subscriptions both ways, then deletes the item (§2.5).

Subscription stanzas are applied to both sides at once, since every contact is local:
`subscription.outbound` on the sender's item, then `subscription.inbound` on the receiver's,
each change stored and pushed; the stanza goes on to the receiver's available resources (a
request for someone offline stays pending and is delivered at their next initial presence).
After an approval the approver's presence follows (§3.1.5); after a cancellation, unavailable
presence (§3.2.2, §3.3.3). Subscription stanzas are stamped with the sender's bare JID and
addressed to the receiver's bare JID (§3.1.2).
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

from slixmpp import JID
from slixmpp.jid import InvalidJID
from slixmpp.stanza import Iq, Presence
from slixmpp.stanza.roster import Roster
from slixmpp.stanza.roster import RosterItem as RosterItemStanza

from pcloud.store.xmpp import RosterItem
from pcloud.xmpp import presence, subscription
from pcloud.xmpp.errors import XMPPError

if TYPE_CHECKING:
    from pcloud.xmpp.router import Router
    from pcloud.xmpp.session import Session

ROSTER_NS = "jabber:iq:roster"
MAX_TEXT = 1023  # a name or group (RFC 6121 §2.1.2.4 lets servers limit them)


def handle(session: Session, iq: Iq) -> Element | None:
    if iq["type"] == "get":
        return _get(session, iq.xml[0])
    _set(session, iq.xml[0])
    return None


def _item_element(item: RosterItem, subscription_state: str | None = None) -> Element:
    element = RosterItemStanza()
    element["jid"] = item.contact
    if item.name:
        element["name"] = item.name
    element["subscription"] = subscription_state or item.subscription
    if item.ask:
        element["ask"] = "subscribe"
    element["groups"] = list(item.groups)
    return element.xml


def _get(session: Session, query: Element) -> Element | None:
    """RFC 6121 §2.1.3, §2.6.3."""
    session.interested = True
    version, items = session.services.xmpp.roster(session.bare)
    requested = query.get("ver")
    if requested is not None and requested == str(version):
        return None
    roster = Roster()
    if requested is not None:
        roster["ver"] = str(version)
    for item in items:
        roster.xml.append(_item_element(item))
    return roster.xml


def _set(session: Session, query: Element) -> None:
    """RFC 6121 §2.3, §2.5."""
    items = query.findall(f"{{{ROSTER_NS}}}item")
    if len(items) != 1:
        raise XMPPError("bad-request", "a roster set carries exactly one item")
    element = items[0]
    try:
        contact = JID(element.get("jid", ""))
    except InvalidJID:
        raise XMPPError("jid-malformed", "not a JID") from None
    if not contact.full:
        raise XMPPError("bad-request", "the item needs a jid")
    if element.get("subscription") == "remove":
        _remove(session, str(contact.bare))
        return
    groups = [group.text or "" for group in element.findall(f"{{{ROSTER_NS}}}group")]
    name = element.get("name", "")
    if len(set(groups)) != len(groups):
        raise XMPPError("bad-request", "a group is named twice")
    if any(not group or len(group) > MAX_TEXT for group in groups) or len(name) > MAX_TEXT:
        raise XMPPError("not-acceptable", f"names and groups are 1 to {MAX_TEXT} characters")
    store, owner = session.services.xmpp, session.bare
    bare = str(contact.bare)
    item = store.item(owner, bare) or RosterItem(bare)
    changed = dataclasses.replace(item, name=name, groups=tuple(groups), listed=True)
    push(session.router, owner, changed, store.put_item(owner, changed))


def _remove(session: Session, contact: str) -> None:
    store, owner = session.services.xmpp, session.bare
    item = store.item(owner, contact)
    if item is None or not item.listed:
        raise XMPPError("item-not-found", "no such roster item")
    if item.subscription in ("from", "both") or item.pending_in:
        _receive(session.router, owner, contact, "unsubscribed")
        _presence_between(session.router, owner, contact, available=False)
    if item.subscription in ("to", "both") or item.ask:
        _receive(session.router, owner, contact, "unsubscribe")
        _presence_between(session.router, contact, owner, available=False)
    version = store.remove_item(owner, contact)
    push(session.router, owner, RosterItem(contact), version, removed=True)


def push(
    router: Router, owner: str, item: RosterItem, version: int, *, removed: bool = False
) -> None:
    """RFC 6121 §2.1.6: the changed item to each of the owner's sessions that asked for the
    roster."""
    for target in router.sessions(owner):
        if target.interested and target.jid is not None:
            iq = Iq()
            iq["type"] = "set"
            iq["id"] = secrets.token_hex(8)
            iq["to"] = target.jid.full
            roster = Roster()
            roster["ver"] = str(version)
            roster.xml.append(_item_element(item, "remove" if removed else None))
            iq.xml.append(roster.xml)
            target.send(iq.xml)


# -- subscriptions (RFC 6121 §3) ----------------------------------------------------------------


def subscribe_stanza(session: Session, kind: str, to: JID | None) -> None:
    """A subscription stanza a user's resource sent."""
    if to is None or not to.user:
        raise XMPPError("bad-request", "a subscription stanza is addressed to a user")
    router = session.router
    if not router.is_local(to.domain):
        raise XMPPError("remote-server-not-found", f"{to.domain} is not served here")
    user, contact = session.bare, str(to.bare)
    if contact == user:
        return  # one's own presence needs no subscription
    change = subscription.outbound(session.services.xmpp.item(user, contact), contact, kind)
    _apply(router, user, change)
    if not change.forward:
        return
    _receive(router, user, contact, kind)
    if kind == "subscribed":
        _presence_between(router, user, contact, available=True)
    elif kind == "unsubscribed":
        _presence_between(router, user, contact, available=False)
    elif kind == "unsubscribe":
        _presence_between(router, contact, user, available=False)


def _receive(router: Router, sender: str, receiver: str, kind: str) -> None:
    """The receiver's side of a subscription stanza."""
    if not router.user_exists(receiver):
        return
    store = router.services.xmpp
    change = subscription.inbound(store.item(receiver, sender), sender, kind)
    _apply(router, receiver, change)
    if change.auto_reply:  # already approved: the server answers for the receiver (§3.1.3)
        _receive(router, receiver, sender, "subscribed")
        _presence_between(router, receiver, sender, available=True)
    if change.forward:
        stanza = Presence()
        stanza["type"] = kind
        stanza["from"] = sender
        presence.send_to(router.available(receiver), stanza.xml)


def _apply(router: Router, owner: str, change: subscription.Change) -> None:
    if change.changed:
        version = router.services.xmpp.put_item(owner, change.item)
        if change.shown:
            push(router, owner, change.item, version)


def _presence_between(router: Router, sender: str, receiver: str, *, available: bool) -> None:
    """Each available resource of the sender's presence (or its end) to the receiver's."""
    targets = router.available(receiver)
    for source in router.available(sender):
        if source.jid is None or source.presence is None:
            continue
        if available:
            presence.send_to(targets, source.presence)
        else:
            goodbye = Presence()
            goodbye["type"] = "unavailable"
            goodbye["from"] = source.jid.full
            presence.send_to(targets, goodbye.xml)
