"""Stream management (XEP-0198): acknowledgements, resumption after a dropped TCP connection
with the stanzas the client had not received sent again, once, and what a clean close keeps of
the stanzas not acknowledged."""

from __future__ import annotations

import asyncio
import base64

from slixmpp import JID

from pcloud.testing import RunningServer
from tests.xmpp.conftest import PASSWORD, TIMEOUT, Connect, RawStream

SM = "urn:xmpp:sm:3"


async def test_a_dropped_connection_resumes_without_loss_or_duplicates(
    server: RunningServer, connect: Connect
) -> None:
    alice = await connect("alice@example.org/phone", stream_management=True)
    bob = await connect("bob@example.org/desk")
    plugin = alice.xmpp.plugin["xep_0198"]
    for number in range(7):  # enough for the server to ask for acknowledgements
        bob.send_message("alice@example.org/phone", f"before {number}")
        assert (await alice.message())["body"] == f"before {number}"
    sm_id = plugin.sm_id
    assert sm_id

    resumed = asyncio.get_running_loop().create_future()
    alice.xmpp.add_event_handler("session_resumed", lambda _: resumed.set_result(True))
    alice.disconnected.clear()
    alice.xmpp.transport.abort()  # the TCP connection drops: no stream close
    await asyncio.wait_for(alice.disconnected.wait(), TIMEOUT)
    # meanwhile bob writes: the server keeps these for the phone's session
    for number in range(3):
        bob.send_message("alice@example.org/phone", f"while away {number}")
    await bob.xmpp.plugin["xep_0199"].ping(jid="example.org", timeout=TIMEOUT)

    alice.disconnected.clear()
    alice.xmpp.connect("127.0.0.1", server.port("xmpps"))
    await asyncio.wait_for(resumed, TIMEOUT)
    assert plugin.sm_id == sm_id and alice.jid == "alice@example.org/phone"
    bodies = [(await alice.message())["body"] for _ in range(3)]
    assert bodies == [f"while away {number}" for number in range(3)]
    # nothing received before the drop comes again, and the session goes on
    await alice.xmpp.plugin["xep_0199"].ping(jid="example.org", timeout=TIMEOUT)
    assert alice.messages.empty()
    bob.send_message("alice@example.org", "after")
    assert (await alice.message())["body"] == "after"
    alice.send_message("bob@example.org/desk", "back")
    assert (await bob.message())["body"] == "back"


async def test_acknowledgements_and_refused_resumption(server: RunningServer) -> None:
    server.add_user("alice@example.org", PASSWORD)
    stream = await RawStream.open(server)
    await stream.sign_in("alice@example.org")
    await stream.expect("<enabled", f"<enable xmlns='{SM}' resume='true'/>")
    await stream.expect(f'<a xmlns="{SM}" h="0"', f"<r xmlns='{SM}'/>")
    ping = "<iq type='get' id='p{n}'><ping xmlns='urn:xmpp:ping'/></iq>"
    for n in range(2):
        await stream.expect(f'id="p{n}"', ping.format(n=n))
    await stream.expect(f'<a xmlns="{SM}" h="2"', f"<r xmlns='{SM}'/>")
    # acknowledging more than was sent ends the stream
    reply = await stream.expect("</stream:stream>", f"<a xmlns='{SM}' h='9'/>")
    assert "<undefined-condition" in reply, reply
    await stream.close()

    # an unknown session cannot be resumed; the stream goes on, and may bind
    other = await RawStream.open(server)
    await other.open_stream()
    credentials = base64.b64encode(b"\0alice@example.org\0" + PASSWORD.encode()).decode()
    await other.expect(
        "<success",
        f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{credentials}</auth>",
    )
    features = await other.open_stream()
    assert f'<sm xmlns="{SM}"' in features, features
    reply = await other.expect("</failed>", f"<resume xmlns='{SM}' previd='nope' h='0'/>")
    assert "<item-not-found" in reply, reply
    await other.expect(
        "</iq>",
        "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
    )
    await other.close()


async def test_a_clean_close_keeps_unacknowledged_messages_the_archive_does_not_cover(
    server: RunningServer, connect: Connect
) -> None:
    server.add_user("alice@example.org", PASSWORD)
    bob = await connect("bob@example.org/desk")
    for reads_archive in (False, True):
        alice = await RawStream.open(server)
        await alice.sign_in("alice@example.org")
        await alice.expect("<enabled", f"<enable xmlns='{SM}'/>")
        if reads_archive:
            query = "<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'/></iq>"
            await alice.expect("<fin", query)
        bob.send_message("alice@example.org/raw", f"reads archive: {reads_archive}")
        await alice.expect(f"reads archive: {reads_archive}")
        # closed without acknowledging it: it may or may not have been seen
        await alice.expect("</stream:stream>", "</stream:stream>")
        await alice.close()

    # offline, only what the client that does not read the archive may have missed
    phone = await connect("alice@example.org/phone")
    assert (await phone.message())["body"] == "reads archive: False"
    await phone.xmpp.plugin["xep_0199"].ping(jid="example.org", timeout=TIMEOUT)
    assert phone.messages.empty()
    # and nothing is lost: the archive has both
    result = await phone.xmpp.plugin["xep_0313"].retrieve(
        with_jid=JID("bob@example.org"), timeout=TIMEOUT
    )
    bodies = [m["mam_result"]["forwarded"]["stanza"]["body"] for m in result["mam"]["results"]]
    assert bodies == ["reads archive: False", "reads archive: True"]
