"""Clients that go silent are pinged, and dropped when they do not answer: messages to the user
then wait in offline storage instead of going into a dead connection."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcloud.testing import RunningServer, running_server
from tests.xmpp.conftest import Connect, RawStream

SILENCE = 1  # [xmpp] ping_after_seconds; the answer is awaited as long


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    settings = {"xmpp": {"ping_after_seconds": SILENCE}}
    with running_server(tmp_path / "data", settings=settings) as running:
        yield running


async def test_a_client_that_answers_stays(server: RunningServer) -> None:
    server.add_user("alice@example.org", "correct horse battery")
    stream = await RawStream.open(server)
    await stream.sign_in("alice@example.org")
    for _ in range(2):  # asked again after its answer: it was not dropped meanwhile
        ping = await stream.expect('<ping xmlns="urn:xmpp:ping"')
        ping_id = re.search(r"<iq[^>]* id=\"([^\"]+)\"", ping)[1]  # type: ignore[index]
        await stream.send(f"<iq type='result' to='example.org' id='{ping_id}'/>")
    await stream.expect("</iq>", "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
    await stream.close()


async def test_a_silent_client_is_dropped_and_its_messages_kept(
    server: RunningServer, connect: Connect
) -> None:
    server.add_user("alice@example.org", "correct horse battery")
    stream = await RawStream.open(server)
    await stream.sign_in("alice@example.org")
    await stream.send("<presence/>")
    await stream.expect('<ping xmlns="urn:xmpp:ping"')
    assert await stream.closed()  # no answer: taken as gone
    bob = await connect("bob@example.org/desk")
    bob.send_message("alice@example.org", "for when alice is back")
    await bob.xmpp.plugin["xep_0199"].ping(jid="example.org", timeout=10)
    db = sqlite3.connect(server.data_dir / "xmpp" / "xmpp.sqlite3")
    [(stanza,)] = db.execute("SELECT stanza FROM offline").fetchall()
    assert "for when alice is back" in stanza
