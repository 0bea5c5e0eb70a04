"""Entity capabilities (XEP-0115): the server's own, and what clients' capabilities say.

The server's: `<c hash='sha-1' node='https://pcloud' ver='…'/>` in the stream features after
authentication (§6.3), `ver` being the verification string of the server's disco#info; a
disco#info query of `https://pcloud#<ver>` gets that same answer (serverinfo.py).

Clients': an available presence carrying `<c hash='sha-1' node ver/>` (§4) tells the session's
features. A `ver` the server verified before gives them at once; an unknown one makes the server
ask that full JID (disco#info of node#ver, from the server's domain), compute the verification
string of the answer (§5.1, refusing the duplicates §5.4 names) and, if it matches, remember
ver → features for everyone. An answer that does not match, or an error, is ignored: the session
has no known features, and is not asked again for that ver. One question is outstanding per
session at most (a newer ver replaces it). Legacy caps (no `hash`, v1.3) and hashes other than
sha-1 are ignored.

Bounds: the cache (one per process: a ver is a hash of the features, whoever announces it)
keeps the CACHE_SIZE most recently used vers; a feature set of more than MAX_FEATURES features or
MAX_FEATURE_CHARS characters is not cached (a full Gajim or Conversations has about 60 features
in about 3,000 characters), so the cache never holds more than about 32 MB, whatever clients
send, and real clients' vers take a few KiB each. Per-session state lives as long as the
session.

What the features are for: PEP sends notifications of a node to sessions whose features include
`<node>+notify` (XEP-0163 §4.3.2, pep.py).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

from slixmpp.plugins.xep_0030.stanza.info import DiscoInfo
from slixmpp.plugins.xep_0115.stanza import Capabilities
from slixmpp.stanza import Iq

if TYPE_CHECKING:
    from pcloud.xmpp.session import Session

CAPS_NS = "http://jabber.org/protocol/caps"
DISCO_INFO_NS = "http://jabber.org/protocol/disco#info"
DATA_NS = "jabber:x:data"
NODE = "https://pcloud"
CACHE_SIZE = 1000
MAX_FEATURES = 500
MAX_FEATURE_CHARS = 32 * 1024

# Called when a session's features change, with the session.
Changed = Callable[["Session"], None]


class NotVerifiable(ValueError):
    """A disco#info answer whose verification string is not defined (XEP-0115 §5.4)."""


def verification_string(info: Element) -> str:
    """XEP-0115 §5.1 with SHA-1, of a disco#info <query/>; NotVerifiable when §5.4 says not to
    trust the answer (duplicate identities, features or form types)."""
    identities = [
        "/".join(
            (
                identity.get("category", ""),
                identity.get("type", ""),
                identity.get("{http://www.w3.org/XML/1998/namespace}lang", ""),
                identity.get("name", ""),
            )
        )
        for identity in info.iterfind(f"{{{DISCO_INFO_NS}}}identity")
    ]
    features = [feature.get("var", "") for feature in info.iterfind(f"{{{DISCO_INFO_NS}}}feature")]
    forms: dict[str, str] = {}
    for form in info.iterfind(f"{{{DATA_NS}}}x"):
        fields = {}
        for field in form.iterfind(f"{{{DATA_NS}}}field"):
            values = [value.text or "" for value in field.iterfind(f"{{{DATA_NS}}}value")]
            fields[field.get("var", "")] = (field.get("type"), values)
        form_type = fields.pop("FORM_TYPE", None)
        if form_type is None or form_type[0] not in (None, "hidden"):
            continue  # §5.4: such forms are ignored
        if len(form_type[1]) != 1 or form_type[1][0] in forms:
            raise NotVerifiable("a form type given twice")
        forms[form_type[1][0]] = "".join(
            var + "<" + "".join(value + "<" for value in sorted(values))
            for var, (_, values) in sorted(fields.items())
        )
    if len(set(identities)) != len(identities) or len(set(features)) != len(features):
        raise NotVerifiable("an identity or feature given twice")
    text = "".join(part + "<" for part in [*sorted(identities), *sorted(features)])
    text += "".join(form_type + "<" + fields for form_type, fields in sorted(forms.items()))
    return base64.b64encode(hashlib.sha1(text.encode()).digest()).decode()


def advertisement(info: DiscoInfo) -> Element:
    """The server's <c/> for its stream features (§6.3)."""
    caps = Capabilities()
    caps["hash"] = "sha-1"
    caps["node"] = NODE
    caps["ver"] = verification_string(info.xml)
    return caps.xml


# -- what clients say --------------------------------------------------------------------------


@dataclass
class _State:
    ver: str = ""  # the last ver announced
    features: frozenset[str] = frozenset()
    asked: str = ""  # the id of the outstanding disco#info question, if any
    changed: Changed | None = None


_cache: OrderedDict[str, frozenset[str]] = OrderedDict()  # verified ver → features
_sessions: weakref.WeakKeyDictionary[Session, _State] = weakref.WeakKeyDictionary()


def features(session: Session) -> frozenset[str]:
    """The features of a session's client, as far as the server knows them."""
    state = _sessions.get(session)
    return state.features if state is not None else frozenset()


def presence(session: Session, element: Element, changed: Changed) -> None:
    """An available presence from the session: learn its features if it tells them, and call
    `changed` when they change (at once, or when the client answers)."""
    caps = element.find(f"{{{CAPS_NS}}}c")
    if caps is None or caps.get("hash") != "sha-1" or not caps.get("node"):
        return
    ver = caps.get("ver", "")
    state = _sessions.setdefault(session, _State())
    if ver == state.ver:
        return
    state.ver, state.changed = ver, changed
    known = _cache.get(ver)
    if known is not None:
        _cache.move_to_end(ver)
        _set(session, state, known)
        return
    assert session.jid is not None
    question = Iq()
    question["type"] = "get"
    question["id"] = state.asked = "caps-" + secrets.token_hex(8)
    question["from"] = session.domain
    question["to"] = session.jid.full
    query = DiscoInfo()
    query["node"] = f"{caps.get('node')}#{ver}"
    question.xml.append(query.xml)
    session.send(question.xml)


def answered(session: Session, element: Element) -> None:
    """A result or error IQ sent to the server: the answer to a question of ours, or nothing."""
    state = _sessions.get(session)
    if state is None or not state.asked or element.get("id") != state.asked:
        return
    state.asked = ""
    info = element.find(f"{{{DISCO_INFO_NS}}}query")
    if element.get("type") != "result" or info is None:
        return
    try:
        if verification_string(info) != state.ver:
            return
    except NotVerifiable:
        return
    found = frozenset(f.get("var", "") for f in info.iterfind(f"{{{DISCO_INFO_NS}}}feature"))
    if len(found) > MAX_FEATURES or sum(map(len, found)) > MAX_FEATURE_CHARS:
        return
    _cache[state.ver] = found
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    _set(session, state, found)


def _set(session: Session, state: _State, found: frozenset[str]) -> None:
    if found != state.features:
        state.features = found
        if state.changed is not None:
            state.changed(session)
