"""User avatars (XEP-0084, and the vCard photo of XEP-0153) kept in pcloud's avatar store, so that
chat programs, the Libravatar service at /avatar/<hash> and the web panel show one picture.

- A metadata item published to `urn:xmpp:avatar:metadata` naming a data item already published
  to `urn:xmpp:avatar:data` (by its id) puts that picture in the avatar store before the
  metadata is kept (a picture the store refuses gets `not-acceptable`); an empty metadata item
  (no <info/>) removes the user's picture. Metadata pointing only at a URL changes nothing in the
  store.
- A user with no avatar nodes (whose picture came from `pcloud avatar set`, or only from the
  domain's) is answered from the store: metadata with the SHA-1 id, size and type of a SIZE-pixel
  PNG, and that PNG as the data item; to anyone (the Libravatar service shows it to anyone too),
  and as the last metadata item to contacts interested in avatars when they come online.
- A vCard PHOTO is that same store picture (vcard.py).

Not supported: a picture set with `pcloud avatar set` after an XMPP publish is served over HTTP,
but XMPP clients keep the published one until the next publish or vCard photo.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import xml.etree.ElementTree as ET
from xml.etree.ElementTree import Element

from slixmpp.plugins.xep_0084.stanza import Data, MetaData

from pcloud.directory import DirectoryError
from pcloud.services import Services
from pcloud.store.avatars import InvalidImage
from pcloud.xmpp.errors import XMPPError

DATA_NS = "urn:xmpp:avatar:data"
METADATA_NS = "urn:xmpp:avatar:metadata"
NODES = (DATA_NS, METADATA_NS)
# The size served to chat programs: what Conversations publishes, well within XEP-0084's
# advice, and a few tens of kilobytes as PNG.
SIZE = 192


def decode(text: str | None) -> bytes:
    """Base64 as XML carries it (with line breaks, maybe); not-acceptable if it is not."""
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise XMPPError("not-acceptable", "the picture is not valid base64") from None


async def keep(services: Services, owner: str, picture: bytes) -> None:
    """Put a picture in the avatar store (a worker thread: Pillow decodes it)."""
    try:
        await asyncio.to_thread(services.avatars.set, owner, picture)
    except InvalidImage as error:
        raise XMPPError("not-acceptable", str(error)) from None


async def remove(services: Services, owner: str) -> None:
    with contextlib.suppress(DirectoryError):  # there was none
        await asyncio.to_thread(services.avatars.delete, owner)


async def picture(services: Services, owner: str) -> bytes | None:
    """The owner's picture (or their domain's) as a SIZE-pixel PNG, or None."""
    rendition = await asyncio.to_thread(services.avatars.for_address, owner, SIZE)
    return rendition.data if rendition is not None else None


async def publishing(services: Services, owner: str, node: str, payload: Element) -> None:
    """Before an item is kept in one of the owner's nodes: a metadata item updates the store."""
    if node != METADATA_NS or payload.tag != f"{{{METADATA_NS}}}metadata":
        return
    infos = payload.findall(f"{{{METADATA_NS}}}info")
    if not infos:
        await remove(services, owner)
        return
    for info in infos:
        found = services.xmpp.pep_items(owner, DATA_NS, item_ids=[info.get("id", "")])
        if found:
            data = ET.fromstring(found[0][1])  # written by to_text: nothing to expand
            await keep(services, owner, decode(data.text))
            return


async def stored(services: Services, owner: str, node: str) -> tuple[str, Element] | None:
    """The (item id, payload) of an avatar node, made from the store's picture, or None."""
    png = await picture(services, owner)
    if png is None:
        return None
    item_id = hashlib.sha1(png).hexdigest()
    if node == DATA_NS:
        data = Data()
        data["value"] = png
        return item_id, data.xml
    metadata = MetaData()
    metadata.add_info(item_id, "image/png", len(png), height=str(SIZE), width=str(SIZE))
    return item_id, metadata.xml
