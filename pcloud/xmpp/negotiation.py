"""Stream negotiation before a session has a resource (RFC 6120 §5 to §7): the features offered at
each stage, SASL, and resource binding. STARTTLS itself is in server.py: it changes the
transport.

Stages: on the STARTTLS listener, only <starttls><required/></starttls> until TLS (an <auth>
before it fails with `encryption-required`); then the SASL mechanisms; after SASL success and
the stream restart, resource binding (with the legacy session feature and roster versioning).
Any stanza before a resource is bound ends the stream with `not-authorized` (RFC 6120
§4.9.3.12). After MAX_SASL_FAILURES failed attempts the
stream ends (`policy-violation`); the directory throttles failed logins on top of that.

A resource bound again replaces the session that held it (RFC 6120 §7.7.2.2, the server's
choice); one the client does not name is chosen by the server. More sessions than the user's
`max_resources_per_user` are refused with `resource-constraint`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element, SubElement

from slixmpp import JID
from slixmpp.features.feature_bind.stanza import Bind
from slixmpp.features.feature_mechanisms.stanza import Challenge, Failure, Mechanisms, Success
from slixmpp.features.feature_rosterver.stanza import RosterVer
from slixmpp.features.feature_session.stanza import Session as SessionFeature
from slixmpp.features.feature_starttls.stanza import STARTTLS
from slixmpp.jid import InvalidJID
from slixmpp.stanza import Iq, StreamFeatures

from pcloud.directory import Principal
from pcloud.xmpp import caps, contacts, csi, sasl, serverinfo, stream_management
from pcloud.xmpp.errors import StreamError, XMPPError
from pcloud.xmpp.wire import BIND_NS, CLIENT_NS, SASL_NS

if TYPE_CHECKING:
    from pcloud.xmpp.session import Session

log = logging.getLogger(__name__)

MAX_SASL_FAILURES = 5
_STANZAS = {f"{{{CLIENT_NS}}}{name}" for name in ("message", "presence", "iq")}

# The next step of a SASL exchange: takes the client's decoded response.
SaslStep = Callable[[bytes], Awaitable[None]]


def features(session: Session) -> Element:
    offered = StreamFeatures()
    if not session.connection.tls:
        starttls = STARTTLS()
        SubElement(starttls.xml, f"{{{starttls.namespace}}}required")
        offered.xml.append(starttls.xml)
    elif session.principal is None:
        bindings = _channel_bindings(session)
        mechanisms = Mechanisms()
        mechanisms["mechanisms"] = sasl.mechanisms(bindings)
        offered.xml.append(mechanisms.xml)
        types = SubElement(offered.xml, f"{{{sasl.CHANNEL_BINDING_NS}}}sasl-channel-binding")
        for kind in bindings:  # XEP-0440: which -PLUS bindings a client may choose
            SubElement(types, f"{{{sasl.CHANNEL_BINDING_NS}}}channel-binding", type=kind)
    else:
        offered.xml.append(Bind().xml)
        legacy_session = SessionFeature()
        legacy_session["optional"] = True
        offered.xml.append(legacy_session.xml)
        offered.xml.append(RosterVer().xml)  # RFC 6121 §2.6
        offered.xml.append(stream_management.feature())  # XEP-0198: resume here, or enable
        offered.xml.append(csi.feature())  # XEP-0352
        offered.xml.append(caps.advertisement(serverinfo.server_info(session)))  # XEP-0115 §6.3
    return offered.xml


async def handle(session: Session, element: Element) -> None:
    if element.tag.startswith(f"{{{SASL_NS}}}") and session.principal is None:
        try:
            await _sasl(session, element)
        except sasl.SaslFailure as failure:
            session.sasl_step = None
            session.sasl_failures += 1
            refusal = Failure()
            refusal["condition"] = failure.condition
            session.send(refusal.xml)
            if session.sasl_failures >= MAX_SASL_FAILURES:
                raise StreamError("policy-violation", "too many failed attempts") from None
        return
    if element.tag == f"{{{CLIENT_NS}}}iq" and session.principal is not None:
        try:
            _bind(session, element)
            await contacts.seed(session)  # before the roster is asked for
        except XMPPError as error:
            session.reply_error(element, error)
        return
    if element.tag.startswith(f"{{{stream_management.SM_NS}}}"):
        stream_management.before_bind(session, element)
        return
    if element.tag in _STANZAS:
        raise StreamError("not-authorized", "authenticate and bind a resource first")
    raise StreamError("unsupported-stanza-type", f"{element.tag} is not expected here")


# -- SASL (RFC 6120 §6.4) ---------------------------------------------------------------------


async def _sasl(session: Session, element: Element) -> None:
    name = element.tag.split("}")[1]
    if not session.connection.tls:
        raise sasl.SaslFailure("encryption-required")
    if name == "abort":
        raise sasl.SaslFailure("aborted")
    data = sasl.decode(element.text)
    if name == "response" and session.sasl_step is not None:
        step, session.sasl_step = session.sasl_step, None
        await step(data)
    elif name == "auth":
        session.sasl_step = None
        await _start(session, element.get("mechanism", ""), data)
    else:
        raise sasl.SaslFailure("malformed-request")


async def _start(session: Session, mechanism: str, initial: bytes) -> None:
    services = session.services
    remote = session.connection.remote
    if mechanism == "PLAIN":

        async def plain(response: bytes) -> None:
            principal = await sasl.plain(
                services.directory, response, domain=session.domain, remote=remote
            )
            _succeeded(session, principal, mechanism, b"")

        first = plain
    elif mechanism in sasl.mechanisms(bindings := _channel_bindings(session)):
        scram = sasl.Scram(services.directory, mechanism, session.domain, remote, bindings)

        async def client_first(response: bytes) -> None:
            _challenge(session, scram.first(response), client_final)

        async def client_final(response: bytes) -> None:
            principal, server_final = await scram.final(response)
            _succeeded(session, principal, mechanism, server_final)

        first = client_first
    else:
        raise sasl.SaslFailure("invalid-mechanism")
    if initial:
        await first(initial)
    else:  # no initial response (RFC 6120 §6.4.2): ask for it with an empty challenge
        _challenge(session, b"", first)


def _channel_bindings(session: Session) -> dict[str, bytes]:
    tls = session.connection.transport.get_extra_info("ssl_object")
    if tls is None:
        return {}
    return sasl.channel_bindings(tls, session.services.tls.server_end_point)


def _challenge(session: Session, data: bytes, step: SaslStep) -> None:
    challenge = Challenge()
    challenge.xml.text = sasl.encode(data)
    session.send(challenge.xml)
    session.sasl_step = step


def _succeeded(session: Session, principal: Principal, mechanism: str, data: bytes) -> None:
    success = Success()
    if data:
        success.xml.text = sasl.encode(data)
    session.send(success.xml)
    session.principal = principal
    session.connection.restart()  # RFC 6120 §6.4.6: a new stream follows
    log.info("xmpp authenticated conn=%s login=%s mechanism=%s",
             session.connection.id, principal.address, mechanism)  # fmt: skip


# -- resource binding (RFC 6120 §7) -------------------------------------------------------------


def _bind(session: Session, element: Element) -> None:
    assert session.principal is not None
    bind = element.find(f"{{{BIND_NS}}}bind")
    if element.get("type") != "set" or bind is None:
        raise StreamError("not-authorized", "bind a resource first")
    bare = session.principal.address
    resource = (bind.findtext(f"{{{BIND_NS}}}resource") or "").strip() or secrets.token_hex(6)
    try:
        jid = JID(f"{bare}/{resource}")
    except InvalidJID:
        raise XMPPError("bad-request", "not a valid resource") from None
    router = session.router
    replaced = router.session(bare, jid.resource)
    if (
        replaced is None
        and router.count(bare) >= session.services.config.xmpp.max_resources_per_user
    ):
        raise XMPPError("resource-constraint", "too many sessions", etype="wait")
    router.bind(session, bare, jid.resource)
    session.jid = jid
    if replaced is not None:
        replaced.terminate("conflict", "replaced by a new session with this resource")
    result = Iq(xml=element).reply(clear=True)
    result["type"] = "result"
    bound = Bind()
    bound["jid"] = jid.full
    result.xml.append(bound.xml)
    session.send(result.xml)
    log.info("xmpp bound conn=%s jid=%s replaced=%s",
             session.connection.id, jid.full, replaced is not None)  # fmt: skip
