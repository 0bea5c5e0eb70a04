"""What the server says about itself and its accounts: service discovery (XEP-0030), ping
(XEP-0199) and software version (XEP-0092).

The server is an IM server (identity server/im); a user's bare JID is an account
(account/registered), described only to the user and to contacts who see their presence.
Disco items are empty: there are no components yet (multi-user chat and HTTP upload would be
listed here). Not supported yet: entity capabilities (XEP-0115) in the stream features, and
nodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

from slixmpp.plugins.xep_0030.stanza.info import DiscoInfo
from slixmpp.plugins.xep_0030.stanza.items import DiscoItems
from slixmpp.plugins.xep_0092.stanza import Version
from slixmpp.stanza import Iq

import pcloud
from pcloud.xmpp.errors import XMPPError

if TYPE_CHECKING:
    from pcloud.xmpp.session import Session

DISCO_INFO_NS = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS_NS = "http://jabber.org/protocol/disco#items"
PING_NS = "urn:xmpp:ping"
VERSION_NS = "jabber:iq:version"
CARBONS_NS = "urn:xmpp:carbons:2"
MAM_NS = "urn:xmpp:mam:2"

SERVER_FEATURES = (DISCO_INFO_NS, DISCO_ITEMS_NS, PING_NS, VERSION_NS, CARBONS_NS)


def _only_get(iq: Iq) -> None:
    if iq["type"] != "get":
        raise XMPPError("bad-request", "this query is answered to get only")


def disco_info(session: Session, iq: Iq) -> Element:
    _only_get(iq)
    if iq.xml[0].get("node"):
        raise XMPPError("item-not-found", "no such node")
    if iq["to"] and iq["to"].full == session.domain:
        info = DiscoInfo()
        info.add_identity("server", "im", name="pcloud")
        info.set_features(SERVER_FEATURES)
        return info.xml
    return account_info(session, session.bare)


def account_info(session: Session, account: str) -> Element:
    """RFC 6121 §8.5.2.1.3: the server answers for an account, to itself and to contacts
    allowed to see its presence."""
    if account != session.bare:
        item = session.services.xmpp.item(account, session.bare)
        if item is None or item.subscription not in ("from", "both"):
            raise XMPPError("service-unavailable", "not subscribed to this account")
    info = DiscoInfo()
    info.add_identity("account", "registered")
    info.set_features((DISCO_INFO_NS, MAM_NS))  # the archive is the account's (XEP-0313)
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
