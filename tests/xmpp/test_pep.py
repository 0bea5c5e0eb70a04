"""Personal eventing (XEP-0163) through the wire with slixmpp's xep_0060, xep_0163 and xep_0115:
OMEMO-style nodes with publish-options, access models, preconditions, configuration, and
notifications to contacts whose capabilities ask for them."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any
from xml.etree.ElementTree import Element, SubElement

import pytest
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0004.stanza import Form

from pcloud.testing import RunningServer
from pcloud.xmpp.pep import MAX_ITEM_CHARS, MAX_NODES
from tests.xmpp.conftest import TIMEOUT, Client, Connect
from tests.xmpp.test_roster import pushed, subscribe

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.org"
AXOLOTL = "eu.siacs.conversations.axolotl"
DEVICELIST = f"{AXOLOTL}.devicelist"
PUBSUB = "http://jabber.org/protocol/pubsub"
ERRORS_NS = f"{PUBSUB}#errors"


def pubsub(client: Client) -> Any:
    """The client's xep_0060 plugin, with the notifications it gets in a queue."""
    if "xep_0060" not in client.xmpp.plugin:
        for plugin in ("xep_0004", "xep_0060", "xep_0115", "xep_0163"):
            client.xmpp.register_plugin(plugin)
        client.events = asyncio.Queue()  # type: ignore[attr-defined]
        client.xmpp.add_event_handler("pubsub_publish", client.events.put_nowait)  # type: ignore[attr-defined]
        client.xmpp.add_event_handler("pubsub_retract", client.events.put_nowait)  # type: ignore[attr-defined]
    return client.xmpp.plugin["xep_0060"]


async def event(client: Client) -> Any:
    return await asyncio.wait_for(client.events.get(), TIMEOUT)  # type: ignore[attr-defined]


async def interested(client: Client, *nodes: str) -> None:
    """Advertise `<node>+notify` in the client's capabilities, then send presence with them."""
    pubsub(client)
    for node in nodes:
        client.xmpp.plugin["xep_0163"].add_interest(node)
    await client.xmpp.plugin["xep_0115"].update_caps(broadcast=False)
    client.xmpp.send_presence()


def options(**fields: str) -> Any:
    """A publish-options form (XEP-0060 §7.1.5); `access_model="open"` for pubsub#access_model."""
    form = Form()
    form["type"] = "submit"
    form.add_field(var="FORM_TYPE", ftype="hidden", value=f"{PUBSUB}#publish-options")
    for name, value in fields.items():
        form.add_field(var=f"pubsub#{name}", value=value)
    return form


def devices(*ids: int) -> Element:
    devicelist = Element(f"{{{AXOLOTL}}}list")
    for device in ids:
        SubElement(devicelist, f"{{{AXOLOTL}}}device", id=str(device))
    return devicelist


def device_ids(payload: Element) -> list[str]:
    return [device.get("id", "") for device in payload.iterfind(f"{{{AXOLOTL}}}device")]


async def items(client: Client, owner: str, node: str, **arguments: Any) -> list[tuple[str, Any]]:
    result = await pubsub(client).get_items(owner, node, timeout=TIMEOUT, **arguments)
    return [(item["id"], item["payload"]) for item in result["pubsub"]["items"]]


async def refused(call: Any) -> tuple[str, str | None]:
    """The condition of the error a request got, and its pubsub#errors condition."""
    with pytest.raises(IqError) as raised:
        await call
    error = raised.value.iq["error"]
    extra = [
        child.tag.split("}")[1] for child in error.xml if child.tag.startswith(f"{{{ERRORS_NS}}}")
    ]
    return error["condition"], (extra[0] if extra else None)


def stored(server: RunningServer, query: str, *values: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(server.data_dir / "xmpp" / "xmpp.sqlite3")
    try:
        return db.execute(query, values).fetchall()
    finally:
        db.close()


async def contacts(connect: Connect) -> tuple[Client, Client]:
    """Alice, online, and Bob, not yet available, who sees Alice's presence."""
    alice = await connect(ALICE)
    bob = await connect(BOB, presence=False)
    await subscribe(bob, alice)
    assert pushed(await bob.roster_push())[ALICE]["subscription"] == "to"
    return alice, bob


async def test_omemo_devicelist_and_bundle(server: RunningServer, connect: Connect) -> None:
    alice, bob = await contacts(connect)
    open_one = options(access_model="open", max_items="1")
    await pubsub(alice).publish(
        None, DEVICELIST, id="current", payload=devices(1234), options=open_one, timeout=TIMEOUT
    )
    bundle = Element(f"{{{AXOLOTL}}}bundle")
    SubElement(bundle, f"{{{AXOLOTL}}}identityKey").text = "BQ=="
    await pubsub(alice).publish(
        None, f"{AXOLOTL}.bundles:1234", id="current", payload=bundle,
        options=options(access_model="open"), timeout=TIMEOUT,
    )  # fmt: skip
    # open: anyone may read them, a contact or not
    carol = await connect(CAROL)
    for reader in (bob, carol):
        [(item_id, payload)] = await items(reader, ALICE, DEVICELIST)
        assert (item_id, device_ids(payload)) == ("current", ["1234"])
        [(_, payload)] = await items(reader, ALICE, f"{AXOLOTL}.bundles:1234")
        assert payload.findtext(f"{{{AXOLOTL}}}identityKey") == "BQ=="
    # Bob comes online asking for devicelist notifications: he gets the last item (XEP-0163
    # §6.2), then each new one as it is published
    await interested(bob, DEVICELIST)
    last = await event(bob)
    assert last["from"] == ALICE and last["pubsub_event"]["items"]["node"] == DEVICELIST
    assert device_ids(last["pubsub_event"]["items"]["item"]["payload"]) == ["1234"]
    await pubsub(alice).publish(
        None, DEVICELIST, id="current", payload=devices(1234, 5678), options=open_one,
        timeout=TIMEOUT,
    )  # fmt: skip
    live = await event(bob)
    assert device_ids(live["pubsub_event"]["items"]["item"]["payload"]) == ["1234", "5678"]
    # Carol, no contact, was not told (a round trip after the publish shows nothing came before);
    # what is kept is on disk
    await items(carol, ALICE, DEVICELIST)
    assert carol.events.empty()  # type: ignore[attr-defined]
    [(config,)] = stored(
        server, "SELECT config FROM pep_nodes WHERE owner = ? AND node = ?", ALICE, DEVICELIST
    )
    assert json.loads(config)["pubsub#access_model"] == "open"
    rows = stored(server, "SELECT item_id, payload FROM pep_items WHERE node = ?", DEVICELIST)
    assert len(rows) == 1 and rows[0][0] == "current" and "5678" in rows[0][1]


async def test_access_models(connect: Connect) -> None:
    alice, bob = await contacts(connect)
    carol = await connect(CAROL)
    mood = Element("{http://jabber.org/protocol/mood}mood")
    SubElement(mood, "{http://jabber.org/protocol/mood}happy")
    await pubsub(alice).publish(None, "http://jabber.org/protocol/mood", payload=mood)
    # presence, the default: a contact who sees Alice's presence reads it, a stranger does not
    assert len(await items(bob, ALICE, "http://jabber.org/protocol/mood")) == 1
    assert await refused(items(carol, ALICE, "http://jabber.org/protocol/mood")) == (
        "not-authorized",
        "presence-subscription-required",
    )
    # whitelist: Alice only
    bookmarks = Element("{urn:xmpp:bookmarks:1}conference", name="Room")
    await pubsub(alice).publish(
        None, "urn:xmpp:bookmarks:1", id="room@muc.example.org", payload=bookmarks,
        options=options(access_model="whitelist", max_items="max",
                        send_last_published_item="never", persist_items="true"),
    )  # fmt: skip
    assert [i for i, _ in await items(alice, ALICE, "urn:xmpp:bookmarks:1")] == [
        "room@muc.example.org"
    ]
    for reader in (bob, carol):
        assert await refused(items(reader, ALICE, "urn:xmpp:bookmarks:1")) == (
            "not-allowed",
            "closed-node",
        )
    # nobody but Alice changes her nodes; a node that does not exist is not found
    assert (await refused(pubsub(bob).publish(ALICE, "x", payload=devices(1))))[0] == "forbidden"
    assert (await refused(items(bob, ALICE, "nothing-here")))[0] == "item-not-found"


async def test_preconditions_configuration_and_retraction(
    server: RunningServer, connect: Connect
) -> None:
    alice, _ = await contacts(connect)
    node = f"{AXOLOTL}.bundles:42"
    ps = pubsub(alice)
    await ps.publish(None, node, id="a", payload=devices(1), options=options(access_model="open"))
    # XEP-0060 §7.1.5: options that differ from the node's are a precondition not met
    for conflicting in (options(access_model="presence"), options(max_items="5"),
                        options(access_model="roster"), options(unknown_option="1")):  # fmt: skip
        assert await refused(
            ps.publish(None, node, id="b", payload=devices(2), options=conflicting)
        ) == ("conflict", "precondition-not-met")
    await ps.publish(None, node, id="b", payload=devices(2), options=options(access_model="open"))
    assert [i for i, _ in await items(alice, ALICE, node)] == ["b"]  # max_items 1 by default
    # the owner's configuration form, read and changed
    form = (await ps.get_node_config(None, node))["pubsub_owner"]["configure"]["form"]
    assert form.get_values()["pubsub#access_model"] == "open"
    form["type"] = "submit"
    form.set_values({"pubsub#max_items": "2"})
    await ps.set_node_config(None, node, form)
    for item_id in ("c", "d", "e"):
        await ps.publish(None, node, id=item_id, payload=devices(3))
    assert [i for i, _ in await items(alice, ALICE, node)] == ["d", "e"]
    assert [i for i, _ in await items(alice, ALICE, node, max_items=1)] == ["e"]
    bad = (await ps.get_node_config(None, node))["pubsub_owner"]["configure"]["form"]
    bad["type"] = "submit"
    bad.set_values({"pubsub#max_items": "100000"})
    assert (await refused(ps.set_node_config(None, node, bad)))[0] == "not-acceptable"
    # retract and delete
    await ps.retract(None, node, "e", notify=True)
    assert [i for i, _ in await items(alice, ALICE, node)] == ["d"]
    assert (await refused(ps.retract(None, node, "e")))[0] == "item-not-found"
    await ps.delete_node(None, node)
    assert (await refused(items(alice, ALICE, node)))[0] == "item-not-found"
    assert stored(server, "SELECT * FROM pep_items WHERE node = ?", node) == []


async def test_bounds_and_deletion(server: RunningServer, connect: Connect) -> None:
    alice = await connect(ALICE)
    big = Element("{urn:example}big")
    big.text = "x" * MAX_ITEM_CHARS
    assert await refused(pubsub(alice).publish(None, "big", payload=big)) == (
        "not-acceptable",
        "payload-too-big",
    )
    two = Element(f"{{{PUBSUB}}}pubsub")
    publish = SubElement(two, f"{{{PUBSUB}}}publish", node="n")
    item = SubElement(publish, f"{{{PUBSUB}}}item")
    item.append(devices(1))
    item.append(devices(2))
    iq = alice.xmpp.make_iq_set(two)
    assert await refused(iq.send(timeout=TIMEOUT)) == ("bad-request", "invalid-payload")
    # a user's nodes are bounded
    ps = pubsub(alice)
    await asyncio.gather(*(ps.publish(None, f"n{i}", payload=devices(i)) for i in range(MAX_NODES)))
    assert (await refused(ps.publish(None, "one-more", payload=devices(0))))[0] == (
        "resource-constraint"
    )
    # and deleted with the user
    server.services.xmpp.forget_user(ALICE)
    for table in ("pep_nodes", "pep_items"):
        assert stored(server, f"SELECT * FROM {table} WHERE owner = ?", ALICE) == []


async def test_a_blocked_contact_gets_no_events(connect: Connect) -> None:
    """Blocking (XEP-0191) covers personal events as it covers presence: no event reaches a
    contact the owner blocked."""
    alice, bob = await contacts(connect)
    open_one = options(access_model="open", max_items="1")
    await pubsub(alice).publish(
        None, DEVICELIST, id="current", payload=devices(1), options=open_one, timeout=TIMEOUT
    )
    await interested(bob, DEVICELIST)
    assert device_ids((await event(bob))["pubsub_event"]["items"]["item"]["payload"]) == ["1"]
    alice.xmpp.register_plugin("xep_0191")
    await alice.xmpp.plugin["xep_0191"].block(BOB, timeout=TIMEOUT)
    await pubsub(alice).publish(
        None, DEVICELIST, id="current", payload=devices(2), options=open_one, timeout=TIMEOUT
    )
    await pubsub(alice).get_items(ALICE, DEVICELIST, timeout=TIMEOUT)  # the publish is done
    await bob.xmpp.plugin["xep_0199"].ping(jid="example.org", timeout=TIMEOUT)
    assert bob.events.empty()  # type: ignore[attr-defined]
    await alice.xmpp.plugin["xep_0191"].unblock(BOB, timeout=TIMEOUT)
    await pubsub(alice).publish(
        None, DEVICELIST, id="current", payload=devices(3), options=open_one, timeout=TIMEOUT
    )
    live = await event(bob)
    assert device_ids(live["pubsub_event"]["items"]["item"]["payload"]) == ["3"]


async def test_what_older_clients_look_for(connect: Connect) -> None:
    """profanity asks for its OMEMO device list and takes it as missing only on the legacy code
    404 (XEP-0086), and publishes its bundle with options only if the server's own disco
    lists publish-options."""
    alice = await connect(ALICE)
    with pytest.raises(IqError) as raised:
        await pubsub(alice).get_items(ALICE, DEVICELIST, timeout=TIMEOUT)
    error = raised.value.iq["error"]
    assert (error["condition"], error.xml.get("code")) == ("item-not-found", "404")
    info = await alice.xmpp.plugin["xep_0030"].get_info(jid="example.org", timeout=TIMEOUT)
    assert f"{PUBSUB}#publish-options" in info["disco_info"]["features"]
