"""HTTP file upload (XEP-0363, urn:xmpp:http:upload:0): a chat program asks the server for a
slot over XMPP, PUTs the file over HTTPS, and sends the GET URL to its contact. Both halves are
here, because the slot is one contract between the half that issues it and the half that
checks it; the HTTPS app mounts `add_routes` as it does the other services'.

- The service is the server's own domain (its disco#info has the store/file identity, the
  feature and the max-file-size form, §2): Conversations, Gajim, Dino and Monal look for the
  feature there as well as on the server's disco items, so no component address is needed.
- A file lands in the sender's own files, at `Chat uploads/<yyyy-mm>/<32 hex>/<name>` (the name
  made safe by the store's path rules), so it counts against their quota and they can see and
  delete it; deleting it ends its GET URL. A failed upload leaves no empty folder.
- URLs are on the HTTPS port of mail.<domain> (the host autoconfig names): GET
  `/upload/<address>/<yyyy-mm>/<32 hex>/<name>`, public for whoever has it (as §1 intends: the
  recipient's program fetches it; the address in it is the sender's, whom the recipient
  knows), unguessable by its 128 random bits. PUT
  is the same URL with `?size=…&expires=…&token=…`, the token an HMAC of the slot under a key
  made at start. So a slot needs no stored state: it is good for SLOT_SECONDS (a restart
  voids unused ones, and the client asks again), for exactly the size announced
  (Content-Length must match), and once (the store refuses to replace the file).
- Slot errors (§4): too large → not-acceptable with <file-too-large>; over quota →
  resource-constraint; a bad size or file name → bad-request.
- Answers to GET are sandboxed and not sniffed (a shared HTML page must not run as this
  site); pictures, sound and video are shown inline, the rest is an attachment. CORS headers
  let web chat programs PUT and GET.

Not supported: byte ranges on GET, the request's content-type (the type is guessed from the
name), purposes (XEP-0363 §6), expiry of old uploads (they are the user's files).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import mimetypes
import re
import secrets
import time
from email.utils import formatdate
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode
from xml.etree.ElementTree import Element, SubElement

from aiohttp import hdrs, web
from slixmpp.plugins.xep_0004.stanza import Form
from slixmpp.plugins.xep_0030.stanza.info import DiscoInfo
from slixmpp.plugins.xep_0363.stanza import Get, Put, Request, Slot
from slixmpp.stanza import Iq
from slixmpp.xmlstream import register_stanza_plugin

from pcloud.services import Services
from pcloud.store.files import (
    AlreadyExists,
    FileStore,
    FileStoreError,
    IsAFolder,
    NoSuchUser,
    NotFound,
    PathRefused,
    QuotaExceeded,
    Upload,
)
from pcloud.store.files.paths import parent_of, safe_name
from pcloud.xmpp.errors import XMPPError

if TYPE_CHECKING:
    from pcloud.xmpp.session import Session

UPLOAD_NS = "urn:xmpp:http:upload:0"
PREFIX = "/upload/"
FOLDER = "Chat uploads"
SLOT_SECONDS = 300
CHUNK = 1 << 20  # of a PUT's body, written to the store at a time
_KEY = secrets.token_bytes(32)  # signs slots; made at start, so a restart voids unused slots
_SLOT_ID = re.compile(r"[0-9a-f]{32}")
_MONTH = re.compile(r"\d{4}-\d{2}")
_INLINE = ("image/", "audio/", "video/")
_SAFE_HEADERS = {
    "Content-Security-Policy": "sandbox",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Access-Control-Allow-Origin": "*",  # web chat programs fetch from their own origin
}

register_stanza_plugin(Slot, Put)
register_stanza_plugin(Slot, Get)


def max_bytes(services: Services) -> int:
    """The largest upload taken; 0 when uploads are off (by config, or without HTTPS)."""
    return services.config.xmpp.upload_max_bytes if services.endpoint("https") else 0


def describe(services: Services, info: DiscoInfo) -> None:
    """§2: what the server's disco#info says of the upload service, when there is one."""
    limit = max_bytes(services)
    if not limit:
        return
    info.add_identity("store", "file", name="HTTP File Upload")
    info.add_feature(UPLOAD_NS)
    form = Form()
    form["type"] = "result"
    form.add_field(var="FORM_TYPE", ftype="hidden", value=UPLOAD_NS)
    form.add_field(var="max-file-size", value=str(limit))
    info.xml.append(form.xml)


# -- the XMPP half: slot requests (§3) ------------------------------------------------------


def request_slot(session: Session, iq: Iq) -> Element:
    if iq["type"] != "get":
        raise XMPPError("bad-request", "a slot is asked for with get")
    services = session.services
    limit = max_bytes(services)
    if not limit:
        raise XMPPError("service-unavailable", "HTTP upload is off on this server")
    request = Request(xml=iq.xml[0])
    size = _number(request["size"])
    if size is None:
        raise XMPPError("bad-request", "size must be a number of bytes")
    try:
        name = safe_name(request["filename"])
    except PathRefused as error:
        raise XMPPError("bad-request", f"bad file name: {error}") from None
    if size > limit:
        too_large = Element(f"{{{UPLOAD_NS}}}file-too-large")
        SubElement(too_large, f"{{{UPLOAD_NS}}}max-file-size").text = str(limit)
        raise XMPPError("not-acceptable", f"the largest file is {limit} bytes", "modify", too_large)
    _check_quota(session, size)
    month = time.strftime("%Y-%m", time.gmtime())
    slot_id = secrets.token_hex(16)
    expires = int(time.time()) + SLOT_SECONDS
    https = services.endpoint("https")
    assert https is not None  # max_bytes said so
    port = "" if https.port == 443 else f":{https.port}"
    parts = (session.bare, month, slot_id, name)
    # the host that the MX record, the certificate and autoconfig name: the domain's own name
    # may well be a web site elsewhere
    host = f"mail.{session.domain}"
    url = f"https://{host}{port}{PREFIX}" + "/".join(quote(part, safe="@") for part in parts)
    token = _sign(*parts, size, expires)
    slot = Slot()
    slot["put"]["url"] = f"{url}?{urlencode({'size': size, 'expires': expires, 'token': token})}"
    slot["get"]["url"] = url
    return slot.xml


def _check_quota(session: Session, size: int) -> None:
    """The sender's room, asked now so that the client hears it before sending the bytes (the
    store checks again as they come). One sum in the user's index: short enough for the loop."""
    user = session.services.directory.user(session.bare)
    if user is None or not user.quota_bytes:
        return
    used = session.services.files.user(session.bare).usage().counted
    if used + size > user.quota_bytes:
        raise XMPPError("resource-constraint", "your storage quota would be exceeded", "wait")


def _number(text: str) -> int | None:
    """A count of bytes or seconds as a client sent it, or None (digits only, at most 20)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else None


def _sign(owner: str, month: str, slot_id: str, name: str, size: int, expires: int) -> str:
    message = "\0".join((owner, month, slot_id, name, str(size), str(expires)))
    return hmac.new(_KEY, message.encode(), hashlib.sha256).hexdigest()


# -- the HTTP half: PUT and GET ---------------------------------------------------------------


def add_routes(app: web.Application, services: Services) -> None:
    handler = _Uploads(services)
    app.router.add_route("*", PREFIX + "{owner}/{month}/{slot}/{name}", handler.handle)


class _Uploads:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def handle(self, request: web.Request) -> web.StreamResponse:
        owner, month, slot_id, name = (
            request.match_info[key] for key in ("owner", "month", "slot", "name")
        )
        if not (_MONTH.fullmatch(month) and _SLOT_ID.fullmatch(slot_id)):
            raise web.HTTPNotFound(text="no such upload\n")
        path = f"{FOLDER}/{month}/{slot_id}/{name}"
        if request.method in (hdrs.METH_GET, hdrs.METH_HEAD):
            return await self._get(request, owner, path)
        if request.method == hdrs.METH_PUT:
            self._check_slot(request, owner, month, slot_id, name)
            return await self._put(request, owner, path)
        if request.method == hdrs.METH_OPTIONS:  # a web client's CORS preflight for its PUT
            return web.Response(headers={
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "GET, HEAD, PUT",
                "Access-Control-Allow-Headers": "Content-Type",
            })  # fmt: skip
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD", "PUT", "OPTIONS"])

    def _check_slot(
        self, request: web.Request, owner: str, month: str, slot_id: str, name: str
    ) -> None:
        query = request.query
        size, expires = _number(query.get("size", "")), _number(query.get("expires", ""))
        if size is None or expires is None:
            raise web.HTTPForbidden(text="this is not an upload slot\n")
        expected = _sign(owner, month, slot_id, name, size, expires)
        if not hmac.compare_digest(expected, query.get("token", "")):
            raise web.HTTPForbidden(text="this is not an upload slot\n")
        if expires < time.time():
            raise web.HTTPForbidden(text="this upload slot has expired: ask for another\n")
        if request.content_length is None:
            raise web.HTTPLengthRequired(text="send the Content-Length\n")
        if request.content_length != size:
            raise web.HTTPBadRequest(text=f"the slot is for exactly {size} bytes\n")

    async def _put(self, request: web.Request, owner: str, path: str) -> web.Response:
        committed = False
        try:
            upload = await asyncio.to_thread(_start, self.services.files, owner, path)
            with upload:
                while chunk := await request.content.read(CHUNK):
                    await asyncio.to_thread(upload.write, chunk)
                if upload.size != request.content_length:
                    raise web.HTTPBadRequest(text="the body ended early\n")
                await asyncio.to_thread(upload.commit)
                committed = True
        except AlreadyExists:
            raise web.HTTPConflict(text="this slot was used already\n") from None
        except QuotaExceeded:
            raise web.HTTPInsufficientStorage(text="the quota would be exceeded\n") from None
        except NoSuchUser:
            raise web.HTTPForbidden(text="no such user\n") from None
        except FileStoreError as error:
            raise web.HTTPConflict(text=f"{error}\n") from None
        finally:
            if not committed:
                await asyncio.to_thread(_tidy, self.services.files, owner, path)
        return web.Response(status=201, headers={"Access-Control-Allow-Origin": "*"})

    async def _get(self, request: web.Request, owner: str, path: str) -> web.Response:
        head = request.method == hdrs.METH_HEAD
        try:
            files = await asyncio.to_thread(self.services.files.user, owner)
            entry = await asyncio.to_thread(files.stat, path)
            # aiohttp reads an open file in its worker threads, and closes it at the end.
            body = None if head else await asyncio.to_thread(files.open_read, path)
        except (NoSuchUser, NotFound, PathRefused, IsAFolder):
            raise web.HTTPNotFound(text="no such upload (it may have been deleted)\n") from None
        kind = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
        disposition = "inline" if kind.startswith(_INLINE) else "attachment"
        headers = {
            **_SAFE_HEADERS,
            hdrs.CONTENT_TYPE: kind,
            hdrs.CONTENT_DISPOSITION: f"{disposition}; filename*=UTF-8''{quote(entry.name)}",
            hdrs.ETAG: f'"{entry.etag}"',
            hdrs.LAST_MODIFIED: formatdate(entry.mtime, usegmt=True),
        }
        if head:
            headers[hdrs.CONTENT_LENGTH] = str(entry.size)
        return web.Response(body=body, headers=headers)


def _start(store: FileStore, owner: str, path: str) -> Upload:
    """The upload of a slot's file, its folders made; AlreadyExists when it was used."""
    files = store.user(owner)
    names = path.split("/")
    for depth in range(1, len(names)):
        # Made by an earlier upload (or, for the slot's own folder, by this slot's first PUT).
        with contextlib.suppress(AlreadyExists):
            files.mkdir("/".join(names[:depth]))
    return files.upload(path, exclusive=True)


def _tidy(store: FileStore, owner: str, path: str) -> None:
    """A failed upload leaves no empty slot folder in the user's files."""
    folder = parent_of(path)
    with contextlib.suppress(FileStoreError):
        files = store.user(owner)
        if not files.listdir(folder):
            files.delete(folder)
