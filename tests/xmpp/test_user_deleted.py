"""A deleted user's chat state goes with them: roster, kept messages, and their place in others'
rosters; a new user of the same address starts with none of it."""

from __future__ import annotations

import asyncio
import sqlite3

from pcloud.testing import RunningServer
from tests.cli.test_admin import Cli
from tests.xmpp.conftest import PASSWORD, TIMEOUT, Client, Connect
from tests.xmpp.test_roster import subscribe


async def roster_of(client: Client) -> list[str]:
    """The whole roster, asked without a version (RFC 6121 §2.1.3)."""
    iq = client.xmpp.make_iq_get(queryxmlns="jabber:iq:roster")
    result = await iq.send(timeout=TIMEOUT)
    return sorted(str(jid) for jid in result["roster"]["items"])


async def test_pcloud_user_del_removes_chat_state(server: RunningServer, connect: Connect) -> None:
    alice = await connect("alice@example.org/laptop")
    bob = await connect("bob@example.org/desk")
    await subscribe(alice, bob)
    await alice.presence(sender="bob@example.org")  # the approval has gone through
    await bob.xmpp.update_roster("alice@example.org", name="Alice")
    bob.xmpp.disconnect()
    await asyncio.wait_for(bob.disconnected.wait(), TIMEOUT)
    alice.send_message("bob@example.org", "kept for bob")
    await alice.xmpp.plugin["xep_0199"].ping(jid="example.org", timeout=TIMEOUT)
    db = sqlite3.connect(server.data_dir / "xmpp" / "xmpp.sqlite3")
    bob_rows = "SELECT count(*) FROM roster_items WHERE 'bob@example.org' IN (owner, contact)"
    assert db.execute(bob_rows).fetchone()[0] == 2
    assert db.execute("SELECT count(*) FROM offline").fetchone()[0] == 1

    assert "bob@example.org" in await roster_of(alice)

    cli = Cli(server.data_dir)
    assert await asyncio.to_thread(cli, "user", "del", "bob@example.org") == 0, cli.err

    assert db.execute(bob_rows).fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM offline").fetchone()[0] == 0
    assert await roster_of(alice) == []
    # a new bob has no contacts and no messages meant for the old one
    server.add_user("bob@example.org", PASSWORD)
    new_bob = await connect("bob@example.org/phone")
    assert await roster_of(new_bob) == []
    await new_bob.xmpp.plugin["xep_0199"].ping(jid="example.org", timeout=TIMEOUT)
    assert new_bob.messages.empty()


async def test_a_user_deleted_while_signed_in_is_signed_out_and_leaves_rosters(
    server: RunningServer, connect: Connect
) -> None:
    alice = await connect("alice@example.org/laptop")
    bob = await connect("bob@example.org/desk")
    await subscribe(alice, bob)
    await alice.presence(sender="bob@example.org")  # bob's presence reaches alice
    while not alice.roster_pushes.empty():
        alice.roster_pushes.get_nowait()

    cli = Cli(server.data_dir)
    assert await asyncio.to_thread(cli, "user", "del", "bob@example.org") == 0, cli.err

    error = await asyncio.wait_for(bob.stream_errors.get(), TIMEOUT)
    assert error["condition"] == "not-authorized"
    await asyncio.wait_for(bob.disconnected.wait(), TIMEOUT)
    gone = await alice.presence("unavailable", sender="bob@example.org")
    assert gone["from"] == "bob@example.org/desk"
    push = await alice.roster_push()
    assert push["roster"]["items"]["bob@example.org"]["subscription"] == "remove"
    # done once: the note of the deletion is gone
    db = sqlite3.connect(server.data_dir / "xmpp" / "xmpp.sqlite3")
    assert db.execute("SELECT count(*) FROM deleted_users").fetchone()[0] == 0
    assert "bob@example.org" not in await roster_of(alice)
