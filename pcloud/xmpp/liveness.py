"""Clients that went silent: a phone that loses its network sends no FIN, and its connection
would stay open for hours (until TCP gives up on a write). Meanwhile the session looks
available, so messages to the user go into a dead socket instead of to offline storage, and a
session with stream management never gets to wait for its resumption.

So, after `[xmpp] ping_after_seconds` without a byte from a signed-in client, the server sends
it a ping (XEP-0199; every client must answer an IQ get, with a result or an error); a client
that sends nothing within ANSWER_SECONDS more is taken as gone and its connection is dropped,
as a broken one is: a session with stream management waits for its resumption (its unanswered
messages kept), any other ends and goes unavailable. Clients on mobile networks ping the
server themselves every few minutes, so a live one is seldom asked.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import weakref
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element, SubElement

from pcloud.services import Services
from pcloud.xmpp.router import router_for
from pcloud.xmpp.serverinfo import PING_NS
from pcloud.xmpp.wire import CLIENT_NS

if TYPE_CHECKING:
    from pcloud.xmpp.server import Connection
    from pcloud.xmpp.session import Session

log = logging.getLogger(__name__)

ANSWER_SECONDS = 60


async def run(services: Services) -> None:
    """Runs until cancelled (at once when pings are off)."""
    silence = services.config.xmpp.ping_after_seconds
    if not silence:
        return
    answer = min(ANSWER_SECONDS, silence)
    router = router_for(services)
    pinged: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()
    while True:
        await asyncio.sleep(answer / 2)
        now = time.monotonic()
        for session in router.everyone():
            connection = session.connection
            if connection.closing or connection.transport.is_closing():
                continue  # ending, or a detached session waiting for its resumption
            asked = pinged.get(connection)
            if asked is not None and asked > connection.last_read and now - asked >= answer:
                log.info("xmpp client gone silent conn=%s jid=%s", connection.id, session.jid)
                connection.transport.abort()  # it ends as a broken connection does
            elif now - connection.last_read >= silence and (
                asked is None or asked < connection.last_read
            ):
                _ping(session)
                pinged[connection] = now


def _ping(session: Session) -> None:
    assert session.jid is not None
    iq = Element(f"{{{CLIENT_NS}}}iq", type="get", id=f"ping-{secrets.token_hex(4)}")
    iq.set("from", session.domain)
    iq.set("to", session.jid.full)
    SubElement(iq, f"{{{PING_NS}}}ping")
    session.send(iq)
