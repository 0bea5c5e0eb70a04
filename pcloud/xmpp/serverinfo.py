"""What the server says about itself and its accounts: service discovery (XEP-0030), ping
(XEP-0199) and software version (XEP-0092).

The server is an IM server (identity server/im); a user's bare JID is an account
(account/registered), described only to the user and to contacts who see their presence.
Disco items are empty: there are no components yet (multi-user chat would be listed here;
HTTP upload is the server's own: its identity, feature and form come from upload.py). The
server's entity capabilities (XEP-0115, caps.py) are in the stream features, and its disco#info
answers their node#ver too; the account is also a PEP service (pubsub/pep, XEP-0163). Not
supported yet: other nodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

from slixmpp.plugins.xep_0030.stanza.info import DiscoInfo
from slixmpp.plugins.xep_0030.stanza.items import DiscoItems
from slixmpp.plugins.xep_0092.stanza import Version
from slixmpp.stanza import Iq

import pcloud
from pcloud.xmpp import (
    archive,
    blocking,
    caps,
    carbons,
    external_services,
    pep,
    private,
    upload,
    vcard,
)
from pcloud.xmpp.errors import XMPPError

if TYPE_CHECKING:
    from pcloud.xmpp.session import Session

DISCO_INFO_NS = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS_NS = "http://jabber.org/protocol/disco#items"
PING_NS = "urn:xmpp:ping"
VERSION_NS = "jabber:iq:version"

SERVER_FEATURES = (
    DISCO_INFO_NS,
    DISCO_ITEMS_NS,
    PING_NS,
    VERSION_NS,
    carbons.CARBONS_NS,
    blocking.BLOCKING_NS,
    vcard.VCARD_NS,
    caps.CAPS_NS,
    private.PRIVATE_NS,
    # PEP is each account's, but some clients (profanity) look for publish-options here before
    # publishing their OMEMO bundle with it, as Prosody and ejabberd list it here too
    pep.PUBLISH_OPTIONS,
)


def _only_get(iq: Iq) -> None:
    if iq["type"] != "get":
        raise XMPPError("bad-request", "this query is answered to get only")


def disco_info(session: Session, iq: Iq) -> Element:
    """The server's, or an account's; of the server's nodes, only its caps node#ver."""
    _only_get(iq)
    node = iq.xml[0].get("node")
    if iq["to"] and iq["to"].full == session.domain:
        info = server_info(session)
        if node and node != f"{caps.NODE}#{caps.verification_string(info.xml)}":
            raise XMPPError("item-not-found", "no such node")
        info["node"] = node
        return info.xml
    if node:
        raise XMPPError("item-not-found", "no such node")
    return account_info(session, str(iq["to"].bare) if iq["to"] else session.bare)


def server_info(session: Session) -> DiscoInfo:
    info = DiscoInfo()
    info.add_identity("server", "im", name="pcloud")
    info.set_features(SERVER_FEATURES)
    upload.describe(session.services, info)
    if external_services.configured(session.services.config.xmpp):
        info.add_feature(external_services.EXTDISCO_NS)
    return info


def account_info(session: Session, account: str) -> Element:
    """RFC 6121 §8.5.2.1.3: the server answers for an account, to itself and to contacts
    allowed to see its presence."""
    if account != session.bare:
        item = session.services.xmpp.item(account, session.bare)
        if item is None or item.subscription not in ("from", "both"):
            raise XMPPError("service-unavailable", "not subscribed to this account")
    info = DiscoInfo()
    info.add_identity("account", "registered")
    info.add_identity("pubsub", "pep")  # XEP-0163 §8
    # the archive (XEP-0313), personal eventing and the vCard are the account's
    info.set_features(
        (DISCO_INFO_NS, archive.MAM_NS, archive.SID_NS, *pep.FEATURES, vcard.VCARD_NS)
    )
    return info.xml


def disco_items(session: Session, iq: Iq) -> Element:
    _only_get(iq)
    return DiscoItems().xml


def ping(session: Session, iq: Iq) -> None:
    _only_get(iq)


def version(session: Session, iq: Iq) -> Element:
    _only_get(iq)
    answer = Version()
    answer["name"] = "pcloud"
    answer["version"] = pcloud.__version__
    return answer.xml
