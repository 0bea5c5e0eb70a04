"""Calendar invitations in mail (iMIP): parsing messages, then applying REQUEST, REPLY and CANCEL
to calendars in a Radicale storage, read back through the storage API and through CalDAV."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import radicale.item
import radicale.storage
from icalendar import Calendar, Component

from pcloud.store.calendars import create_default_collections, open_storage
from pcloud.store.invitations import HEADER_NAME, Invitation, apply_invitation, parse_invitation
from pcloud.testing import RunningServer
from tests.https import PASSWORD, request

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.org"
TIMEZONE = """BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:STANDARD
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
END:STANDARD
END:VTIMEZONE
""".replace("\n", "\r\n")


def event(
    uid: str = "lunch-1@example.org",
    *,
    sequence: int = 0,
    summary: str = "Lunch",
    extra: str = "",
    bob: str = "NEEDS-ACTION",
    organizer: str = ALICE,
    recurrence: str = "",
) -> str:
    """A VEVENT that ALICE organizes, with BOB and CAROL invited."""
    lines = [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20261120T090000Z",
        "DTSTART;TZID=Europe/Berlin:20261201T120000",
        "DURATION:PT1H",
        f"SEQUENCE:{sequence}",
        f"SUMMARY:{summary}",
        f"ORGANIZER;CN=Alice:mailto:{organizer}",
        f"ATTENDEE;PARTSTAT={bob};RSVP=TRUE:mailto:{BOB.upper()}",
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{CAROL}",
    ]
    if recurrence:
        lines.append(f"RECURRENCE-ID;TZID=Europe/Berlin:{recurrence}")
    return "\r\n".join(lines) + "\r\n" + extra + "END:VEVENT\r\n"


def answer(partstat: str, sequence: int = 0) -> str:
    """Bob's part of the event, as his REPLY carries it (RFC 5546 §3.2.3: one ATTENDEE)."""
    return event(sequence=sequence, bob=partstat).replace(
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{CAROL}\r\n", ""
    )


def ical(*components: str, method: str | None = "REQUEST", timezone: bool = True) -> str:
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example Corp//Calendar//EN\r\n"
    if method:
        head += f"METHOD:{method}\r\n"
    return head + (TIMEZONE if timezone else "") + "".join(components) + "END:VCALENDAR\r\n"


def mail(
    calendar: str,
    *,
    method: str | None = "REQUEST",
    sender: str = ALICE,
    encoding: str = "8bit",
    charset: str = "utf-8",
) -> bytes:
    """An invitation as mail clients send it: text, then the calendar, as alternatives."""
    parameter = f"; method={method}" if method else ""
    body = calendar.encode(charset)
    if encoding == "base64":
        body = base64.encodebytes(body)
    head = (
        f"From: Someone <{sender}>\r\n"
        f"To: {BOB}\r\n"
        "Subject: Invitation: Lunch\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="b1"\r\n'
        "\r\n"
        "--b1\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "You are invited to lunch.\r\n"
        "--b1\r\n"
        f'Content-Type: text/calendar; charset="{charset}"{parameter}\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n"
        "\r\n"
    )
    return head.encode() + body + b"\r\n--b1--\r\n"


def invitation(message: bytes) -> Invitation:
    parsed = parse_invitation(message)
    assert parsed is not None
    return parsed


# The pure part: what the message says.


def test_request_reply_and_cancel_are_recognised() -> None:
    for method in ("REQUEST", "REPLY", "CANCEL"):
        found = invitation(mail(ical(event(), method=method), method=method))
        assert found.method == method
        assert found.uids == ("lunch-1@example.org",)
        assert found.sender == ALICE
        assert found.header == f'{method}; uid="lunch-1@example.org"'
    assert HEADER_NAME == "X-Calendar-Invitation"


def test_the_method_from_the_part_parameter_or_the_calendar_and_they_must_agree() -> None:
    assert invitation(mail(ical(event(), method=None), method="request")).method == "REQUEST"
    assert invitation(mail(ical(event(), method="CANCEL"), method=None)).method == "CANCEL"
    assert parse_invitation(mail(ical(event(), method="CANCEL"), method="REQUEST")) is None
    # a calendar attachment that is not a scheduling message
    assert parse_invitation(mail(ical(event(), method=None), method=None)) is None


def test_base64_and_other_charsets() -> None:
    calendar = ical(event(summary="Déjeuner à midi"))
    found = invitation(mail(calendar, encoding="base64", charset="iso-8859-1"))
    assert "Déjeuner à midi" in found.text
    unknown = mail(calendar).replace(b'charset="utf-8"; method', b'charset="x-unknown"; method')
    assert "Déjeuner à midi" in invitation(unknown).text  # read as UTF-8


def test_a_calendar_alone_and_the_first_of_several() -> None:
    alone = (
        "From: alice@example.org\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\n"
        + ical(event(uid="first"))
    ).encode()
    assert invitation(alone).uids == ("first",)
    two = mail(ical(event(uid="first"))).replace(b"--b1--", b"--b1\r\n" + alone + b"\r\n--b1--")
    assert invitation(two).uids == ("first",)


def test_uids_in_the_header() -> None:
    calendar = ical(event(uid="a"), event(uid="a", recurrence="20261208T120000"), event(uid="b"))
    assert invitation(mail(calendar)).header == 'REQUEST; uid="a"; uid="b"'
    quoted = Invitation("REQUEST", ('say "hi" \\o/',), "", "")
    assert quoted.header == r'REQUEST; uid="say \"hi\" \\o/"'
    odd = Invitation("CANCEL", ("line\r\nX-Injected: yes", "x" * 1000, "ünï", "ok"), "", "")
    assert odd.header == 'CANCEL; uid="ok"'


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"\xff\xfe\x00garbage",
        b"Subject: hello\r\n\r\nNo calendar here.\r\n",
        b"Content-Type: text/calendar; method=REQUEST\r\n\r\nnot a calendar at all\r\n",
        b"Content-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VEVENT\r\nUID:x\r\n"
        b"END:VEVENT\r\n",
        b"Content-Type: text/calendar; method=REQUEST\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"!!!not base64!!!\r\n",
        b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\nContent-Type: text/calendar',
        b'Content-Type: text/calendar; method="RE;QUEST"\r\n\r\n' + ical(event()).encode(),
        b"Content-Type: text/calendar; method=REQUEST\r\n\r\n" + ical(method="REQUEST").encode(),
    ],
)
def test_malformed_mail_is_not_an_invitation(message: bytes) -> None:
    assert parse_invitation(message) is None


def test_bounds() -> None:
    large = event(extra="DESCRIPTION:" + "x" * (1024 * 1024) + "\r\n")
    assert parse_invitation(mail(ical(large))) is None
    many = [event(uid=f"e{n}") for n in range(51)]
    assert parse_invitation(mail(ical(*many, timezone=False))) is None
    assert len(invitation(mail(ical(*many[:50], timezone=False))).uids) == 50


# The applying part, on a storage of its own.


@pytest.fixture
def storage(tmp_path: Path) -> radicale.storage.BaseStorage:
    return open_storage(tmp_path / "dav")


def apply(storage: radicale.storage.BaseStorage, recipient: str, message: bytes) -> None:
    apply_invitation(storage, recipient, invitation(message))


def items(
    storage: radicale.storage.BaseStorage, owner: str, name: str = "calendar"
) -> dict[str, Calendar]:
    """The items of a calendar, parsed, by name."""
    with storage.acquire_lock("r", owner):
        [collection] = storage.discover(f"/{owner}/{name}/", "0")
        assert isinstance(collection, radicale.storage.BaseCollection)
        return {
            str(item.href): Calendar.from_ical(item.serialize()) for item in collection.get_all()
        }


def vevent(storage: radicale.storage.BaseStorage, owner: str, href: str) -> Component:
    [component] = items(storage, owner)[href].walk("VEVENT")
    return component


def partstats(component: Component) -> dict[str, str]:
    lines = component["ATTENDEE"]
    assert isinstance(lines, list)
    return {str(line): line.params["PARTSTAT"] for line in lines}


def put(storage: radicale.storage.BaseStorage, owner: str, href: str, text: str) -> None:
    """Store an item as a CalDAV client's PUT would."""
    create_default_collections(storage, owner)
    with storage.acquire_lock("w", owner):
        [collection] = storage.discover(f"/{owner}/calendar/", "0")
        assert isinstance(collection, radicale.storage.BaseCollection)
        [component] = radicale.item.read_components(text)
        item = radicale.item.Item(collection_path=collection.path, vobject_item=component)
        collection.upload(href, item)


def test_a_request_becomes_a_tentative_entry(storage: radicale.storage.BaseStorage) -> None:
    apply(storage, BOB, mail(ical(event())))
    stored = items(storage, BOB)
    assert list(stored) == ["lunch-1@example.org.ics"]
    calendar = stored["lunch-1@example.org.ics"]
    assert "METHOD" not in calendar
    assert [c["TZID"] for c in calendar.walk("VTIMEZONE")] == ["Europe/Berlin"]
    [component] = calendar.walk("VEVENT")
    assert component["STATUS"] == "TENTATIVE"
    assert component["SUMMARY"] == "Lunch"
    assert partstats(component) == {
        f"mailto:{BOB.upper()}": "NEEDS-ACTION",
        f"mailto:{CAROL}": "ACCEPTED",
    }


def test_the_organizers_status_is_kept(storage: radicale.storage.BaseStorage) -> None:
    apply(storage, BOB, mail(ical(event(bob="ACCEPTED", extra="STATUS:CONFIRMED\r\n"))))
    component = vevent(storage, BOB, "lunch-1@example.org.ics")
    assert component["STATUS"] == "CONFIRMED"
    assert partstats(component)[f"mailto:{BOB.upper()}"] == "NEEDS-ACTION"


def test_updates_replace_unless_older(storage: radicale.storage.BaseStorage) -> None:
    href = "lunch-1@example.org.ics"
    apply(storage, BOB, mail(ical(event(sequence=1))))
    # Bob accepts in his calendar program, which rewrites his copy.
    accepted = items(storage, BOB)[href].to_ical().decode().replace("NEEDS-ACTION", "ACCEPTED")
    put(storage, BOB, href, accepted)
    # Same sequence (a minor change): his answer stands.
    apply(storage, BOB, mail(ical(event(sequence=1, summary="Lunch, room 4"))))
    component = vevent(storage, BOB, href)
    assert component["SUMMARY"] == "Lunch, room 4"
    assert partstats(component)[f"mailto:{BOB.upper()}"] == "ACCEPTED"
    # An older one is ignored.
    apply(storage, BOB, mail(ical(event(sequence=0, summary="Stale"))))
    assert vevent(storage, BOB, href)["SUMMARY"] == "Lunch, room 4"
    # A new sequence asks again.
    apply(storage, BOB, mail(ical(event(sequence=2, summary="Dinner"))))
    component = vevent(storage, BOB, href)
    assert component["SUMMARY"] == "Dinner"
    assert partstats(component)[f"mailto:{BOB.upper()}"] == "NEEDS-ACTION"
    assert list(items(storage, BOB)) == [href]


def test_another_organizer_cannot_take_over_an_event(
    storage: radicale.storage.BaseStorage,
) -> None:
    apply(storage, BOB, mail(ical(event())))
    apply(storage, BOB, mail(ical(event(sequence=5, summary="Mine", organizer="eve@evil.test"))))
    assert vevent(storage, BOB, "lunch-1@example.org.ics")["SUMMARY"] == "Lunch"
    # Bob's own event, which nobody organizes, with a UID an invitation happens to carry
    own = ical(event(uid="own", summary="Own"), method=None)
    put(storage, BOB, "own.ics", own.replace(f"ORGANIZER;CN=Alice:mailto:{ALICE}\r\n", ""))
    apply(storage, BOB, mail(ical(event(uid="own", sequence=9, summary="Replaced"))))
    assert items(storage, BOB)["own.ics"].walk("VEVENT")[0]["SUMMARY"] == "Own"


def test_a_uid_taken_by_a_todo_is_left_alone(storage: radicale.storage.BaseStorage) -> None:
    todo = "BEGIN:VTODO\r\nUID:chore\r\nDTSTAMP:20261120T090000Z\r\nSUMMARY:Chore\r\nEND:VTODO\r\n"
    put(storage, BOB, "chore.ics", ical(todo, method=None, timezone=False))
    apply(storage, BOB, mail(ical(event(uid="chore"))))
    assert list(items(storage, BOB)) == ["chore.ics"]
    assert items(storage, BOB)["chore.ics"].walk("VTODO")


def test_a_request_to_its_organizer_changes_nothing(
    storage: radicale.storage.BaseStorage,
) -> None:
    apply(storage, ALICE, mail(ical(event())))
    assert items(storage, ALICE) == {}


def test_unsafe_uids_are_hashed_and_names_never_clash(
    storage: radicale.storage.BaseStorage,
) -> None:
    apply(storage, BOB, mail(ical(event(uid="../../etc/passwd"))))
    [name] = items(storage, BOB)
    assert len(name) == 64 + len(".ics") and "/" not in name
    put(storage, BOB, "taken.ics", ical(event(uid="something-else"), method=None))
    apply(storage, BOB, mail(ical(event(uid="taken"))))
    assert items(storage, BOB)["taken.ics"].walk("VEVENT")[0]["UID"] == "something-else"
    uids = [str(c.walk("VEVENT")[0]["UID"]) for c in items(storage, BOB).values()]
    assert sorted(uids) == ["../../etc/passwd", "something-else", "taken"]


def test_a_request_for_one_instance_keeps_the_series(
    storage: radicale.storage.BaseStorage,
) -> None:
    weekly = event(extra="RRULE:FREQ=WEEKLY;COUNT=4\r\n")
    apply(storage, BOB, mail(ical(weekly)))
    moved = event(sequence=1, summary="Lunch, later", recurrence="20261208T120000")
    apply(storage, BOB, mail(ical(moved)))
    components = items(storage, BOB)["lunch-1@example.org.ics"].walk("VEVENT")
    assert sorted(str(c["SUMMARY"]) for c in components) == ["Lunch", "Lunch, later"]


def test_a_reply_updates_the_organizers_copy(storage: radicale.storage.BaseStorage) -> None:
    href = "lunch.ics"
    put(storage, ALICE, href, ical(event(sequence=1), method=None))

    def reply(partstat: str, sequence: int = 1, sender: str = BOB) -> bytes:
        return mail(ical(answer(partstat, sequence), method="REPLY", timezone=False),
                    method="REPLY", sender=sender)  # fmt: skip

    apply(storage, ALICE, reply("TENTATIVE", sender="mallory@example.net"))  # not Bob's mail
    apply(storage, ALICE, reply("DECLINED", sequence=0))  # about an older version
    apply(storage, BOB, reply("DECLINED"))  # Bob does not organize it: nothing to update
    assert partstats(vevent(storage, ALICE, href))[f"mailto:{BOB.upper()}"] == "NEEDS-ACTION"
    apply(storage, ALICE, reply("ACCEPTED"))
    component = vevent(storage, ALICE, href)
    assert partstats(component) == {
        f"mailto:{BOB.upper()}": "ACCEPTED",
        f"mailto:{CAROL}": "ACCEPTED",
    }
    assert component["SUMMARY"] == "Lunch" and component["SEQUENCE"] == 1


def test_a_reply_speaks_only_for_its_attendee(storage: radicale.storage.BaseStorage) -> None:
    put(storage, ALICE, "lunch.ics", ical(event(), method=None))
    both = event(bob="DECLINED").replace("PARTSTAT=ACCEPTED", "PARTSTAT=DECLINED")
    apply(storage, ALICE, mail(ical(both, method="REPLY"), method="REPLY", sender=BOB))
    assert partstats(vevent(storage, ALICE, "lunch.ics")) == {
        f"mailto:{BOB.upper()}": "NEEDS-ACTION",
        f"mailto:{CAROL}": "ACCEPTED",
    }


def test_a_cancel_marks_the_copy_cancelled(storage: radicale.storage.BaseStorage) -> None:
    href = "lunch-1@example.org.ics"
    apply(storage, BOB, mail(ical(event(sequence=1))))
    cancel = ical(event(sequence=2, organizer="eve@evil.test"), method="CANCEL")
    apply(storage, BOB, mail(cancel, method="CANCEL"))
    apply(storage, BOB, mail(ical(event(sequence=0), method="CANCEL"), method="CANCEL"))
    assert vevent(storage, BOB, href)["STATUS"] == "TENTATIVE"
    apply(storage, BOB, mail(ical(event(sequence=2), method="CANCEL"), method="CANCEL"))
    assert vevent(storage, BOB, href)["STATUS"] == "CANCELLED"


def test_a_cancelled_instance_leaves_the_series(storage: radicale.storage.BaseStorage) -> None:
    apply(storage, BOB, mail(ical(event(extra="RRULE:FREQ=WEEKLY;COUNT=4\r\n"))))
    one = event(sequence=1, recurrence="20261208T120000")
    apply(storage, BOB, mail(ical(one, method="CANCEL"), method="CANCEL"))
    component = vevent(storage, BOB, "lunch-1@example.org.ics")
    assert component["STATUS"] == "TENTATIVE"
    assert "EXDATE;TZID=Europe/Berlin:20261208T120000" in component.to_ical().decode()


@pytest.mark.parametrize("method", ["PUBLISH", "COUNTER", "REFRESH"])
def test_other_methods_change_nothing(storage: radicale.storage.BaseStorage, method: str) -> None:
    create_default_collections(storage, BOB)
    apply(storage, BOB, mail(ical(event(), method=method), method=method))
    assert items(storage, BOB) == {}


def test_an_event_radicale_would_refuse_is_not_stored(
    storage: radicale.storage.BaseStorage, caplog: pytest.LogCaptureFixture
) -> None:
    broken = event(extra="RRULE:FREQ=SOMETIMES\r\n")
    apply(storage, BOB, mail(ical(broken)))
    assert items(storage, BOB) == {}
    assert "not storable" in caplog.text


# Through the wire: Radicale serves what delivery stored.


def caldav_get(server: RunningServer, owner: str, name: str) -> tuple[int, Any]:
    status, body = request(server, "GET", f"/dav/{owner}/calendar/{name}", owner)
    return status, Calendar.from_ical(body) if status == 200 else body


def test_invitation_and_reply_through_caldav(server: RunningServer) -> None:
    server.add_user(ALICE, PASSWORD)
    server.add_user(BOB, PASSWORD)
    storage = open_storage(server.data_dir / "dav")
    # Alice's calendar program stores her event and mails the invitation to Bob.
    status, _ = request(server, "PUT", f"/dav/{ALICE}/calendar/lunch.ics", ALICE,
                        ical(event(), method=None).encode(),
                        {"Content-Type": "text/calendar"})  # fmt: skip
    assert status == 201
    apply(storage, BOB, mail(ical(event())))
    status, calendar = caldav_get(server, BOB, "lunch-1@example.org.ics")
    assert status == 200
    [component] = calendar.walk("VEVENT")
    assert component["STATUS"] == "TENTATIVE"
    assert partstats(component)[f"mailto:{BOB.upper()}"] == "NEEDS-ACTION"
    # Bob accepts; his reply reaches Alice.
    reply = ical(answer("ACCEPTED"), method="REPLY")
    apply(storage, ALICE, mail(reply, method="REPLY", sender=BOB))
    status, calendar = caldav_get(server, ALICE, "lunch.ics")
    assert status == 200
    assert partstats(calendar.walk("VEVENT")[0])[f"mailto:{BOB.upper()}"] == "ACCEPTED"
