"""vCards (XEP-0054, vcard-temp), with the photo kept in pcloud's avatar store (XEP-0153 style).

A user sets their own vCard (IQ set to no one or to their bare JID) and anyone may get anyone's
(an IQ get to the bare JID: vCards are public, as on other servers). The vCard is kept without
its photo, at most MAX_VCARD_CHARS characters (a full vCard is a few KiB; the photo is kept
apart). The PHOTO answered is the avatar store's picture (avatars.py), so it matches the
Libravatar service and XEP-0084 avatars. Setting a PHOTO with a BINVAL puts that picture in the
store (`not-acceptable` if the store refuses it) and drops the user's XEP-0084 nodes, which would
now be stale; an empty PHOTO removes the picture; a vCard without PHOTO leaves it as it is (an
older client that knows nothing of photos does not erase one). A photo given only as a URL
(EXTVAL) is not kept.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

from slixmpp.plugins.xep_0054.stanza import VCardTemp
from slixmpp.stanza import Iq

from pcloud.xmpp import avatars
from pcloud.xmpp.errors import XMPPError
from pcloud.xmpp.wire import to_text

if TYPE_CHECKING:
    from pcloud.xmpp.session import Session

VCARD_NS = "vcard-temp"
PHOTO = f"{{{VCARD_NS}}}PHOTO"
MAX_VCARD_CHARS = 32 * 1024


async def handle(session: Session, iq: Iq) -> Element | None:
    to = iq["to"]
    if to and not to.user:
        raise XMPPError("service-unavailable", "the server has no vCard")
    owner = str(to.bare) if to else session.bare
    if iq["type"] == "get":
        return await _get(session, owner)
    if owner != session.bare:
        raise XMPPError("forbidden", "only the owner sets a vCard")
    await _set(session, iq.xml[0])
    return None


async def _get(session: Session, owner: str) -> Element:
    text = session.services.xmpp.vcard(owner)
    vcard = ET.fromstring(text) if text else VCardTemp().xml  # written by to_text
    picture = await avatars.picture(session.services, owner)
    if picture is not None:
        photo = VCardTemp()["PHOTO"]
        photo["TYPE"] = "image/png"
        photo["BINVAL"] = picture
        vcard.append(photo.xml)
    return vcard


async def _set(session: Session, vcard: Element) -> None:
    if vcard.tag != f"{{{VCARD_NS}}}vCard":
        raise XMPPError("bad-request", "not a vCard")
    photos = vcard.findall(PHOTO)
    for photo in photos:
        vcard.remove(photo)
    text = to_text(vcard)
    if len(text) > MAX_VCARD_CHARS:
        raise XMPPError("not-acceptable", f"a vCard is at most {MAX_VCARD_CHARS} characters")
    services, owner = session.services, session.bare
    if photos and photos[0].find(f"{{{VCARD_NS}}}EXTVAL") is None:
        binval = photos[0].findtext(f"{{{VCARD_NS}}}BINVAL") or ""
        if binval.strip():
            await avatars.keep(services, owner, avatars.decode(binval))
        else:
            await avatars.remove(services, owner)
        for node in avatars.NODES:  # the store's picture is the avatar now
            services.xmpp.pep_delete(owner, node)
    services.xmpp.put_vcard(owner, text)
