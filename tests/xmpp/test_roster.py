"""Rosters and presence subscriptions between two users (RFC 6121 §2, §3, §4)."""

from __future__ import annotations

import asyncio

from pcloud.store.xmpp import RosterItem
from pcloud.testing import RunningServer
from tests.xmpp.conftest import TIMEOUT, Client, Connect


def pushed(push: object) -> dict[str, dict[str, object]]:
    """A roster push's items, by JID."""
    return {str(jid): item for jid, item in push["roster"]["items"].items()}  # type: ignore[index]


async def subscribe(asker: Client, contact: Client) -> None:
    """`asker` asks for `contact`'s presence, and `contact` approves."""
    asker_bare, contact_bare = asker.jid.split("/")[0], contact.jid.split("/")[0]
    asker.xmpp.send_presence(pto=contact_bare, ptype="subscribe")
    push = await asker.roster_push()
    assert pushed(push)[contact_bare]["ask"] == "subscribe"
    request = await contact.presence("subscribe")
    assert request["from"] == asker_bare
    contact.xmpp.send_presence(pto=asker_bare, ptype="subscribed")


async def test_roster_items_are_kept_and_pushed(server: RunningServer, connect: Connect) -> None:
    alice = await connect("alice@example.org/laptop")
    phone = await connect("alice@example.org/phone")
    await alice.xmpp.update_roster("bob@example.org", name="Bob", groups=["Friends", "Work"])
    for client in (alice, phone):
        push = await client.roster_push()
        item = pushed(push)["bob@example.org"]
        assert item["name"] == "Bob" and sorted(item["groups"]) == ["Friends", "Work"]
    stored = server.services.xmpp.item("alice@example.org", "bob@example.org")
    assert stored == RosterItem("bob@example.org", "Bob", ("Friends", "Work"))
    # roster versioning: the current version gets an empty answer, an old one the roster
    version, _ = server.services.xmpp.roster("alice@example.org")
    iq = alice.xmpp.Iq(stype="get")
    iq.enable("roster")
    iq["roster"]["ver"] = str(version)
    answer = await iq.send(timeout=TIMEOUT)
    assert len(answer.xml) == 0
    iq = alice.xmpp.Iq(stype="get")
    iq.enable("roster")
    iq["roster"]["ver"] = "0"
    answer = await iq.send(timeout=TIMEOUT)
    assert answer["roster"]["ver"] == str(version)
    assert "bob@example.org" in {str(jid) for jid in answer["roster"]["items"]}
    alice.xmpp.del_roster_item("bob@example.org")
    push = await alice.roster_push()
    assert pushed(push)["bob@example.org"]["subscription"] == "remove"
    assert server.services.xmpp.item("alice@example.org", "bob@example.org") is None


async def test_subscription_flow_and_presence(server: RunningServer, connect: Connect) -> None:
    alice = await connect("alice@example.org/laptop")
    bob = await connect("bob@example.org/desk")
    await subscribe(alice, bob)
    # Alice now sees Bob (to), Bob is seen by Alice (from), and Bob's presence follows
    push = await alice.roster_push()
    assert pushed(push)["bob@example.org"]["subscription"] == "to"
    assert (await alice.presence("subscribed"))["from"] == "bob@example.org"
    assert (await alice.presence("available", "bob@example.org"))["from"] == bob.jid
    assert pushed(await bob.roster_push())["alice@example.org"]["subscription"] == "from"
    store = server.services.xmpp
    assert store.item("alice@example.org", "bob@example.org").subscription == "to"  # type: ignore[union-attr]
    assert store.item("bob@example.org", "alice@example.org").subscription == "from"  # type: ignore[union-attr]
    # Bob's presence changes reach Alice; Alice's do not reach Bob (he has no subscription)
    bob.xmpp.send_presence(pshow="away", pstatus="lunch")
    seen = await alice.presence("available", "bob@example.org")
    assert seen["show"] == "away" and seen["status"] == "lunch"
    # and the other way: both
    await subscribe(bob, alice)
    assert pushed(await bob.roster_push())["alice@example.org"]["subscription"] == "both"
    assert pushed(await alice.roster_push())["bob@example.org"]["subscription"] == "both"
    assert (await bob.presence("available", "alice@example.org"))["from"] == alice.jid
    # Bob goes away: Alice is told
    bob.xmpp.send_presence(ptype="unavailable")
    assert (await alice.presence("unavailable", "bob@example.org"))["from"] == bob.jid
    # Alice removes Bob: both subscriptions end, on both sides
    alice.xmpp.del_roster_item("bob@example.org")
    while pushed(await bob.roster_push())["alice@example.org"]["subscription"] != "none":
        pass
    assert store.item("alice@example.org", "bob@example.org") is None
    assert store.item("bob@example.org", "alice@example.org").subscription == "none"  # type: ignore[union-attr]


async def test_a_request_to_an_offline_user_waits_for_them(
    server: RunningServer, connect: Connect
) -> None:
    alice = await connect("alice@example.org/laptop")
    server.add_user("carol@example.org", "correct horse battery")
    alice.xmpp.send_presence(pto="carol@example.org", ptype="subscribe")
    await alice.roster_push()
    # Alice's push may reach her before the server's thread has stored Carol's side.
    for _ in range(500):
        stored = server.services.xmpp.item("carol@example.org", "alice@example.org")
        if stored is not None:
            break
        await asyncio.sleep(0.01)
    assert stored is not None and stored.pending_in and not stored.listed
    carol = await connect("carol@example.org/phone")
    request = await carol.presence("subscribe")
    assert request["from"] == "alice@example.org"
    assert server.services.xmpp.roster("carol@example.org")[1] == []  # not listed yet
    carol.xmpp.send_presence(pto="alice@example.org", ptype="subscribed")
    assert pushed(await carol.roster_push())["alice@example.org"]["subscription"] == "from"
    assert (await alice.presence("available", "carol@example.org"))["from"] == carol.jid


async def test_asking_again_once_approved_changes_nothing(
    server: RunningServer, connect: Connect
) -> None:
    alice = await connect("alice@example.org/laptop")
    bob = await connect("bob@example.org/desk")
    await subscribe(alice, bob)
    await alice.presence("subscribed")
    # the server answers for Bob (RFC 6121 §3.1.3), and Alice, already subscribed, is not told
    alice.xmpp.send_presence(pto="bob@example.org", ptype="subscribe")
    bob.send_message("alice@example.org", "marker")
    assert (await alice.message())["body"] == "marker"
    store = server.services.xmpp
    assert store.item("alice@example.org", "bob@example.org").subscription == "to"  # type: ignore[union-attr]
    assert store.item("bob@example.org", "alice@example.org").subscription == "from"  # type: ignore[union-attr]
    while not bob.presences.empty():
        assert bob.presences.get_nowait()["type"] != "subscribe"
