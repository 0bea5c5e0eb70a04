"""People: whom a signed-in user may mean when they start typing a name or an address.

`GET /api/people?q=…[&limit=N]` with HTTP Basic credentials (the one HTTPS listener, so TLS
only) answers `{"people": [{"name", "address", "kind"}, …]}`, where kind is
- "user": a user hosted here (the directory),
- "contact": a vCard with an EMAIL in one of the user's address books, or in one shared with
  them; one entry per address,
- "group": a group vCard (vCard 4 `KIND:group`, or `X-ADDRESSBOOKSERVER-KIND:group` as Apple's
  clients write in vCard 3), with "members": the first address of each member card
  (`MEMBER`/`X-ADDRESSBOOKSERVER-MEMBER` as `urn:uuid:` of a card in the same address book,
  or `mailto:`). CATEGORIES are labels on cards, not groups.

Matching ignores case and accents ("zoe" finds "Zoë"). Ranked: a name, a word of a name or an
address that starts with `q` first, then names and addresses that contain it; within each,
users, then contacts, then groups, by name (or address when nameless). An address appears
once, where it ranks best.
`q` is 1 to 100 characters; `limit` is 20 unless given, at most 100.

Implementation notes:
- The address books are read on each request, in a worker thread, by pcloud.store.contacts
  (under Radicale's read lock; what is parsed of each vCard is cached by its text).
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import radicale.storage
from aiohttp import web

from pcloud.http.basic_auth import signed_in
from pcloud.services import Services
from pcloud.store.calendars import open_storage
from pcloud.store.contacts import Card, address_books

MAX_QUERY = 100
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
KINDS = ("user", "contact", "group")  # the order of equally good matches


@dataclass(frozen=True)
class Person:
    name: str
    address: str  # "" for a group without an address of its own
    kind: str  # one of KINDS
    members: tuple[str, ...] = ()  # a group's addresses

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {"name": self.name, "address": self.address, "kind": self.kind}
        if self.kind == "group":
            value["members"] = list(self.members)
        return value


def add_routes(app: web.Application, services: Services) -> None:
    storage = open_storage(services.data_dir / "dav")

    async def people(request: web.Request) -> web.Response:
        principal = await signed_in(request, services.directory, "people")
        query = request.query.get("q", "").strip()
        if not 1 <= len(query) <= MAX_QUERY:
            raise web.HTTPBadRequest(text=f"q: give 1 to {MAX_QUERY} characters\n")
        try:
            limit = int(request.query.get("limit", DEFAULT_LIMIT))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            raise web.HTTPBadRequest(text=f"limit: give a number from 1 to {MAX_LIMIT}\n")
        shared = [
            f"{share.owner}/{share.collection}"
            for share in services.directory.shares(principal.address)
            if share.grantee == principal.address
        ]
        contacts = await asyncio.to_thread(read_contacts, storage, principal.address, shared)
        users = [
            Person(user.display_name, user.address, "user") for user in services.directory.users()
        ]
        found = rank([*users, *contacts], query, limit)
        return web.json_response({"people": [person.to_json() for person in found]})

    app.router.add_get("/api/people", people)


def read_contacts(
    storage: radicale.storage.BaseStorage, address: str, shared: list[str]
) -> list[Person]:
    """The contacts and groups of the address books in `address`'s home and of those shared
    with them (`shared`: "owner/collection" paths)."""
    return [person for book in address_books(storage, address, shared)
            for person in address_book_people(book)]  # fmt: skip


def address_book_people(cards: Iterable[Card]) -> list[Person]:
    """The people of one address book's vCards: each address of each contact, and the groups
    with their members' addresses resolved within the book."""
    cards = list(cards)
    first_address = {card.uid: card.addresses[0] for card in cards if card.addresses}
    people: list[Person] = []
    for card in cards:
        if not card.is_group:
            people += [Person(card.name, address, "contact") for address in card.addresses]
            continue
        members: list[str] = []
        for member in card.members:
            if member.lower().startswith("mailto:"):
                members.append(member[len("mailto:") :])
            elif member in first_address:
                members.append(first_address[member])
        address = card.addresses[0] if card.addresses else ""
        people.append(Person(card.name, address, "group", tuple(members)))
    return people


def _fold(text: str) -> str:
    """The form compared: case and accents ignored ("Zoë" is "zoe")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _tier(person: Person, query: str) -> int | None:
    """0 for a prefix match, 1 for a substring match, None for none; `query` is folded."""
    name, address = _fold(person.name), _fold(person.address)
    # The whole name as well as its words: a query may hold a space ("ada lov").
    if any(text.startswith(query) for text in (address, name, *re.findall(r"\w+", name))):
        return 0
    if query in name or query in address:
        return 1
    return None


def rank(people: Iterable[Person], query: str, limit: int) -> list[Person]:
    """The best `limit` matches of `query`, each address (or group without one) once."""
    folded = _fold(query)
    matches = []
    for person in people:
        tier = _tier(person, folded)
        if tier is not None:
            label = _fold(person.name or person.address)
            order = (tier, KINDS.index(person.kind), label, person.address)
            matches.append((order, person))
    matches.sort(key=lambda match: match[0])
    seen: set[str | tuple[str, ...]] = set()
    found: list[Person] = []
    for _, person in matches:
        key = person.address.lower() or (person.name, *person.members)
        if key not in seen:
            seen.add(key)
            found.append(person)
            if len(found) == limit:
                break
    return found
