"""CalDAV and CardDAV through the wire with the `caldav` library and aiohttp's client: discovery,
calendars, events, todos, address books, passwords and app passwords, rights and sharing."""

from __future__ import annotations

import datetime
import ssl
import urllib.error
import urllib.request

import caldav
import pytest

from pcloud.testing import RunningServer
from tests.https import PASSWORD, request

EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//pcloud tests//EN
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20261120T090000Z
DTSTART:{start}
DTEND:{end}
SUMMARY:{summary}
END:VEVENT
END:VCALENDAR
"""
TODO = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//pcloud tests//EN
BEGIN:VTODO
UID:todo-1
DTSTAMP:20261120T090000Z
SUMMARY:Water the plants
END:VTODO
END:VCALENDAR
"""
VCARD = """BEGIN:VCARD
VERSION:3.0
UID:card-1
FN:Bob Builder
EMAIL:bob@example.net
END:VCARD
"""


def client(
    server: RunningServer, user: str, password: str = PASSWORD, path: str = "/.well-known/caldav"
) -> caldav.DAVClient:
    return caldav.DAVClient(
        server.url(path), username=user, password=password, ssl_verify_cert=str(server.ca_file)
    )


@pytest.fixture
def users(server: RunningServer) -> RunningServer:
    server.add_user("alice@example.org", PASSWORD)
    server.add_user("bob@example.org", PASSWORD)
    return server


def test_discovery_default_calendar_events_and_time_range(users: RunningServer) -> None:
    principal = client(users, "alice@example.org").principal()
    calendars = {c.get_display_name(): c for c in principal.calendars()}
    assert "Calendar" in calendars
    calendar = calendars["Calendar"]
    calendar.save_event(EVENT.format(uid="e1", start="20261201T100000Z", end="20261201T110000Z",
                                     summary="Dentist"))  # fmt: skip
    calendar.save_event(EVENT.format(uid="e2", start="20270105T100000Z", end="20270105T110000Z",
                                     summary="Tax office"))  # fmt: skip
    found = calendar.search(
        start=datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC),
        end=datetime.datetime(2026, 12, 31, tzinfo=datetime.UTC),
        event=True,
    )
    assert [e.icalendar_component["SUMMARY"] for e in found] == ["Dentist"]
    folder = users.data_dir / "dav/collection-root/alice@example.org/calendar"
    assert sorted(path.name for path in folder.glob("*.ics")) == ["e1.ics", "e2.ics"]


def test_make_calendar_and_todos(users: RunningServer) -> None:
    principal = client(users, "alice@example.org").principal()
    chores = principal.make_calendar(name="Chores", cal_id="chores",
                                     supported_calendar_component_set=["VTODO"])  # fmt: skip
    chores.save_todo(TODO)
    [todo] = chores.todos()
    assert todo.icalendar_component["SUMMARY"] == "Water the plants"


def test_app_password_works_and_wrong_password_does_not(users: RunningServer) -> None:
    secret = users.services.directory.add_app_password("alice@example.org", "phone")
    assert client(users, "alice@example.org", secret).principal().calendars()
    with pytest.raises(caldav.lib.error.AuthorizationError):
        client(users, "alice@example.org", "wrong").principal()


def test_others_cannot_reach_a_calendar_unless_shared(users: RunningServer) -> None:
    client(users, "alice@example.org").principal()  # creates alice's home
    path = "/dav/alice@example.org/calendar/"
    status, _ = request(users, "PROPFIND", path, "bob@example.org", headers={"Depth": "0"})
    assert status in (403, 404)
    status, _ = request(users, "PUT", path + "x.ics", "bob@example.org",
                        EVENT.format(uid="x", start="20261201T100000Z", end="20261201T110000Z",
                                     summary="Intruder").encode(),
                        {"Content-Type": "text/calendar"})  # fmt: skip
    assert status in (403, 404)
    users.services.directory.share_collection(
        "alice@example.org", "calendar", "bob@example.org", writable=False
    )
    status, _ = request(users, "PROPFIND", path, "bob@example.org", headers={"Depth": "0"})
    assert status == 207
    status, _ = request(users, "PUT", path + "x.ics", "bob@example.org",
                        EVENT.format(uid="x", start="20261201T100000Z", end="20261201T110000Z",
                                     summary="Read-only").encode(),
                        {"Content-Type": "text/calendar"})  # fmt: skip
    assert status == 403
    users.services.directory.share_collection(
        "alice@example.org", "calendar", "bob@example.org", writable=True
    )
    status, _ = request(users, "PUT", path + "x.ics", "bob@example.org",
                        EVENT.format(uid="x", start="20261201T100000Z", end="20261201T110000Z",
                                     summary="Shared").encode(),
                        {"Content-Type": "text/calendar"})  # fmt: skip
    assert status == 201
    assert b"Shared" in request(users, "GET", path + "x.ics", "alice@example.org")[1]


def test_carddav_vcards_through_the_wire(users: RunningServer) -> None:
    client(users, "alice@example.org").principal()
    path = "/dav/alice@example.org/contacts/card-1.vcf"
    status, _ = request(users, "PUT", path, "alice@example.org", VCARD.encode(),
                        {"Content-Type": "text/vcard"})  # fmt: skip
    assert status == 201
    status, body = request(users, "GET", path, "alice@example.org")
    assert status == 200 and b"FN:Bob Builder" in body


def test_well_known_redirects(users: RunningServer) -> None:
    for name in ("caldav", "carddav"):
        call = urllib.request.Request(users.url(f"/.well-known/{name}"), method="GET")
        context = ssl.create_default_context(cafile=str(users.ca_file))

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: object, **kwargs: object) -> None:
                return None

        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), NoRedirect
        )
        with pytest.raises(urllib.error.HTTPError) as raised:
            opener.open(call, timeout=10)
        assert raised.value.code == 301
        assert raised.value.headers["Location"].endswith("/dav/")
