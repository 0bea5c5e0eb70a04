"""Message archive (XEP-0313) with result set paging (XEP-0059), queried by slixmpp."""

from __future__ import annotations

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
