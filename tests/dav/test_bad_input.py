"""Bad input to CalDAV and CardDAV: each request is refused with a 4xx, the server goes on
serving, and what was stored before is still there byte for byte."""

from __future__ import annotations

import http.client
import random
import xml.etree.ElementTree as ET
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

from pcloud.testing import RunningServer

USER = "alice@example.org"
PASSWORD = "correct horse battery"
CALENDAR = f"/dav/{USER}/calendar/"
CONTACTS = f"/dav/{USER}/contacts/"
EVENT = """\
BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//pcloud tests//EN\r
BEGIN:VEVENT\r
UID:{uid}\r
DTSTAMP:20261120T090000Z\r
DTSTART:20261201T100000Z\r
DTEND:20261201T110000Z\r
SUMMARY:{summary}\r
END:VEVENT\r
END:VCALENDAR\r
"""
VCARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:card-1\r\nFN:Bob Builder\r\nEND:VCARD\r\n"
STORED = {
    CALENDAR + "dentist.ics": EVENT.format(uid="dentist", summary="Dentist").encode(),
    CALENDAR + "tax.ics": EVENT.format(uid="tax", summary="Tax office").encode(),
    CONTACTS + "card-1.vcf": VCARD.encode(),
}
PASSWD_LINE = b"root:x:0:"  # the first line of /etc/passwd, should a body ever carry it
PROPFIND_ALL = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
BIG = 20 * 1024 * 1024
XML_TYPE = {"Content-Type": "application/xml; charset=utf-8"}
CALENDAR_TYPE = {"Content-Type": "text/calendar; charset=utf-8"}


def propfind(prop: str, prologue: str = "") -> bytes:
    return (
        f'<?xml version="1.0"?>{prologue}<D:propfind xmlns:D="DAV:"><D:prop>{prop}</D:prop>'
        "</D:propfind>"
    ).encode()


# Nine levels of ten: a billion "lol"s, 3 GB, from a body of under 1 KB.
LAUGHS = '<!DOCTYPE D:propfind [<!ENTITY lol0 "lol">' + "".join(
    f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">' for level in range(1, 10)
) + "]>"  # fmt: skip
XXE = '<!DOCTYPE D:propfind [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
XXE_PROPPATCH = (
    f'<?xml version="1.0"?>{XXE.replace("D:propfind", "D:propertyupdate")}'
    '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>&xxe;</D:displayname>'
    "</D:prop></D:set></D:propertyupdate>"
).encode()
DEEP = propfind("<D:x>" * 10_000 + "</D:x>" * 10_000)


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    chunked: bool = False
    status: int | None = None  # the refusal expected, when any 4xx will not do


CASES = {
    "billion laughs": Case("PROPFIND", CALENDAR, propfind("<D:displayname>&lol9;</D:displayname>",
                           LAUGHS), {"Depth": "0", **XML_TYPE}),
    "external entity": Case("PROPFIND", CALENDAR, propfind("<D:displayname>&xxe;</D:displayname>",
                            XXE), {"Depth": "0", **XML_TYPE}),
    "external entity in PROPPATCH": Case("PROPPATCH", CALENDAR, XXE_PROPPATCH, XML_TYPE),
    "XML 10,000 levels deep": Case("PROPFIND", CALENDAR, DEEP, {"Depth": "0", **XML_TYPE}),
    "REPORT of garbage": Case("REPORT", CALENDAR, random.Random(1).randbytes(2048),
                              {"Depth": "1", **XML_TYPE}),
    "iCalendar with a line that is none": Case("PUT", CALENDAR + "new.ics",
                                               b"BEGIN:VCALENDAR\r\nnot a content line\r\n"
                                               b"END:VCALENDAR\r\n", CALENDAR_TYPE),
    "iCalendar cut short": Case("PUT", CALENDAR + "new.ics",
                                STORED[CALENDAR + "tax.ics"][:150], CALENDAR_TYPE),
    "malformed iCalendar over a stored event": Case("PUT", CALENDAR + "dentist.ics",
                                                    b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n",
                                                    CALENDAR_TYPE),
    "binary garbage as text/calendar": Case("PUT", CALENDAR + "new.ics",
                                            random.Random(2).randbytes(4096), CALENDAR_TYPE),
    "vCard with no END": Case("PUT", CONTACTS + "new.vcf",
                              VCARD.removesuffix("END:VCARD\r\n").encode(),
                              {"Content-Type": "text/vcard"}),
    "20 MB body": Case("PUT", CALENDAR + "big.ics", b"x" * BIG, CALENDAR_TYPE, status=413),
    "20 MB body, chunked": Case("PUT", CALENDAR + "big.ics", b"x" * BIG, CALENDAR_TYPE,
                                chunked=True, status=413),
}  # fmt: skip


class Client:
    """Raw HTTPS requests as alice on one keep-alive connection."""

    def __init__(self, server: RunningServer, secret: str) -> None:
        self.connection = http.client.HTTPSConnection(
            "localhost", server.port("https"), context=server.ssl_context(), timeout=60
        )
        credentials = b64encode(f"{USER}:{secret}".encode()).decode()
        self.authorization = f"Basic {credentials}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        chunked: bool = False,
    ) -> tuple[int, bytes]:
        # A body in pieces of 64 KiB, each one a chunk when chunked.
        pieces = (body[i : i + 65536] for i in range(0, len(body), 65536)) if chunked else body
        self.connection.request(
            method, path, pieces, {"Authorization": self.authorization, **(headers or {})},
            encode_chunked=chunked,
        )  # fmt: skip
        response = self.connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.connection.close()


def stored_files(server: RunningServer) -> dict[Path, bytes]:
    """Every calendar object and vCard in Radicale's storage, as on disk (not its caches, in
    folders whose names start with a dot)."""
    root = server.data_dir / "dav" / "collection-root"
    items = (path.relative_to(root) for path in root.rglob("*") if path.is_file())
    return {
        item: (root / item).read_bytes()
        for item in items
        if item.suffix in (".ics", ".vcf") and not any(p.startswith(".") for p in item.parts)
    }


def snapshot(server: RunningServer, client: Client) -> tuple[dict[Path, bytes], list[bytes]]:
    """The stored files, and what GET answers for each item (Radicale may store an item
    otherwise than it was sent)."""
    answers = []
    for path in STORED:
        status, body = client.request("GET", path)
        assert status == 200
        answers.append(body)
    return stored_files(server), answers


@pytest.fixture
def client(server: RunningServer) -> Iterator[Client]:
    """alice's client, with two events and a vCard stored. It signs in with an app password,
    as a device would: the account password's scrypt check would slow every request."""
    server.add_user(USER, PASSWORD)
    client = Client(server, server.services.directory.add_app_password(USER, "tests"))
    try:
        for path, body in STORED.items():
            kind = "text/vcard" if path.endswith(".vcf") else "text/calendar"
            assert client.request("PUT", path, body, {"Content-Type": kind})[0] == 201
        yield client
    finally:
        client.close()


@pytest.mark.parametrize("name", CASES)
def test_refused_and_nothing_else_changes(server: RunningServer, client: Client, name: str) -> None:
    before = snapshot(server, client)
    assert len(before[0]) == len(STORED)
    case = CASES[name]
    status, body = client.request(
        case.method, case.path, case.body, case.headers, chunked=case.chunked
    )
    assert 400 <= status < 500, (status, body[:500])
    assert case.status in (None, status)
    assert PASSWD_LINE not in body
    # The server goes on serving, on a new connection (it may close one after a refusal).
    client.close()
    status, body = client.request("PROPFIND", CALENDAR, PROPFIND_ALL, {"Depth": "1", **XML_TYPE})
    assert status == 207
    members = [
        unquote(r.findtext("{DAV:}href") or "") for r in ET.fromstring(body).iter("{DAV:}response")
    ]
    assert sorted(members) == [CALENDAR, CALENDAR + "dentist.ics", CALENDAR + "tax.ics"]
    assert PASSWD_LINE not in body
    assert snapshot(server, client) == before
    for path in (CALENDAR + "new.ics", CALENDAR + "big.ics", CONTACTS + "new.vcf"):
        assert client.request("GET", path)[0] == 404
