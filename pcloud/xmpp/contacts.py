"""Chat contacts from the address book: the vCards of a user's own address books (CardDAV,
pcloud.store.calendars) that give a chat address (`IMPP:xmpp:…`, or `X-JABBER` as vCard 3
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
import vobject  # type: ignore[import-untyped]  # no type hints shipped
from slixmpp import JID
from slixmpp.jid import InvalidJID

from pcloud.store.calendars import open_storage
from pcloud.store.xmpp import RosterItem
from pcloud.xmpp import roster

if TYPE_CHECKING:
    from pcloud.xmpp.session import Session

log = logging.getLogger(__name__)

GROUP = "Contacts"
MAX_SEEDED = 1000
CARDS_CACHED = 10_000  # parsed cards, by their text (as pcloud.dav.people does)


async def seed(session: Session) -> None:
    """Put the user's address book contacts in their roster (see the module's notes)."""
    services = session.services
    if not services.config.xmpp.roster_from_contacts:
        return
    owner, router = session.bare, session.router
    try:
        cards = await asyncio.to_thread(read_cards, _storage(services.data_dir / "dav"), owner)
    except Exception as error:  # a broken address book must not keep the user from chatting
        log.warning("xmpp contacts not read owner=%s error=%r", owner, error)
        return
    items: dict[str, RosterItem] = {}
    for name, chat, email in cards:
        hosted = [a for a in email if router.is_local(a.partition("@")[2])]
        for address in [*chat, *(a for a in hosted if router.user_exists(a))]:
            if address != owner and address not in items:
                items[address] = RosterItem(address, name, (GROUP,))
        if len(items) >= MAX_SEEDED:
            break
    for item, version in services.xmpp.seed_roster(owner, list(items.values())):
        roster.push(router, owner, item, version)


@functools.lru_cache(maxsize=8)
def _storage(folder: Path) -> radicale.storage.BaseStorage:
    return open_storage(folder)


Card = tuple[str, tuple[str, ...], tuple[str, ...]]  # name, chat addresses, email addresses


def read_cards(storage: radicale.storage.BaseStorage, owner: str) -> list[Card]:
    """The cards of the owner's address books, under Radicale's read lock (in a thread)."""
    cards: list[Card] = []
    with storage.acquire_lock("r", owner):
        for collection in storage.discover(f"/{owner}/", "1"):
            if isinstance(collection, radicale.storage.BaseCollection) and (
                collection.tag == "VADDRESSBOOK"
            ):
                cards += (parse(item.serialize()) for item in collection.get_all())
    return cards


@functools.lru_cache(maxsize=CARDS_CACHED)
def parse(text: str) -> Card:
    card = vobject.readOne(text)

    def values(name: str) -> list[str]:
        return [str(line.value).strip() for line in card.contents.get(name, [])]

    chat = [value[len("xmpp:") :] for value in values("impp") if value.lower().startswith("xmpp:")]
    chat += values("x-jabber")
    name = next(iter(values("fn")), "")
    return name, _bare_jids(chat), _bare_jids(values("email"))


def _bare_jids(addresses: list[str]) -> tuple[str, ...]:
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
