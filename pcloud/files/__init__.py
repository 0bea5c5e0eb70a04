"""Users' files over HTTPS: WebDAV at /files/ (RFC 4918, class 1 and 2) and public links at /s/.

WebDAV is WsgiDAV (webdav.py) with a provider of pcloud's own over the file store (resources.py,
versions.py), run by the streaming WSGI bridge (pcloud/wsgi.py) in its own threads. WsgiDAV
because it is kept up, passes litmus (all five groups), and lets a provider replace its file
system layer entirely, so that path safety, versions, quota and shares all stay the store's;
its Radicale-like WSGI shape shares the bridge with /dav/. Writing WebDAV here instead would
mean writing again the parts that take servers years (If headers, locks, multistatus, the
quirks of each client). It is imported at the first request to /files/ (about 8 MB): a server
nobody mounts does not pay for it.

URLs: each user's own tree is at `/files/` itself, the user being who signed in (HTTP Basic,
the password or an app password). One URL for everyone is what people type into macOS Finder
("Connect to Server"), Windows ("Map network drive", which also takes \\\\host@SSL\\files),
GNOME Files (davs://host/files/), DAVx5 and rclone (vendor "other"); an address in the path
would only be something more to get wrong. `/files/.versions/` is the read-only view of earlier
versions; copying from it restores (versions.py). Files shared with the user are in
`/files/Shared/<owner>/`.

Implementation notes:
- A request without credentials, or with a body and wrong ones, gets 401 before its body is
  read (the bridge spools bodies): a stranger cannot fill the disk with uploads refused later.
- Locks and dead properties are kept in the store (pcloud/store/files/webdav.py), so they
  survive a restart; they are WebDAV's alone (SFTP neither sees nor honours them).
- Request bodies are spooled by the bridge (to a temporary file past 1 MiB) and PUT streams
  them into the store: memory does not grow with the file.

Public links (links.py): `/s/<token>` downloads a shared file or folder, or takes uploads into
a drop box; `pcloud files link add` prints the URL.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import BasicAuth, hdrs, web

from pcloud.files import links
from pcloud.services import Services
from pcloud.wsgi import WsgiBridge

if TYPE_CHECKING:
    from pcloud.store.files.webdav import WebdavState

MOUNT = "/files"
# The bridge's limit on a request body; the user's quota is the real one (checked as it comes).
MAX_UPLOAD_BYTES = 1 << 40


class _Webdav:
    """The WebDAV bridge, made at the first request (WsgiDAV's import costs memory)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.bridge: WsgiBridge | None = None
        self.state: WebdavState | None = None
        self._making = asyncio.Lock()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.rel_url.raw_fragment:  # not part of a request-target (RFC 9112 §3.2)
            raise web.HTTPBadRequest(text="a fragment (#) in the request-target is refused\n")
        if hdrs.AUTHORIZATION not in request.headers:
            raise web.HTTPUnauthorized(headers={hdrs.WWW_AUTHENTICATE: 'Basic realm="pcloud"'})
        if request.body_exists and not await self._signed_in(request):
            raise web.HTTPUnauthorized(headers={hdrs.WWW_AUTHENTICATE: 'Basic realm="pcloud"'})
        async with self._making:
            if self.bridge is None:
                self.bridge = await asyncio.to_thread(self._make, asyncio.get_running_loop())
        return await self.bridge.handle(request)

    async def _signed_in(self, request: web.Request) -> bool:
        """The credentials checked before the body is read; WsgiDAV checks them again (the
        directory remembers a password that matched lately, so that costs little)."""
        try:
            credentials = BasicAuth.decode(request.headers[hdrs.AUTHORIZATION], "utf-8")
        except ValueError:
            return False
        principal = await self.services.directory.authenticate(
            credentials.login, credentials.password, service="files", remote=request.remote or ""
        )
        return principal is not None

    def _make(self, loop: asyncio.AbstractEventLoop) -> WsgiBridge:
        from pcloud.files.webdav import make_application
        from pcloud.store.files.webdav import WebdavState

        self.state = WebdavState(self.services.files)
        application = make_application(
            self.services.files, self.state, self.services.directory, loop, MOUNT
        )
        return WsgiBridge(application, max_body_bytes=MAX_UPLOAD_BYTES, script_name=MOUNT)

    async def close(self, app: web.Application) -> None:
        if self.bridge is not None:
            self.bridge.close()
        if self.state is not None:
            self.state.close()


def add_routes(app: web.Application, services: Services) -> None:
    webdav = _Webdav(services)
    app.router.add_route("*", MOUNT + "{tail:(/.*)?}", webdav.handle)
    app.on_cleanup.append(webdav.close)
    links.add_routes(app, services)
