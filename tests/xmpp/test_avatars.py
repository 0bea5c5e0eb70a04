"""User avatars (XEP-0084) over XMPP, and the same pictures in pcloud's avatar store: served by
the Libravatar service at /avatar/<hash>, set by `pcloud avatar set`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
from typing import Any

from PIL import Image
from slixmpp.plugins.xep_0084.stanza import MetaData

from pcloud.testing import RunningServer
from tests.avatar.pictures import BLUE, RED, fetch, near, plain, sha256
from tests.xmpp.conftest import Connect
from tests.xmpp.test_pep import (
    ALICE,
    BOB,
    CAROL,
    contacts,
    event,
    interested,
    items,
    pubsub,
    refused,
)
from tests.xmpp.test_roster import pushed, subscribe

DATA_NS = "urn:xmpp:avatar:data"
METADATA_NS = "urn:xmpp:avatar:metadata"


def colour(png: bytes) -> tuple[int, ...]:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    pixel = image.getpixel((image.width // 2, image.height // 2))
    assert isinstance(pixel, tuple)
    return pixel


async def http_colour(server: RunningServer, address: str) -> tuple[int, ...] | int:
    """The centre colour of the Libravatar picture of an address, or the HTTP status."""
    reply = await asyncio.to_thread(fetch, server, f"/avatar/{sha256(address)}?d=404")
    return reply.colour() if reply.status == 200 else reply.status


def avatar(client: Any) -> Any:
    pubsub(client)
    client.xmpp.register_plugin("xep_0084")
    return client.xmpp.plugin["xep_0084"]


async def test_an_avatar_published_is_seen_by_a_contact_and_served_by_http(
    server: RunningServer, connect: Connect
) -> None:
    alice, bob = await contacts(connect)
    await interested(bob, METADATA_NS)
    picture = plain(RED)
    picture_id = hashlib.sha1(picture).hexdigest()
    await avatar(alice).publish_avatar(picture)
    info = {"id": picture_id, "type": "image/png", "bytes": len(picture), "width": "64",
            "height": "64"}  # fmt: skip
    await avatar(alice).publish_avatar_metadata(info)
    told = await event(bob)
    assert told["pubsub_event"]["items"]["node"] == METADATA_NS
    assert told["pubsub_event"]["items"]["item"]["id"] == picture_id
    data = await avatar(bob).retrieve_avatar(ALICE, picture_id)
    assert base64.b64decode(data["pubsub"]["items"]["item"]["payload"].text) == picture
    # the same picture is in pcloud's avatar store: the Libravatar service serves it
    assert near(await http_colour(server, ALICE), RED)  # type: ignore[arg-type]
    assert (server.data_dir / "avatars" / "addresses" / f"{ALICE}.png").is_file()
    # an empty metadata item: no avatar any more, anywhere
    await avatar(alice).stop()
    await event(bob)
    assert await http_colour(server, ALICE) == 404
    # a picture the store refuses is refused before anything is published
    not_a_picture = b"not a picture"
    await avatar(alice).publish_avatar(not_a_picture)
    bad = {"id": hashlib.sha1(not_a_picture).hexdigest(), "type": "image/png", "bytes": 13}
    assert (await refused(avatar(alice).publish_avatar_metadata(bad)))[0] == "not-acceptable"
    [(_, metadata)] = await items(bob, ALICE, METADATA_NS)
    assert metadata.find(f"{{{METADATA_NS}}}info") is None


async def test_an_avatar_set_in_the_store_is_seen_over_xmpp(
    server: RunningServer, connect: Connect
) -> None:
    alice = await connect(ALICE)
    server.add_user(BOB, "correct horse battery")
    await asyncio.to_thread(server.services.avatars.set, BOB, plain(BLUE))  # `pcloud avatar set`
    [(item_id, metadata)] = await items(alice, BOB, METADATA_NS)
    info = MetaData(xml=metadata)["info"]
    assert (info["type"], info["width"], info["height"]) == ("image/png", 192, 192)
    [(data_id, data)] = await items(alice, BOB, DATA_NS, item_ids=[item_id])
    png = base64.b64decode(data.text)
    assert data_id == item_id == info["id"] == hashlib.sha1(png).hexdigest()
    assert len(png) == info["bytes"]
    assert near(colour(png), BLUE)
    assert (await refused(items(alice, BOB, DATA_NS, item_ids=["other"])))[0] == "item-not-found"
    # a contact interested in avatars is told of it when they come online
    carol = await connect(CAROL, presence=False)
    bob = await connect(BOB)
    await subscribe(carol, bob)
    assert pushed(await carol.roster_push())[BOB]["subscription"] == "to"
    await interested(carol, METADATA_NS)
    told = await event(carol)
    assert told["from"] == BOB and told["pubsub_event"]["items"]["item"]["id"] == item_id
