"""Blocking (XEP-0191) through the wire with slixmpp's xep_0191: the blocklist and its pushes,
stanzas dropped or refused both ways, presence hidden both ways, and what unblocking restores."""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from typing import Any
from xml.etree.ElementTree import fromstring

import pytest
from slixmpp.exceptions import IqError
from slixmpp.jid import JID

from pcloud.testing import RunningServer
from tests.cli.test_admin import Cli
from tests.xmpp.conftest import PASSWORD, TIMEOUT, Client, Connect
from tests.xmpp.test_roster import subscribe

ALICE, BOB, MALLORY = "alice@example.org", "bob@example.org", "mallory@example.org"
BLOCKED_NS = "urn:xmpp:blocking:errors"


# The blocklist pushes each client got, once blocking(client) registered the plugin.
PUSHES: weakref.WeakKeyDictionary[Client, asyncio.Queue[Any]] = weakref.WeakKeyDictionary()


def blocking(client: Client) -> Any:
    """The client's xep_0191 plugin."""
    if "xep_0191" not in client.xmpp.plugin:
        client.xmpp.register_plugin("xep_0191")
        pushes = PUSHES[client] = asyncio.Queue()
        client.xmpp.add_event_handler("blocked", pushes.put_nowait)
        client.xmpp.add_event_handler("unblocked", pushes.put_nowait)
    return client.xmpp.plugin["xep_0191"]


async def push(client: Client) -> tuple[str, set[str]]:
    iq = await asyncio.wait_for(PUSHES[client].get(), TIMEOUT)
    kind = "block" if iq.xml.find("{urn:xmpp:blocking}block") is not None else "unblock"
    return kind, {str(item["jid"]) for item in iq[kind]}


def stored(server: RunningServer) -> list[tuple[str, str]]:
    db = sqlite3.connect(server.data_dir / "xmpp" / "xmpp.sqlite3")
    try:
        return db.execute("SELECT owner, jid FROM blocklist ORDER BY jid").fetchall()
    finally:
        db.close()


async def test_blocklist_is_kept_and_pushed(server: RunningServer, connect: Connect) -> None:
    laptop = await connect(f"{ALICE}/laptop")
    phone = await connect(f"{ALICE}/phone")
    info = await laptop.xmpp.plugin["xep_0030"].get_info(jid="example.org", timeout=TIMEOUT)
    assert "urn:xmpp:blocking" in info["disco_info"]["features"]
    assert await blocking(phone).get_blocked_jids(timeout=TIMEOUT) == set()
    blocking(laptop)

    await blocking(laptop).block([JID(BOB), JID("Spam.Example"), JID(f"{MALLORY}/bot")])
    # the phone asked for the list: it gets the push; the laptop did not
    assert await push(phone) == ("block", {BOB, "spam.example", f"{MALLORY}/bot"})
    assert stored(server) == [(ALICE, BOB), (ALICE, f"{MALLORY}/bot"), (ALICE, "spam.example")]
    assert await blocking(laptop).get_blocked_jids(timeout=TIMEOUT) == {
        JID(BOB),
        JID("spam.example"),
        JID(f"{MALLORY}/bot"),
    }

    await blocking(phone).unblock([JID("spam.example"), JID("never@example.org")])
    assert await push(phone) == ("unblock", {"spam.example"})
    assert await push(laptop) == ("unblock", {"spam.example"})  # it asked for it since
    # a new session reads the kept list
    later = await connect(f"{ALICE}/desk")
    assert await blocking(later).get_blocked_jids(timeout=TIMEOUT) == {
        JID(BOB),
        JID(f"{MALLORY}/bot"),
    }
    # unblock all: an <unblock/> without items, pushed as such
    everything = later.xmpp.make_iq_set()
    everything.enable("unblock")
    await everything.send(timeout=TIMEOUT)
    for client in (phone, laptop, later):
        assert await push(client) == ("unblock", set())
    assert stored(server) == []


@pytest.mark.parametrize(
    ("payload", "condition"),
    [
        ("<block xmlns='urn:xmpp:blocking'/>", "bad-request"),
        ("<block xmlns='urn:xmpp:blocking'><item jid='a@@b'/></block>", "jid-malformed"),
        ("<block xmlns='urn:xmpp:blocking'><item/></block>", "jid-malformed"),
        ("<blocklist xmlns='urn:xmpp:blocking'/>", "bad-request"),  # a set
    ],
)
async def test_bad_block_requests_are_refused(
    server: RunningServer, connect: Connect, payload: str, condition: str
) -> None:
    alice = await connect(f"{ALICE}/laptop")
    iq = alice.xmpp.make_iq_set()
    iq.xml.append(fromstring(payload))
    with pytest.raises(IqError) as refused:
        await iq.send(timeout=TIMEOUT)
    assert refused.value.iq["error"]["condition"] == condition
    assert stored(server) == []


async def test_blocked_contact_is_cut_off_both_ways(
    server: RunningServer, connect: Connect
) -> None:
    alice = await connect(f"{ALICE}/laptop")
    bob = await connect(f"{BOB}/desk")
    carol = await connect("carol@example.org/desk")
    await blocking(alice).block(JID(BOB), timeout=TIMEOUT)

    bob.send_message(ALICE, "can you hear me?")
    refused = await bob.message()
    assert refused["type"] == "error" and refused["error"]["condition"] == "service-unavailable"
    with pytest.raises(IqError) as unanswered:
        await bob.xmpp.plugin["xep_0199"].send_ping(alice.jid, timeout=TIMEOUT)
    assert unanswered.value.iq["error"]["condition"] == "service-unavailable"
    bob.xmpp.send_presence(pto=ALICE, ptype="subscribe")  # dropped without a word
    await bob.xmpp.plugin["xep_0199"].ping(jid="example.org", timeout=TIMEOUT)

    alice.send_message(BOB, "you are blocked")
    error = await alice.message()
    assert error["type"] == "error" and error["error"]["condition"] == "not-acceptable"
    assert error.xml.find(f".//{{{BLOCKED_NS}}}blocked") is not None
    with pytest.raises(IqError) as refused_iq:
        await alice.xmpp.plugin["xep_0199"].send_ping(bob.jid, timeout=TIMEOUT)
    assert refused_iq.value.iq["error"]["condition"] == "not-acceptable"

    # nothing of bob's reached alice: the next message she gets is carol's
    carol.send_message(ALICE, "from carol")
    assert (await alice.message())["body"] == "from carol"
    assert server.services.xmpp.item(ALICE, BOB) is None  # the request left no trace

    await blocking(alice).unblock(JID(BOB), timeout=TIMEOUT)
    alice.send_message(BOB, "hello again")
    assert (await bob.message())["body"] == "hello again"
    bob.send_message(ALICE, "welcome back")
    assert (await alice.message())["body"] == "welcome back"


async def test_blocking_a_domain_or_a_resource(server: RunningServer, connect: Connect) -> None:
    alice = await connect(f"{ALICE}/laptop")
    bob_desk = await connect(f"{BOB}/desk")
    bob_phone = await connect(f"{BOB}/phone")
    await blocking(alice).block(JID(f"{BOB}/desk"), timeout=TIMEOUT)
    bob_desk.send_message(ALICE, "from the desk")
    assert (await bob_desk.message())["type"] == "error"
    bob_phone.send_message(ALICE, "from the phone")
    assert (await alice.message())["body"] == "from the phone"
    await blocking(alice).block(JID("example.org"), timeout=TIMEOUT)
    bob_phone.send_message(ALICE, "still there?")
    assert (await bob_phone.message())["error"]["condition"] == "service-unavailable"
    # neither the server itself nor her own resources are blocked with her domain
    await alice.xmpp.plugin["xep_0199"].ping(jid="example.org", timeout=TIMEOUT)
    phone = await connect(f"{ALICE}/phone")
    while (await alice.presence(sender=ALICE))["from"] != phone.jid:
        pass


async def test_presence_is_hidden_while_blocked(server: RunningServer, connect: Connect) -> None:
    alice = await connect(f"{ALICE}/laptop")
    bob = await connect(f"{BOB}/desk")
    await subscribe(alice, bob)
    await bob.roster_push()  # his approval
    await subscribe(bob, alice)
    await bob.presence("available", sender=ALICE)  # the approval went through

    await blocking(alice).block(JID(BOB), timeout=TIMEOUT)
    # bob sees alice go; what she and he say next goes nowhere
    gone = await bob.presence("unavailable", sender=ALICE)
    assert gone["from"] == alice.jid
    alice.xmpp.send_presence(pstatus="one")
    alice.xmpp.send_presence(pstatus="two")
    bob.xmpp.send_presence(pstatus="bob while blocked")
    await bob.xmpp.plugin["xep_0199"].ping(jid="example.org", timeout=TIMEOUT)

    await blocking(alice).unblock(JID(BOB), timeout=TIMEOUT)
    back = await bob.presence(sender=ALICE)  # her current presence, not the one she hid
    assert back["type"] == "available" and back["status"] == "two"
    bob.xmpp.send_presence(pstatus="bob again")
    while (seen := await alice.presence(sender=BOB))["status"] != "bob again":
        assert seen["status"] != "bob while blocked"


async def test_a_deleted_users_blocklist_goes_with_them(
    server: RunningServer, connect: Connect
) -> None:
    alice = await connect(f"{ALICE}/laptop")
    await blocking(alice).block(JID(BOB), timeout=TIMEOUT)
    cli = Cli(server.data_dir)
    assert await asyncio.to_thread(cli, "user", "del", ALICE) == 0, cli.err
    assert stored(server) == []
    server.add_user(ALICE, PASSWORD)
    again = await connect(f"{ALICE}/desk")
    assert await blocking(again).get_blocked_jids(timeout=TIMEOUT) == set()
