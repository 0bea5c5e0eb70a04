"""Users deleted while the server runs: `pcloud user del` (another process, or the SSH shell)
drops their chat state from the store and notes the deletion there (pcloud.store.xmpp); this
worker, a few seconds later, ends the user's sessions with `not-authorized` ("account deleted",
as Prosody does), tells the contacts who saw them that they went offline, and pushes the removal
to the rosters that listed them (RFC 6121 §2.1.6). At start-up, it clears the deletions made
while the server was stopped (there is no one to tell).

A user added again before the worker looked keeps their new sessions: only the roster pushes go
out.
"""

from __future__ import annotations

import asyncio
import logging
from xml.etree.ElementTree import Element

from pcloud.services import Services
from pcloud.store.xmpp import RosterItem
from pcloud.xmpp import presence, roster
from pcloud.xmpp.router import Router, router_for
from pcloud.xmpp.wire import CLIENT_NS

log = logging.getLogger(__name__)

LOOK_EVERY_SECONDS = 2


async def run(services: Services) -> None:
    """Runs until cancelled."""
    router = router_for(services)
    while True:
        try:
            for address, contacts in services.xmpp.deleted_users():
                _deleted(router, address, contacts)
                services.xmpp.clear_deleted(address)
        except Exception:
            log.exception("xmpp deleted users not handled")
        await asyncio.sleep(LOOK_EVERY_SECONDS)


def _deleted(router: Router, address: str, contacts: list[str]) -> None:
    sessions = router.sessions(address)
    if sessions and router.services.directory.user(address) is not None:
        sessions = []  # added again meanwhile: these are the new user's
    for session in sessions:
        if session.presence is not None and session.jid is not None:
            gone = Element(f"{{{CLIENT_NS}}}presence", {"from": session.jid.full})
            gone.set("type", "unavailable")
            presence.send_to([s for c in contacts for s in router.available(c)], gone)
        session.terminate("not-authorized", "account deleted")
    for contact in contacts:
        version = router.services.xmpp.roster_version(contact)
        roster.push(router, contact, RosterItem(address), version, removed=True)
    log.info("xmpp deleted user signed out address=%s sessions=%d contacts=%d",
             address, len(sessions), len(contacts))  # fmt: skip
