"""The People API: ranking and vCard reading without sockets, then `GET /api/people` through the
wire over contacts PUT into Radicale's address books."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

import pytest

from pcloud.dav.people import Person, address_book_people, rank
from pcloud.store.contacts import parse_card
from pcloud.testing import RunningServer
from tests.https import PASSWORD, request

ALICE, BOB = "alice@example.org", "bob@example.org"
BOOK = f"/dav/{ALICE}/contacts/"

CARDS = {
    "ada": """BEGIN:VCARD
VERSION:3.0
UID:ada
FN:Ada Lovelace
N:Lovelace;Ada;;;
EMAIL;TYPE=home:ada@math.example
EMAIL;TYPE=work:countess@engine.example
END:VCARD
""",
    "zoe": """BEGIN:VCARD
VERSION:4.0
UID:urn:uuid:zoe
FN:Zoë Obrist
EMAIL:zoe@example.net
END:VCARD
""",
    "nomail": """BEGIN:VCARD
VERSION:3.0
UID:nomail
FN:Adam Nomail
TEL:+1 555 0100
END:VCARD
""",
    "climbers": """BEGIN:VCARD
VERSION:4.0
UID:urn:uuid:climbers
KIND:group
FN:Climbing club
MEMBER:urn:uuid:ada
MEMBER:urn:uuid:zoe
MEMBER:mailto:guest@example.com
END:VCARD
""",
    "apple": """BEGIN:VCARD
VERSION:3.0
UID:apple
X-ADDRESSBOOKSERVER-KIND:group
FN:Book club
X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:zoe
END:VCARD
""",
}


def test_address_book_people_contacts_and_groups() -> None:
    people = address_book_people(parse_card(card) for card in CARDS.values())
    assert people == [
        Person("Ada Lovelace", "ada@math.example", "contact"),
        Person("Ada Lovelace", "countess@engine.example", "contact"),
        Person("Zoë Obrist", "zoe@example.net", "contact"),
        Person("Climbing club", "", "group",
               ("ada@math.example", "zoe@example.net", "guest@example.com")),
        Person("Book club", "", "group", ("zoe@example.net",)),
    ]  # fmt: skip


def test_rank_prefixes_first_then_substrings_users_first_each_address_once() -> None:
    people = [
        Person("Bob Marley", "marley@example.net", "contact"),
        Person("Rob Ober", "rob@example.net", "contact"),  # "ob" inside only
        Person("", "obrien@example.org", "user"),
        Person("Zoë Obrist", "zoe@example.net", "contact"),
        Person("Obi", "obi@example.org", "user"),
        Person("Obi Wan", "obi@example.org", "contact"),  # the same address as a user
        Person("Oboe players", "", "group", ("a@example.net",)),
        Person("Alice", "alice@example.org", "user"),
    ]
    found = rank(people, "OB", 20)
    assert [(p.name, p.address) for p in found] == [
        ("Obi", "obi@example.org"),  # a user's name
        ("", "obrien@example.org"),  # a user's address
        ("Rob Ober", "rob@example.net"),  # a contact's second word
        ("Zoë Obrist", "zoe@example.net"),
        ("Oboe players", ""),
        ("Bob Marley", "marley@example.net"),  # substrings
    ]
    assert rank(people, "zoe", 20)[0].name == "Zoë Obrist"  # accents ignored
    assert [p.address for p in rank(people, "ob", 2)] == ["obi@example.org", "obrien@example.org"]
    assert rank(people, "rob ob", 20) == [Person("Rob Ober", "rob@example.net", "contact")]
    assert rank(people, "nobody", 20) == []


def people(server: RunningServer, user: str, **query: Any) -> tuple[int, Any]:
    status, body = request(server, "GET", "/api/people?" + urlencode(query), user)
    return status, json.loads(body) if status == 200 else body


@pytest.fixture
def alice_contacts(server: RunningServer) -> RunningServer:
    server.add_user(ALICE, PASSWORD, display_name="Alice Liddell")
    server.add_user(BOB, PASSWORD, display_name="Bob Builder")
    server.add_user("adam@example.org", PASSWORD)
    assert request(server, "PROPFIND", "/dav/", ALICE, headers={"Depth": "0"})[0] == 207
    for uid, card in CARDS.items():
        status, _ = request(server, "PUT", BOOK + f"{uid}.vcf", ALICE, card.encode(),
                            {"Content-Type": "text/vcard"})  # fmt: skip
        assert status == 201
    return server


def test_people_from_the_directory_and_the_address_book(alice_contacts: RunningServer) -> None:
    status, answer = people(alice_contacts, ALICE, q="ad")
    assert status == 200
    assert answer["people"] == [
        {"name": "", "address": "adam@example.org", "kind": "user"},
        {"name": "", "address": "admin@example.org", "kind": "user"},  # made at first start
        {"name": "Ada Lovelace", "address": "ada@math.example", "kind": "contact"},
        {"name": "Ada Lovelace", "address": "countess@engine.example", "kind": "contact"},
    ]
    _, answer = people(alice_contacts, ALICE, q="club")
    assert answer["people"] == [
        {"name": "Book club", "address": "", "kind": "group", "members": ["zoe@example.net"]},
        {"name": "Climbing club", "address": "", "kind": "group",
         "members": ["ada@math.example", "zoe@example.net", "guest@example.com"]},
    ]  # fmt: skip
    _, answer = people(alice_contacts, ALICE, q="o", limit=2)
    assert len(answer["people"]) == 2


def test_contacts_are_private_unless_the_address_book_is_shared(
    alice_contacts: RunningServer,
) -> None:
    _, answer = people(alice_contacts, BOB, q="lovelace")  # bob has never used DAV: no home
    assert answer["people"] == []
    alice_contacts.services.directory.share_collection(ALICE, "contacts", BOB, writable=False)
    _, answer = people(alice_contacts, BOB, q="lovelace")
    assert [p["address"] for p in answer["people"]] == [
        "ada@math.example",
        "countess@engine.example",
    ]


def test_credentials_and_parameters_are_checked(alice_contacts: RunningServer) -> None:
    call = urllib.request.Request(alice_contacts.url("/api/people?q=ada"))
    context = ssl.create_default_context(cafile=str(alice_contacts.ca_file))
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(call, context=context, timeout=10)
    assert raised.value.code == 401
    assert raised.value.headers["WWW-Authenticate"] == 'Basic realm="pcloud"'
    assert request(alice_contacts, "GET", "/api/people?q=ada", "mallory@example.org")[0] == 401
    for query in ({}, {"q": " "}, {"q": "x" * 101}, {"q": "a", "limit": 0},
                  {"q": "a", "limit": 101}, {"q": "a", "limit": "many"}):  # fmt: skip
        assert people(alice_contacts, ALICE, **query)[0] == 400, query
