"""Public links (`pcloud files link add`): `/s/<token>` for people without an account.

- A download link to a file: `GET|HEAD /s/<token>` sends it (one byte range honoured, RFC 9110
  §14). To a folder: `/s/<token>/` lists it as a page, `/s/<token>/<path>` sends a file in it.
- A drop box (an upload-only link to a folder): `GET /s/<token>` is a form to pick files, sent
  as `POST /s/<token>` (multipart/form-data); `PUT /s/<token>/<name>` sends one file (201).
  Nothing is ever replaced: a taken name gets a number ("report (2).pdf", the store's `drop`),
  and what a drop box holds is never shown.
- A link's password is asked with HTTP Basic (any user name; 401 when missing or wrong). Wrong
  passwords are throttled as failed logins are (the directory's throttle, per address and per
  link): later failures are answered after a growing delay, and a locked-out address or link
  gets 429 without its password being checked. An unknown, expired or removed link, or one
  whose file is gone, is a 404.
- Uploads stream from the connection into the store (the worker thread pulls each chunk from
  the event loop), so memory does not grow with the file; the owner's quota applies (507).
- Files are sent as attachments, sandboxed (Content-Security-Policy) and not sniffed: a shared
  HTML page must not run as part of this site.

Not supported yet: zip downloads of folders.
"""

from __future__ import annotations

import asyncio
import html
import mimetypes
import re
from collections.abc import Callable, Coroutine, Iterator
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from aiohttp import BasicAuth, BodyPartReader, hdrs, web

from pcloud.directory.throttle import Throttle
from pcloud.services import Services
from pcloud.store.files import (
    AlreadyExists,
    Entry,
    FileStore,
    LinkAccess,
    LinkNotFound,
    NotAFolder,
    NotFound,
    PasswordRequired,
    PathRefused,
    PermissionDenied,
    QuotaExceeded,
)

PREFIX = "/s/"
CHUNK = 1 << 20
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_SAFE_HEADERS = {
    "Content-Security-Policy": "sandbox",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
}


def link_url(base: str, token: str) -> str:
    """The address of a link on a server reached at `base` ("https://example.org")."""
    return f"{base.rstrip('/')}{PREFIX}{token}"


def add_routes(app: web.Application, services: Services) -> None:
    handler = _Links(services.files, services.directory.throttle)
    app.router.add_route("*", PREFIX + "{token:[^/]+}{sub:(/.*)?}", handler.handle)


class _Links:
    def __init__(self, store: FileStore, throttle: Throttle) -> None:
        self.store = store
        self.throttle = throttle

    async def handle(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        # The path under the link, as the client sent it (the store checks it).
        raw = request.rel_url.raw_path.split("/", 3)
        sub = unquote_to_bytes(raw[3]) if len(raw) > 3 else b""
        access = await self._open(request, token)
        try:
            if access.link.upload_only:
                return await self._drop_box(request, access, sub)
            if request.method not in (hdrs.METH_GET, hdrs.METH_HEAD):
                raise web.HTTPMethodNotAllowed(request.method, [hdrs.METH_GET, hdrs.METH_HEAD])
            return await self._download(request, access, sub)
        except PathRefused as error:
            raise web.HTTPBadRequest(text=f"{error}\n") from None
        except (NotFound, NotAFolder):
            raise web.HTTPNotFound(text="not found\n") from None

    async def _open(self, request: web.Request, token: str) -> LinkAccess:
        try:
            credentials = BasicAuth.decode(request.headers.get(hdrs.AUTHORIZATION, ""), "utf-8")
        except ValueError:
            credentials = None
        password = credentials.password if credentials else None
        remote, login = request.remote or "", f"link {token}"
        if password:  # counted as failed until it succeeds, as logins are
            if self.throttle.locked(remote, login):
                raise web.HTTPTooManyRequests(text="too many wrong passwords: try later\n")
            self.throttle.attempt(remote, login)
        try:
            access = await asyncio.to_thread(self.store.open_link, token, password)
        except LinkNotFound:
            raise web.HTTPNotFound(text="no such link (it may have expired)\n") from None
        except PasswordRequired:
            if password:
                await asyncio.sleep(self.throttle.failure_delay(remote, login))
            raise web.HTTPUnauthorized(
                text="this link needs its password\n",
                headers={hdrs.WWW_AUTHENTICATE: 'Basic realm="pcloud link"'},
            ) from None
        if password and access.link.has_password:  # not any link: that would clear the count
            self.throttle.succeeded(remote, login)
        return access

    # -- downloads ------------------------------------------------------------------------------

    async def _download(
        self, request: web.Request, access: LinkAccess, sub: bytes
    ) -> web.StreamResponse:
        entry = await asyncio.to_thread(access.stat, sub)
        if entry.is_dir:
            if not request.rel_url.raw_path.endswith("/"):
                raise web.HTTPMovedPermanently(request.rel_url.raw_path + "/")
            entries = await asyncio.to_thread(access.listdir, sub)
            return web.Response(text=_listing(entry, entries), content_type="text/html")
        return await self._send(request, access, sub, entry)

    async def _send(
        self, request: web.Request, access: LinkAccess, sub: bytes, entry: Entry
    ) -> web.StreamResponse:
        start, length = 0, entry.size
        status = 200
        headers = {
            **_SAFE_HEADERS,
            hdrs.CONTENT_TYPE: mimetypes.guess_type(entry.name)[0] or "application/octet-stream",
            hdrs.CONTENT_DISPOSITION: f"attachment; filename*=UTF-8''{quote(entry.name)}",
            hdrs.ETAG: f'"{entry.etag}"',
            hdrs.LAST_MODIFIED: formatdate(entry.mtime, usegmt=True),
            hdrs.ACCEPT_RANGES: "bytes",
        }
        wanted = _range(request.headers.get(hdrs.RANGE, ""), entry.size) if entry.size else None
        if wanted is not None and request.headers.get(hdrs.IF_RANGE) in (None, headers[hdrs.ETAG]):
            if wanted == (0, 0):
                raise web.HTTPRequestRangeNotSatisfiable(
                    headers={hdrs.CONTENT_RANGE: f"bytes */{entry.size}"}
                )
            start, length = wanted
            status = 206
            headers[hdrs.CONTENT_RANGE] = f"bytes {start}-{start + length - 1}/{entry.size}"
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = length
        await response.prepare(request)
        if request.method == hdrs.METH_HEAD:
            return response
        chunks = await asyncio.to_thread(access.read_chunks, sub, start, length)
        try:
            while chunk := await asyncio.to_thread(next, chunks, b""):
                await response.write(chunk)
        except ConnectionError:
            pass  # the client went away
        finally:
            await asyncio.to_thread(chunks.close)  # type: ignore[attr-defined]
        return response

    # -- drop boxes -----------------------------------------------------------------------------

    async def _drop_box(
        self, request: web.Request, access: LinkAccess, sub: bytes
    ) -> web.StreamResponse:
        if request.method == hdrs.METH_GET and not sub:
            return web.Response(text=_FORM, content_type="text/html")
        loop = asyncio.get_running_loop()
        try:
            if request.method == hdrs.METH_PUT and sub:
                name = sub.decode("utf-8", "replace")
                stored = await asyncio.to_thread(
                    access.drop, name, _pulled(loop, lambda: request.content.read(CHUNK))
                )
                return web.Response(status=201, text=f"stored as {stored}\n")
            if request.method == hdrs.METH_POST and not sub:
                stored_names = await self._form_upload(request, access, loop)
                items = "".join(f"<li>{html.escape(name)}</li>" for name in stored_names)
                return web.Response(
                    text=_page("Thank you", f"<p>Received:</p><ul>{items}</ul>"),
                    content_type="text/html",
                )
        except QuotaExceeded:
            raise web.HTTPInsufficientStorage(
                text="there is no room left for this file\n"
            ) from None
        except AlreadyExists:
            raise web.HTTPConflict(text="too many files of that name\n") from None
        except PermissionDenied as error:
            raise web.HTTPForbidden(text=f"{error}\n") from None
        raise web.HTTPMethodNotAllowed(request.method, [hdrs.METH_GET, hdrs.METH_POST, "PUT"])

    async def _form_upload(
        self, request: web.Request, access: LinkAccess, loop: asyncio.AbstractEventLoop
    ) -> list[str]:
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError, KeyError):  # not multipart, or no boundary
            raise web.HTTPBadRequest(text="send the files as multipart/form-data\n") from None
        stored = []
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or not part.filename:
                continue  # fields other than files

            def read(part: BodyPartReader = part) -> Coroutine[Any, Any, bytes]:
                return part.read_chunk(CHUNK)

            stored.append(await asyncio.to_thread(access.drop, part.filename, _pulled(loop, read)))
        if not stored:
            raise web.HTTPBadRequest(text="no file was sent\n")
        return stored


def _pulled(
    loop: asyncio.AbstractEventLoop, read: Callable[[], Coroutine[Any, Any, bytes]]
) -> Iterator[bytes]:
    """The request body's chunks, for a worker thread: each one read on the event loop."""
    while True:
        chunk = asyncio.run_coroutine_threadsafe(read(), loop).result()
        if not chunk:
            return
        yield chunk


def _range(header: str, size: int) -> tuple[int, int] | None:
    """(start, length) of a single byte range, (0, 0) for one outside the file, None when
    there is none (or several: the whole file is sent then)."""
    match = _RANGE.fullmatch(header.strip())
    if match is None or not (match[1] or match[2]):
        return None
    if not match[1]:  # the last N bytes
        length = min(int(match[2]), size)
        return (size - length, length) if length else (0, 0)
    start = int(match[1])
    end = min(int(match[2]), size - 1) if match[2] else size - 1
    if start >= size or end < start:
        return (0, 0)
    return start, end - start + 1


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        '<meta name=viewport content="width=device-width"></head>'
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def _listing(folder: Entry, entries: list[Entry]) -> str:
    rows = "".join(
        f'<li><a href="{quote(e.name)}{"/" if e.is_dir else ""}">{html.escape(e.name)}'
        f"{'/' if e.is_dir else ''}</a>{'' if e.is_dir else f' ({e.size} bytes)'}</li>"
        for e in entries
    )
    up = '<p><a href="../">..</a></p>' if folder.path else ""
    return _page(folder.name or "Shared folder", f"{up}<ul>{rows}</ul>")


_FORM = _page(
    "Send files",
    '<form method=post enctype="multipart/form-data">'
    "<input type=file name=file multiple required> <button>Send</button></form>",
)
