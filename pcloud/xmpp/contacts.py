"""Chat contacts from the address book: the vCards of a user's own address books (CardDAV,
pcloud.store.contacts) that give a chat address (`IMPP:xmpp:…`, or `X-JABBER` as vCard 3
clients write it) or an email address of a user hosted here become items of their roster, named
by the card's FN, in the group "Contacts".

When: each time a resource is bound, if `[xmpp] roster_from_contacts` is on (the default: a new
chat program then starts with the people the user already knows, and the items are the user's
own, seen by no one else). The stream waits for it, so that the roster fetched next lists them;
the user's other resources that fetched the roster get pushes.

Each contact is put in once ever (the store remembers it): one the user removes is not put back,
one already listed stays as the user made it, and a stranger's pending request becomes a listed
item with its state kept. Items come with subscription "none" and no request: a subscription
asks the contact to share their presence, which RFC 6121 §3.1.1 leaves to the user (their
client shows such items as "not subscribed", and subscribes at a tap); the server does not ask on
their behalf. At most about MAX_SEEDED contacts are put in per pass.

Not supported: address books shared with the user, following later changes of a card (a name,
a deleted card), vCards' groups (CATEGORIES) as roster groups.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import radicale.storage
from slixmpp import JID
from slixmpp.jid import InvalidJID

from pcloud.store.calendars import open_storage
from pcloud.store.contacts import address_books
from pcloud.store.xmpp import RosterItem
from pcloud.xmpp import roster

if TYPE_CHECKING:
    from pcloud.xmpp.session import Session

log = logging.getLogger(__name__)

GROUP = "Contacts"
MAX_SEEDED = 1000


async def seed(session: Session) -> None:
    """Put the user's address book contacts in their roster (see the module's notes)."""
    services = session.services
    if not services.config.xmpp.roster_from_contacts:
        return
    owner, router = session.bare, session.router
    try:
        books = await asyncio.to_thread(address_books, _storage(services.data_dir / "dav"), owner)
    except Exception as error:  # a broken address book must not keep the user from chatting
        log.warning("xmpp contacts not read owner=%s error=%r", owner, error)
        return
    items: dict[str, RosterItem] = {}
    for card in (card for book in books for card in book):
        hosted = [a for a in _bare_jids(card.addresses) if router.is_local(a.partition("@")[2])]
        for address in [*_bare_jids(card.chat_addresses), *filter(router.user_exists, hosted)]:
            if address != owner and address not in items:
                items[address] = RosterItem(address, card.name, (GROUP,))
        if len(items) >= MAX_SEEDED:
            break
    for item, version in services.xmpp.seed_roster(owner, list(items.values())):
        roster.push(router, owner, item, version)


@functools.lru_cache(maxsize=8)
def _storage(folder: Path) -> radicale.storage.BaseStorage:
    return open_storage(folder)


def _bare_jids(addresses: tuple[str, ...]) -> tuple[str, ...]:
    """Addresses as bare JIDs, in their normal form; what is not a JID is passed over."""
    jids = []
    for address in addresses:
        try:
            jid = JID(address.partition("?")[0])  # an IMPP URI may carry a query (RFC 5122)
        except InvalidJID:
            continue
        if jid.user and jid.domain:
            jids.append(str(jid.bare))
    return tuple(jids)
