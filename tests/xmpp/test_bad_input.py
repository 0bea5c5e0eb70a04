"""Bad input: each gets the stream error RFC 6120 §4.9.3 names (or is dropped), the connection
closes, and other sessions go on."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import pytest

from pcloud.testing import RunningServer
from tests.xmpp.conftest import PASSWORD, Client, Connect, RawStream

HEADER = (
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    " to='example.org' version='1.0'>"
)
LAUGHS = (
    "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    + "".join(f"<!ENTITY lol{n} '{('&lol' + str(n - 1) + ';') * 10}'>" for n in range(2, 10))
    + "]>"
).replace("&lol1;", "&lol;")


@pytest.fixture
async def pair(connect: Connect) -> tuple[Client, Client]:
    return await connect("alice@example.org/laptop"), await connect("bob@example.org/desk")


async def still_talking(pair: tuple[Client, Client]) -> None:
    alice, bob = pair
    bob.send_message(alice.jid, "still here")
    assert (await alice.message())["body"] == "still here"


async def refused(stream: RawStream, condition: str) -> None:
    reply = await stream.expect("</stream:stream>")
    assert f'<{condition} xmlns="urn:ietf:params:xml:ns:xmpp-streams"' in reply, reply
    assert await stream.closed()


@pytest.mark.parametrize(
    ("payload", "condition"),
    [
        (HEADER + "<message><body>unclosed</message>", "not-well-formed"),
        (LAUGHS + HEADER + "<message><body>&lol9;</body></message>", "restricted-xml"),
        (HEADER + "<message><body>&lol;</body></message>", "not-well-formed"),
        (HEADER + "<!-- a comment -->", "restricted-xml"),
        (HEADER + "<?pi data?>", "restricted-xml"),
        (HEADER + "<message to='bob@example.org'><body>hi</body></message>", "not-authorized"),
        (HEADER + "<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>", "not-authorized"),
        (HEADER.replace("jabber:client", "jabber:server"), "invalid-namespace"),
        (HEADER.replace("version='1.0'", "version='2.0'"), "unsupported-version"),
        ("<?xml version='1.0' encoding='ISO-8859-1'?>" + HEADER, "unsupported-encoding"),
        (HEADER + "text between stanzas", "bad-format"),
    ],
    ids=[
        "malformed",
        "billion-laughs",
        "undefined-entity",
        "comment",
        "processing-instruction",
        "message-before-auth",
        "iq-before-auth",
        "bad-namespace",
        "bad-version",
        "not-utf8",
        "text",
    ],
)
async def test_bad_input_before_authentication(
    server: RunningServer, pair: tuple[Client, Client], payload: str, condition: str
) -> None:
    stream = await RawStream.open(server)
    await stream.send(payload)
    await refused(stream, condition)
    await still_talking(pair)


@pytest.mark.parametrize(
    ("payload", "condition"),
    [
        ("<message to='alice@example.org/laptop' from='bob@example.org/desk'>"
         "<body>spoofed</body></message>", "invalid-from"),
        ("<message to='alice@example.org/laptop' from='not a jid@@'/>", "invalid-from"),
        ("<unknown xmlns='jabber:client'/>", "unsupported-stanza-type"),
        ("<message><body>unclosed</message>", "not-well-formed"),
        ("<message><body>" + "x" * 300_000 + "</body></message>", "policy-violation"),
        ("<a>" * 100, "policy-violation"),
    ],
    ids=["spoofed-from", "bad-from", "unknown-element", "malformed", "oversized", "deep"],
)  # fmt: skip
async def test_bad_input_after_authentication(
    server: RunningServer, pair: tuple[Client, Client], payload: str, condition: str
) -> None:
    server.add_user("mallory@example.org", PASSWORD)
    stream = await RawStream.open(server)
    await stream.sign_in("mallory@example.org")
    await stream.send(payload)
    await refused(stream, condition)
    await still_talking(pair)
    assert pair[0].messages.empty()  # nothing of Mallory's reached Alice


async def test_a_ten_megabyte_stanza_is_refused_without_reading_it_all(
    server: RunningServer, pair: tuple[Client, Client]
) -> None:
    server.add_user("mallory@example.org", PASSWORD)
    stream = await RawStream.open(server)
    await stream.sign_in("mallory@example.org")
    sent = 0

    async def flood() -> None:
        nonlocal sent
        await stream.send("<message to='alice@example.org'><body>")
        chunk = b"x" * 65536
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            for _ in range(160):  # 10 MiB
                await stream.send(chunk)
                sent += len(chunk)

    flooding = asyncio.create_task(flood())
    await refused(stream, "policy-violation")
    await flooding
    await still_talking(pair)


async def test_a_sender_cannot_pose_as_another_user(
    server: RunningServer, pair: tuple[Client, Client]
) -> None:
    """A missing or own-bare `from` is stamped with the full JID; nothing else gets through."""
    server.add_user("mallory@example.org", PASSWORD)
    stream = await RawStream.open(server)
    jid = await stream.sign_in("mallory@example.org")
    await stream.send(
        "<message to='alice@example.org/laptop' from='mallory@example.org'>"
        "<body>one</body></message>"
        "<message to='alice@example.org/laptop'><body>two</body></message>"
    )
    alice = pair[0]
    for body in ("one", "two"):
        message = await alice.message()
        assert message["body"] == body and message["from"] == jid
    await stream.close()
