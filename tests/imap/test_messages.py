"""FETCH, STORE, COPY, MOVE, EXPUNGE and SEARCH through imaplib, with what the store holds after."""

from __future__ import annotations

import imaplib
import re
from email.message import EmailMessage

import pytest

from pcloud.testing import RunningServer
from tests.imap.conftest import PASSWORD, Connect, message

ALICE = "alice@example.org"


def deliver(server: RunningServer, *messages: bytes, mailbox: str = "INBOX") -> None:
    if server.services.directory.user(ALICE) is None:
        server.add_user(ALICE, PASSWORD)
    account = server.services.mail.account(ALICE)
    for data in messages:
        account.deliver(data, mailbox=mailbox)


def multipart() -> bytes:
    mail = EmailMessage()
    mail["From"] = "Jörg Müller <joerg@example.net>"
    mail["To"] = ALICE
    mail["Subject"] = "Grüße aus Köln"
    mail["Date"] = "Mon, 23 Nov 2026 08:30:00 +0100"
    mail.set_content("Hallo Alice, schöne Grüße.\n")
    mail.add_alternative("<p>Hallo Alice, schöne Grüße.</p>\n", subtype="html")
    mail.add_attachment(b"\x00\x01binary" * 10, maintype="application", subtype="octet-stream",
                        filename="data.bin")  # fmt: skip
    return mail.as_bytes().replace(b"\n", b"\r\n")


@pytest.fixture
def inbox(server: RunningServer, connect: Connect) -> imaplib.IMAP4_SSL:
    client = connect()
    deliver(server, message("one"), message("two"), multipart())
    assert client.select("INBOX")[1] == [b"3"]
    return client


def test_fetch_flags_sizes_dates_and_bodies(
    server: RunningServer, inbox: imaplib.IMAP4_SSL
) -> None:
    typ, data = inbox.fetch("1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE)")
    assert typ == "OK" and len(data) == 3
    first = data[0].decode()
    assert first.startswith("1 (UID 1 FLAGS () RFC822.SIZE ")
    assert re.search(r'INTERNALDATE "\d\d-\w{3}-\d{4} \d\d:\d\d:\d\d \+0000"', first)
    typ, data = inbox.uid("FETCH", "2", "(BODY.PEEK[])")
    assert data[0][1] == message("two")
    assert inbox.fetch("2", "(FLAGS)")[1] == [b"2 (FLAGS ())"]  # PEEK left it unseen
    typ, data = inbox.fetch("2", "(BODY[])")
    assert data[0][1] == message("two") and b"\\Seen" in data[0][0] + data[1]
    assert server.services.mail.account(ALICE).messages("INBOX")[1].flags == ("\\Seen",)
    typ, data = inbox.fetch("1", "(BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])")
    assert data[0][1] == b"From: Bob <bob@example.net>\r\nSubject: one\r\n\r\n"
    typ, data = inbox.fetch("1", "(BODY.PEEK[]<0.10>)")
    assert b"BODY[]<0> {10}" in data[0][0] and data[0][1] == message("one")[:10]
    typ, data = inbox.fetch("1", "(RFC822.HEADER)")
    assert data[0][1] == message("one").split(b"\r\n\r\n")[0] + b"\r\n\r\n"


def test_envelope_and_bodystructure_of_multipart_non_ascii_mail(inbox: imaplib.IMAP4_SSL) -> None:
    typ, data = inbox.fetch("3", "(ENVELOPE BODYSTRUCTURE)")
    text = b"".join(part if isinstance(part, bytes) else b"".join(part) for part in data).lower()
    assert typ == "OK"
    assert b'"mon, 23 nov 2026 08:30:00 +0100"' in text
    assert b'"joerg" "example.net"' in text
    assert b'("text" "plain" ("charset" "utf-8")' in text
    assert b'"alternative"' in text and b'"mixed"' in text
    assert b'("attachment" ("filename" "data.bin"))' in text
    typ, data = inbox.fetch("3", "(BODY.PEEK[1.1] BODY.PEEK[1.2.MIME] BINARY.PEEK[2])")
    parts = {re.search(rb"(\S+) ~?\{\d+\}$", item[0]).group(1).lstrip(b"("): item[1]
             for item in data if isinstance(item, tuple)}  # fmt: skip
    assert b"Hallo Alice" in parts[b"BODY[1.1]"] or b"SGFsbG8g" in parts[b"BODY[1.1]"]
    assert parts[b"BODY[1.2.MIME]"].startswith(b"Content-Type: text/html")
    assert parts[b"BINARY[2]"] == b"\x00\x01binary" * 10


def test_store_flags_silent_and_unchangedsince(
    server: RunningServer, inbox: imaplib.IMAP4_SSL
) -> None:
    typ, data = inbox.store("1:2", "+FLAGS", "(\\Flagged $Important)")
    assert typ == "OK" and len(data) == 2
    assert b"FLAGS ($Important \\Flagged)" in data[0]
    typ, data = inbox.store("1", "+FLAGS.SILENT", "(\\Seen)")
    assert typ == "OK" and data == [None]
    flags = {m.uid: m.flags for m in server.services.mail.account(ALICE).messages("INBOX")}
    assert flags[1] == ("$Important", "\\Flagged", "\\Seen") and flags[3] == ()
    typ, data = inbox.fetch("1", "(MODSEQ)")
    modseq = int(re.search(rb"MODSEQ \((\d+)\)", data[0]).group(1))
    inbox.store("2", "-FLAGS", "(\\Flagged)")  # changes message 2 after that modseq
    typ, data = inbox._simple_command(
        "STORE", "1:2", f"(UNCHANGEDSINCE {modseq})", "+FLAGS", "(\\Deleted)"
    )
    assert (typ, data) == ("OK", [b"[MODIFIED 2] Conditional STORE failed"])
    flags = {m.uid: m.flags for m in server.services.mail.account(ALICE).messages("INBOX")}
    assert "\\Deleted" in flags[1] and "\\Deleted" not in flags[2]


def test_copy_move_and_expunge_with_uidplus(
    server: RunningServer, inbox: imaplib.IMAP4_SSL
) -> None:
    uidvalidity = server.services.mail.account(ALICE).mailbox("Archive").uidvalidity
    typ, data = inbox.copy("1:2", "Archive")
    assert (typ, data) == ("OK", [f"[COPYUID {uidvalidity} 1:2 1:2] COPY completed".encode()])
    typ, data = inbox._simple_command("UID", "COPY", "3", "Archive")
    assert (typ, data) == ("OK", [f"[COPYUID {uidvalidity} 3 3] COPY completed".encode()])
    typ, data = inbox.copy("1", '"No such folder"')
    assert typ == "NO" and data[0].startswith(b"[TRYCREATE]")
    typ, data = inbox.uid("MOVE", "1", "Trash")
    assert typ == "OK"
    assert inbox.response("EXPUNGE")[1] == [b"1"]
    account = server.services.mail.account(ALICE)
    assert [m.uid for m in account.messages("INBOX")] == [2, 3]
    assert len(account.messages("Archive")) == 3 and len(account.messages("Trash")) == 1
    inbox.store("1", "+FLAGS", "(\\Deleted)")  # message 1 is now UID 2
    typ, data = inbox.expunge()
    assert typ == "OK" and data == [b"1"]
    assert [m.uid for m in account.messages("INBOX")] == [3]
    inbox.store("1", "+FLAGS", "(\\Deleted)")
    typ, data = inbox.uid("EXPUNGE", "1:2")  # not UID 3: stays
    assert [m.uid for m in account.messages("INBOX")] == [3]
    typ, data = inbox.uid("EXPUNGE", "3")
    assert account.messages("INBOX") == []


def test_search_and_esearch(server: RunningServer, inbox: imaplib.IMAP4_SSL) -> None:
    inbox.store("2", "+FLAGS", "(\\Seen)")
    assert inbox.search(None, "ALL") == ("OK", [b"1 2 3"])
    assert inbox.search(None, "UNSEEN") == ("OK", [b"1 3"])
    assert inbox.search(None, "SUBJECT", "two") == ("OK", [b"2"])
    assert inbox.search("UTF-8", "FROM", '"Müller"'.encode()) == ("OK", [b"3"])
    assert inbox.search(None, "OR", "SUBJECT", "one", "SUBJECT", "two") == ("OK", [b"1 2"])
    assert inbox.search("UTF-8", "BODY", '"schöne"'.encode()) == ("OK", [b"3"])
    assert inbox.uid("SEARCH", "UID", "2:*") == ("OK", [b"2 3"])
    assert inbox.search(None, "SUBJECT", "nothing") == ("OK", [b""])
    assert inbox._simple_command("SEARCH", "RETURN", "(MIN MAX COUNT)", "NOT", "SEEN")[0] == "OK"
    [reply] = inbox.response("ESEARCH")[1]
    assert re.fullmatch(rb'\(TAG "\w+"\) MIN 1 MAX 3 COUNT 2', reply)
    assert inbox.uid("SEARCH", "RETURN", "(ALL)", "1:*")[0] == "OK"
    [reply] = inbox.response("ESEARCH")[1]
    assert re.fullmatch(rb'\(TAG "\w+"\) UID ALL 1:3', reply)


def test_condstore_and_qresync_resynchronise(server: RunningServer, connect: Connect) -> None:
    deliver(server, message("one"), message("two"), message("three"))
    client = connect()
    client._simple_command("ENABLE", "QRESYNC")
    typ, data = client.select("INBOX")
    highest = int(client.response("HIGHESTMODSEQ")[1][0])
    uidvalidity = int(client.response("UIDVALIDITY")[1][0])
    client.close()
    other = connect()
    other.select("INBOX")
    other.store("1", "+FLAGS", "(\\Answered)")
    other.store("3", "+FLAGS", "(\\Deleted)")
    other.expunge()
    deliver(server, message("four"))
    typ, data = client._simple_command(
        "SELECT", "INBOX", f"(QRESYNC ({uidvalidity} {highest} 1:3))"
    )
    assert typ == "OK"
    client.state = "SELECTED"  # imaplib does not know a SELECT sent as a raw command
    assert client.response("VANISHED")[1] == [b"(EARLIER) 3"]
    fetched = client.response("FETCH")[1]
    assert any(b"UID 1 FLAGS (\\Answered)" in line for line in fetched)
    assert any(b"UID 4 " in line for line in fetched)
    typ, data = client.uid("FETCH", "1:*", f"(FLAGS) (CHANGEDSINCE {highest})")
    assert {re.search(rb"UID (\d+)", line).group(1) for line in data} == {b"1", b"4"}


def test_two_sessions_see_each_others_expunges_and_flags(
    server: RunningServer, connect: Connect
) -> None:
    deliver(server, message("one"), message("two"), message("three"))
    phone, desktop = connect(), connect()
    phone.select("INBOX")
    desktop.select("INBOX")
    desktop.store("2", "+FLAGS", "(\\Deleted)")
    desktop.store("3", "+FLAGS", "(\\Flagged)")
    desktop.expunge()
    # The phone still has three messages until it is told: a FETCH may bring the flag change
    # but no EXPUNGE (RFC 9051 §7.5.1)...
    _typ, data = phone.fetch("3", "(UID)")
    assert data == [b"3 (UID 3)", b"3 (UID 3 FLAGS (\\Flagged))"]
    assert phone.response("EXPUNGE")[1] == [None]
    # ...NOOP does, and after it message 2 is UID 3.
    phone.noop()
    assert phone.response("EXPUNGE")[1] == [b"2"]
    assert phone.fetch("2", "(UID FLAGS)")[1] == [b"2 (UID 3 FLAGS (\\Flagged))"]
    deliver(server, message("four"))
    phone.noop()
    # imaplib keeps every EXISTS since SELECT: 3 at SELECT, 2 after the expunge, 3 now.
    assert phone.response("EXISTS")[1] == [b"3", b"2", b"3"]


def test_idle_wakes_on_smtp_delivery(server: RunningServer, connect: Connect) -> None:
    import smtplib

    client = connect()
    client.select("INBOX")
    tag = client._new_tag().decode()
    client.send(f"{tag} IDLE\r\n".encode())
    assert client.readline().startswith(b"+ ")
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
        smtp.sendmail("bob@example.net", [ALICE], message("pushed"))
    line = client.readline()
    assert line == b"* 1 EXISTS\r\n"
    client.send(b"DONE\r\n")
    assert client.readline().startswith(f"{tag} OK".encode())
