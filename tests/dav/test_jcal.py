"""jCal export (RFC 7265) through the wire: an event PUT into Radicale, read back as JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pcloud.testing import RunningServer
from tests.https import PASSWORD, request

ALICE, BOB = "alice@example.org", "bob@example.org"
EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//pcloud tests//EN
BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:STANDARD
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
UID:climb
DTSTAMP:20261120T090000Z
DTSTART;TZID=Europe/Berlin:20261201T180000
DURATION:PT1H30M
SUMMARY:Climbing\\, then dinner
SEQUENCE:2
RRULE:FREQ=WEEKLY;COUNT=5;BYDAY=TU
X-PCLOUD-MOOD:cheerful
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER:-PT15M
DESCRIPTION:Pack the shoes
END:VALARM
END:VEVENT
END:VCALENDAR
"""
HOLIDAY = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//pcloud tests//EN
BEGIN:VEVENT
UID:holiday
DTSTAMP:20261120T090000Z
DTSTART;VALUE=DATE:20261224
SUMMARY:Holiday
END:VEVENT
END:VCALENDAR
"""


@pytest.fixture
def calendar(server: RunningServer) -> RunningServer:
    server.add_user(ALICE, PASSWORD)
    server.add_user(BOB, PASSWORD)
    for uid, text in (("climb", EVENT), ("holiday", HOLIDAY)):
        status, _ = request(server, "PUT", f"/dav/{ALICE}/calendar/{uid}.ics", ALICE,
                            text.encode(), {"Content-Type": "text/calendar"})  # fmt: skip
        assert status == 201
    return server


def properties(component: list[Any]) -> dict[str, list[Any]]:
    """A jCal component's properties by name: [parameters, type, value…]."""
    return {prop[0]: prop[1:] for prop in component[1]}


def test_a_calendar_as_jcal(calendar: RunningServer) -> None:
    status, body = request(calendar, "GET", "/api/calendars/calendar.json", ALICE)
    assert status == 200
    name, calendar_properties, components = json.loads(body)
    assert name == "vcalendar"
    assert properties(["vcalendar", calendar_properties])["x-wr-calname"][2] == "Calendar"
    by_name = {component[0]: component for component in components}
    assert set(by_name) == {"vtimezone", "vevent"}
    events = {properties(c)["uid"][2]: c for c in components if c[0] == "vevent"}
    climb = properties(events["climb"])
    assert climb["dtstart"] == [{"tzid": "Europe/Berlin"}, "date-time", "2026-12-01T18:00:00"]
    assert climb["dtstamp"] == [{}, "date-time", "2026-11-20T09:00:00Z"]
    assert climb["duration"] == [{}, "duration", "PT1H30M"]
    assert climb["summary"] == [{}, "text", "Climbing, then dinner"]
    assert climb["sequence"] == [{}, "integer", 2]
    assert climb["rrule"] == [{}, "recur", {"freq": "WEEKLY", "count": 5, "byday": ["TU"]}]
    assert climb["x-pcloud-mood"] == [{}, "unknown", "cheerful"]
    [alarm] = events["climb"][2]
    assert alarm[0] == "valarm" and properties(alarm)["trigger"] == [{}, "duration", "-PT15M"]
    assert properties(events["holiday"])["dtstart"] == [{}, "date", "2026-12-24"]


def test_only_the_users_own_calendars(calendar: RunningServer) -> None:
    assert request(calendar, "PROPFIND", "/dav/", BOB, headers={"Depth": "0"})[0] == 207
    status, body = request(calendar, "GET", "/api/calendars/calendar.json", BOB)
    assert status == 200 and json.loads(body)[2] == []  # bob's own, empty
    for name in ("contacts", "nothing", "..", "%2E%2E"):
        assert request(calendar, "GET", f"/api/calendars/{name}.json", ALICE)[0] == 404, name
    assert request(calendar, "GET", "/api/calendars/calendar.json", "nobody@example.org")[0] == 401
