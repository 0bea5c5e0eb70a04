"""Message routing (RFC 6121 §8.5): online to full and bare JIDs, offline storage and delivery
at the next login, errors, and carbons (XEP-0280)."""

from __future__ import annotations

import sqlite3

from pcloud.testing import RunningServer
from tests.xmpp.conftest import TIMEOUT, Connect


async def test_messages_to_full_and_bare_jids(connect: Connect) -> None:
    alice = await connect("alice@example.org/laptop")
    phone = await connect("alice@example.org/phone")
    bob = await connect("bob@example.org/desk")
    bob.send_message("alice@example.org/phone", "to the phone")
    message = await phone.message()
    assert message["body"] == "to the phone"
    assert message["from"] == bob.jid  # stamped by the server
    bob.send_message("alice@example.org", "to every device")
    assert (await alice.message())["body"] == "to every device"
    assert (await phone.message())["body"] == "to every device"
    assert alice.messages.empty()  # the first one went to the phone only


async def test_offline_messages_are_kept_and_delivered_at_login(
    server: RunningServer, connect: Connect
) -> None:
    bob = await connect("bob@example.org/desk")
    server.add_user("alice@example.org", "correct horse battery")
    bob.send_message("alice@example.org", "while you were out")
    bob.send_message("alice@example.org/gone", "to a resource that is not there")
    bob.xmpp.send_message(mto="alice@example.org", mbody="news", mtype="headline")
    # kept on disk, in order; the headline is not kept
    receipt = bob.xmpp.plugin["xep_0199"].ping(jid="example.org", timeout=TIMEOUT)
    await receipt  # the server has handled what came before
    db = sqlite3.connect(server.data_dir / "xmpp" / "xmpp.sqlite3")
    rows = db.execute("SELECT owner, stanza FROM offline ORDER BY id").fetchall()
    assert [owner for owner, _ in rows] == ["alice@example.org"] * 2
    assert "while you were out" in rows[0][1] and "not there" in rows[1][1]
    alice = await connect("alice@example.org/laptop")
    first, second = await alice.message(), await alice.message()
    assert [first["body"], second["body"]] == [
        "while you were out",
        "to a resource that is not there",
    ]
    assert first["delay"]["stamp"] is not None and first["from"] == bob.jid
    assert db.execute("SELECT count(*) FROM offline").fetchone()[0] == 0


async def test_messages_nobody_can_take_are_refused(connect: Connect) -> None:
    bob = await connect("bob@example.org/desk")
    bob.send_message("nobody@example.org", "hello?")
    error = await bob.message()
    assert error["type"] == "error" and error["error"]["condition"] == "service-unavailable"
    bob.send_message("someone@elsewhere.test", "hello?")
    error = await bob.message()
    assert error["error"]["condition"] == "remote-server-not-found"
    assert error["from"] == "someone@elsewhere.test"


async def test_carbons_copy_a_conversation_to_other_devices(connect: Connect) -> None:
    laptop = await connect("alice@example.org/laptop")
    phone = await connect("alice@example.org/phone")
    await phone.xmpp.plugin["xep_0280"].enable(timeout=TIMEOUT)
    bob = await connect("bob@example.org/desk")
    bob.send_message("alice@example.org/laptop", "hi laptop")
    assert (await laptop.message())["body"] == "hi laptop"
    copy = await phone.carbon()
    assert copy["carbon_received"]["body"] == "hi laptop"
    assert copy["from"] == "alice@example.org"
    laptop.send_message("bob@example.org/desk", "hi bob")
    assert (await bob.message())["body"] == "hi bob"
    copy = await phone.carbon()
    assert copy["carbon_sent"]["body"] == "hi bob"
    assert copy["carbon_sent"]["to"] == "bob@example.org/desk"
    assert phone.messages.empty() and laptop.carbons.empty()  # only the other device
