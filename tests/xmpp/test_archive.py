"""Message archive (XEP-0313) with result set paging (XEP-0059), queried by slixmpp."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError

from pcloud.testing import RunningServer
from tests.xmpp.conftest import TIMEOUT, Client, Connect


async def page(
    client: Client, with_jid: str = "bob@example.org", **rsm: Any
) -> tuple[list[str], Any]:
    """One page of the client's archive of its talk with someone: the bodies, and the <fin/>."""
    result = await client.xmpp.plugin["xep_0313"].retrieve(
        with_jid=JID(with_jid), rsm=rsm, timeout=TIMEOUT
    )
    bodies = [m["mam_result"]["forwarded"]["stanza"]["body"] for m in result["mam"]["results"]]
    return bodies, result["mam_fin"]


async def test_chat_messages_are_archived_and_paged(
    server: RunningServer, connect: Connect
) -> None:
    alice = await connect("alice@example.org/laptop")
    bob = await connect("bob@example.org/desk")
    carol = await connect("carol@example.org/desk")
    for number in range(6):
        bob.send_message("alice@example.org", f"m{number}")
    carol.send_message("alice@example.org", "from carol")
    bob.xmpp.send_message(mto="alice@example.org", mbody="news", mtype="headline")
    alice.send_message("bob@example.org/desk", "reply")
    for _ in range(8):
        await alice.message()
    assert (await bob.message())["body"] == "reply"

    bodies, fin = await page(alice, max=3)
    assert bodies == ["m0", "m1", "m2"]
    assert fin["rsm"]["count"] == "7" and not fin["complete"]
    bodies, fin = await page(alice, max=3, after=fin["rsm"]["last"])
    assert bodies == ["m3", "m4", "m5"]
    middle = fin["rsm"]["first"]
    bodies, fin = await page(alice, max=3, after=fin["rsm"]["last"])
    assert bodies == ["reply"] and fin["complete"]
    bodies, fin = await page(alice, max=2, before=middle)  # backwards from m3
    assert bodies == ["m1", "m2"] and not fin["complete"]
    # bob's archive holds the same conversation, as his
    bodies, _ = await page(bob, "alice@example.org")
    assert bodies == [*(f"m{number}" for number in range(6)), "reply"]
    with pytest.raises(IqError) as refused:
        await page(alice, max=3, after="no-such-id")
    assert refused.value.condition == "item-not-found"
    db = sqlite3.connect(server.data_dir / "xmpp" / "xmpp.sqlite3")
    owners = dict(db.execute("SELECT owner, count(*) FROM archive GROUP BY owner").fetchall())
    assert owners == {"alice@example.org": 8, "bob@example.org": 7, "carol@example.org": 1}


def stanza_ids(message: Any) -> list[tuple[str | None, str | None]]:
    """The (by, id) of the message's XEP-0359 stanza ids."""
    return [(e.get("by"), e.get("id")) for e in message.xml.iter("{urn:xmpp:sid:0}stanza-id")]


async def test_delivered_messages_carry_their_archive_id(
    server: RunningServer, connect: Connect
) -> None:
    alice = await connect("alice@example.org/laptop")
    bob = await connect("bob@example.org/desk")
    bob_phone = await connect("bob@example.org/phone")
    await bob_phone.xmpp.plugin["xep_0280"].enable(timeout=TIMEOUT)
    sid = "urn:xmpp:sid:0"
    forged = (
        f"<message to='bob@example.org/desk' type='chat'><body>hello</body>"
        f"<stanza-id xmlns='{sid}' by='bob@example.org' id='forged'/>"
        f"<stanza-id xmlns='{sid}' by='EXAMPLE.org' id='forged-too'/>"
        f"<stanza-id xmlns='{sid}' by='room@chat.elsewhere.example' id='theirs'/></message>"
    )
    alice.xmpp.send_raw(forged)
    received = await bob.message()
    assert received["body"] == "hello"
    ids = stanza_ids(received)
    # only ours claims to be by a local address: the forged ones are gone, a remote one stays
    assert ("room@chat.elsewhere.example", "theirs") in ids
    (archive_id,) = [i for by, i in ids if by == "bob@example.org"]
    assert len(ids) == 2 and archive_id not in ("forged", "forged-too")

    result = await bob.xmpp.plugin["xep_0313"].retrieve(
        with_jid=JID("alice@example.org"), timeout=TIMEOUT
    )
    (item,) = result["mam"]["results"]
    assert item["mam_result"]["id"] == archive_id
    assert item["mam_result"]["forwarded"]["stanza"]["body"] == "hello"
    # bob's other device has the same id on its copy
    copy = (await bob_phone.carbon())["carbon_received"]
    assert copy["body"] == "hello" and ("bob@example.org", archive_id) in stanza_ids(copy)
    # the sender's archive has its own id for the same message
    result = await alice.xmpp.plugin["xep_0313"].retrieve(
        with_jid=JID("bob@example.org"), timeout=TIMEOUT
    )
    (item,) = result["mam"]["results"]
    assert item["mam_result"]["id"] != archive_id

    # kept for an offline user, a message has its id too
    for device in (bob, bob_phone):
        device.xmpp.disconnect()
        await asyncio.wait_for(device.disconnected.wait(), TIMEOUT)
    alice.send_message("bob@example.org", "later")
    await alice.xmpp.plugin["xep_0199"].ping(jid="example.org", timeout=TIMEOUT)
    bob = await connect("bob@example.org/tablet")
    kept = await bob.message()
    assert kept["body"] == "later"
    result = await bob.xmpp.plugin["xep_0313"].retrieve(
        with_jid=JID("alice@example.org"), timeout=TIMEOUT
    )
    last = result["mam"]["results"][-1]
    assert last["mam_result"]["forwarded"]["stanza"]["body"] == "later"
    assert stanza_ids(kept) == [("bob@example.org", last["mam_result"]["id"])]


async def test_the_account_advertises_stanza_ids(connect: Connect) -> None:
    alice = await connect("alice@example.org/laptop")
    info = await alice.xmpp.plugin["xep_0030"].get_info(jid="alice@example.org", timeout=TIMEOUT)
    assert "urn:xmpp:sid:0" in info["disco_info"]["features"]
