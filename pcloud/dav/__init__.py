"""Calendars and contacts: CalDAV (RFC 4791) and CardDAV (RFC 6352) with Radicale embedded,
on the same accounts and passwords as mail.

Radicale is mounted in the one HTTPS application under /dav/, through the streaming WSGI
bridge (pcloud/wsgi.py) and its own threads; /.well-known/caldav and /.well-known/carddav
lead clients there (RFC 6764). The adapter (radicale_adapter.py) supplies authentication,
rights and the storage folder.

Implementation notes:
- A principal is `/dav/<address>/`; its calendar `/dav/<address>/calendar/` and address book
  `/dav/<address>/contacts/` are made at the user's first DAV sign-in.
- A shared collection is reached at its owner's URL (`pcloud dav share` prints it); it does
  not yet appear in the sharee's own home.

Beside Radicale: the People API (people.py, /api/people), jCal export (jcal.py,
/api/calendars/<name>.json) and each user's public contact card, off by default
(contact_card.py, /contact/<address>.vcf).
Invitations arriving by mail (iMIP) are placed in calendars at delivery
(pcloud/store/invitations.py, called by SMTP delivery).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from pcloud.dav import contact_card, jcal, people
from pcloud.dav.radicale_adapter import make_application
from pcloud.services import Services
from pcloud.store.calendars import MAX_BODY_BYTES
from pcloud.wsgi import WsgiBridge

MOUNT = "/dav"


def _proxy_headers_overridden(request: web.Request) -> dict[str, object]:
    """Radicale believes X-Script-Name and X-Remote-Addr (meant for a reverse proxy in front of
    it); here they would come from the client, so they say what is true."""
    return {"HTTP_X_SCRIPT_NAME": MOUNT, "HTTP_X_REMOTE_ADDR": request.remote or ""}


def add_routes(app: web.Application, services: Services) -> None:
    """Mount Radicale under /dav/ and the RFC 6764 redirects; the bridge's threads stop with
    the application."""
    radicale_app = make_application(
        services.data_dir / "dav", services.directory, asyncio.get_running_loop()
    )
    bridge = WsgiBridge(
        radicale_app,
        max_body_bytes=MAX_BODY_BYTES,
        script_name=MOUNT,
        environ_extra=_proxy_headers_overridden,
    )

    async def well_known(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(MOUNT + "/")

    async def close_bridge(app: web.Application) -> None:
        bridge.close()

    app.router.add_route("*", "/.well-known/caldav", well_known)
    app.router.add_route("*", "/.well-known/carddav", well_known)
    app.router.add_route("*", MOUNT + "{tail:(/.*)?}", bridge.handle)
    app.on_cleanup.append(close_bridge)
    for module in (people, jcal, contact_card):
        module.add_routes(app, services)
