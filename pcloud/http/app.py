"""The HTTPS application (one aiohttp app on one TLS listener) and the plain-HTTP listener.

Services add their routes here: DAV under /dav/ (pcloud/dav/); later files under /files/,
avatars under /avatar/, client set-up (pcloud/autoconfig/), the web panel at /. Plain
HTTP answers every request with a permanent redirect to the same URL over HTTPS (and will
answer ACME HTTP-01 challenges); it never serves content or takes credentials.
"""

from __future__ import annotations

import socket

from aiohttp import web

from pcloud import __version__, autoconfig, avatar, dav, files
from pcloud.listeners import Stop
from pcloud.services import Services
from pcloud.xmpp import upload as chat_upload

SERVICES = web.AppKey("services", Services)
# How long shutdown waits for requests in progress.
SHUTDOWN_SECONDS = 2.0
ACCESS_LOG_FORMAT = 'remote=%a request="%r" status=%s bytes=%b seconds=%Tf'


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


def make_app(services: Services) -> web.Application:
    app = web.Application()
    app[SERVICES] = services
    app.router.add_get("/healthz", healthz)
    dav.add_routes(app, services)
    files.add_routes(app, services)
    avatar.add_routes(app, services)
    autoconfig.add_routes(app, services)
    chat_upload.add_routes(app, services)  # XEP-0363's PUT and GET
    return app


async def _serve(
    app: web.Application, sock: socket.socket, services: Services, *, tls: bool
) -> Stop:
    runner = web.AppRunner(
        app, access_log_format=ACCESS_LOG_FORMAT, shutdown_timeout=SHUTDOWN_SECONDS
    )
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=services.tls.server_context if tls else None)
    await site.start()
    return runner.cleanup


async def serve_https(services: Services, sock: socket.socket) -> Stop:
    return await _serve(make_app(services), sock, services, tls=True)


async def serve_redirect(services: Services, sock: socket.socket) -> Stop:
    https = services.endpoint("https")

    async def redirect(request: web.Request) -> web.Response:
        if https is None:
            raise web.HTTPNotFound(text="HTTPS is not enabled on this server\n")
        port = None if https.port == 443 else https.port
        target = request.url.with_scheme("https").with_port(port)
        # 308 keeps the method and body, unlike 301.
        raise web.HTTPPermanentRedirect(target)

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", redirect)
    return await _serve(app, sock, services, tls=False)
