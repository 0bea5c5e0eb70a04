"""The roster seeded from the address book: vCards PUT over CardDAV (HTTPS) show up in a slixmpp
client's roster when it signs in, once: a contact the user removes stays removed."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcloud.testing import RunningServer, running_server
from tests.cli.test_admin import Cli
from tests.https import request
from tests.xmpp.conftest import PASSWORD, Client, Connect
from tests.xmpp.test_user_deleted import roster_of

ALICE = "alice@example.org"
BOOK = f"/dav/{ALICE}/contacts/"


def card(uid: str, name: str, *lines: str) -> bytes:
    return "\r\n".join(
        ["BEGIN:VCARD", "VERSION:3.0", f"UID:{uid}", f"FN:{name}", *lines, "END:VCARD", ""]
    ).encode()


CARDS = {
    "bob": card("bob", "Bob Builder", "EMAIL;TYPE=work:Bob@Example.org"),  # a user here
    "dana": card("dana", "Dana Scully", "IMPP:xmpp:dana@jabber.example"),  # RFC 4770, vCard 4
    "erin": card("erin", "Erin Hunt", "X-JABBER:erin@chat.example"),  # vCard 3 clients'
    "zed": card("zed", "Zed Far", "EMAIL:zed@elsewhere.example"),  # mail only, elsewhere
    "ghost": card("ghost", "No One", "EMAIL:ghost@example.org"),  # no such user here
    "me": card("me", "Alice Herself", f"EMAIL:{ALICE}"),
}


async def put_card(server: RunningServer, uid: str, text: bytes) -> None:
    status, _ = await asyncio.to_thread(
        request, server, "PUT", f"{BOOK}{uid}.vcf", ALICE, text, {"Content-Type": "text/vcard"}
    )
    assert status == 201


async def address_book(server: RunningServer) -> None:
    """Alice's address book over CardDAV, with CARDS in it."""
    server.add_user(ALICE, PASSWORD)
    server.add_user("bob@example.org", PASSWORD)
    status, _ = await asyncio.to_thread(
        request, server, "PROPFIND", "/dav/", ALICE, headers={"Depth": "0"}
    )
    assert status == 207  # the first request makes the user's home and address book
    for uid, text in CARDS.items():
        await put_card(server, uid, text)


def items(client: Client) -> dict[str, tuple[str, list[str], str]]:
    """The roster the client holds: name, groups and subscription by JID."""
    roster = client.xmpp.client_roster
    return {
        jid: (roster[jid]["name"], roster[jid]["groups"], roster[jid]["subscription"])
        for jid in roster
        if jid != ALICE
    }


async def test_contacts_become_roster_items_once(server: RunningServer, connect: Connect) -> None:
    await address_book(server)
    laptop = await connect(f"{ALICE}/laptop")
    assert items(laptop) == {
        "bob@example.org": ("Bob Builder", ["Contacts"], "none"),
        "dana@jabber.example": ("Dana Scully", ["Contacts"], "none"),
        "erin@chat.example": ("Erin Hunt", ["Contacts"], "none"),
    }
    assert server.services.xmpp.item(ALICE, "bob@example.org").ask is False  # type: ignore[union-attr]

    # removed by the user: not put back at the next sign-in
    await laptop.xmpp.del_roster_item("dana@jabber.example")
    await laptop.roster_push()
    # a card added later comes at the next sign-in, pushed to the resources that have the roster
    await put_card(server, "frank", card("frank", "Frank", "IMPP:xmpp:frank@example.org"))
    phone = await connect(f"{ALICE}/phone")
    pushed = await laptop.roster_push()
    assert "frank@example.org" in pushed["roster"]["items"]
    assert await roster_of(phone) == [
        "bob@example.org",
        "erin@chat.example",
        "frank@example.org",
    ]
    assert seeded(server) == [
        "bob@example.org",
        "dana@jabber.example",
        "erin@chat.example",
        "frank@example.org",
    ]
    # what was seeded goes with a deleted user
    cli = Cli(server.data_dir)
    assert await asyncio.to_thread(cli, "user", "del", ALICE) == 0, cli.err
    assert seeded(server) == []


def seeded(server: RunningServer) -> list[str]:
    db = sqlite3.connect(server.data_dir / "xmpp" / "xmpp.sqlite3")
    try:
        return [row[0] for row in db.execute("SELECT contact FROM roster_seeded ORDER BY 1")]
    finally:
        db.close()


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    """The whole server; with `roster_from_contacts = false` when the test is parametrized so."""
    settings = {"xmpp": {"roster_from_contacts": getattr(request, "param", True)}}
    with running_server(tmp_path / "data", settings=settings) as running:
        yield running


@pytest.mark.parametrize("server", [False], indirect=True)
async def test_the_option_turns_seeding_off(server: RunningServer, connect: Connect) -> None:
    await address_book(server)
    alice = await connect(f"{ALICE}/laptop")
    assert items(alice) == {}
