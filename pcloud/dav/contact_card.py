"""A user's own contact card, public: `GET /contact/<address>.vcf` answers a vCard 4.0
(RFC 6350) that anyone may import into an address book, once its owner has published it.

Publishing is off until chosen (`pcloud user card ADDRESS on`). A card not published, an
unknown user and a malformed address all get the same 404, so that the route does not tell
who has an account here.

Implementation notes:
- The card is built from the directory on each request: FN is the display name, or else the
  address's local part; EMAIL; KIND:individual; a UID derived from the address (a name-based
  UUID of its mailto: URI), so that importing the card again updates the same contact.
- Not yet: a photo (the avatar), fields the user chooses (phone, organisation).
"""

from __future__ import annotations

import uuid

import vobject  # type: ignore[import-untyped]  # no type hints shipped
from aiohttp import web

from pcloud.directory import InvalidValue, User
from pcloud.services import Services


def add_routes(app: web.Application, services: Services) -> None:
    async def contact_card(request: web.Request) -> web.Response:
        directory = services.directory
        try:
            user = directory.user(request.match_info["address"])
        except InvalidValue:
            user = None
        if user is None or not directory.publishes_contact_card(user.address):
            raise web.HTTPNotFound(text="no such contact card\n")
        return web.Response(text=vcard(user), content_type="text/vcard", charset="utf-8")

    app.router.add_get("/contact/{address}.vcf", contact_card)


def vcard(user: User) -> str:
    card = vobject.vCard()
    card.add("version").value = "4.0"
    card.add("kind").value = "individual"
    card.add("uid").value = uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{user.address}").urn
    card.add("fn").value = user.display_name or user.address.rpartition("@")[0]
    card.add("email").value = user.address
    text: str = card.serialize()
    return text
