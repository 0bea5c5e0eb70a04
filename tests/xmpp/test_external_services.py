"""External service discovery (XEP-0215): the STUN and TURN servers of the config, with TURN
credentials that a TURN server sharing the secret (coturn's use-auth-secret) accepts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError

from pcloud.testing import RunningServer, running_server
from tests.xmpp.conftest import Client, Connect

NS = "urn:xmpp:extdisco:2"
SECRET = "shared with coturn"
CONFIGURED = {
    "stun_server": "stun.example.org",
    "turn_server": "turn.example.org:3479",
    "turn_secret": SECRET,
}


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """The whole server, with the [xmpp] settings a test gives as its parameter."""
    with running_server(tmp_path / "data", settings={"xmpp": request.param}) as running:
        yield running


async def _ask(client: Client, payload: str, **attributes: str) -> Element:
    iq = client.xmpp.make_iq_get(ito="example.org")
    iq.append(Element(f"{{{NS}}}{payload}", attributes))
    reply = await iq.send(timeout=10)
    answer = reply.xml.find(f"{{{NS}}}{payload}")
    assert answer is not None
    return answer


async def _features(client: Client) -> Any:
    info = await client.xmpp.plugin["xep_0030"].get_info(jid=JID("example.org"), timeout=10)
    return info["disco_info"]["features"]


def _check_turn(service: Element, user: str) -> None:
    """What coturn does with use-auth-secret: the password is the HMAC of the user name, and
    the user name starts with the time it expires."""
    username, password = service.get("username", ""), service.get("password", "")
    expected = hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()
    assert base64.b64decode(password) == expected
    expires, _, who = username.partition(":")
    assert who == user
    assert time.time() + 3600 < int(expires) <= time.time() + 2 * 86400
    stamp = datetime.fromisoformat(service.get("expires", "").replace("Z", "+00:00"))
    assert int(stamp.timestamp()) == int(expires)


@pytest.mark.parametrize("server", [CONFIGURED], indirect=True)
async def test_services_with_turn_credentials(connect: Connect) -> None:
    alice = await connect("alice@example.org")
    assert NS in await _features(alice)
    answer = await _ask(alice, "services")
    listed = [(s.get("type"), s.get("host"), s.get("port"), s.get("transport")) for s in answer]
    assert listed == [
        ("stun", "stun.example.org", "3478", "udp"),
        ("turn", "turn.example.org", "3479", "udp"),
        ("turn", "turn.example.org", "3479", "tcp"),
    ]
    for service in answer[1:]:
        _check_turn(service, "alice@example.org")
    assert answer[0].get("username") is None  # STUN needs none

    # Services of one type (§3.2); credentials are asked for a service named (§3.3).
    turn_only = await _ask(alice, "services", type="turn")
    assert [s.get("type") for s in turn_only] == ["turn", "turn"]
    with pytest.raises(IqError) as refused:
        await _ask(alice, "credentials")
    assert refused.value.iq["error"]["condition"] == "bad-request"


@pytest.mark.parametrize("server", [CONFIGURED], indirect=True)
async def test_credentials_for_one_service(connect: Connect) -> None:
    bob = await connect("bob@example.org")
    iq = bob.xmpp.make_iq_get(ito="example.org")
    request = Element(f"{{{NS}}}credentials")
    request.append(Element(f"{{{NS}}}service", {"host": "turn.example.org", "type": "turn"}))
    iq.append(request)
    reply = await iq.send(timeout=10)
    services = reply.xml.findall(f"{{{NS}}}credentials/{{{NS}}}service")
    assert len(services) == 1
    _check_turn(services[0], "bob@example.org")

    iq = bob.xmpp.make_iq_get(ito="example.org")
    request = Element(f"{{{NS}}}credentials")
    request.append(Element(f"{{{NS}}}service", {"host": "elsewhere.example", "type": "turn"}))
    iq.append(request)
    with pytest.raises(IqError) as refused:
        await iq.send(timeout=10)
    assert refused.value.iq["error"]["condition"] == "item-not-found"


@pytest.mark.parametrize(
    "server", [{}, {"turn_server": "turn.example.org"}], indirect=True, ids=["none", "no-secret"]
)
async def test_nothing_configured_nothing_offered(connect: Connect) -> None:
    alice = await connect("alice@example.org")
    assert NS not in await _features(alice)
    with pytest.raises(IqError) as refused:
        await _ask(alice, "services")
    assert refused.value.iq["error"]["condition"] == "service-unavailable"
