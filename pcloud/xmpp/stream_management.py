"""Stream management (XEP-0198, urn:xmpp:sm:3): acknowledgements, and resumption of a session
whose TCP connection dropped (a phone changing networks), with nothing lost or duplicated.

After resource binding a client may <enable/> it (§3). Then each side counts the stanzas it
handled (message, presence, iq; modulo 2^32) and the server keeps the stanzas it sent until the
client acknowledges them (<a h=…/>, §4), asking with <r/> after every ACK_EVERY unacknowledged
ones; more than MAX_UNACKED unacknowledged ends the stream (`policy-violation`).

With resume='true' (§5), a connection that drops without a clean stream close leaves its session
detached for RESUME_SECONDS: still bound, still available, queueing what is sent to it. A new
connection of the same user, after SASL and instead of binding, sends <resume previd h/>: the
session moves to it, the stanzas the client had not yet handled are sent again, and it goes on.
If the old connection is still open (the server has not seen the drop), it is closed.

A session that ends (clean close, expiry, replacement) with unacknowledged chat messages keeps
them as offline messages (§4: "treat as undelivered"), so that the next login gets them, with
one exception, as Prosody's mod_smacks makes it: a message already in the user's archive
(archive.py: it carries the user's <stanza-id/>) is not kept again when this session's client
queried the archive, since such a client catches up from it at its next login. Kept again, a
message the client did get but had not acknowledged yet (sent just before a clean close, say)
would show twice; a client that never reads the archive still gets them all offline. What is
unacknowledged may not have reached the client: the archive is what makes skipping it safe.

Not supported: resumption across a server restart (detached sessions live in memory), `max`
negotiation (the server always offers RESUME_SECONDS), location (§5: same server).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element
from xml.sax.saxutils import quoteattr

from pcloud.xmpp.archive import STANZA_ID
from pcloud.xmpp.errors import StreamError
from pcloud.xmpp.wire import CLIENT_NS, STANZA_ERRORS_NS, to_text

if TYPE_CHECKING:
    from pcloud.xmpp.session import Session

log = logging.getLogger(__name__)

SM_NS = "urn:xmpp:sm:3"
ACK_EVERY = 5
MAX_UNACKED = 10_000
RESUME_SECONDS = 300
_MODULO = 2**32
_MESSAGE = f"{{{CLIENT_NS}}}message"


@dataclass
class State:
    id: str
    resumable: bool
    received: int = 0  # stanzas handled from the client (its h)
    acked: int = 0  # stanzas the client acknowledged (our h, as it last said)
    unacked: deque[Element] = field(default_factory=deque)
    since_request: int = 0  # stanzas sent since the last <r/>
    expiry: asyncio.TimerHandle | None = None  # while detached


def feature() -> Element:
    return Element(f"{{{SM_NS}}}sm")


def _send(session: Session, text: str) -> None:
    session.connection.send_bytes(text.encode())


def _failed(session: Session, condition: str) -> None:
    _send(session, f'<failed xmlns="{SM_NS}"><{condition} xmlns="{STANZA_ERRORS_NS}"/></failed>')


def before_bind(session: Session, element: Element) -> None:
    """An SM element before a resource is bound: only <resume/> makes sense (§5)."""
    if element.tag == f"{{{SM_NS}}}resume" and session.principal is not None:
        _resume(session, element)
    else:
        _failed(session, "unexpected-request")


def handle(session: Session, element: Element) -> None:
    """<enable/>, <r/>, <a/> on a bound session (§3, §4)."""
    name = element.tag.rpartition("}")[2]
    state = session.sm
    if name == "enable":
        if state is not None:
            _failed(session, "unexpected-request")
            return
        resumable = element.get("resume") in ("true", "1")
        session.sm = State(secrets.token_urlsafe(18), resumable)
        attributes = f" id={quoteattr(session.sm.id)}"
        if resumable:
            session.router.resumable[session.sm.id] = session
            attributes += f' resume="true" max="{RESUME_SECONDS}"'
        _send(session, f'<enabled xmlns="{SM_NS}"{attributes}/>')
    elif state is None:
        _failed(session, "unexpected-request")
    elif name == "r":
        _send(session, f'<a xmlns="{SM_NS}" h="{state.received}"/>')
    elif name == "a":
        _acknowledged(state, element.get("h"))
    elif name not in ("resume", "enabled"):
        raise StreamError("unsupported-stanza-type", f"{element.tag} is not expected here")
    else:
        _failed(session, "unexpected-request")


def received(session: Session) -> None:
    """The client sent a stanza: count it."""
    if session.sm is not None:
        session.sm.received = (session.sm.received + 1) % _MODULO


def sent(session: Session, element: Element) -> None:
    """A stanza went to the client: keep it until acknowledged, and ask now and then."""
    state = session.sm
    if state is None:
        return
    state.unacked.append(element)
    if len(state.unacked) > MAX_UNACKED:  # raised here, it would end the sender's stream
        session.terminate("policy-violation", "too many stanzas not acknowledged")
        return
    state.since_request += 1
    if state.since_request >= ACK_EVERY:
        state.since_request = 0
        _send(session, f'<r xmlns="{SM_NS}"/>')


def _acknowledged(state: State, text: str | None) -> None:
    try:
        h = int(text or "")
    except ValueError:
        raise StreamError("bad-format", "an acknowledgement needs a number h") from None
    count = (h - state.acked) % _MODULO
    if count > len(state.unacked):  # §4: handled-count-too-high
        raise StreamError("undefined-condition", f"h={h} acknowledges stanzas never sent")
    for _ in range(count):
        state.unacked.popleft()
    state.acked = h % _MODULO


def _resume(session: Session, element: Element) -> None:
    assert session.principal is not None
    previous = session.router.resumable.get(element.get("previd", ""))
    if (
        previous is None
        or previous.sm is None
        or previous.principal is None
        or previous.principal.address != session.principal.address
    ):
        _failed(session, "item-not-found")
        return
    state = previous.sm
    _acknowledged(state, element.get("h"))
    if state.expiry is not None:
        state.expiry.cancel()
        state.expiry = None
    old, new = previous.connection, session.connection
    old.closing = True  # its read loop ends, leaving the session to the new connection
    if not old.transport.is_closing():
        old.transport.abort()
    previous.connection = new
    new.session = previous
    state.since_request = 0
    _send(previous, f'<resumed xmlns="{SM_NS}" h="{state.received}" previd={quoteattr(state.id)}/>')
    for stanza in state.unacked:
        new.send(stanza)
    log.info("xmpp resumed conn=%s jid=%s resent=%d", new.id, previous.jid, len(state.unacked))


def detach(session: Session) -> None:
    """The connection dropped: the session waits RESUME_SECONDS for a <resume/>."""
    assert session.sm is not None
    loop = asyncio.get_running_loop()
    session.sm.expiry = loop.call_later(RESUME_SECONDS, session.end)
    log.info("xmpp detached jid=%s resumable=%ss", session.jid, RESUME_SECONDS)


def ended(session: Session) -> None:
    """The session is over: no resumption; unacknowledged chat messages are kept offline."""
    state = session.sm
    if state is None or session.jid is None:
        return
    session.router.resumable.pop(state.id, None)
    if state.expiry is not None:
        state.expiry.cancel()
    services = session.services
    limit = services.config.xmpp.max_offline_messages
    for stanza in state.unacked:
        chat = stanza.tag == _MESSAGE and stanza.get("type", "normal") in ("chat", "normal")
        if not chat or stanza.find(f"{{{CLIENT_NS}}}body") is None:
            continue
        if session.archive_queried and _archived(session, stanza):
            continue  # the client catches up from the archive
        services.xmpp.store_offline(session.bare, to_text(stanza), limit)
    state.unacked.clear()


def _archived(session: Session, stanza: Element) -> bool:
    return any(stamp.get("by") == session.bare for stamp in stanza.iterfind(STANZA_ID))
