"""Blocking (XEP-0191, urn:xmpp:blocking): the JIDs a user exchanges nothing with.

The blocklist is kept by pcloud.store.xmpp; each session of a user online holds it in memory
(`Session.blocked`, read on first use and dropped on every change), so that the check on each
stanza is a set lookup. Get, block, unblock and unblock-all (§3.2 to §3.5); a change is pushed to
the user's sessions that asked for the list (§3.3). At most MAX_ITEMS per user
(`resource-constraint` beyond).

An item matches as XEP-0016's JIDs do (§4): a full JID that resource only, a bare JID each of its
resources, `domain/resource`, and a domain every JID there. Between a user and what they block
(§3.6):
- what the user sends to it gets `not-acceptable` with <blocked xmlns='urn:xmpp:blocking:errors'/>;
- what it sends to the user: messages and IQ get/set get `service-unavailable` (as if there
  were no such user), presence of any type (subscription requests included) and IQ results and
  errors are dropped without a word;
- presence broadcasts go neither way (`unblocked`, called by presence.send_to). On blocking,
  those of the blocked who saw the user available (subscribers, directed presence) get
  unavailable presence from each of the user's available resources; on unblocking, the
  unblocked subscribers get their current presence.
What is addressed to the server or to the user's own account is never blocked.

Not supported: blocking reports (XEP-0377); messages kept offline before a block are still
delivered.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

from slixmpp import JID
from slixmpp.jid import InvalidJID
from slixmpp.plugins.xep_0191.stanza import Block, BlockItem, BlockList, Unblock
from slixmpp.stanza import Iq, Presence

from pcloud.xmpp import presence
from pcloud.xmpp.errors import XMPPError
from pcloud.xmpp.wire import CLIENT_NS

BLOCKING_NS = "urn:xmpp:blocking"

if TYPE_CHECKING:
    from pcloud.xmpp.router import Router
    from pcloud.xmpp.session import Session

ERRORS_NS = "urn:xmpp:blocking:errors"
MAX_ITEMS = 1000
_MESSAGE = f"{{{CLIENT_NS}}}message"
_IQ = f"{{{CLIENT_NS}}}iq"


def of(session: Session) -> frozenset[str]:
    """The blocklist of a session's user."""
    if session.blocked is None:
        session.blocked = session.services.xmpp.blocked(session.bare)
    return session.blocked


def blocklist(router: Router, bare: str) -> frozenset[str]:
    """A user's blocklist: from memory when they are online, else from the store."""
    for session in router.sessions(bare):
        return of(session)
    return router.services.xmpp.blocked(bare)


def matches(blocked: frozenset[str], jid: JID) -> bool:
    if not blocked:
        return False
    if jid.full in blocked or jid.bare in blocked or jid.domain in blocked:
        return True
    return bool(jid.resource) and f"{jid.domain}/{jid.resource}" in blocked


def stops(session: Session, element: Element, to: JID) -> bool:
    """§3.6 for a stanza a user's resource sends to `to`: raises the error owed to the sender,
    or returns True when the stanza is dropped without a word."""
    if not to.user or to.bare == session.bare:
        return False
    assert session.jid is not None
    kind = element.get("type")
    if matches(of(session), to):
        if kind == "error":
            return True
        raise XMPPError(
            "not-acceptable", "you block this address", extension="blocked", extension_ns=ERRORS_NS
        )
    if not matches(blocklist(session.router, to.bare), session.jid):
        return False
    if (element.tag == _MESSAGE and kind != "error") or (
        element.tag == _IQ and kind in ("get", "set")
    ):
        raise XMPPError("service-unavailable")  # as for no such user: nothing said of a block
    return True


def unblocked(targets: Iterable[Session], sender_jid: str) -> Iterator[Session]:
    """The sessions among `targets` that may see what a JID broadcasts (presence, personal
    events): neither blocked by its user nor blocking it (a user's own resources always see
    each other)."""
    sender: JID | None = None
    own: frozenset[str] = frozenset()
    for target in targets:
        if sender is None:
            sender = JID(sender_jid)
            own = blocklist(target.router, str(sender.bare))
        jid = target.jid
        if (
            jid is not None
            and jid.bare != sender.bare
            and (matches(own, jid) or matches(of(target), sender))
        ):
            continue
        yield target


# -- the blocking command (§3) ------------------------------------------------------------------


def handle(session: Session, iq: Iq) -> Element | None:
    query = iq.xml[0]
    name = query.tag.rpartition("}")[2]
    if name == "blocklist":
        if iq["type"] != "get":
            raise XMPPError("bad-request", "the blocklist is asked with get")
        session.wants_blocklist = True
        answer = BlockList()
        for jid in sorted(of(session)):
            answer.xml.append(_item(jid))
        return answer.xml
    if iq["type"] != "set":
        raise XMPPError("bad-request", "block and unblock are sent with set")
    jids = _jids(query)
    if name == "block":
        if not jids:
            raise XMPPError("bad-request", "block at least one JID")
        _block(session, jids)
    else:
        _unblock(session, jids or None)
    return None


def _item(jid: str) -> Element:
    item = BlockItem()
    item["jid"] = jid
    return item.xml


def _jids(query: Element) -> list[str]:
    items = query.findall(f"{{{BLOCKING_NS}}}item")
    if len(items) > MAX_ITEMS:
        raise XMPPError("resource-constraint", f"at most {MAX_ITEMS} JIDs", etype="wait")
    jids = []
    for item in items:
        try:
            jid = JID(item.get("jid", ""))
        except InvalidJID:
            raise XMPPError("jid-malformed", f"{item.get('jid')} is not a JID") from None
        if not jid.domain:
            raise XMPPError("jid-malformed", "an item needs a jid")
        jids.append(jid.full)
    return jids


def _block(session: Session, jids: list[str]) -> None:
    """§3.3: the blocked who saw the user available see them go, before the block applies."""
    added = session.services.xmpp.block(session.bare, jids, MAX_ITEMS)
    if added is None:
        raise XMPPError("resource-constraint", f"a blocklist holds {MAX_ITEMS} JIDs at most")
    if not added:
        return
    router, now_blocked = session.router, frozenset(added)
    sources = router.available(session.bare)
    watchers = {id(w): w for source in sources for w in _watchers(router, source)}
    for target in watchers.values():
        assert target.jid is not None
        if not matches(now_blocked, target.jid):
            continue
        for source in sources:
            assert source.jid is not None
            goodbye = Presence(stype="unavailable", sfrom=source.jid.full, sto=target.jid.full)
            target.send(goodbye.xml)
    _changed(session, Block(), added)


def _watchers(router: Router, session: Session) -> list[Session]:
    """The sessions that saw this available session's presence."""
    watchers = presence.subscribers(session)
    for full in session.directed:
        jid = JID(full)
        target = router.session(str(jid.bare), jid.resource)
        if target is not None:
            watchers.append(target)
    return watchers


def _unblock(session: Session, jids: list[str] | None) -> None:
    """§3.4, §3.5: the unblocked subscribers get the user's current presence."""
    removed = session.services.xmpp.unblock(session.bare, jids)
    if not removed:
        return
    _changed(session, Unblock(), [] if jids is None else removed)
    now_unblocked = frozenset(removed)
    for source in session.router.available(session.bare):
        if source.presence is not None:
            targets = presence.subscribers(source)
            chosen = [t for t in targets if t.jid is not None and matches(now_unblocked, t.jid)]
            presence.send_to(chosen, source.presence)


def _changed(session: Session, change: Block | Unblock, jids: list[str]) -> None:
    """Each of the user's sessions reads the list afresh; those that asked for it get the
    change (an <unblock/> without items: all unblocked)."""
    for item in jids:
        change.xml.append(_item(item))
    for target in session.router.sessions(session.bare):
        target.blocked = None
        if target.wants_blocklist and target.jid is not None:
            push = Iq(stype="set", sto=target.jid.full)
            push["id"] = secrets.token_hex(8)
            push.xml.append(change.xml)
            target.send(push.xml)
