"""Personal eventing (XEP-0163): a publish-subscribe service (XEP-0060) on each user's bare JID,
kept by pcloud.store.xmpp. What OMEMO (XEP-0384), avatars (XEP-0084, avatars.py), bookmarks
(XEP-0402), nicknames and the like ride on.

Served (to the owner): publish with publish-options (§7.1.5: an option the node does not have
gets `conflict` + <precondition-not-met/>), auto-creating the node (with those options); retract
(with notify); create (with a configuration); and in the owner namespace: configure (get and
set), default, delete, purge. Served to anyone allowed by the node's access model: items (all,
the `max_items` latest, or by id). The node configuration (pubsub#node_config) has
`access_model` (open, presence: the default, contacts with a "from" or "both" subscription, or
whitelist: the owner only; roster and authorize are refused), `max_items` (1 to MAX_ITEMS, or
"max"; 1 by default) and `send_last_published_item` (never, on_sub, on_sub_and_presence: the
default); persist_items, deliver_payloads, deliver_notifications, notify_retract and
notify_delete are always true.

Notifications (§4.3): a publish, a retract with notify, a delete or a purge goes, as a headline
message from the owner's bare JID, to each available resource of the owner and of their contacts
with a "from" or "both" subscription (the owner's only, for whitelist nodes) whose entity
capabilities (caps.py) include `<node>+notify`. When such a resource sends initial presence, or
its capabilities become known, it gets the last item of each node it is newly interested in
(§6.2, only if send_last_published_item is on_sub_and_presence); for avatar metadata, a user
with no avatar nodes but a picture in the avatar store counts as having published it
(avatars.py).

Bounds: an item's payload at most MAX_ITEM_CHARS
(`not-acceptable` + <payload-too-big/>): a 192-pixel avatar is about 40 KiB of base64, an OMEMO
bundle 5 KiB; at most MAX_NODES nodes a user (OMEMO has a node per device, plus a handful of
others per feature) and MAX_USER_CHARS characters of items in all (`resource-constraint`);
node names and item ids MAX_NAME_CHARS.

Not supported: explicit subscriptions (subscribe, subscriptions, affiliations, options: PEP
subscribes through presence and caps), collection nodes, disco#items listing of an account's
nodes, a pubsub service on the server's domain; and notifications still reach a contact the
owner blocks (XEP-0191) if they see the owner's presence subscription-wise.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Coroutine
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element, SubElement

from slixmpp.plugins.xep_0004.stanza import Form
from slixmpp.stanza import Iq, Message
from slixmpp.types import ErrorConditions

from pcloud.store.xmpp import PepQuotaExceeded
from pcloud.xmpp import avatars, blocking, caps
from pcloud.xmpp.errors import XMPPError
from pcloud.xmpp.wire import to_text

if TYPE_CHECKING:
    from pcloud.services import Services
    from pcloud.xmpp.session import Session

log = logging.getLogger(__name__)

PUBSUB_NS = "http://jabber.org/protocol/pubsub"
OWNER_NS = f"{PUBSUB_NS}#owner"
EVENT_NS = f"{PUBSUB_NS}#event"
ERRORS_NS = f"{PUBSUB_NS}#errors"
NODE_CONFIG = f"{PUBSUB_NS}#node_config"
PUBLISH_OPTIONS = f"{PUBSUB_NS}#publish-options"
DATA_NS = "jabber:x:data"
FEATURES = (
    PUBSUB_NS,
    *(
        f"{PUBSUB_NS}#{name}"
        for name in (
            "access-open",
            "access-presence",
            "access-whitelist",
            "auto-create",
            "config-node",
            "config-node-max",
            "create-and-configure",
            "create-nodes",
            "delete-items",
            "delete-nodes",
            "filtered-notifications",
            "item-ids",
            "last-published",
            "persistent-items",
            "publish",
            "publish-options",
            "purge-nodes",
            "retract-items",
            "retrieve-default",
            "retrieve-items",
        )
    ),
)

MAX_ITEM_CHARS = 128 * 1024
MAX_NODES = 256
MAX_ITEMS = 256
MAX_USER_CHARS = 8 * 1024 * 1024
MAX_NAME_CHARS = 1024

ACCESS = "pubsub#access_model"
MAX = "pubsub#max_items"
SEND_LAST = "pubsub#send_last_published_item"
DEFAULTS = {ACCESS: "presence", MAX: "1", SEND_LAST: "on_sub_and_presence"}
CHOICES = {
    ACCESS: ("open", "presence", "whitelist"),
    SEND_LAST: ("never", "on_sub", "on_sub_and_presence"),
}
ALWAYS_TRUE = (
    "pubsub#persist_items",
    "pubsub#deliver_payloads",
    "pubsub#deliver_notifications",
    "pubsub#notify_retract",
    "pubsub#notify_delete",
)

# The nodes whose last item each session has had since its initial presence (§6.2).
_delivered: weakref.WeakKeyDictionary[Session, set[str]] = weakref.WeakKeyDictionary()


def _error(condition: ErrorConditions, pubsub_condition: str, text: str = "") -> XMPPError:
    """A stanza error with the pubsub#errors element XEP-0060 names beside it."""
    return XMPPError(condition, text, extension=pubsub_condition, extension_ns=ERRORS_NS)


async def handle(session: Session, iq: Iq) -> Element | None:
    """A pubsub or pubsub#owner IQ to an account (the user's own, or another's)."""
    to = iq["to"]
    if to and not to.user:
        raise XMPPError("service-unavailable", "pubsub is served on each account's JID")
    owner = str(to.bare) if to else session.bare
    request = iq.xml[0]
    verbs = [child for child in request if child.tag != f"{{{PUBSUB_NS}}}publish-options"]
    if len(verbs) != 1:
        raise XMPPError("bad-request", "one pubsub request at a time")
    verb = verbs[0]
    name = verb.tag.split("}")[1]
    node = verb.get("node", "")
    if len(node) > MAX_NAME_CHARS:
        raise XMPPError("not-acceptable", "the node name is too long")
    if not node and name != "default":
        raise _error("bad-request", "nodeid-required")
    if (iq["type"], request.tag, name) == ("get", f"{{{PUBSUB_NS}}}pubsub", "items"):
        return await _items(session, owner, node, verb)
    if owner != session.bare:
        raise XMPPError("forbidden", "only the account's owner changes its nodes")
    store = session.services.xmpp
    config = store.pep_config(owner, node)
    if request.tag == f"{{{OWNER_NS}}}pubsub":
        return _owner_request(session, iq["type"], name, node, config, verb)
    if iq["type"] != "set":
        raise XMPPError("feature-not-implemented", f"{name} is not served")
    if name == "publish":
        options = request.find(f"{{{PUBSUB_NS}}}publish-options/{{{DATA_NS}}}x")
        return await _publish(session, node, config, verb, _form_values(options))
    if name == "retract":
        _retract(session, node, config, verb)
        return None
    if name == "create":
        if config is not None:
            raise XMPPError("conflict", "the node exists")
        configure = request.find(f"{{{PUBSUB_NS}}}configure/{{{DATA_NS}}}x")
        _configure(session, node, DEFAULTS, _form_values(configure))
        return None
    raise XMPPError("feature-not-implemented", f"{name} is not served: PEP subscribes by presence")


# -- reading (XEP-0060 §6.5) ---------------------------------------------------------------------


async def _items(session: Session, owner: str, node: str, verb: Element) -> Element:
    services = session.services
    config = services.xmpp.pep_config(owner, node)
    item_ids = [item.get("id", "") for item in verb.iterfind(f"{{{PUBSUB_NS}}}item")]
    if config is None:
        found = await avatars.stored(services, owner, node) if node in avatars.NODES else None
        if found is None or (item_ids and found[0] not in item_ids):
            raise XMPPError("item-not-found", "no such node")
        return _pubsub_items(node, [found])
    if not _may_read(services, owner, session.bare, config):
        if config[ACCESS] == "presence":
            raise _error("not-authorized", "presence-subscription-required")
        raise _error("not-allowed", "closed-node")
    try:
        last = int(verb.get("max_items") or 0)
    except ValueError:
        raise XMPPError("bad-request", "max_items is a number") from None
    items = services.xmpp.pep_items(
        owner, node, item_ids=item_ids[:MAX_ITEMS] or None, last=max(last, 0)
    )
    # payloads were written by to_text: no DTD, nothing to expand
    return _pubsub_items(node, [(item_id, ET.fromstring(text)) for item_id, text in items])


def _pubsub_items(node: str, items: list[tuple[str, Element]]) -> Element:
    pubsub = Element(f"{{{PUBSUB_NS}}}pubsub")
    wrapper = SubElement(pubsub, f"{{{PUBSUB_NS}}}items", node=node)
    for item_id, payload in items:
        SubElement(wrapper, f"{{{PUBSUB_NS}}}item", id=item_id).append(payload)
    return pubsub


def _may_read(services: Services, owner: str, reader: str, config: dict[str, str]) -> bool:
    if reader == owner or config[ACCESS] == "open":
        return True
    if config[ACCESS] == "presence":
        item = services.xmpp.item(owner, reader)
        return item is not None and item.subscription in ("from", "both")
    return False


# -- publishing (XEP-0060 §7) --------------------------------------------------------------------


async def _publish(
    session: Session,
    node: str,
    config: dict[str, str] | None,
    verb: Element,
    options: dict[str, str],
) -> Element:
    items = verb.findall(f"{{{PUBSUB_NS}}}item")
    if not items:
        raise _error("bad-request", "item-required")
    if len(items) > 1 or len(items[0]) != 1:
        raise _error("bad-request", "invalid-payload", "one item with one payload")
    item_id = items[0].get("id") or secrets.token_hex(8)
    payload = items[0][0]
    text = to_text(payload)
    if len(text) > MAX_ITEM_CHARS or len(item_id) > MAX_NAME_CHARS:
        raise _error("not-acceptable", "payload-too-big", f"at most {MAX_ITEM_CHARS} characters")
    if config is None:
        try:
            config = _configured(DEFAULTS, options)
        except ValueError as error:
            raise _error("conflict", "precondition-not-met", str(error)) from None
    else:
        _check_preconditions(config, options)
    services, owner = session.services, session.bare
    await avatars.publishing(services, owner, node, payload)
    try:
        services.xmpp.pep_publish(
            owner,
            node,
            config,
            (item_id, text),
            keep=_keep(config),
            max_nodes=MAX_NODES,
            max_bytes=MAX_USER_CHARS,
        )
    except PepQuotaExceeded as error:
        raise XMPPError("resource-constraint", str(error), etype="wait") from None
    _notify(session, owner, node, config, _published(node, item_id, payload))
    pubsub = Element(f"{{{PUBSUB_NS}}}pubsub")
    published = SubElement(pubsub, f"{{{PUBSUB_NS}}}publish", node=node)
    SubElement(published, f"{{{PUBSUB_NS}}}item", id=item_id)
    return pubsub


def _check_preconditions(config: dict[str, str], options: dict[str, str]) -> None:
    """XEP-0060 §7.1.5: each publish option must be what the node has."""
    for var, value in options.items():
        try:
            matches = _normalized(var, value) == config.get(var, "true")
        except ValueError:
            matches = False
        if not matches:
            raise _error("conflict", "precondition-not-met", f"the node's {var} differs")


def _retract(session: Session, node: str, config: dict[str, str] | None, verb: Element) -> None:
    items = verb.findall(f"{{{PUBSUB_NS}}}item")
    if len(items) != 1 or not items[0].get("id"):
        raise _error("bad-request", "item-required")
    item_id = items[0].get("id", "")
    if config is None or not session.services.xmpp.pep_retract(session.bare, node, item_id):
        raise XMPPError("item-not-found", "no such item")
    if verb.get("notify") in ("1", "true"):
        event_items = Element(f"{{{EVENT_NS}}}items", node=node)
        SubElement(event_items, f"{{{EVENT_NS}}}retract", id=item_id)
        _notify(session, session.bare, node, config, event_items)


# -- owning (XEP-0060 §8) ------------------------------------------------------------------------


def _owner_request(
    session: Session,
    kind: str,
    name: str,
    node: str,
    config: dict[str, str] | None,
    verb: Element,
) -> Element | None:
    if (kind, name) == ("get", "default"):
        return _config_form(OWNER_NS, "default", "", DEFAULTS)
    if kind != "set" and name != "configure":
        raise XMPPError("feature-not-implemented", f"{name} is not served")
    if config is None:
        raise XMPPError("item-not-found", "no such node")
    store = session.services.xmpp
    if name == "configure" and kind == "get":
        return _config_form(OWNER_NS, "configure", node, config)
    if name == "configure":
        _configure(session, node, config, _form_values(verb.find(f"{{{DATA_NS}}}x")))
    elif name == "delete":
        store.pep_delete(session.bare, node)
        _notify(session, session.bare, node, config, Element(f"{{{EVENT_NS}}}delete", node=node))
    elif name == "purge":
        store.pep_configure(session.bare, node, config, keep=0, max_nodes=MAX_NODES)
        _notify(session, session.bare, node, config, Element(f"{{{EVENT_NS}}}purge", node=node))
    else:
        raise XMPPError("feature-not-implemented", f"{name} is not served")
    return None


def _configure(session: Session, node: str, base: dict[str, str], values: dict[str, str]) -> None:
    try:
        config = _configured(base, values)
    except ValueError as error:
        raise XMPPError("not-acceptable", str(error)) from None
    try:
        session.services.xmpp.pep_configure(
            session.bare, node, config, keep=_keep(config), max_nodes=MAX_NODES
        )
    except PepQuotaExceeded as error:
        raise XMPPError("resource-constraint", str(error), etype="wait") from None


def _config_form(namespace: str, name: str, node: str, config: dict[str, str]) -> Element:
    form = Form()
    form["type"] = "form"
    form.add_field(var="FORM_TYPE", ftype="hidden", value=NODE_CONFIG)
    for var, options in CHOICES.items():
        field = form.add_field(var=var, ftype="list-single", value=config[var])
        for option in options:
            field.add_option(value=option)
    form.add_field(var=MAX, ftype="text-single", value=config[MAX])
    for var in ALWAYS_TRUE:
        form.add_field(var=var, ftype="boolean", value=True)
    pubsub = Element(f"{{{namespace}}}pubsub")
    wrapper = SubElement(pubsub, f"{{{namespace}}}{name}")
    if node:
        wrapper.set("node", node)
    wrapper.append(form.xml)
    return pubsub


def _form_values(form: Element | None) -> dict[str, str]:
    """The fields of a submitted data form (XEP-0004), but FORM_TYPE: var → first value."""
    if form is None:
        return {}
    values = {
        field.get("var", ""): field.findtext(f"{{{DATA_NS}}}value") or ""
        for field in form.iterfind(f"{{{DATA_NS}}}field")
    }
    values.pop("FORM_TYPE", None)
    return values


def _normalized(var: str, value: str) -> str:
    """A configuration value as kept; ValueError when it is not one the service offers."""
    if var == MAX:
        if value == "max" or 1 <= int(value) <= MAX_ITEMS:
            return value if value == "max" else str(int(value))
    elif var in CHOICES:
        if value in CHOICES[var]:
            return value
    elif var in ALWAYS_TRUE and value in ("1", "true"):
        return "true"
    raise ValueError(f"{var} cannot be {value!r} here")


def _configured(base: dict[str, str], values: dict[str, str]) -> dict[str, str]:
    config = dict(base)
    for var, value in values.items():
        normalized = _normalized(var, value)
        if var in config:
            config[var] = normalized
    return config


def _keep(config: dict[str, str]) -> int:
    return MAX_ITEMS if config[MAX] == "max" else int(config[MAX])


# -- notifications (XEP-0163 §4.3, §6.2) ---------------------------------------------------------


def _published(node: str, item_id: str, payload: Element) -> Element:
    items = Element(f"{{{EVENT_NS}}}items", node=node)
    SubElement(items, f"{{{EVENT_NS}}}item", id=item_id).append(payload)
    return items


def _event(owner: str, to: str, content: Element) -> Element:
    message = Message()
    message["type"] = "headline"
    message["from"] = owner
    message["to"] = to
    SubElement(message.xml, f"{{{EVENT_NS}}}event").append(content)
    return message.xml


def _notify(
    session: Session, owner: str, node: str, config: dict[str, str], content: Element
) -> None:
    readers = [owner]
    if config[ACCESS] != "whitelist":
        readers += [
            item.contact
            for item in session.services.xmpp.items(owner)
            if item.subscription in ("from", "both")
        ]
    interest = f"{node}+notify"
    for reader in readers:
        for target in blocking.unblocked(session.router.available(reader), owner):
            if interest in caps.features(target) and target.jid is not None:
                target.send(_event(owner, target.jid.full, content))


def available(session: Session, element: Element, *, initial: bool) -> None:
    """The session sent available presence: learn its capabilities, and send it the last items
    it is interested in."""
    if initial:
        _delivered[session] = set()
    caps.presence(session, element, _catch_up)
    _catch_up(session)


def _catch_up(session: Session) -> None:
    """§6.2: the last item of each node the session has become interested in, from the user
    and from each contact whose presence they see."""
    if session.presence is None or session.jid is None:
        return
    delivered = _delivered.setdefault(session, set())
    wanted = {f[: -len("+notify")] for f in caps.features(session) if f.endswith("+notify")}
    wanted -= delivered
    if not wanted:
        return
    delivered |= wanted
    store = session.services.xmpp
    owners = [session.bare] + [
        item.contact
        for item in store.items(session.bare)
        if item.subscription in ("to", "both") and any(blocking.unblocked([session], item.contact))
    ]
    for owner in owners:
        nodes = store.pep_nodes(owner)
        if avatars.METADATA_NS in wanted and avatars.METADATA_NS not in nodes:
            _in_background(_stored_avatar(session, owner))
        for node, config in nodes.items():
            if node not in wanted or config[SEND_LAST] != "on_sub_and_presence":
                continue
            if owner != session.bare and config[ACCESS] == "whitelist":
                continue
            for item_id, text in store.pep_items(owner, node, last=1):
                content = _published(node, item_id, ET.fromstring(text))
                session.send(_event(owner, session.jid.full, content))


async def _stored_avatar(session: Session, owner: str) -> None:
    """The avatar store's picture of someone who published none, as a last metadata item."""
    found = await avatars.stored(session.services, owner, avatars.METADATA_NS)
    if found is None or session.presence is None or session.jid is None:
        return
    content = _published(avatars.METADATA_NS, *found)
    session.send(_event(owner, session.jid.full, content))


_tasks: set[asyncio.Task[None]] = set()  # held until done: the loop keeps only weak references


def _in_background(work: Coroutine[None, None, None]) -> None:
    task = asyncio.get_running_loop().create_task(work)
    _tasks.add(task)
    task.add_done_callback(_done)


def _done(task: asyncio.Task[None]) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("pep background work failed", exc_info=task.exception())
