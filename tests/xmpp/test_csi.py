"""Client state indication (XEP-0352): a raw stream goes inactive while a slixmpp client sends it
presence, chat states and messages; what it receives, and in what order, shows what waited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from xml.etree.ElementTree import SubElement

import pytest

from pcloud.testing import RunningServer
from pcloud.xmpp.csi import MAX_HELD
from tests.xmpp.conftest import PASSWORD, TIMEOUT, Client, Connect, RawStream

PHONE = "alice@example.org/phone"
CHATSTATES_NS = "http://jabber.org/protocol/chatstates"
INACTIVE = "<inactive xmlns='urn:xmpp:csi:0'/>"
ACTIVE = "<active xmlns='urn:xmpp:csi:0'/>"


@pytest.fixture
async def phone(server: RunningServer) -> AsyncIterator[RawStream]:
    """Alice's phone, signed in on a raw stream, gone inactive."""
    server.add_user("alice@example.org", PASSWORD)
    stream = await RawStream.open(server)
    await stream.sign_in("alice@example.org", resource="phone")
    assert '<csi xmlns="urn:xmpp:csi:0"' in stream.received.decode().split("<success")[1]
    await ping(stream, INACTIVE)
    yield stream
    await stream.close()


async def ping(stream: RawStream, before: str = "") -> str:
    """A ping to the server after `before`: what came until its answer (handled in order)."""
    return await stream.expect(
        'id="ping"', before + "<iq type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>"
    )


def chat_state(bob: Client, state: str = "composing", mid: str = "") -> None:
    message = bob.xmpp.make_message(mto=PHONE, mtype="chat")
    if mid:
        message["id"] = mid
    SubElement(message.xml, f"{{{CHATSTATES_NS}}}{state}")
    message.send()


async def settled(bob: Client) -> None:
    """What bob sent before has been routed (the server handles his stream in order)."""
    await bob.xmpp.plugin["xep_0199"].ping(jid="example.org", timeout=TIMEOUT)


def shown(status: str) -> str:
    return f"<status>{status}</status>"


def order(text: str, *marks: str) -> list[int]:
    return [text.index(mark) for mark in marks]


async def test_a_message_with_a_body_flushes_what_waited_in_order(
    connect: Connect, phone: RawStream
) -> None:
    bob = await connect("bob@example.org/desk")
    bob.xmpp.send_presence(pto=PHONE, pstatus="one")
    chat_state(bob)
    bob.xmpp.send_presence(pto=PHONE, pstatus="two")
    await settled(bob)
    bob.send_message(PHONE, "hello")
    seen = await phone.expect("hello</body>")
    assert shown("one") not in seen  # replaced while waiting by bob's later presence
    first, second, third = order(seen, "composing", shown("two"), "hello")
    assert first < second < third


async def test_active_writes_what_waited(connect: Connect, phone: RawStream) -> None:
    bob = await connect("bob@example.org/desk")
    bob.xmpp.send_presence(pto=PHONE, pstatus="three")
    bob.xmpp.send_presence(pto=PHONE, pstatus="four")
    chat_state(bob, "paused")
    await settled(bob)
    seen = await phone.expect("paused", ACTIVE)
    assert shown("three") not in seen
    assert seen.index(shown("four")) < seen.index("paused")
    # active again: presence goes out at once, so each one comes
    bob.xmpp.send_presence(pto=PHONE, pstatus="five")
    bob.xmpp.send_presence(pto=PHONE, pstatus="six")
    assert shown("five") in await phone.expect(shown("six"))


async def test_encrypted_payloads_and_iqs_are_urgent(connect: Connect, phone: RawStream) -> None:
    bob = await connect("bob@example.org/desk")
    bob.xmpp.send_presence(pto=PHONE, pstatus="seven")
    bob.xmpp.send_presence(pto=PHONE, pstatus="eight")
    await settled(bob)
    omemo = bob.xmpp.make_message(mto=PHONE, mtype="chat")
    SubElement(omemo.xml, "{eu.siacs.conversations.axolotl}encrypted")
    omemo.send()
    seen = await phone.expect("axolotl")
    assert shown("seven") not in seen and seen.index(shown("eight")) < seen.index("axolotl")
    # an IQ to the phone goes at once, after what waited
    bob.xmpp.send_presence(pto=PHONE, pstatus="nine")
    bob.xmpp.send_presence(pto=PHONE, pstatus="ten")
    await settled(bob)
    iq = bob.xmpp.make_iq_get(queryxmlns="jabber:iq:version", ito=PHONE)
    bob.xmpp.send(iq)  # not waiting for an answer: the phone gives none
    seen = await phone.expect("jabber:iq:version")
    assert shown("nine") not in seen and seen.index(shown("ten")) < seen.index("jabber:iq:version")


async def test_what_waits_is_bounded(connect: Connect, phone: RawStream) -> None:
    bob = await connect("bob@example.org/desk")
    for number in range(MAX_HELD + 1):  # as many as may wait, then one more: all are written
        chat_state(bob, mid=f"state-{number}")
    seen = await phone.expect(f'id="state-{MAX_HELD}"')
    assert seen.index('id="state-0"') < seen.index(f'id="state-{MAX_HELD - 1}"')
