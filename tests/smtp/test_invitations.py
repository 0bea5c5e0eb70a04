"""Calendar invitations arriving by mail (iMIP): the header delivery adds, and the event placed in
the recipient's calendar, as CalDAV then serves it."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from pcloud.testing import RunningServer
from tests.https import PASSWORD, request

INVITATION = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//pcloud tests//EN
METHOD:REQUEST
BEGIN:VEVENT
UID:lunch-1@example.net
DTSTAMP:20261120T090000Z
DTSTART:20261203T120000Z
DTEND:20261203T130000Z
SUMMARY:Lunch
ORGANIZER:mailto:bob@example.net
ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:alice@example.org
END:VEVENT
END:VCALENDAR
"""


def invitation(extra_header: str | None = None) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Bob <bob@example.net>"
    mail["To"] = "alice@example.org"
    mail["Subject"] = "Invitation: Lunch"
    if extra_header:
        mail["X-Calendar-Invitation"] = extra_header
    mail.set_content("Lunch on Thursday?\n")
    mail.add_alternative(INVITATION, subtype="calendar", params={"method": "REQUEST"})
    return mail


def test_an_invitation_is_named_in_a_header_and_placed_in_the_calendar(
    server: RunningServer,
) -> None:
    server.add_user("alice@example.org", PASSWORD)
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as client:
        client.send_message(invitation(extra_header="CANCEL; uid=forged"))
    [stored] = server.messages("alice@example.org")
    head = stored.split(b"\r\n\r\n")[0]
    assert b'X-Calendar-Invitation: REQUEST; uid="lunch-1@example.net"' in head
    assert b"forged" not in head
    status, body = request(
        server, "GET", "/dav/alice@example.org/calendar/lunch-1@example.net.ics",
        "alice@example.org",
    )  # fmt: skip
    assert status == 200
    assert b"SUMMARY:Lunch" in body and b"STATUS:TENTATIVE" in body


def test_ordinary_mail_gets_no_invitation_header(server: RunningServer) -> None:
    server.add_user("alice@example.org", PASSWORD)
    mail = invitation()
    mail.clear_content()
    mail.set_content("No calendar here, though it says text/calendar in the text.\n")
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as client:
        client.send_message(mail)
    [stored] = server.messages("alice@example.org")
    assert b"X-Calendar-Invitation" not in stored
