"""The contacts of users' address books (CardDAV, in Radicale's storage: pcloud.store.calendars),
read for the People API (pcloud.dav.people) and for chat rosters (pcloud.xmpp.contacts).

Address books are read through Radicale's storage API under its read lock (a file lock, so it
excludes the DAV server's writers as well), in the caller's worker thread; nothing is written
(Radicale may refresh its own item cache, as it does on any GET). What is read of each vCard is
kept by its text (an LRU cache): parsing took most of the time (2,000 cards: 0.8 s parsing each
time, 0.15 s reading).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import radicale.storage
import vobject  # type: ignore[import-untyped]  # no type hints shipped

MEMBER_APPLE = "x-addressbookserver-member"  # MEMBER, in Apple's vCard 3 groups
CARDS_CACHED = 10_000  # parsed vCards kept: about a kilobyte each, with the text


@dataclass(frozen=True)
class Card:
    """What pcloud reads of a vCard."""

    uid: str  # without "urn:uuid:"
    name: str
    addresses: tuple[str, ...]  # EMAIL
    chat_addresses: tuple[str, ...]  # IMPP xmpp: URIs without the scheme, and X-JABBER
    is_group: bool
    members: tuple[str, ...]  # a group's: UIDs (without "urn:uuid:") or "mailto:" URIs


def address_books(
    storage: radicale.storage.BaseStorage, address: str, shared: Iterable[str] = ()
) -> list[list[Card]]:
    """The cards of each address book in `address`'s home and of those shared with them
    (`shared`: "owner/collection" paths; calendars among them are passed over)."""
    books: list[list[Card]] = []
    with storage.acquire_lock("r", address):
        found = list(storage.discover(f"/{address}/", "1"))
        for path in shared:
            found += storage.discover(f"/{path}/", "0")
        for collection in found:
            if isinstance(collection, radicale.storage.BaseCollection) and (
                collection.tag == "VADDRESSBOOK"
            ):
                # Radicale passes over (and logs) a file that does not parse.
                books.append([parse_card(item.serialize()) for item in collection.get_all()])
    return books


@functools.lru_cache(maxsize=CARDS_CACHED)
def parse_card(text: str) -> Card:
    """A vCard's text, parsed: Radicale hands out its items' text from its own cache, so a card
    unchanged is parsed once."""
    card = vobject.readOne(text)

    def values(name: str) -> list[str]:
        return [str(line.value).strip() for line in card.contents.get(name, [])]

    chat = [value[len("xmpp:") :] for value in values("impp") if value.lower().startswith("xmpp:")]
    kinds = [kind.lower() for kind in values("kind") + values("x-addressbookserver-kind")]
    return Card(
        uid=_uuid(next(iter(values("uid")), "")),
        name=next(iter(values("fn")), ""),
        addresses=tuple(address for address in values("email") if address),
        chat_addresses=tuple(address for address in chat + values("x-jabber") if address),
        is_group="group" in kinds,
        members=tuple(_uuid(member) for member in values("member") + values(MEMBER_APPLE)),
    )


def _uuid(uid: str) -> str:
    """vCard 4 writes UIDs and members as `urn:uuid:…` URIs, vCard 3 clients often bare."""
    return uid[len("urn:uuid:") :] if uid.lower().startswith("urn:uuid:") else uid
