"""Entity capabilities (XEP-0115): the server's own, checked with slixmpp's verification code,
and the server learning clients' capabilities over raw streams (asked once per ver, a wrong
hash ignored), which decides who gets PEP notifications."""

from __future__ import annotations

import re
import secrets
from typing import Any
from xml.etree.ElementTree import fromstring

import slixmpp
from slixmpp.plugins.xep_0030.stanza.info import DiscoInfo
from slixmpp.xmlstream.tostring import tostring

from pcloud.testing import RunningServer
from tests.xmpp.conftest import PASSWORD, Connect, RawStream
from tests.xmpp.test_pep import DEVICELIST, devices, pubsub

ALICE = "alice@example.org"
CAPS_NS = "http://jabber.org/protocol/caps"
DISCO_INFO_NS = "http://jabber.org/protocol/disco#info"
NODE = "https://client.example"


def slixmpp_caps() -> Any:
    """slixmpp's xep_0115 plugin, for its verification string code (no connection needed)."""
    xmpp = slixmpp.ClientXMPP("someone@example.org", "unused")
    xmpp.register_plugin("xep_0115")
    return xmpp.plugin["xep_0115"]


def client_info(*features: str) -> DiscoInfo:
    info = DiscoInfo()
    info.add_identity("client", "pc", name="raw")
    info.set_features([DISCO_INFO_NS, CAPS_NS, *features])
    return info


def verstring(info: DiscoInfo) -> str:
    plugin = slixmpp_caps()
    # read again once xep_0004 is registered, so that its forms are Form substanzas
    ver: str = plugin.generate_verstring(DiscoInfo(xml=fromstring(tostring(info.xml))), "sha-1")
    return ver


async def round_trip(stream: RawStream, send: str = "") -> str:
    """Send, then a ping: what the server sent before answering the ping (it answers in order)."""
    marker = secrets.token_hex(4)
    ping = f"<iq type='get' id='{marker}'><ping xmlns='urn:xmpp:ping'/></iq>"
    return await stream.expect(f'id="{marker}"', send + ping)


def announcement(ver: str) -> str:
    return f"<presence><c xmlns='{CAPS_NS}' hash='sha-1' node='{NODE}' ver='{ver}'/></presence>"


def questions(text: str) -> list[tuple[str, str]]:
    """The server's disco#info questions in a transcript: (id, node) each."""
    found = []
    for iq in re.findall(r"<iq [^>]*>\s*<query [^>]*>", text):
        if DISCO_INFO_NS in iq and 'type="get"' in iq:
            ident = re.search(r'id="([^"]+)"', iq)
            node = re.search(r'node="([^"]+)"', iq)
            assert ident and node, iq
            found.append((ident.group(1), node.group(1)))
    return found


def answer(ident: str, info: DiscoInfo, node: str) -> str:
    info["node"] = node
    return f"<iq type='result' id='{ident}' to='example.org'>{tostring(info.xml)}</iq>"


async def signed_in(server: RunningServer, resource: str) -> RawStream:
    if server.services.directory.user(ALICE) is None:
        server.add_user(ALICE, PASSWORD)
    stream = await RawStream.open(server)
    await stream.sign_in(ALICE, resource=resource)
    return stream


async def test_the_servers_capabilities(server: RunningServer, connect: Connect) -> None:
    stream = await signed_in(server, "raw")
    features = stream.received.decode().rsplit("<stream:features>", 1)[1]
    caps = re.search(r"<c [^>]*>", features)
    assert caps is not None and CAPS_NS in caps.group(0), features
    ver = re.search(r'ver="([^"]+)"', caps.group(0))
    assert ver and 'hash="sha-1"' in caps.group(0) and 'node="https://pcloud"' in caps.group(0)
    await stream.close()
    client = await connect(f"{ALICE}/check")
    disco = client.xmpp.plugin["xep_0030"]
    info = await disco.get_info(jid="example.org", node=f"https://pcloud#{ver.group(1)}")
    assert verstring(info["disco_info"]) == ver.group(1)
    plain = await disco.get_info(jid="example.org")
    assert set(plain["disco_info"]["features"]) == set(info["disco_info"]["features"])
    assert "vcard-temp" in plain["disco_info"]["features"]


async def test_clients_capabilities_are_asked_once_and_verified(
    server: RunningServer, connect: Connect
) -> None:
    good_info = client_info(f"{DEVICELIST}+notify")
    good_ver = verstring(good_info)
    bad_ver = verstring(client_info())  # announced, but the answer will not match it
    good = await signed_in(server, "good")
    [(ident, node)] = questions(await round_trip(good, announcement(good_ver)))
    assert node == f"{NODE}#{good_ver}"
    await round_trip(good, answer(ident, good_info, node))
    bad = await signed_in(server, "bad")
    [(ident, node)] = questions(await round_trip(bad, announcement(bad_ver)))
    await round_trip(bad, answer(ident, client_info(f"{DEVICELIST}+notify"), node))
    # a ver verified before is not asked again, of anyone; one that failed is asked again
    third = await signed_in(server, "third")
    assert questions(await round_trip(third, announcement(good_ver))) == []
    assert questions(await round_trip(good, announcement(good_ver))) == []
    assert len(questions(await round_trip(third, announcement(bad_ver)))) == 1
    # a devicelist published: the session whose capabilities were verified is notified, the one
    # whose answer did not match the hash is not
    publisher = await connect(f"{ALICE}/phone")
    await pubsub(publisher).publish(None, DEVICELIST, id="current", payload=devices(7))
    told = await round_trip(good)
    assert "<event" in told and DEVICELIST in told and 'id="7"' in told
    assert "<event" not in await round_trip(bad)
    for stream in (good, bad, third):
        await stream.close()
