"""Private XML storage (XEP-0049): a user's own elements by namespace, kept across sessions and
shown to no one else."""

from __future__ import annotations

import sqlite3

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from pcloud.testing import RunningServer
from tests.xmpp.conftest import TIMEOUT, Client, Connect

BOOKMARKS = (
    "<storage xmlns='storage:bookmarks'><conference jid='room@chat.example.org' autojoin='true'"
    " name='Room'><nick>alice</nick></conference></storage>"
)


async def private(
    client: Client, payload: str, kind: str = "get", to: str | None = None
) -> ET.Element:
    iq = client.xmpp.make_iq(ito=to, itype=kind)
    query = ET.SubElement(iq.xml, "{jabber:iq:private}query")
    query.append(ET.fromstring(payload))
    result = await iq.send(timeout=TIMEOUT)
    return result.xml


async def test_stored_elements_come_back_in_a_later_session(
    server: RunningServer, connect: Connect
) -> None:
    alice = await connect("alice@example.org/laptop")
    empty = await private(alice, "<storage xmlns='storage:bookmarks'/>")
    stored = empty.find("{jabber:iq:private}query/{storage:bookmarks}storage")
    assert stored is not None and len(stored) == 0  # nothing yet: the empty element
    await private(alice, BOOKMARKS, "set")
    await private(alice, "<prefs xmlns='urn:example:settings' theme='dark'/>", "set")

    phone = await connect("alice@example.org/phone")
    answer = await private(phone, "<storage xmlns='storage:bookmarks'/>")
    conference = answer.find(".//{storage:bookmarks}conference")
    assert conference is not None and conference.get("jid") == "room@chat.example.org"
    assert conference.findtext("{storage:bookmarks}nick") == "alice"
    db = sqlite3.connect(server.data_dir / "xmpp" / "xmpp.sqlite3")
    rows = db.execute("SELECT namespace FROM private_storage ORDER BY namespace").fetchall()
    assert rows == [("storage:bookmarks",), ("urn:example:settings",)]


async def test_others_and_bad_elements_are_refused(connect: Connect) -> None:
    alice = await connect("alice@example.org/laptop")
    await private(alice, BOOKMARKS, "set")
    bob = await connect("bob@example.org/desk")
    with pytest.raises(IqError) as refused:
        await private(bob, "<storage xmlns='storage:bookmarks'/>", to="alice@example.org")
    assert refused.value.condition == "service-unavailable"
    # bob's own storage holds nothing of alice's
    answer = await private(bob, "<storage xmlns='storage:bookmarks'/>")
    assert answer.find(".//{storage:bookmarks}conference") is None
    with pytest.raises(IqError) as refused:
        await private(bob, "<message xmlns='jabber:client'/>", "set")
    assert refused.value.condition == "not-acceptable"
    big = f"<notes xmlns='urn:example:notes'>{'x' * 70_000}</notes>"
    with pytest.raises(IqError) as refused:
        await private(bob, big, "set")
    assert refused.value.condition == "not-acceptable"
