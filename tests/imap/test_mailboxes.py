"""CREATE, DELETE, RENAME, SUBSCRIBE, LIST/LSUB, NAMESPACE, STATUS, APPEND and QUOTA through the
wire, with what the store holds after."""

from __future__ import annotations

import datetime
import imaplib
from pathlib import Path

import pytest

from pcloud.store.mail import Account
from pcloud.store.maildir import folder_name
from pcloud.testing import RunningServer, running_server
from tests.imap.conftest import PASSWORD, Connect, message

ALICE = "alice@example.org"
DEFAULT_LIST = [
    '* LIST (\\HasNoChildren) "/" INBOX',
    '* LIST (\\HasNoChildren \\Archive) "/" Archive',
    '* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
    '* LIST (\\HasNoChildren \\Junk) "/" Junk',
    '* LIST (\\HasNoChildren \\Sent) "/" Sent',
    '* LIST (\\HasNoChildren \\Trash) "/" Trash',
]


def exchange(client: imaplib.IMAP4_SSL, line: str | bytes) -> list[str]:
    """Send one command as written, tagged t1, and return the lines received up to its reply."""
    data = line.encode() if isinstance(line, str) else line
    client.send(b"t1 " + data + b"\r\n")
    lines = []
    while True:
        raw = client.readline()
        assert raw, f"closed while waiting for the reply to {data!r}: {lines}"
        received = raw.decode("utf-8").rstrip("\r\n")
        lines.append(received)
        if received.startswith("t1 "):
            return lines


def untagged(client: imaplib.IMAP4_SSL, line: str) -> list[str]:
    """The untagged responses of a command that must succeed."""
    *responses, reply = exchange(client, line)
    assert reply.startswith("t1 OK"), (line, responses, reply)
    return responses


def names(account: Account) -> list[str]:
    return [mailbox.name for mailbox in account.mailboxes()]


@pytest.fixture
def client(connect: Connect) -> imaplib.IMAP4_SSL:
    return connect()


@pytest.fixture
def account(server: RunningServer, client: imaplib.IMAP4_SSL) -> Account:
    return server.services.mail.account(ALICE)


def test_list_patterns_references_and_the_delimiter(
    client: imaplib.IMAP4_SSL, account: Account
) -> None:
    assert untagged(client, 'LIST "" "*"') == DEFAULT_LIST
    assert untagged(client, 'LIST "" ""') == ['* LIST (\\Noselect) "/" ""']
    assert untagged(client, 'LIST "Archive/" ""') == ['* LIST (\\Noselect) "/" ""']
    for name in ("Work/2024/Q1", "Work/Notes", "Sent Mail"):
        assert exchange(client, f'CREATE "{name}"')[-1] == "t1 OK CREATE completed"
    assert untagged(client, 'LIST "" %') == [
        *DEFAULT_LIST[:5],
        '* LIST (\\HasNoChildren) "/" "Sent Mail"',
        DEFAULT_LIST[5],
        '* LIST (\\HasChildren) "/" Work',
    ]
    assert untagged(client, 'LIST "" "Work/%"') == [
        '* LIST (\\HasChildren) "/" Work/2024',
        '* LIST (\\HasNoChildren) "/" Work/Notes',
    ]
    expected_below_work = [
        '* LIST (\\HasChildren) "/" Work/2024',
        '* LIST (\\HasNoChildren) "/" Work/2024/Q1',
        '* LIST (\\HasNoChildren) "/" Work/Notes',
    ]
    assert untagged(client, 'LIST "Work/" "*"') == expected_below_work
    assert untagged(client, 'LIST "" "W*1"') == ['* LIST (\\HasNoChildren) "/" Work/2024/Q1']
    assert untagged(client, 'LIST "" "W%1"') == []
    assert untagged(client, 'LIST "" "Sent%"') == [
        DEFAULT_LIST[4],
        '* LIST (\\HasNoChildren) "/" "Sent Mail"',
    ]
    assert untagged(client, 'LIST "" inbox') == [DEFAULT_LIST[0]]
    assert untagged(client, 'LIST "" "Nothing*"') == []
    # imaplib's own parsing agrees.
    typ, data = client.list('""', "Work/2024")
    assert (typ, data) == ("OK", [b'(\\HasChildren) "/" Work/2024'])


def test_create_makes_parents_and_refuses_what_exists(
    client: imaplib.IMAP4_SSL, account: Account
) -> None:
    assert exchange(client, "CREATE Projects/")[-1] == "t1 OK CREATE completed"
    assert exchange(client, "CREATE a/b/c")[-1] == "t1 OK CREATE completed"
    assert {"Projects", "a", "a/b", "a/b/c"} <= set(names(account))
    assert (account.folder / folder_name("a/b/c") / "cur").is_dir()
    assert exchange(client, "CREATE a/b")[-1].startswith("t1 NO [ALREADYEXISTS]")
    assert exchange(client, "CREATE inbox")[-1].startswith("t1 NO [ALREADYEXISTS]")
    assert exchange(client, "CREATE INBOX/Sub")[-1] == "t1 OK CREATE completed"
    assert "INBOX/Sub" in names(account)
    assert untagged(client, 'LIST "" INBOX')[0] == '* LIST (\\HasChildren) "/" INBOX'
    assert exchange(client, 'CREATE "a//b"')[-1].startswith("t1 NO")
    assert "a//b" not in names(account)


def test_create_special_use(client: imaplib.IMAP4_SSL, account: Account) -> None:
    assert exchange(client, "CREATE Old (USE (\\archive))")[-1] == "t1 OK CREATE completed"
    assert account.mailbox("Old").special_use == "\\Archive"
    assert untagged(client, 'LIST () "" Old RETURN (SPECIAL-USE)') == [
        '* LIST (\\HasNoChildren \\Archive) "/" Old'
    ]
    reply = exchange(client, "CREATE Odd (USE (\\Bogus))")[-1]
    assert reply == "t1 NO [USEATTR] \\Bogus is not a special use"
    reply = exchange(client, "CREATE Odd (USE (\\Sent \\Trash))")[-1]
    assert reply.startswith("t1 NO [USEATTR]")
    assert "Odd" not in names(account)


def test_delete_leaves_children_and_their_level(
    client: imaplib.IMAP4_SSL, account: Account
) -> None:
    account.create_mailbox("Work")
    account.create_mailbox("Work/Notes")
    account.deliver(message("in work"), mailbox="Work")
    assert exchange(client, "DELETE Work")[-1] == "t1 OK DELETE completed"
    assert "Work" not in names(account) and "Work/Notes" in names(account)
    assert not (account.folder / folder_name("Work")).exists()
    # RFC 9051 §6.3.9: a trailing "%" reaches the level above a mailbox, which is not one.
    assert untagged(client, 'LIST "" "W%"') == ['* LIST (\\Noselect \\HasChildren) "/" Work']
    assert untagged(client, 'LIST "" "W*"') == ['* LIST (\\HasNoChildren) "/" Work/Notes']
    assert untagged(client, 'LIST (REMOTE) "" "W%"') == [
        '* LIST (\\NonExistent \\HasChildren) "/" Work'
    ]
    assert exchange(client, "DELETE Work")[-1].startswith("t1 NO [NONEXISTENT]")
    assert "INBOX" in names(account)
    # Deleting the selected mailbox closes it: the session goes on, with none selected.
    assert client.select("Work/Notes")[0] == "OK"
    assert exchange(client, 'DELETE "Work/Notes"') == ["t1 OK DELETE completed"]
    assert "Work/Notes" not in names(account)
    assert exchange(client, "FETCH 1 FLAGS")[-1].startswith("t1 BAD")
    assert client.select("INBOX")[0] == "OK"
    assert exchange(client, "DELETE INBOX")[-1].startswith("t1 NO")
    assert exchange(client, "CHECK")[-1].startswith("t1 OK")  # INBOX is still selected


def test_list_under_imap4rev2(connect: Connect, account: Account) -> None:
    client = connect()
    account.create_mailbox("Work/Notes")  # the store alone does not make the level above
    assert untagged(client, "ENABLE IMAP4rev2") == ["* ENABLED IMAP4rev2"]
    assert untagged(client, 'LIST "" %')[-1] == '* LIST (\\NonExistent \\HasChildren) "/" Work'
    assert untagged(client, 'LIST "" "*"')[-1] == '* LIST (\\HasNoChildren) "/" Work/Notes'


def test_rename_keeps_uids_and_makes_parents(client: imaplib.IMAP4_SSL, account: Account) -> None:
    account.create_mailbox("Work")
    account.create_mailbox("Work/Notes")
    stored = account.deliver(message("note"), mailbox="Work/Notes")
    assert exchange(client, "RENAME Work Jobs/Old")[-1] == "t1 OK RENAME completed"
    assert {"Jobs", "Jobs/Old", "Jobs/Old/Notes"} <= set(names(account))
    assert "Work" not in names(account) and "Work/Notes" not in names(account)
    moved = account.mailbox("Jobs/Old/Notes")
    assert moved.uidvalidity == stored.uidvalidity
    assert [m.uid for m in account.messages("Jobs/Old/Notes")] == [stored.uid]
    assert exchange(client, "RENAME Jobs Trash")[-1].startswith("t1 NO [ALREADYEXISTS]")
    assert exchange(client, "RENAME Nothing Else")[-1].startswith("t1 NO [NONEXISTENT]")


def test_rename_inbox_moves_its_messages(
    server: RunningServer, client: imaplib.IMAP4_SSL, account: Account
) -> None:
    account.deliver(message("one"))
    account.deliver(message("two"))
    assert exchange(client, "RENAME inbox Saved/2026")[-1] == "t1 OK RENAME completed"
    assert account.mailbox("INBOX").messages == 0
    assert account.mailbox("Saved/2026").messages == 2
    assert "Saved" in names(account)
    assert server.messages(ALICE, "Saved/2026") == [message("one"), message("two")]


def test_subscribe_lsub_and_list_subscribed(client: imaplib.IMAP4_SSL, account: Account) -> None:
    account.create_mailbox("Work")
    account.create_mailbox("Work/Notes")
    for name in ("INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash", "Work", "Work/Notes"):
        assert exchange(client, f"UNSUBSCRIBE {name}")[-1] == "t1 OK UNSUBSCRIBE completed"
    assert not any(mailbox.subscribed for mailbox in account.mailboxes())
    assert exchange(client, "UNSUBSCRIBE Work")[-1] == "t1 OK UNSUBSCRIBE completed"
    assert exchange(client, "UNSUBSCRIBE Nothing")[-1] == "t1 OK UNSUBSCRIBE completed"
    assert exchange(client, "SUBSCRIBE Nothing")[-1].startswith("t1 NO [NONEXISTENT]")
    assert exchange(client, "SUBSCRIBE Work/Notes")[-1] == "t1 OK SUBSCRIBE completed"
    assert exchange(client, "SUBSCRIBE Sent")[-1] == "t1 OK SUBSCRIBE completed"
    assert [m.name for m in account.mailboxes() if m.subscribed] == ["Sent", "Work/Notes"]

    assert untagged(client, 'LSUB "" "*"') == ['* LSUB () "/" Sent', '* LSUB () "/" Work/Notes']
    # RFC 3501 §6.3.9: "%" gives the unsubscribed level above a subscribed mailbox, \Noselect.
    assert untagged(client, 'LSUB "" "%"') == ['* LSUB () "/" Sent', '* LSUB (\\Noselect) "/" Work']
    assert untagged(client, 'LIST (SUBSCRIBED) "" "*"') == [
        '* LIST (\\HasNoChildren \\Subscribed \\Sent) "/" Sent',
        '* LIST (\\HasNoChildren \\Subscribed) "/" Work/Notes',
    ]
    assert untagged(client, 'LIST (SUBSCRIBED) "" "%"') == [
        '* LIST (\\HasNoChildren \\Subscribed \\Sent) "/" Sent'
    ]
    # RFC 9051 §6.3.9.1: RECURSIVEMATCH lists Work for its subscribed child.
    assert untagged(client, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"') == [
        '* LIST (\\HasNoChildren \\Subscribed \\Sent) "/" Sent',
        '* LIST (\\HasChildren) "/" Work ("CHILDINFO" ("SUBSCRIBED"))',
    ]
    # Listed anyway, Work/Notes needs no CHILDINFO on Work (RFC 9051 §6.3.9.6) ...
    assert untagged(client, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "W*"') == [
        '* LIST (\\HasNoChildren \\Subscribed) "/" Work/Notes'
    ]
    # ... unless Work is subscribed too.
    assert exchange(client, "SUBSCRIBE Work")[-1] == "t1 OK SUBSCRIBE completed"
    assert untagged(client, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "W*"') == [
        '* LIST (\\HasChildren \\Subscribed) "/" Work ("CHILDINFO" ("SUBSCRIBED"))',
        '* LIST (\\HasNoChildren \\Subscribed) "/" Work/Notes',
    ]
    assert untagged(client, 'LIST "" "*" RETURN (SUBSCRIBED CHILDREN)') == [
        '* LIST (\\HasNoChildren) "/" INBOX',
        '* LIST (\\HasNoChildren \\Archive) "/" Archive',
        '* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
        '* LIST (\\HasNoChildren \\Junk) "/" Junk',
        '* LIST (\\HasNoChildren \\Subscribed \\Sent) "/" Sent',
        '* LIST (\\HasNoChildren \\Trash) "/" Trash',
        '* LIST (\\HasChildren \\Subscribed) "/" Work',
        '* LIST (\\HasNoChildren \\Subscribed) "/" Work/Notes',
    ]


def test_list_special_use_selection_and_several_patterns(
    client: imaplib.IMAP4_SSL, account: Account
) -> None:
    account.create_mailbox("Work", "\\Flagged")
    account.create_mailbox("Work/Notes")
    assert untagged(client, 'LIST (SPECIAL-USE) "" "*"') == [
        '* LIST (\\HasNoChildren \\Archive) "/" Archive',
        '* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
        '* LIST (\\HasNoChildren \\Junk) "/" Junk',
        '* LIST (\\HasNoChildren \\Sent) "/" Sent',
        '* LIST (\\HasNoChildren \\Trash) "/" Trash',
        '* LIST (\\HasChildren \\Flagged) "/" Work',
    ]
    assert untagged(client, 'LIST (SPECIAL-USE) "" "W*" RETURN (SPECIAL-USE)') == [
        '* LIST (\\HasChildren \\Flagged) "/" Work'
    ]
    assert untagged(client, 'LIST (REMOTE) "" (INBOX "Work/*" Nothing)') == [
        '* LIST (\\HasNoChildren) "/" INBOX',
        '* LIST (\\HasNoChildren) "/" Work/Notes',
    ]
    # RECURSIVEMATCH alone is an error (RFC 9051 §6.3.9.1).
    assert exchange(client, 'LIST (RECURSIVEMATCH) "" "*"')[-1].startswith("t1 BAD")


def test_list_status(client: imaplib.IMAP4_SSL, account: Account) -> None:
    account.deliver(message("one"), flags=["\\Seen"])
    account.deliver(message("two"))
    account.create_mailbox("Work/Notes")
    assert untagged(client, 'LIST "" "%" RETURN (STATUS (MESSAGES UNSEEN))') == [
        '* LIST (\\HasNoChildren) "/" INBOX',
        "* STATUS INBOX (MESSAGES 2 UNSEEN 1)",
        *(
            line
            for name, listed in zip(
                ("Archive", "Drafts", "Junk", "Sent", "Trash"), DEFAULT_LIST[1:], strict=True
            )
            for line in (listed, f"* STATUS {name} (MESSAGES 0 UNSEEN 0)")
        ),
        '* LIST (\\NonExistent \\HasChildren) "/" Work',  # no STATUS: it is not a mailbox
    ]
    assert untagged(client, 'LIST (SUBSCRIBED) "" "Work/*" RETURN (STATUS (UIDNEXT SIZE))') == [
        '* LIST (\\HasNoChildren \\Subscribed) "/" Work/Notes',
        "* STATUS Work/Notes (UIDNEXT 1 SIZE 0)",
    ]


def test_namespace(client: imaplib.IMAP4_SSL) -> None:
    assert untagged(client, "NAMESPACE") == ['* NAMESPACE (("" "/")) NIL NIL']


def test_status_items(server: RunningServer, client: imaplib.IMAP4_SSL, account: Account) -> None:
    account.create_mailbox("Work")
    first = account.deliver(message("one"), mailbox="Work", flags=["\\Seen"])
    account.deliver(message("two"), mailbox="Work", flags=["\\Deleted"])
    account.deliver(message("three"), mailbox="Work")
    work = account.mailbox("Work")
    limit = server.services.config.smtp.max_message_bytes
    size = sum(len(message(subject)) for subject in ("one", "two", "three"))
    items = "MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ APPENDLIMIT"
    assert untagged(client, f"STATUS Work ({items})") == [
        f"* STATUS Work (MESSAGES 3 UIDNEXT 4 UIDVALIDITY {first.uidvalidity} UNSEEN 2"
        f" DELETED 1 SIZE {size} RECENT 0 HIGHESTMODSEQ {work.highestmodseq}"
        f" APPENDLIMIT {limit})"
    ]
    assert untagged(client, "STATUS inbox (MESSAGES)") == ["* STATUS INBOX (MESSAGES 0)"]
    assert exchange(client, "STATUS Nothing (MESSAGES)")[-1].startswith("t1 NO [NONEXISTENT]")
    assert exchange(client, "STATUS Work (BOGUS)")[-1].startswith("t1 BAD")


def test_append_with_flags_and_date(
    server: RunningServer, client: imaplib.IMAP4_SSL, account: Account
) -> None:
    account.create_mailbox("Work")
    date = datetime.datetime(
        2026, 11, 22, 10, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
    )
    typ, data = client.append("Work", "(\\Seen $Forwarded)", date, message("appended"))
    uidvalidity = account.mailbox("Work").uidvalidity
    assert (typ, data) == ("OK", [f"[APPENDUID {uidvalidity} 1] APPEND completed".encode()])
    [stored] = account.messages("Work")
    assert stored.uid == 1 and stored.flags == ("$Forwarded", "\\Seen")
    assert stored.internal_date == int(date.timestamp())
    assert server.messages(ALICE, "Work") == [message("appended")]
    # Into the selected mailbox: the new message is reported at once.
    assert client.select("INBOX")[1] == [b"0"]
    client.response("EXISTS")  # imaplib keeps the EXISTS of SELECT otherwise
    typ, data = client.append("INBOX", None, None, message("second"))
    assert typ == "OK" and data[0].startswith(b"[APPENDUID ")
    assert client.response("EXISTS") == ("EXISTS", [b"1"])
    assert [m.flags for m in account.messages("INBOX")] == [()]


def test_append_refusals(client: imaplib.IMAP4_SSL, account: Account) -> None:
    typ, data = client.append("Nothing", None, None, message())
    assert typ == "NO" and data[0].startswith(b"[TRYCREATE]")
    assert "Nothing" not in names(account)
    assert exchange(client, b"APPEND INBOX {0+}\r\n")[-1].startswith("t1 NO")
    reply = exchange(client, b"APPEND INBOX (\\Bogus) {5+}\r\nHello")[-1]
    assert reply.startswith("t1 NO [CANNOT]")
    # NUL only in a literal8 (RFC 3516 §4.4).
    body = b"Subject: binary\r\n\r\n\x00\x01\x02\r\n"
    assert exchange(client, b"APPEND INBOX {%d+}\r\n" % len(body) + body)[-1].startswith(
        ("t1 NO", "t1 BAD")
    )
    assert account.mailbox("INBOX").messages == 0
    reply = exchange(client, b"APPEND INBOX ~{%d+}\r\n" % len(body) + body)[-1]
    assert reply.startswith("t1 OK [APPENDUID ")
    [stored] = account.messages("INBOX")
    assert account.message_file("INBOX", stored.uid).read_bytes() == body


def test_append_over_quota(
    server: RunningServer, client: imaplib.IMAP4_SSL, account: Account
) -> None:
    server.services.directory.set_quota(ALICE, 8 * 1024)
    first = message(body="x" * 5000 + "\r\n")
    assert client.append("INBOX", None, None, first)[0] == "OK"
    typ, data = client.append("INBOX", None, None, first)
    assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]")
    assert account.mailbox("INBOX").messages == 1
    used_kib = -(-len(first) // 1024)
    assert untagged(client, "GETQUOTAROOT INBOX") == [
        '* QUOTAROOT INBOX ""',
        f'* QUOTA "" (STORAGE {used_kib} 8)',
    ]


def test_quota_commands(server: RunningServer, client: imaplib.IMAP4_SSL, account: Account) -> None:
    assert untagged(client, 'GETQUOTA ""') == ['* QUOTA "" ()']
    assert untagged(client, "GETQUOTAROOT Sent") == ['* QUOTAROOT Sent ""', '* QUOTA "" ()']
    account.deliver(message(body="y" * 3000 + "\r\n"))
    server.services.directory.set_quota(ALICE, 1024 * 1024 + 500)
    used_kib = -(-len(message(body="y" * 3000 + "\r\n")) // 1024)
    assert untagged(client, 'GETQUOTA ""') == [f'* QUOTA "" (STORAGE {used_kib} 1024)']
    assert exchange(client, "GETQUOTA other")[-1].startswith("t1 NO [NONEXISTENT]")
    assert exchange(client, "GETQUOTAROOT Nothing")[-1].startswith("t1 NO [NONEXISTENT]")
    reply = exchange(client, 'SETQUOTA "" (STORAGE 10)')[-1]
    assert reply == "t1 NO [NOPERM] Quotas are set by the administrator"
    assert server.services.directory.user(ALICE).quota_bytes == 1024 * 1024 + 500


def test_non_ascii_names_in_modified_utf7_and_utf8(connect: Connect, account: Account) -> None:
    client = connect()
    assert exchange(client, "CREATE Entw&APw-rfe/Gr&APwA3w-e")[-1] == "t1 OK CREATE completed"
    assert {"Entwürfe", "Entwürfe/Grüße"} <= set(names(account))
    assert untagged(client, 'LIST "" "Entw*"') == [
        '* LIST (\\HasChildren) "/" Entw&APw-rfe',
        '* LIST (\\HasNoChildren) "/" Entw&APw-rfe/Gr&APwA3w-e',
    ]
    assert untagged(client, "STATUS Entw&APw-rfe (MESSAGES)") == [
        "* STATUS Entw&APw-rfe (MESSAGES 0)"
    ]
    assert exchange(client, "RENAME Entw&APw-rfe &AMQ-rger")[-1] == "t1 OK RENAME completed"
    assert {"Ärger", "Ärger/Grüße"} <= set(names(account))

    other = connect()
    assert other._simple_command("ENABLE", "UTF8=ACCEPT")[0] == "OK"
    assert untagged(other, 'LIST "" "Ä*"') == [
        '* LIST (\\HasChildren) "/" "Ärger"',
        '* LIST (\\HasNoChildren) "/" "Ärger/Grüße"',
    ]
    assert exchange(other, 'CREATE "Été"')[-1] == "t1 OK CREATE completed"
    assert "Été" in names(account)
    assert untagged(other, 'STATUS "Été" (MESSAGES)') == ['* STATUS "Été" (MESSAGES 0)']
    assert untagged(other, 'GETQUOTAROOT "Été"')[0] == '* QUOTAROOT "Été" ""'
    # imaplib's own APPEND under UTF8=ACCEPT is not RFC 6855's: written out here.
    data = message()
    reply = exchange(other, b'APPEND "\xc3\x89t\xc3\xa9" {%d+}\r\n' % len(data) + data)[-1]
    assert reply.startswith("t1 OK [APPENDUID ") and account.mailbox("Été").messages == 1
    assert untagged(client, 'LIST "" "&AMk-t&AOk-"') == ['* LIST (\\HasNoChildren) "/" &AMk-t&AOk-']


def test_appendlimit_refuses_larger_messages(tmp_path: Path) -> None:
    settings = {"smtp": {"max_message_bytes": 2048}}
    with running_server(tmp_path / "data", settings=settings) as server:
        server.add_user(ALICE, PASSWORD)
        client = imaplib.IMAP4_SSL(
            "127.0.0.1", server.port("imaps"), ssl_context=server.ssl_context(), timeout=10
        )
        try:
            client.login(ALICE, PASSWORD)
            assert b"APPENDLIMIT=2048" in client.capability()[1][0].split()
            assert untagged(client, "STATUS INBOX (APPENDLIMIT)") == [
                "* STATUS INBOX (APPENDLIMIT 2048)"
            ]
            typ, data = client.append("INBOX", None, None, message(body="z" * 3000))
            assert typ == "NO" and data[0].startswith(b"[TOOBIG]")
            fits = message(body="z" * 1500)
            assert len(fits) <= 2048
            assert client.append("INBOX", None, None, fits)[0] == "OK"
            assert server.messages(ALICE) == [fits]
        finally:
            client.logout()
