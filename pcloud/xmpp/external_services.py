"""External service discovery (XEP-0215, urn:xmpp:extdisco:2): the STUN server and TURN relay
that chat programs use for audio and video calls, from `[xmpp] stun_server`, `turn_server` and
`turn_secret`.

- TURN credentials follow the TURN REST API that coturn's `use-auth-secret` checks: the user
  name is "<expiry unix time>:<bare JID>", the password base64(HMAC-SHA1(secret, user name)),
  valid for CREDENTIAL_SECONDS. They come with the services list itself (§3.1), and again on
  a credentials request (§3.3), since clients do either.
- The TURN relay is listed for UDP and TCP on one port; with neither server configured the
  feature is not advertised and requests get service-unavailable.

Not supported: pushes of changed services (§3.4, the configuration changes at restart only),
TURN over TLS ("turns"), services other than STUN and TURN.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element, SubElement

from slixmpp.stanza import Iq

from pcloud.config import XmppSection, split_host_port
from pcloud.xmpp.errors import XMPPError

if TYPE_CHECKING:
    from pcloud.xmpp.session import Session

EXTDISCO_NS = "urn:xmpp:extdisco:2"
DEFAULT_PORT = 3478  # RFC 8489 §9, RFC 8656 §3.1
CREDENTIAL_SECONDS = 24 * 3600  # as Prosody's and ejabberd's defaults; clients ask again


def configured(settings: XmppSection) -> bool:
    return bool(settings.stun_server or (settings.turn_server and settings.turn_secret))


def turn_credentials(secret: str, user: str, expires: int) -> tuple[str, str]:
    """(user name, password) of the TURN REST API for `user` until `expires` (unix time)."""
    username = f"{expires}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def _services(session: Session) -> list[dict[str, str]]:
    """Every service offered to this session's user, as the attributes of <service/>."""
    settings = session.services.config.xmpp
    listed = []
    if settings.stun_server:
        host, port = split_host_port(settings.stun_server, DEFAULT_PORT)
        listed.append({"type": "stun", "transport": "udp", "host": host, "port": str(port)})
    if settings.turn_server and settings.turn_secret:
        host, port = split_host_port(settings.turn_server, DEFAULT_PORT)
        expires = int(time.time()) + CREDENTIAL_SECONDS
        username, password = turn_credentials(settings.turn_secret, session.bare, expires)
        stamp = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for transport in ("udp", "tcp"):
            listed.append({
                "type": "turn", "transport": transport, "host": host, "port": str(port),
                "username": username, "password": password, "expires": stamp, "restricted": "1",
            })  # fmt: skip
    return listed


def _answer(session: Session, iq: Iq, name: str) -> tuple[Element, list[dict[str, str]]]:
    if iq["type"] != "get":
        raise XMPPError("bad-request", "external services are asked for with get")
    if not configured(session.services.config.xmpp):
        raise XMPPError("service-unavailable", "no external services are configured")
    return Element(f"{{{EXTDISCO_NS}}}{name}"), _services(session)


def services(session: Session, iq: Iq) -> Element:
    """§3.1, §3.2: all services, or those of one type."""
    answer, listed = _answer(session, iq, "services")
    kind = iq.xml[0].get("type")
    if kind:
        answer.set("type", kind)
    for attributes in listed:
        if not kind or attributes["type"] == kind:
            SubElement(answer, f"{{{EXTDISCO_NS}}}service", attributes)
    return answer


def credentials(session: Session, iq: Iq) -> Element:
    """§3.3: credentials for one service, named by host (and type, and port)."""
    answer, listed = _answer(session, iq, "credentials")
    wanted = iq.xml[0].find(f"{{{EXTDISCO_NS}}}service")
    if wanted is None or not wanted.get("host"):
        raise XMPPError("bad-request", "name the service by its host")
    for attributes in listed:
        if all(attributes.get(key) == value for key, value in wanted.attrib.items()):
            SubElement(answer, f"{{{EXTDISCO_NS}}}service", attributes)
            return answer
    raise XMPPError("item-not-found", "no such service")
