"""Message archive (XEP-0313, urn:xmpp:mam:2) with result set paging (XEP-0059), kept by
pcloud.store.xmpp.

Archived: the chat messages a user sends to, or receives from, a local user (type chat, or
normal with a body; not those marked <no-store/> or <no-permanent-store/>, XEP-0334), once
routed, in the sender's archive and the recipient's, each with the other side's bare JID.
Chat states and receipts without a body are not kept.

A query (§4) filters by `with` (a bare JID), `start` and `end` (XEP-0082 times), and pages with
<max/> (at most MAX_PAGE, DEFAULT_PAGE when not given), <after/>, and <before/> (empty: the last
page). Results are messages to the querying resource, each forwarded (XEP-0297) with a delay
stamp; then the IQ result's <fin/> tells the page's first and last ids, the count, and whether
the query is complete.

Not supported yet: archiving preferences (§6: everything is kept), the form fields request (an
IQ get), `ids` and full-JID `with` filters, flip-page, stanza-id stamping (XEP-0359) on live
messages, and archiving of messages to other domains (no federation).
"""

from __future__ import annotations

import asyncio
import datetime
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element, SubElement

from slixmpp import JID
from slixmpp.jid import InvalidJID
from slixmpp.stanza import Iq

from pcloud.store.xmpp import UnknownArchiveId
from pcloud.xmpp.errors import XMPPError
from pcloud.xmpp.serverinfo import MAM_NS
from pcloud.xmpp.wire import CLIENT_NS, to_text

if TYPE_CHECKING:
    from pcloud.xmpp.router import Router
    from pcloud.xmpp.session import Session

RSM_NS = "http://jabber.org/protocol/rsm"
DATA_NS = "jabber:x:data"
FORWARD_NS = "urn:xmpp:forward:0"
DELAY_NS = "urn:xmpp:delay"
HINTS_NS = "urn:xmpp:hints"
DEFAULT_PAGE = 50
MAX_PAGE = 250


def record(session: Session, element: Element, to: JID) -> None:
    """A message was routed from the session's user to a local user: archive it for both."""
    kind = element.get("type") or "normal"
    if kind not in ("chat", "normal") or element.find(f"{{{CLIENT_NS}}}body") is None:
        return
    if any(element.find(f"{{{HINTS_NS}}}{hint}") is not None
           for hint in ("no-store", "no-permanent-store")):  # fmt: skip
        return
    text = to_text(element)
    sender, recipient = session.bare, str(to.bare)
    router = session.router
    # Written at the end of this turn of the event loop: one transaction (one fsync) for all
    # the messages of one read, instead of one each.
    if not router.unarchived:
        asyncio.get_running_loop().call_soon(write, router)
    router.unarchived.append((sender, recipient, text))
    if recipient != sender:
        router.unarchived.append((recipient, sender, text))


def write(router: Router) -> None:
    """Archive what `record` gathered."""
    entries, router.unarchived = router.unarchived, []
    if entries:
        router.services.xmpp.archive(entries)


def query(session: Session, iq: Iq) -> Element:
    """XEP-0313 §4: send the page's messages, and return the <fin/> for the IQ result."""
    if iq["type"] != "set":
        raise XMPPError("feature-not-implemented", "ask with an IQ set")
    assert session.jid is not None
    write(session.router)  # what was sent in this same turn is found too
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
