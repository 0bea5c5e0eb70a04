"""WsgiDAV, embedded: the application, its sign-in through the directory, its persistent lock and
property storage, and the checks made before it sees a request.

- Sign-in: HTTP Basic (RFC 7617) only, checked by `directory.authenticate` on the event loop
  from the bridge's worker thread (WsgiDAV's domain controller interface); the user's
  `UserFiles` goes into the environ for the resources. A malformed Authorization header is
  asked again (401), never a server error.
- Locks and dead properties live in the store's WebDAV state (pcloud/store/files/webdav.py):
  WsgiDAV's own dict-based storages, handed persistent tables instead of dicts.
- Before WsgiDAV (`_Guard`): a path or Destination that is not UTF-8 or holds ".." is refused
  (400; WsgiDAV would resolve "a/../b" itself, the store refuses ".."), a Destination elsewhere
  than this server's /files/ is refused (403, where WsgiDAV says 502), an XML body over
  MAX_XML_BYTES is refused (413; WsgiDAV reads XML bodies whole), one with a DTD or that is not
  XML at all is refused (400: no entity is ever expanded, whichever parser WsgiDAV found).
  After sign-in, a PROPFIND of Depth infinity is refused (`_FiniteDepth`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import posixpath
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote, unquote_to_bytes, urlsplit
from wsgiref.types import StartResponse, WSGIEnvironment
from xml.etree import ElementTree

import defusedxml.ElementTree
from defusedxml import DefusedXmlException
from wsgidav import util
from wsgidav.dav_provider import DAVProvider
from wsgidav.dc.base_dc import BaseDomainController
from wsgidav.dir_browser import WsgiDavDirBrowser
from wsgidav.error_printer import ErrorPrinter
from wsgidav.http_authenticator import HTTPAuthenticator
from wsgidav.lock_man.lock_storage import LockStorageDict
from wsgidav.mw.base_mw import BaseMiddleware
from wsgidav.prop_man.property_manager import PropertyManager
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from pcloud.directory import Directory
from pcloud.files.resources import (
    ENVIRON_ADDRESS,
    ENVIRON_FILES,
    in_versions,
    resource_of,
    store_errors,
)
from pcloud.files.versions import versions_resource
from pcloud.store.files import FileStore, NotAFolder, NotFound, UserFiles
from pcloud.store.files.webdav import JsonTable, WebdavState

MAX_XML_BYTES = 1 << 20  # PROPFIND, PROPPATCH and LOCK bodies are a few kB
XML_METHODS = ("PROPFIND", "PROPPATCH", "LOCK")
FINITE_DEPTH_XML = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>\n'
)
BLOCK_BYTES = 1 << 20  # WsgiDAV's read and write size (its default, 8 kB, costs a thread hop each)
REALM = "pcloud"


class FilesProvider(DAVProvider):
    """The signed-in user's tree, and its `.versions` view."""

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> Any:
        self._count_get_resource_inst += 1
        if in_versions(path):
            return versions_resource(path, environ)
        files: UserFiles = environ[ENVIRON_FILES]
        with store_errors():
            try:
                entry = files.stat(path)
            except (NotFound, NotAFolder):
                return None
        return resource_of(path, environ, entry)

    def ref_url_to_path(self, ref_url: str) -> str:
        """The path of a lock's key (the inverse of `Keyed.get_ref_url`)."""
        return "/" + unquote(ref_url).lstrip("/").partition("/")[2]


class _LockStorage(LockStorageDict):
    def __init__(self, table: JsonTable) -> None:
        super().__init__()
        self._table = table

    def open(self) -> None:
        self._dict = self._table


class _Properties(PropertyManager):
    """Dead properties (RFC 4918 §4.2)."""

    def __init__(self, table: JsonTable) -> None:
        super().__init__()
        self._dict = table
        self._loaded = True

    def _lazy_open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def remove_properties(self, norm_url: str, environ: Any = None) -> None:
        """A resource's properties, and those of everything in it (a deleted folder)."""
        with_children = [url for url in self._dict if util.is_equal_or_child_uri(norm_url, url)]
        for url in with_children:
            super().remove_properties(url, environ)


class _FiniteDepth(BaseMiddleware):
    """After sign-in, a PROPFIND of Depth infinity (or of no Depth, which means it) is refused
    with RFC 4918 §9.1's precondition: a whole tree in one answer is unbounded work."""

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        depth = environ.get("HTTP_DEPTH", "infinity").strip().lower()
        if environ["REQUEST_METHOD"] != "PROPFIND" or depth != "infinity":
            return self.next_app(environ, start_response)
        headers = [
            ("Content-Type", "application/xml; charset=utf-8"),
            ("Content-Length", str(len(FINITE_DEPTH_XML))),
        ]
        start_response("403 Forbidden", headers)
        return [FINITE_DEPTH_XML]


class _Authenticator(HTTPAuthenticator):
    def handle_basic_auth_request(self, environ: WSGIEnvironment, start_response: Any) -> Any:
        """WsgiDAV's, but a header it could not decode is asked again (it would raise)."""
        value = environ["HTTP_AUTHORIZATION"][len("Basic ") :].strip()
        try:
            text = base64.b64decode(value.encode("latin-1"), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeError):
            text = ""
        if ":" not in text:
            return self.send_basic_auth_response(environ, start_response)
        environ["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(text.encode()).decode()
        return super().handle_basic_auth_request(environ, start_response)


def _domain_controller(
    directory: Directory, store: FileStore, loop: asyncio.AbstractEventLoop
) -> type[BaseDomainController]:
    class DomainController(BaseDomainController):
        def get_domain_realm(self, path_info: str, environ: Any) -> str:
            return REALM

        def require_authentication(self, realm: str, environ: Any) -> bool:
            return True

        def supports_http_digest_auth(self) -> bool:
            return False  # the directory keeps no digest of passwords

        def basic_auth_user(
            self, realm: str, user_name: str, password: str, environ: dict[str, Any]
        ) -> bool:
            principal = asyncio.run_coroutine_threadsafe(
                directory.authenticate(
                    user_name, password, service="files", remote=environ.get("REMOTE_ADDR", "")
                ),
                loop,
            ).result()
            if principal is None:
                return False
            environ[ENVIRON_ADDRESS] = principal.address
            environ[ENVIRON_FILES] = store.user(principal.address)
            return True

    return DomainController


def make_application(
    store: FileStore,
    state: WebdavState,
    directory: Directory,
    loop: asyncio.AbstractEventLoop,
    mount: str,
) -> _Guard:
    """WsgiDAV over the file store, mounted at `mount` ("/files"), behind its guard."""
    config = {
        "provider_mapping": {"/": FilesProvider()},
        "mount_path": mount,
        "lock_storage": _LockStorage(state.locks),
        "property_manager": _Properties(state.properties),
        "http_authenticator": {
            "domain_controller": _domain_controller(directory, store, loop),
            "accept_basic": True,
            "accept_digest": False,
            "default_to_digest": False,
        },
        "middleware_stack": [
            ErrorPrinter,
            _Authenticator,
            _FiniteDepth,
            WsgiDavDirBrowser,
            RequestResolver,
        ],
        "dir_browser": {
            "davmount": False,
            "ms_sharepoint_support": False,
            "libre_office_support": False,
            "response_trailer": "",
        },
        "block_size": BLOCK_BYTES,
        "suppress_version_info": True,
        "verbose": 1,
        "logging": {"enable": False},  # pcloud's access log says what matters
    }
    return _Guard(WsgiDAVApp(config), mount)


class _Guard:
    """The checks made before WsgiDAV sees a request (see the module notes)."""

    def __init__(self, app: WsgiDAVApp, mount: str) -> None:
        self.app = app
        self.mount = mount

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        refusal = self._refusal(environ)
        if refusal is None:
            result: Iterable[bytes] = self.app(environ, start_response)
            return result
        status, reason = refusal
        body = f"{status}\n{reason}\n".encode()
        start_response(
            status,
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def _refusal(self, environ: WSGIEnvironment) -> tuple[str, str] | None:
        if not _sane(environ["PATH_INFO"].encode("latin-1")):
            return "400 Bad Request", "the path must be UTF-8 without '..'"
        length = int(environ.get("CONTENT_LENGTH") or "0")
        if environ["REQUEST_METHOD"] != "PUT" and length > MAX_XML_BYTES:
            return "413 Content Too Large", f"bodies over {MAX_XML_BYTES} bytes are refused"
        if environ["REQUEST_METHOD"] in XML_METHODS and length:
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
            try:
                defusedxml.ElementTree.fromstring(body, forbid_dtd=True)
            except (DefusedXmlException, ElementTree.ParseError):
                return "400 Bad Request", "the body must be XML, without a DTD or entities"
        destination = environ.get("HTTP_DESTINATION")
        if destination is None:
            return None
        parts = urlsplit(destination)
        # Host names compared without ports (a client may name the default one or not).
        host = urlsplit("//" + environ.get("HTTP_HOST", "")).hostname
        if (parts.scheme and parts.scheme.lower() != environ["wsgi.url_scheme"]) or (
            parts.netloc and parts.hostname != host
        ):
            return "403 Forbidden", "the destination must be on this server"
        raw = unquote_to_bytes(parts.path)
        if not _sane(raw):
            return "400 Bad Request", "the destination must be UTF-8 without '..'"
        path = raw.decode()
        if posixpath.normpath(path) != self.mount and not path.startswith(self.mount + "/"):
            return "403 Forbidden", f"the destination must be in {self.mount}/"
        # WsgiDAV percent-decodes the header as text: hand it the path re-encoded.
        environ["HTTP_DESTINATION"] = quote(path)
        return None


def _sane(path: bytes) -> bool:
    try:
        text = path.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return ".." not in text.split("/")
