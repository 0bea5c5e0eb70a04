"""The mail store: what is on disk and in the index after each operation, and after a crash."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcloud.events import Events, Expunged, FlagsChanged, MailboxChanged, MessageAdded
from pcloud.store import maildir
from pcloud.store.mail import Account, MailStore
from pcloud.store.mail_values import (
    MailboxExists,
    MailboxNotFound,
    MailStoreError,
    NoSuchAccount,
    QuotaExceeded,
)

ADDRESS = "alice@example.org"


def message(subject: str = "Hello", body: str = "Hi there.\r\n") -> bytes:
    return (
        f"From: Bob <bob@example.net>\r\nTo: {ADDRESS}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@example.net>\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
        f"\r\n{body}"
    ).encode()


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.quota = 0
        self.events = Events()
        self.store = MailStore(root, self.quota_of, self.events)

    def quota_of(self, address: str) -> int | None:
        return self.quota if address == ADDRESS else None

    def reopen(self) -> Account:
        self.store.close()
        self.store = MailStore(self.root, self.quota_of, self.events)
        return self.store.account(ADDRESS)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "mail")
    yield opened
    opened.store.close()


@pytest.fixture
def account(store: Store) -> Account:
    return store.store.account(ADDRESS)


def cur_files(account: Account, mailbox: str = "INBOX") -> list[Path]:
    folder = account.folder / maildir.folder_name(mailbox) / "cur"
    return sorted(folder.iterdir())


def test_a_new_account_has_the_usual_mailboxes(account: Account) -> None:
    mailboxes = {m.name: m.special_use for m in account.mailboxes()}
    assert mailboxes == {"INBOX": None, "Sent": "\\Sent", "Drafts": "\\Drafts",
                         "Trash": "\\Trash", "Junk": "\\Junk", "Archive": "\\Archive"}  # fmt: skip
    assert (account.folder / ".Sent" / "cur").is_dir()
    assert (account.folder / "new").is_dir() and (account.folder / "tmp").is_dir()


def test_unknown_accounts_are_refused(store: Store) -> None:
    with pytest.raises(NoSuchAccount):
        store.store.account("nobody@example.org")
    assert not (store.root / "nobody@example.org").exists()


def test_deliver_writes_the_file_then_the_index(account: Account) -> None:
    stored = account.deliver(message(), flags=["\\seen", "$Forwarded"], internal_date=1_700_000_000)
    assert (stored.mailbox, stored.uid) == ("INBOX", 1)
    [file] = cur_files(account)
    assert file.read_bytes() == message()
    assert file.name.endswith(f",S={len(message())}")
    assert file.stat().st_mode & 0o077 == 0
    [listed] = account.messages("INBOX")
    assert listed.flags == ("$Forwarded", "\\Seen")
    assert listed.internal_date == 1_700_000_000
    assert listed.headers["subject"] == "Hello"
    assert listed.headers["from"] == "Bob <bob@example.net>"
    assert account.message_file("INBOX", 1) == file
    assert account.usage() == (len(message()), 1)
    inbox = account.mailbox("inbox")
    assert (inbox.messages, inbox.unseen, inbox.uidnext) == (1, 0, 2)
    assert not list((account.folder / "tmp").iterdir())


def test_flags_modseq_and_unchanged_since(account: Account) -> None:
    for n in range(3):
        account.deliver(message(f"m{n}"))
    start = account.mailbox("INBOX").highestmodseq
    change = account.set_flags("INBOX", [1, 2], ["\\Seen"], "add")
    assert change.changed == [1, 2] and change.modseq == start + 1
    assert account.set_flags("INBOX", [1], ["\\Seen"], "add").changed == []  # no change
    change = account.set_flags("INBOX", [1, 3], ["\\Flagged"], "add", unchanged_since=start)
    assert change.failed == [1] and change.changed == [3]
    account.set_flags("INBOX", [2], ["\\Answered", "todo"], "replace")
    account.set_flags("INBOX", [3], ["\\flagged"], "remove")
    flags = {m.uid: m.flags for m in account.messages("INBOX")}
    assert flags == {1: ("\\Seen",), 2: ("\\Answered", "todo"), 3: ()}
    assert account.mailbox("INBOX").unseen == 2
    for bad in (["\\Recentish"], ["has space"], ["(paren"]):
        with pytest.raises(MailStoreError):
            account.set_flags("INBOX", [1], bad, "add")


def test_copy_move_and_expunge(account: Account) -> None:
    for n in range(4):
        account.deliver(message(f"m{n}"))
    assert account.copy("INBOX", [1, 2], "Archive") == [(1, 1), (2, 2)]
    assert account.move("INBOX", [3], "Trash") == [(3, 1)]
    assert [m.uid for m in account.messages("INBOX")] == [1, 2, 4]
    assert [m.headers["subject"] for m in account.messages("Archive")] == ["m0", "m1"]
    account.set_flags("INBOX", [1, 4], ["\\Deleted"], "add")
    assert account.expunge("INBOX", [4, 2]) == [4]  # UID EXPUNGE: only those, if \Deleted
    assert account.expunge("INBOX") == [1]
    assert [m.uid for m in account.messages("INBOX")] == [2]
    assert len(cur_files(account)) == 1
    assert len(cur_files(account, "Archive")) == 2  # copies outlive the originals
    assert account.usage()[1] == 4
    assert not list((account.folder / "tmp").iterdir())
    db = sqlite3.connect(account.folder / "index.sqlite3")
    assert db.execute("SELECT count(*) FROM vanished").fetchone()[0] == 3


def test_mailboxes_create_rename_delete(account: Account) -> None:
    account.create_mailbox("Projects/2026.Q4")
    account.create_mailbox("Projects/2026.Q4/Très secret")
    assert (account.folder / ".Projects.2026%2EQ4.Tr%C3%A8s secret" / "cur").is_dir()
    with pytest.raises(MailboxExists):
        account.create_mailbox("Projects/2026.Q4")
    account.deliver(message(), mailbox="Projects/2026.Q4/Très secret")
    before = account.mailbox("Projects/2026.Q4/Très secret")
    account.rename_mailbox("Projects/2026.Q4", "Old")
    renamed = account.mailbox("Old/Très secret")
    assert renamed.uidvalidity == before.uidvalidity and renamed.messages == 1
    with pytest.raises(MailboxNotFound):
        account.mailbox("Projects/2026.Q4")
    account.delete_mailbox("Old")
    assert {m.name for m in account.mailboxes()} >= {"Old/Très secret"}
    account.create_mailbox("Old")
    assert account.mailbox("Old").uidvalidity > before.uidvalidity
    for bad in ("", "a//b", "/a", "a/", "with*star", "ctl\x01", " padded", "x" * 600):
        with pytest.raises(MailStoreError):
            account.create_mailbox(bad)
    with pytest.raises(MailStoreError):
        account.delete_mailbox("inbox")


def test_quota_refuses_whole_messages_and_writes_nothing(store: Store, account: Account) -> None:
    store.quota = len(message()) * 2
    account.deliver(message("one"))
    account.deliver(message("two"))
    with pytest.raises(QuotaExceeded):
        account.deliver(message("six"))
    with pytest.raises(QuotaExceeded):
        account.copy("INBOX", [1], "Archive")
    assert len(cur_files(account)) == 2 and not cur_files(account, "Archive")
    assert not list((account.folder / "tmp").iterdir())
    store.quota = 0
    account.deliver(message("three"))


def test_reopening_reconciles_the_index_with_the_files(store: Store, account: Account) -> None:
    account.deliver(message("kept"))
    account.deliver(message("lost"))
    lost = account.message_file("INBOX", 2)
    store.store.close()
    # Another program delivers (Maildir's new/, and a cur/ file with flags); a file is lost.
    (account.folder / "new" / "1700000000.other.host").write_bytes(message("from new"))
    (account.folder / ".Sent" / "cur" / "1700000001.other.host:2,SF").write_bytes(message("sent"))
    lost.unlink()
    (account.folder / ".Found").mkdir()
    (account.folder / ".Found" / "cur").mkdir()
    account = store.reopen()
    subjects = {m.uid: m.headers["subject"] for m in account.messages("INBOX")}
    assert subjects == {1: "kept", 3: "from new"}
    [sent] = account.messages("Sent")
    assert sent.flags == ("\\Flagged", "\\Seen")
    assert account.mailbox("Found").messages == 0
    assert account.usage()[1] == 3
    assert not list((account.folder / "new").iterdir())


def test_concurrent_deliveries_get_distinct_uids(account: Account) -> None:
    def deliver(thread: int) -> None:
        for n in range(25):
            account.deliver(message(f"t{thread}-{n}"))

    threads = [threading.Thread(target=deliver, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    uids = [m.uid for m in account.messages("INBOX")]
    assert uids == list(range(1, 201))
    assert len(cur_files(account)) == 200
    assert account.usage() == (sum(m.size for m in account.messages("INBOX")), 200)


async def test_changes_are_published_after_commit(store: Store, account: Account) -> None:
    subscription = store.events.subscribe(ADDRESS)
    other = store.events.subscribe("bob@example.org")
    await asyncio.to_thread(account.deliver, message())
    await asyncio.to_thread(account.set_flags, "INBOX", [1], ["\\Seen"], "add")
    await asyncio.to_thread(account.move, "INBOX", [1], "Archive")
    await asyncio.to_thread(account.create_mailbox, "New")
    received = [await asyncio.wait_for(subscription.next(), 5) for _ in range(5)]
    assert [type(event) for event in received] == [
        MessageAdded,
        FlagsChanged,
        MessageAdded,
        Expunged,
        MailboxChanged,
    ]
    assert received[0] == MessageAdded(ADDRESS, "INBOX", 1, received[0].modseq)
    assert received[3] == Expunged(ADDRESS, "INBOX", (1,), received[3].modseq)
    assert other.queue.empty()
    subscription.close()
    other.close()


def test_files_are_private(account: Account) -> None:
    account.deliver(message())
    assert os.stat(account.folder / "index.sqlite3").st_mode & 0o077 == 0


def test_concurrent_deliveries_never_exceed_the_quota(store: Store, account: Account) -> None:
    size = len(message("q00"))
    store.quota = size * 10
    outcomes: list[str] = []

    def deliver(thread: int) -> None:
        for n in range(5):
            try:
                account.deliver(message(f"q{thread}{n}"))
                outcomes.append("stored")
            except QuotaExceeded:
                outcomes.append("refused")

    threads = [threading.Thread(target=deliver, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("stored") == 10 and outcomes.count("refused") == 20
    assert len(cur_files(account)) == 10  # no file left behind by a refused message
    assert account.usage() == (size * 10, 10)
