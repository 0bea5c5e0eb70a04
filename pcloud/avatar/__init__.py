"""Avatars over HTTPS, as Libravatar and Gravatar serve them: `GET|HEAD /avatar/<hash>`.

The hash is the MD5 (32 hex digits) or SHA-256 (64) of the lower-cased address, optionally
followed by an image extension (`.png`, `.jpg`…) that changes nothing: every answer is a PNG.
Query parameters (Libravatar's API, https://wiki.libravatar.org/api/):
    s, size          1-512 pixels square, default 80
    d, default       what a hash without a picture gets: mp/mm (the default), identicon,
                     monsterid, wavatar, retro, robohash, pagan, blank (pictures drawn from
                     the hash, pcloud/avatar/defaults.py), 404 (a plain 404), or an http(s)
                     URL (a 302 to it)
    f, forcedefault  y: the default even when there is a picture
A malformed hash, size or default is a 400. Pictures come from the avatar store
(pcloud/store/avatars.py): an address's own, else its domain's. Every picture carries a strong
ETag (If-None-Match answers 304) and may be cached for CACHE_SECONDS.

Not supported: `r`/`rating` (every picture here is for everyone), Libravatar's OpenID hashes,
`d=initials`, answers in another format than PNG.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

from aiohttp import web

from pcloud.avatar import defaults
from pcloud.services import Services
from pcloud.store.avatars import SIZES, Rendition, RenditionCache, encode_png, rendition

DEFAULT_SIZE = 80
CACHE_SECONDS = 300  # as Gravatar: a new picture shows within minutes
_NAME = re.compile(r"^([0-9a-fA-F]{32}|[0-9a-fA-F]{64})(?:\.(?:png|jpe?g|gif|webp))?$")
_YES = {"y", "yes", "1", "true"}


def _parameter(request: web.Request, short: str, long: str) -> str | None:
    return request.query.get(short, request.query.get(long))


def _size(text: str | None) -> int:
    if text is None:
        return DEFAULT_SIZE
    if not (text.isascii() and text.isdigit()) or int(text) not in SIZES:
        raise web.HTTPBadRequest(text=f"size must be a number from 1 to {SIZES[-1]}\n")
    return int(text)


def _default(text: str | None) -> str:
    """A mode of defaults.DRAWERS, "404", or an http(s) URL to redirect to."""
    if text is None:
        return "mp"
    if text.lower() in defaults.DRAWERS or text == "404":
        return text.lower()
    url = urlsplit(text)
    if url.scheme.lower() in ("http", "https") and url.hostname:
        return text
    raise web.HTTPBadRequest(
        text="default must be 404, one of " + ", ".join(defaults.DRAWERS) + ", or an http(s) URL\n"
    )


def add_routes(app: web.Application, services: Services) -> None:
    store = services.avatars
    generated = RenditionCache()

    def draw_default(mode: str, digest: str, size: int) -> Rendition:
        drawn = rendition(encode_png(defaults.draw(mode, digest, size)))
        generated.put((mode, digest, size), drawn)
        return drawn

    async def avatar(request: web.Request) -> web.Response:
        match = _NAME.match(request.match_info["name"])
        if match is None:
            raise web.HTTPBadRequest(text="the hash must be 32 (MD5) or 64 (SHA-256) hex digits\n")
        digest = match.group(1).lower()
        size = _size(_parameter(request, "s", "size"))
        default = _default(_parameter(request, "d", "default"))
        forced = (_parameter(request, "f", "forcedefault") or "").lower() in _YES
        cache_control = f"public, max-age={CACHE_SECONDS}"
        # Served from memory on the loop when it can be: a worker thread's round trip costs
        # more than the rest of the request.
        picture = None if forced else store.cached(digest, size)
        if picture is None and not forced:
            picture = await asyncio.to_thread(store.lookup, digest, size)
        if picture is None:
            if default == "404":
                raise web.HTTPNotFound(text="no avatar\n", headers={"Cache-Control": cache_control})
            if default not in defaults.DRAWERS:
                raise web.HTTPFound(default, headers={"Cache-Control": cache_control})
            picture = generated.get((default, digest, size))
            if picture is None:
                picture = await asyncio.to_thread(draw_default, default, digest, size)
        headers = {"ETag": f'"{picture.etag}"', "Cache-Control": cache_control}
        # RFC 9110 §13.1.2: weak comparison, and "*" matches any picture.
        if any(tag.value in (picture.etag, "*") for tag in request.if_none_match or ()):
            raise web.HTTPNotModified(headers=headers)
        return web.Response(body=picture.data, content_type="image/png", headers=headers)

    app.router.add_get("/avatar/{name}", avatar)
