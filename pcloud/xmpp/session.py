"""One client stream's session: the stream header, then negotiation (negotiation.py), then the
stanzas of the bound resource, each dispatched by kind (RFC 6120 §4.7, §8; RFC 6121 §8).

Invariants:
- Every stanza a client sends leaves stamped with its full JID as `from` (RFC 6120 §8.1.2.1); a
  `from` that is neither its full nor its bare JID ends the stream (`invalid-from`).
- A handler refuses a stanza by raising XMPPError: `reply_error` turns it into the error reply
  in one place; a stanza of type error is never answered, so that two entities cannot loop.
- IQs the server answers itself (to no one, to the server's domain, or to the user's own bare
  JID) go through the IQ_HANDLERS table by payload; IQs to another user's bare JID get
  `service-unavailable` but for disco#info (RFC 6121 §8.5.2.1.3); IQs to a full JID are
  forwarded to that session.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

from slixmpp import JID
from slixmpp.jid import InvalidJID
from slixmpp.stanza import Iq, Message, Presence

from pcloud.directory import Principal
from pcloud.services import Services
from pcloud.xmpp import (
    archive,
    blocking,
    caps,
    carbons,
    csi,
    external_services,
    messages,
    negotiation,
    pep,
    presence,
    private,
    roster,
    serverinfo,
    stream_management,
    subscription,
    upload,
    vcard,
)
from pcloud.xmpp.errors import LEGACY_CODES, StreamError, XMPPError
from pcloud.xmpp.negotiation import SaslStep
from pcloud.xmpp.parse import STREAMS_NS, StreamOpen
from pcloud.xmpp.router import Router
from pcloud.xmpp.wire import CLIENT_NS, SESSION_NS

if TYPE_CHECKING:
    from pcloud.xmpp.server import Connection

log = logging.getLogger(__name__)

MESSAGE = f"{{{CLIENT_NS}}}message"
PRESENCE = f"{{{CLIENT_NS}}}presence"
IQ = f"{{{CLIENT_NS}}}iq"
_SM = f"{{{stream_management.SM_NS}}}"
_CSI = f"{{{csi.CSI_NS}}}"

# An IQ handler answers a get or set addressed to the server or the user's own account: it
# returns the result's payload (None: an empty result) or raises XMPPError. One that waits (for
# a worker thread) is a coroutine function; the stream's next stanza is read after it answers.
IqHandler = Callable[["Session", Iq], Element | Awaitable[Element | None] | None]


def _session(session: Session, iq: Iq) -> Element | None:
    """RFC 3921 §3's session establishment, which RFC 6121 dropped; older clients still ask."""
    return None


IQ_HANDLERS: dict[str, IqHandler] = {
    f"{{{roster.ROSTER_NS}}}query": roster.handle,
    f"{{{serverinfo.DISCO_INFO_NS}}}query": serverinfo.disco_info,
    f"{{{serverinfo.DISCO_ITEMS_NS}}}query": serverinfo.disco_items,
    f"{{{serverinfo.PING_NS}}}ping": serverinfo.ping,
    f"{{{serverinfo.VERSION_NS}}}query": serverinfo.version,
    f"{{{carbons.CARBONS_NS}}}enable": carbons.enable,
    f"{{{carbons.CARBONS_NS}}}disable": carbons.disable,
    f"{{{SESSION_NS}}}session": _session,
    f"{{{archive.MAM_NS}}}query": archive.query,
    f"{{{blocking.BLOCKING_NS}}}blocklist": blocking.handle,
    f"{{{blocking.BLOCKING_NS}}}block": blocking.handle,
    f"{{{blocking.BLOCKING_NS}}}unblock": blocking.handle,
    f"{{{upload.UPLOAD_NS}}}request": upload.request_slot,
    f"{{{external_services.EXTDISCO_NS}}}services": external_services.services,
    f"{{{external_services.EXTDISCO_NS}}}credentials": external_services.credentials,
    f"{{{pep.PUBSUB_NS}}}pubsub": pep.handle,
    f"{{{pep.OWNER_NS}}}pubsub": pep.handle,
    f"{{{vcard.VCARD_NS}}}vCard": vcard.handle,
    f"{{{private.PRIVATE_NS}}}query": private.handle,
}

# IQs to another user's bare JID, which the server answers for the account (RFC 6121
# §8.5.2.1.3); any other gets service-unavailable.
ACCOUNT_IQ_HANDLERS: dict[str, IqHandler] = {
    f"{{{serverinfo.DISCO_INFO_NS}}}query": serverinfo.disco_info,
    f"{{{pep.PUBSUB_NS}}}pubsub": pep.handle,
    f"{{{vcard.VCARD_NS}}}vCard": vcard.handle,
}


class Session:
    def __init__(self, services: Services, router: Router, connection: Connection) -> None:
        self.services = services
        self.router = router
        self.connection = connection
        self.domain = ""  # the hosted domain the stream was opened to
        # negotiation
        self.principal: Principal | None = None
        self.sasl_step: SaslStep | None = None
        self.sasl_failures = 0
        # the bound resource
        self.jid: JID | None = None
        self.presence: Element | None = None  # the last available presence; None: unavailable
        self.priority = 0
        self.interested = False  # asked for the roster: gets roster pushes (RFC 6121 §2.1.6)
        self.carbons = False
        self.directed: set[str] = set()  # full JIDs sent directed presence (RFC 6121 §4.6)
        self.sm: stream_management.State | None = None  # XEP-0198, once enabled
        self.archive_queried = False  # the client reads the archive (XEP-0313): catches up
        self.blocked: frozenset[str] | None = None  # XEP-0191, read when first needed
        self.wants_blocklist = False  # asked for the blocklist: gets its pushes
        self.csi: csi.Held | None = None  # XEP-0352: what waits while the client is inactive
        self.ended = False

    @functools.cached_property  # asked for several times per stanza; bound once
    def bare(self) -> str:
        assert self.jid is not None
        return str(self.jid.bare)

    def send(self, element: Element) -> None:
        if self.csi is None or not csi.held(self, element):
            self.write(element)

    def write(self, element: Element) -> None:
        """Write now, past client state indication."""
        self.connection.send(element)
        if self.sm is not None and element.tag in (MESSAGE, PRESENCE, IQ):
            stream_management.sent(self, element)

    def end(self) -> None:
        """The session is over (the stream closed, or another took its resource): it goes
        unavailable to those who saw it, and leaves the router. Runs once."""
        if self.ended:
            return
        self.ended = True
        if self.jid is not None:
            stream_management.ended(self)
            presence.gone(self)
            self.router.unbind(self.bare, self.jid.resource, self)

    def terminate(self, condition: str, text: str) -> None:
        """End this session from outside its stream, with a stream error; closing the
        connection ends its read loop."""
        self.end()
        self.connection.end(condition, text)
        self.connection.flush()
        self.connection.transport.close()

    # -- the stream ---------------------------------------------------------------------------

    def stream_opened(self, header: StreamOpen) -> None:
        """RFC 6120 §4.7: answer with our header (even when about to refuse: §4.9.1.1), then the
        features of this stage of negotiation."""
        to = header.attributes.get("to", "").lower() or self.services.config.server.domain
        self.connection.send_header(to, header.attributes.get("from"))
        if header.tag != f"{{{STREAMS_NS}}}stream":
            raise StreamError("invalid-namespace", "the root element must be stream:stream")
        if header.default_namespace != CLIENT_NS:
            raise StreamError("invalid-namespace", f"the content namespace must be {CLIENT_NS}")
        if header.attributes.get("version", "").split(".")[0] != "1":
            raise StreamError("unsupported-version", "only XMPP 1.0 streams are served")
        if not self.router.is_local(to) or (self.domain and to != self.domain):
            raise StreamError("host-unknown", f"{to} is not served here")
        self.domain = to
        self.send(negotiation.features(self))

    def handle(self, element: Element) -> Awaitable[None] | None:
        """A first-level element of the stream; what must be awaited before the stream's next
        element is returned (negotiation, an IQ handler that waits), so that the rest is
        handled without a task."""
        if self.jid is None:
            return negotiation.handle(self, element)
        if element.tag.startswith(_SM):
            stream_management.handle(self, element)
            return None
        if element.tag.startswith(_CSI):
            csi.handle(self, element)
            return None
        if element.tag not in (MESSAGE, PRESENCE, IQ):
            raise StreamError("unsupported-stanza-type", f"{element.tag} is not a stanza")
        stream_management.received(self)
        self._stamp_from(element)
        try:
            to = _address(element.get("to"))
            if to is not None and blocking.stops(self, element, to):
                return None
            if element.tag == MESSAGE:
                messages.outbound(self, element, to)
            elif element.tag == PRESENCE and element.get("type") in subscription.KINDS:
                roster.subscribe_stanza(self, element.get("type", ""), to)
            elif element.tag == PRESENCE:
                presence.outbound(self, element, to)
            else:
                return self.iq(element, to)
        except XMPPError as error:
            self.reply_error(element, error)
        return None

    def _stamp_from(self, element: Element) -> None:
        assert self.jid is not None
        claimed = element.get("from")
        if claimed is not None:
            try:
                jid = JID(claimed)
            except InvalidJID:
                raise StreamError("invalid-from", "the from address is not a JID") from None
            if jid != self.jid and jid.full != self.bare:
                raise StreamError("invalid-from", f"{claimed} is not this session's address")
        element.set("from", self.jid.full)

    def reply_error(self, element: Element, error: XMPPError) -> None:
        """RFC 6120 §8.3: the error goes back to the sender, from whom it was sent to."""
        if element.get("type") == "error":
            return
        kind = {MESSAGE: Message, PRESENCE: Presence, IQ: Iq}.get(element.tag, Iq)
        stanza = kind(xml=element)
        reply = stanza.reply(clear=element.tag == IQ)
        if element.get("to"):
            reply["from"] = element.get("to")
        if self.jid is not None:
            reply["to"] = self.jid.full
        reply["type"] = "error"
        reply["error"]["condition"] = error.condition
        reply["error"]["type"] = error.etype
        if error.condition in LEGACY_CODES:
            reply["error"]["code"] = LEGACY_CODES[error.condition]
        if error.text:
            reply["error"]["text"] = error.text
        if isinstance(error.extension, Element):  # one with content (XEP-0363's file-too-large)
            reply["error"].xml.append(error.extension)
        elif error.extension:  # an application condition (RFC 6120 §8.3.3)
            condition = f"{{{error.extension_ns}}}{error.extension}"
            reply["error"].xml.append(Element(condition, error.extension_args))
        self.send(reply.xml)

    # -- IQs (RFC 6120 §8.2.3) -----------------------------------------------------------------

    def iq(self, element: Element, to: JID | None) -> Awaitable[None] | None:
        kind = element.get("type")
        if kind not in ("get", "set", "result", "error"):
            raise XMPPError("bad-request", "an IQ's type is get, set, result or error")
        if kind in ("get", "set") and len(element) != 1:
            raise XMPPError("bad-request", "a get or set IQ has exactly one payload")
        if to is not None and not self.router.is_local(to.domain):
            raise XMPPError("remote-server-not-found", f"{to.domain} is not served here")
        if to is not None and to.resource:
            self._forward_iq(element, to)
        elif to is None or to.full in (self.bare, self.domain):
            return self._answer_iq(element)
        elif kind in ("get", "set"):
            return self._iq_to_account(element, to)
        return None

    def _answer_iq(self, element: Element) -> Awaitable[None] | None:
        if element.get("type") not in ("get", "set"):
            caps.answered(self, element)  # the server's own question, or a roster push's answer
            return None
        handler = IQ_HANDLERS.get(element[0].tag)
        if handler is None:
            raise XMPPError("service-unavailable", "not served here")
        iq = Iq(xml=element)
        return self._reply(iq, handler(self, iq), element.get("to") or None)

    def _iq_to_account(self, element: Element, to: JID) -> Awaitable[None] | None:
        """RFC 6121 §8.5.2.1.3: the server answers for another user's account."""
        if not self.router.user_exists(to.bare):
            raise XMPPError("service-unavailable", "no such user")
        handler = ACCOUNT_IQ_HANDLERS.get(element[0].tag)
        if handler is None:
            raise XMPPError("service-unavailable", "not served for other accounts")
        iq = Iq(xml=element)
        return self._reply(iq, handler(self, iq), to.bare)

    def _reply(
        self, iq: Iq, answer: Element | Awaitable[Element | None] | None, sender: str | None
    ) -> Awaitable[None] | None:
        """The result of a handler's answer; one that waits is returned to be awaited."""
        if inspect.isawaitable(answer):
            return self._reply_later(iq, answer, sender)
        self.send(_result(iq, answer, sender))
        return None

    async def _reply_later(
        self, iq: Iq, answer: Awaitable[Element | None], sender: str | None
    ) -> None:
        try:
            self.send(_result(iq, await answer, sender))
        except XMPPError as error:
            self.reply_error(iq.xml, error)

    def _forward_iq(self, element: Element, to: JID) -> None:
        target = self.router.session(to.bare, to.resource)
        if target is None:
            if element.get("type") in ("get", "set"):
                raise XMPPError("service-unavailable", "no such resource")
            return
        target.send(element)


def _result(iq: Iq, payload: Element | None, sender: str | None) -> Element:
    result = iq.reply(clear=True)
    result["type"] = "result"
    if sender:
        result["from"] = sender
    element: Element = result.xml
    if payload is not None:
        element.append(payload)
    return element


def _address(text: str | None) -> JID | None:
    if not text:
        return None
    try:
        return JID(text)
    except InvalidJID:
        raise XMPPError("jid-malformed", f"{text} is not a JID") from None
