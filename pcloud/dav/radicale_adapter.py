"""Radicale, embedded: pcloud's configuration, authentication and rights plugins.

Radicale keeps calendars and address books in the calendar store (pcloud/store/calendars.py).

- Authentication: `directory.authenticate` (app passwords and throttling included), called on
  the event loop from Radicale's worker thread. Radicale's own delay and cache are off: the
  directory throttles.
- Rights: a user reads and writes their own home `/<address>/` and the collections in it, and
  the collections others shared with them (read-only or read-write, `pcloud dav share`).
- Each user's home gets a calendar ("calendar") and an address book ("contacts") the first
  time they sign in to DAV (a user may be added while the server is stopped).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import defusedxml
from radicale import pathutils
from radicale.app import Application
from radicale.auth import AuthContext, BaseAuth
from radicale.rights import BaseRights

from pcloud.directory import Directory
from pcloud.store.calendars import configuration_for, create_default_collections, open_storage

log = logging.getLogger(__name__)

MAX_XML_DEPTH = 64  # DAV bodies nest about a dozen levels; Radicale walks them recursively

# Radicale logs every request at INFO; pcloud's access log already says what matters.
logging.getLogger("radicale").setLevel(logging.WARNING)


def make_application(
    storage_folder: Path, directory: Directory, loop: asyncio.AbstractEventLoop
) -> Application:
    """A Radicale WSGI application over `storage_folder`, signing users in through the
    directory on `loop` (the server's event loop)."""
    configuration = configuration_for(storage_folder)
    provisioned: set[str] = set()
    provision_lock = threading.Lock()

    class Auth(BaseAuth):
        def _login_ext(self, login: str, password: str, context: AuthContext) -> str:
            principal = asyncio.run_coroutine_threadsafe(
                directory.authenticate(
                    login, password, service="dav", remote=context.remote_addr or ""
                ),
                loop,
            ).result()
            if principal is None:
                return ""
            with provision_lock:
                if principal.address not in provisioned:
                    create_default_collections(storage, principal.address)
                    provisioned.add(principal.address)
            return principal.address

    class Rights(BaseRights):
        def authorization(self, user: str, user_groups: set[str], path: str) -> str:
            return collection_rights(directory, user, path)

    configuration.update(
        {
            "auth": {"type": Auth, "delay": "0", "cache_logins": "False"},
            "rights": {"type": Rights},
        },
        "pcloud",
        privileged=True,
    )
    storage = open_storage(storage_folder)
    return _Application(configuration)


class _Application(Application):
    """Radicale, refusing with 400 (not 500 and a logged traceback) what its XML parser refuses
    to expand (a DTD or entities: billion laughs, XXE) and XML deep enough to exhaust the
    recursion of its own tree walks; both reach it as RuntimeError, which it answers with 400."""

    def _read_xml_request_body(self, environ: Any, request_info: dict[str, Any]) -> Any:
        try:
            element = super()._read_xml_request_body(environ, request_info)
        except defusedxml.DefusedXmlException as error:
            raise RuntimeError(f"XML with entity declarations refused: {error!r}") from error
        if element is not None and _depth(element) > MAX_XML_DEPTH:
            raise RuntimeError(f"XML nested deeper than {MAX_XML_DEPTH} levels refused")
        return element


def _depth(root: ET.Element) -> int:
    """How deep a tree nests, found without recursion (a deep tree must not recurse here)."""
    deepest, waiting = 0, [(root, 1)]
    while waiting:
        element, level = waiting.pop()
        deepest = max(deepest, level)
        waiting += [(child, level + 1) for child in element]
    return deepest


def collection_rights(directory: Directory, user: str, path: str) -> str:
    """Radicale's permission letters for `user` on `path` (see radicale.rights): R/W on a
    home, r/w on a calendar or address book."""
    if not user:
        return ""
    sane = pathutils.strip_path(path)
    if not sane:
        return "R"  # the root: clients look for their principal from here
    levels = sane.split("/")
    owner = levels[0]
    if len(levels) == 1:
        return "RW" if owner == user else ""
    if len(levels) == 2:
        if owner == user:
            return "rw"
        return directory.share_access(owner, levels[1], user)
    return ""
