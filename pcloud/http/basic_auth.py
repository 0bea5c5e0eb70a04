"""HTTP Basic authentication (RFC 7617) through the directory, for pcloud's own HTTP APIs (the
WSGI applications, Radicale and later WsgiDAV, check credentials through their own plugins)."""

from __future__ import annotations

from aiohttp import BasicAuth, hdrs, web

from pcloud.directory import Directory, Principal


async def signed_in(request: web.Request, directory: Directory, service: str) -> Principal:
    """The user whose HTTP Basic credentials (RFC 7617, UTF-8) came with the request; without
    them or with wrong ones, 401 asking for them."""
    try:
        credentials = BasicAuth.decode(request.headers.get(hdrs.AUTHORIZATION, ""), "utf-8")
    except ValueError:
        credentials = None
    if credentials is not None:
        principal = await directory.authenticate(
            credentials.login, credentials.password, service=service, remote=request.remote or ""
        )
        if principal is not None:
            return principal
    raise web.HTTPUnauthorized(headers={hdrs.WWW_AUTHENTICATE: 'Basic realm="pcloud"'})
