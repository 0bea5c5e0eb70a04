"""Message archive (XEP-0313, urn:xmpp:mam:2) with result set paging (XEP-0059), kept by
pcloud.store.xmpp.

Archived: the chat messages a user sends to, or receives from, a local user (type chat, or
normal with a body; not those marked <no-store/> or <no-permanent-store/>, XEP-0334), once
routed, in the sender's archive and the recipient's, each with the other side's bare JID and an
id of its own. Chat states and receipts without a body are not kept.

Unique and stable stanza ids (XEP-0359): the recipient's copy of an archived message (live,
kept offline, or carbon-copied to their other resources) carries <stanza-id by='recipient's bare
JID' id='…'/>, the id their archive knows it by, so that a client can tell a message it already
has and page the archive from it. The stored message does not carry it (it is the archive
result's id). A <stanza-id/> a client sends claiming to be from a local account or domain is
removed, whoever it is for (§5: else a sender could forge the recipient's archive ids).

Writes are gathered for WRITE_DELAY seconds (or WRITE_BATCH entries) into one transaction, not
flushed to disk (see pcloud.store.xmpp.XmppStore.archive): a message costs a few rows of one
commit rather than a commit of its own. A query writes what is pending first, and so does the
server's stop; a crash loses at most the last WRITE_DELAY of archive (the messages themselves
were delivered, or kept offline with a flushed commit).

A query (§4) filters by `with` (a bare JID), `start` and `end` (XEP-0082 times), and pages with
<max/> (at most MAX_PAGE, DEFAULT_PAGE when not given), <after/>, and <before/> (empty: the last
page). Results are messages to the querying resource, each forwarded (XEP-0297) with a delay
stamp; then the IQ result's <fin/> tells the page's first and last ids, the count, and whether
the query is complete.

Not supported yet: archiving preferences (§6: everything is kept), the form fields request (an
IQ get), `ids` and full-JID `with` filters, flip-page, the sender's archive id on the copies
their other resources get (sent carbons), and archiving of messages to other domains (no
federation).
"""

from __future__ import annotations

import asyncio
import datetime
import secrets
import time
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element, SubElement

from slixmpp import JID
from slixmpp.jid import InvalidJID
from slixmpp.stanza import Iq

from pcloud.store.xmpp import UnknownArchiveId
from pcloud.xmpp.errors import XMPPError
from pcloud.xmpp.wire import CLIENT_NS, to_text

if TYPE_CHECKING:
    from pcloud.xmpp.router import Router
    from pcloud.xmpp.session import Session

MAM_NS = "urn:xmpp:mam:2"
SID_NS = "urn:xmpp:sid:0"  # archive ids on delivered messages (XEP-0359)
RSM_NS = "http://jabber.org/protocol/rsm"
DATA_NS = "jabber:x:data"
FORWARD_NS = "urn:xmpp:forward:0"
DELAY_NS = "urn:xmpp:delay"
HINTS_NS = "urn:xmpp:hints"
STANZA_ID = f"{{{SID_NS}}}stanza-id"
_BODY = f"{{{CLIENT_NS}}}body"
_NO_STORE = f"{{{HINTS_NS}}}no-store"
_NO_PERMANENT_STORE = f"{{{HINTS_NS}}}no-permanent-store"
DEFAULT_PAGE = 50
MAX_PAGE = 250
WRITE_DELAY = 0.1  # seconds
WRITE_BATCH = 500  # entries: written at once, rather than hold the event loop for longer
UID_POOL = 256  # messages' worth of random archive id bits drawn at once

# (owner, uid, with_jid, stamp, stanza), as pcloud.store.xmpp.XmppStore.archive takes them
Entry = tuple[str, str, str, int, str]


def strip_claimed_ids(router: Router, element: Element) -> None:
    """XEP-0359 §5: only this server stamps stanza ids by its accounts and domains."""
    for claimed in element.findall(STANZA_ID):
        try:
            domain = JID(claimed.get("by", "")).domain
        except InvalidJID:
            domain = ""  # not an address of ours, nor of anyone's
        if router.is_local(domain):
            element.remove(claimed)


def prepare(session: Session, element: Element, to: JID) -> list[Entry]:
    """Before a message from the session's user to a local user is delivered: its entries in
    both archives (none if it is not archived), the recipient's first, whose id the message
    now carries (XEP-0359)."""
    kind = element.get("type") or "normal"
    if kind not in ("chat", "normal") or element.find(_BODY) is None:
        return []
    if element.find(_NO_STORE) is not None or element.find(_NO_PERMANENT_STORE) is not None:
        return []
    text = to_text(element)
    sender, recipient = session.bare, str(to.bare)
    stamp = time.time_ns() // 1000
    first, second = _uids(session.router, stamp)
    entries = [(recipient, first, sender, stamp, text)]
    if recipient != sender:
        entries.append((sender, second, recipient, stamp, text))
    # a plain element: slixmpp's StanzaID would cost more than the rest of this function
    SubElement(element, STANZA_ID, {"id": entries[0][1], "by": recipient})
    return entries


def record(router: Router, entries: list[Entry]) -> None:
    """The message was routed: archive its entries, with those of the next WRITE_DELAY."""
    if not entries:
        return
    if not router.unarchived:
        asyncio.get_running_loop().call_later(WRITE_DELAY, write, router)
    router.unarchived += entries
    if len(router.unarchived) >= WRITE_BATCH:
        write(router)


def write(router: Router) -> None:
    """Archive what `record` gathered."""
    entries, router.unarchived = router.unarchived, []
    if entries:
        router.services.xmpp.archive(entries)


def _uids(router: Router, stamp: int) -> tuple[str, str]:
    """Two archive ids: the time first, so that ids are added at the end of their index rather
    than on a random page of it (half the disk writes), then random bits not to be guessed,
    taken from a pool drawn UID_POOL messages at a time (each draw is a system call)."""
    bits = next(router.uid_bits, None)
    if bits is None:
        pool = secrets.token_hex(12 * UID_POOL)
        router.uid_bits = iter([pool[at : at + 24] for at in range(0, len(pool), 24)])
        bits = next(router.uid_bits)
    return f"{stamp:x}{bits[:12]}", f"{stamp:x}{bits[12:]}"


def query(session: Session, iq: Iq) -> Element:
    """XEP-0313 §4: send the page's messages, and return the <fin/> for the IQ result."""
    if iq["type"] != "set":
        raise XMPPError("feature-not-implemented", "ask with an IQ set")
    assert session.jid is not None
    session.archive_queried = True  # see stream_management.ended
    write(session.router)  # what was sent in the last moments is found too
    request = iq.xml[0]
    fields = {
        field.get("var"): field.findtext(f"{{{DATA_NS}}}value")
        for field in request.iterfind(f"{{{DATA_NS}}}x/{{{DATA_NS}}}field")
    }
    paging = request.find(f"{{{RSM_NS}}}set")
    before = paging.find(f"{{{RSM_NS}}}before") if paging is not None else None
    try:
        limit = min(MAX_PAGE, int(_text(paging, "max") or DEFAULT_PAGE))
        with_jid = str(JID(fields["with"]).bare) if fields.get("with") else None
    except (ValueError, InvalidJID):
        raise XMPPError("bad-request", "max is a number, with a JID") from None
    try:
        page = session.services.xmpp.archived(
            session.bare,
            with_jid=with_jid,
            start=_time(fields.get("start")),
            end=_time(fields.get("end")),
            after=_text(paging, "after"),
            before=before.text if before is not None else None,
            last=before is not None and not before.text,
            limit=max(limit, 0),
        )
    except UnknownArchiveId:
        raise XMPPError("item-not-found", "no such archive id") from None
    query_id = request.get("queryid")
    for item in page.items:
        message = Element(f"{{{CLIENT_NS}}}message", {"to": session.jid.full})
        result = SubElement(message, f"{{{MAM_NS}}}result", {"id": item.uid})
        if query_id:
            result.set("queryid", query_id)
        forwarded = SubElement(result, f"{{{FORWARD_NS}}}forwarded")
        stamp = datetime.datetime.fromtimestamp(item.stamp / 1e6, datetime.UTC)
        SubElement(forwarded, f"{{{DELAY_NS}}}delay", {"stamp": stamp.isoformat()})
        forwarded.append(ET.fromstring(item.stanza))  # written by to_text: nothing to expand
        session.send(message)
    fin = Element(f"{{{MAM_NS}}}fin")
    if page.complete:
        fin.set("complete", "true")
    result_set = SubElement(fin, f"{{{RSM_NS}}}set")
    if page.items:
        SubElement(result_set, f"{{{RSM_NS}}}first").text = page.items[0].uid
        SubElement(result_set, f"{{{RSM_NS}}}last").text = page.items[-1].uid
    SubElement(result_set, f"{{{RSM_NS}}}count").text = str(page.count)
    return fin


def _text(paging: Element | None, name: str) -> str | None:
    return paging.findtext(f"{{{RSM_NS}}}{name}") if paging is not None else None


def _time(text: str | None) -> int | None:
    """An XEP-0082 date and time, in microseconds since the epoch."""
    if not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise XMPPError("bad-request", f"{text} is not a date and time") from None
    if moment.tzinfo is None:
        raise XMPPError("bad-request", f"{text} has no time zone")
    return int(moment.timestamp() * 1_000_000)
