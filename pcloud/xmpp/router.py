"""The sessions of one server, by bare JID and resource (RFC 6120 §7), and what is local.

One Router serves both XMPP listeners. A resource bound again replaces the session that held it
(RFC 6120 §7.7.2.2: the old one ends with a `conflict` stream error). Only hosted domains are
local; stanzas to any other domain get `remote-server-not-found` from the caller, since there is
no server-to-server federation yet: that would be a second kind of route here.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pcloud.connection_counts import ConnectionCounts
from pcloud.directory import DirectoryError
from pcloud.services import Services
from pcloud.store.xmpp import XmppStore

if TYPE_CHECKING:
    from pcloud.xmpp.server import Connection
    from pcloud.xmpp.session import Session

log = logging.getLogger(__name__)

DOMAINS_SECONDS = 1.0


class Router:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.connections = ConnectionCounts()  # open connections per address, both listeners
        self._sessions: dict[str, dict[str, Session]] = {}
        self.resumable: dict[str, Session] = {}  # by stream management id (XEP-0198)
        self.unarchived: list[tuple[str, str, str, int, str]] = []  # see archive.record
        self.uid_bits: Iterator[str] = iter(())  # see archive._uids
        # While a read is handled, the connections it gave output to (see server.py); None
        # between reads.
        self.unflushed: list[Connection] | None = None
        self._domains: frozenset[str] = frozenset()
        self._domains_read = -DOMAINS_SECONDS  # monotonic time

    def bind(self, session: Session, bare: str, resource: str) -> Session | None:
        """Register a session under bare/resource; returns the session it replaces, if any."""
        resources = self._sessions.setdefault(bare, {})
        replaced = resources.get(resource)
        resources[resource] = session
        return replaced

    def unbind(self, bare: str, resource: str, session: Session) -> None:
        resources = self._sessions.get(bare, {})
        if resources.get(resource) is session:
            del resources[resource]
            if not resources:
                del self._sessions[bare]

    def sessions(self, bare: str) -> list[Session]:
        return list(self._sessions.get(bare, {}).values())

    def everyone(self) -> list[Session]:
        """Every bound session, of every user."""
        return [s for resources in self._sessions.values() for s in resources.values()]

    def count(self, bare: str) -> int:
        return len(self._sessions.get(bare, {}))

    def session(self, bare: str, resource: str) -> Session | None:
        return self._sessions.get(bare, {}).get(resource)

    def available(self, bare: str) -> list[Session]:
        """The sessions that sent available presence (RFC 6121 §4.1: "available resources")."""
        return [s for s in self._sessions.get(bare, {}).values() if s.presence is not None]

    def is_local(self, domain: str) -> bool:
        """Asked for every stanza: the hosted domains are read again after DOMAINS_SECONDS
        (`pcloud domain add` changes them from another process)."""
        now = time.monotonic()
        if now - self._domains_read > DOMAINS_SECONDS:
            self._domains = frozenset(self.services.directory.domains())
            self._domains_read = now
        return domain in self._domains

    def user_exists(self, bare: str) -> bool:
        if bare in self._sessions:
            return True
        try:
            return self.services.directory.user(bare) is not None
        except DirectoryError:  # a JID that is no mail address: no user has it
            return False


# One Router per server instance (tests run several in one process), shared by both listeners
# and the account worker (accounts.py).
_routers: weakref.WeakKeyDictionary[XmppStore, Router] = weakref.WeakKeyDictionary()


def router_for(services: Services) -> Router:
    router = _routers.get(services.xmpp)
    if router is None:
        router = _routers[services.xmpp] = Router(services)
    return router
