"""The mail store: what is on disk and in the index after each operation, and after a crash."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import pytest

from pcloud.directory import User
from pcloud.events import Events, Expunged, FlagsChanged, MailboxChanged, MessageAdded
from pcloud.store import maildir
from pcloud.store.index import first_values, kept_fields
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
        self.users = {ADDRESS: 1_700_000_000}  # address -> when the user was created
        self.events = Events()
        self.store = MailStore(root, self.user_of, self.events)

    def user_of(self, address: str) -> User | None:
        created = self.users.get(address)
        return None if created is None else User(address, "", False, self.quota, created)

    def reopen(self) -> Account:
        self.store.close()
        self.store = MailStore(self.root, self.user_of, self.events)
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
    """The files in a mailbox's cur/, once the background writer has written every file."""
    wait_for(lambda: not unwritten(account))
    folder = account.folder / maildir.folder_name(mailbox) / "cur"
    return sorted(folder.iterdir())


def tmp_files(account: Account, mailbox: str = "INBOX") -> list[Path]:
    wait_for(lambda: not unwritten(account))
    folder = account.folder / maildir.folder_name(mailbox) / "tmp"
    return sorted(folder.iterdir())


def query(account: Account, sql: str) -> list[Any]:
    db = sqlite3.connect(account.folder / "index.sqlite3")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def indexed_files(account: Account) -> list[str]:
    return sorted(file for (file,) in query(account, "SELECT file FROM messages"))


def unwritten(account: Account) -> list[tuple[int, bytes]]:
    """The messages stored whose files are not written yet: UID and content."""
    return query(account, "SELECT uid, content FROM unwritten ORDER BY uid")


class HeldWriter(Executor):
    """Stands in for the store's file writer: holds the work until told to do it."""

    def __init__(self) -> None:
        self.held: list[Callable[[], object]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.held.append(lambda: fn(*args, **kwargs))
        return Future()

    def run(self) -> None:
        held, self.held = self.held, []
        for work in held:
            work()


@pytest.fixture
def held(account: Account, monkeypatch: pytest.MonkeyPatch) -> HeldWriter:
    writer = HeldWriter()
    monkeypatch.setattr(account, "_writer", writer)
    return writer


class FailingCommit:
    """Stands in for an account's database connection; every COMMIT fails."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.error = sqlite3.OperationalError("disk I/O error")

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT":
            raise self.error
        return self.db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def deliver_in_threads(account: Account, count: int) -> list[BaseException | None]:
    """Deliver `count` messages at once, so that one commit stores them all: the account's lock
    is held until all of them wait. Returns their exceptions."""
    outcomes: list[BaseException | None] = [None] * count

    def deliver(n: int) -> None:
        try:
            account.deliver(message(f"m{n}"))
        except BaseException as error:
            outcomes[n] = error

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(count)]
    with account._lock:
        for thread in threads:
            thread.start()
        wait_for(lambda: len(account._waiting) == count)
    for thread in threads:
        thread.join()
    return outcomes


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


def test_deliver_stores_the_message_then_writes_its_file(account: Account) -> None:
    stored = account.deliver(message(), flags=["\\seen", "$Forwarded"], internal_date=1_700_000_000)
    assert (stored.mailbox, stored.uid) == ("INBOX", 1)
    [file] = cur_files(account)
    assert not unwritten(account)
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


# -- group commit ------------------------------------------------------------------------------


def test_concurrent_deliveries_are_stored_by_one_commit(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits = []
    monkeypatch.setattr(account, "_commit_waiting", lambda: commits.append(commit()))
    commit = Account._commit_waiting.__get__(account)
    assert deliver_in_threads(account, 3) == [None, None, None]
    assert len(commits) == 1
    assert indexed_files(account) == [file.name for file in cur_files(account)]
    assert not tmp_files(account)
    assert [m.uid for m in account.messages("INBOX")] == [1, 2, 3]


def test_a_file_is_written_after_its_message_is_stored(account: Account, held: HeldWriter) -> None:
    account.deliver(message("one"))
    account.deliver(message("two"))
    # Durable in the index, content included; a reader gets the file written on demand.
    assert unwritten(account) == [(1, message("one")), (2, message("two"))]
    assert not list((account.folder / "cur").iterdir())
    assert account.message_file("INBOX", 1).read_bytes() == message("one")
    assert [file.read_bytes() for file in cur_files(account)] == [message("one"), message("two")]
    assert not tmp_files(account)
    held.run()  # the writer then finds nothing left
    assert len(cur_files(account)) == 2


def test_a_crash_before_the_files_are_written_loses_nothing(
    store: Store, account: Account, held: HeldWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    account.deliver(message("written, not dropped"))
    monkeypatch.setattr(account, "_db", FailingCommit(account._db))
    held.run()  # the file is written, the content's removal from the index fails
    with pytest.raises(MailStoreError):
        account.deliver(message("never stored"))
    assert len(unwritten(account)) == 1
    store.store = MailStore(store.root, store.user_of, store.events)
    again = store.store.account(ADDRESS)
    assert not unwritten(again)
    assert [m.headers["subject"] for m in again.messages("INBOX")] == ["written, not dropped"]
    assert [file.read_bytes() for file in cur_files(again)] == [message("written, not dropped")]


def test_a_failed_commit_leaves_nothing_and_fails_each_delivery_on_its_own(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = FailingCommit(account._db)
    monkeypatch.setattr(account, "_db", failing)
    outcomes = deliver_in_threads(account, 3)
    assert all(type(error) is MailStoreError for error in outcomes)
    assert len({id(error) for error in outcomes}) == 3  # each thread raises its own
    assert all(error.__cause__ is failing.error for error in outcomes if error)
    assert not cur_files(account) and not tmp_files(account)
    monkeypatch.setattr(account, "_db", failing.db)
    assert indexed_files(account) == [] and account.usage() == (0, 0)
    assert account.deliver(message()).uid == 1  # the transaction was rolled back


def test_a_batch_is_published_by_its_committer_in_uid_order(
    store: Store, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[tuple[int, Any]] = []
    monkeypatch.setattr(
        store.events, "publish", lambda event: published.append((threading.get_ident(), event))
    )
    deliver_in_threads(account, 4)
    assert [event.uid for _, event in published] == [1, 2, 3, 4]
    assert len({thread for thread, _ in published}) == 1


def test_a_delivery_to_a_missing_mailbox_is_refused(account: Account) -> None:
    with pytest.raises(MailboxNotFound):
        account.deliver(message(), mailbox="Lists")
    assert indexed_files(account) == [] and not unwritten(account)


def test_a_mailbox_deleted_before_its_files_are_written_leaves_none(
    account: Account, held: HeldWriter
) -> None:
    account.create_mailbox("Lists")
    account.deliver(message(), mailbox="Lists")
    account.delete_mailbox("Lists")
    account.create_mailbox("Lists")  # a new mailbox, which may reuse the old one's id
    held.run()
    assert account.mailbox("Lists").messages == 0
    assert not cur_files(account, "Lists") and not tmp_files(account, "Lists")
    assert indexed_files(account) == []


def test_a_file_follows_its_mailbox_renamed_before_it_is_written(
    account: Account, held: HeldWriter
) -> None:
    account.create_mailbox("Lists")
    stored = account.deliver(message(), mailbox="Lists")
    account.rename_mailbox("Lists", "Groups")
    held.run()
    assert (stored.mailbox, stored.uid) == ("Lists", 1)
    [file] = cur_files(account, "Groups")
    assert file.read_bytes() == message()
    assert indexed_files(account) == [file.name] and not tmp_files(account, "Groups")


# -- crashes and failures midway ---------------------------------------------------------------


def test_reconcile_recreates_a_missing_folder_and_drops_its_rows(
    store: Store, account: Account
) -> None:
    account.create_mailbox("Lists")
    account.deliver(message(), mailbox="Lists")
    store.store.close()
    # A crash during delete_mailbox: the folder was moved away, the row not yet deleted.
    os.rename(account.folder / ".Lists", account.folder / "tmp" / "deleted-7-1")
    account = store.reopen()
    assert account.mailbox("Lists").messages == 0
    assert (account.folder / ".Lists" / "cur").is_dir()
    assert indexed_files(account) == []
    db = sqlite3.connect(account.folder / "index.sqlite3")
    assert db.execute("SELECT uid FROM vanished").fetchall() == [(1,)]


def test_a_rename_that_fails_midway_is_undone(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    account.create_mailbox("Lists")
    account.create_mailbox("Lists/Python")
    account.deliver(message(), mailbox="Lists/Python")
    rename = os.rename

    def failing_rename(source: Any, target: Any) -> None:
        if str(target).endswith(".Groups.Python"):
            raise OSError("no space left")
        rename(source, target)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError):
        account.rename_mailbox("Lists", "Groups")
    monkeypatch.setattr(os, "rename", rename)
    folders = sorted(p.name for p in account.folder.iterdir() if p.name.startswith("."))
    assert folders == [".Archive", ".Drafts", ".Junk", ".Lists", ".Lists.Python", ".Sent", ".Trash"]
    assert account.message_file("Lists/Python", 1).read_bytes() == message()
    account.rename_mailbox("Lists", "Groups")  # and the index was rolled back
    assert account.mailbox("Groups/Python").messages == 1


def test_a_delete_whose_commit_fails_puts_the_folder_back(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    account.create_mailbox("Lists")
    account.deliver(message(), mailbox="Lists")
    failing = FailingCommit(account._db)
    monkeypatch.setattr(account, "_db", failing)
    with pytest.raises(sqlite3.OperationalError):
        account.delete_mailbox("Lists")
    monkeypatch.setattr(account, "_db", failing.db)
    assert len(cur_files(account, "Lists")) == 1
    assert not list((account.folder / "tmp").iterdir())
    assert account.mailbox("Lists").messages == 1
    account.create_mailbox("Other")  # no transaction was left open


def test_opening_removes_leftovers(store: Store, account: Account) -> None:
    store.store.close()
    old = time.time() - 37 * 3600
    leftovers = [
        account.folder / "tmp" / "1700000000.old.host",
        account.folder / ".Sent" / "tmp" / "1700000001.old.host",
        account.folder / "tmp" / "expunged-1700000002.any.host",  # only pcloud makes these
    ]
    kept = account.folder / "tmp" / "1700000003.being-written.host"
    for path in [*leftovers, kept]:
        path.write_bytes(message())
    for path in leftovers[:2]:
        os.utime(path, (old, old))
    deleted = account.folder / "tmp" / "deleted-9-1700000004"
    (deleted / "cur").mkdir(parents=True)
    (deleted / "cur" / "1700000005.any.host").write_bytes(message())
    account = store.reopen()
    assert tmp_files(account) == [kept]
    assert not tmp_files(account, "Sent")
    assert indexed_files(account) == []


def test_a_copy_that_fails_midway_leaves_no_links(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        account.deliver(message(f"m{n}"))
    link_message = maildir.link_message
    calls = []

    def failing_link(source: Path, folder_path: Path) -> str:
        calls.append(source)
        if len(calls) == 2:
            raise OSError("too many links")
        return link_message(source, folder_path)

    monkeypatch.setattr(maildir, "link_message", failing_link)
    with pytest.raises(OSError):
        account.copy("INBOX", [1, 2, 3], "Archive")
    assert not cur_files(account, "Archive")
    assert len(indexed_files(account)) == 3 and account.mailbox("Archive").messages == 0


def test_an_expunge_that_fails_midway_moves_the_files_back(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        account.deliver(message(f"m{n}"))
    files = [file.name for file in cur_files(account)]
    rename = os.rename
    calls = []

    def failing_rename(source: Any, target: Any) -> None:
        calls.append(target)
        if len(calls) == 2:
            raise OSError("input/output error")
        rename(source, target)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError):
        account.expunge("INBOX", [1, 2, 3], only_deleted=False)
    monkeypatch.setattr(os, "rename", rename)
    assert [file.name for file in cur_files(account)] == files
    assert not tmp_files(account)
    assert indexed_files(account) == sorted(files)


# -- accounts and users ------------------------------------------------------------------------


def test_addresses_are_normalised(store: Store) -> None:
    account = store.store.account("Alice@Example.ORG")
    assert account is store.store.account(ADDRESS)
    assert account.folder == store.root / ADDRESS
    for bad in ("../alice@example.org", "alice", "alice@example.org/x", ""):
        with pytest.raises(NoSuchAccount):
            store.store.account(bad)
    assert [path.name for path in store.root.iterdir()] == [ADDRESS]


def test_a_retired_user_passes_no_mail_to_the_next_one(store: Store, account: Account) -> None:
    account.deliver(message("for the old alice"))
    del store.users[ADDRESS]  # the user is deleted
    with pytest.raises(NoSuchAccount):
        store.store.account(ADDRESS)
    retired = store.store.retire("ALICE@example.org")
    assert retired is not None and retired.parent == store.root / ".retired"
    assert retired.name.startswith(f"{ADDRESS}.")
    assert [file.read_bytes() for file in (retired / "cur").iterdir()] == [
        message("for the old alice")
    ]
    assert not (store.root / ADDRESS).exists()
    assert store.store.retire(ADDRESS) is None  # nothing left to retire
    store.users[ADDRESS] = 1_800_000_000  # created again
    again = store.store.account(ADDRESS)
    assert again is not account and again.messages("INBOX") == []
    assert indexed_files(again) == []


def test_a_user_created_again_gets_a_freshly_opened_account(store: Store, account: Account) -> None:
    store.users[ADDRESS] += 1  # deleted and created again, by another process
    again = store.store.account(ADDRESS)
    assert again is not account
    with pytest.raises(sqlite3.ProgrammingError):  # the old one was closed
        account.usage()
    assert store.store.account(ADDRESS) is again


def test_an_account_opening_does_not_hold_up_the_others(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = "bob@example.org"
    store.users[bob] = 1_700_000_000
    opening, release = threading.Event(), threading.Event()
    reconcile = Account._reconcile

    def slow_reconcile(self: Account) -> None:
        if self.address == bob:
            opening.set()
            release.wait(10)
        reconcile(self)

    monkeypatch.setattr(Account, "_reconcile", slow_reconcile)
    opened: list[Account] = []
    threads = [
        threading.Thread(target=lambda: opened.append(store.store.account(bob))),
        threading.Thread(target=lambda: opened.append(store.store.account(bob))),
    ]
    threads[0].start()
    assert opening.wait(10)
    threads[1].start()
    alice = threading.Thread(target=store.store.account, args=(ADDRESS,))
    alice.start()
    alice.join(5)
    done_meanwhile = not alice.is_alive()
    release.set()
    for thread in [*threads, alice]:
        thread.join()
    assert done_meanwhile, "alice's account waited for bob's to open"
    assert len(opened) == 2 and opened[0] is opened[1]  # bob's was opened once
    assert sorted(path.name for path in store.root.iterdir()) == [ADDRESS, bob]


def test_a_new_account_opened_by_two_deliveries_at_once_is_opened_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = "bob@example.org"
    store.users[bob] = 1_700_000_000
    opening, release = threading.Event(), threading.Event()
    account_init = Account.__init__

    def slow_init(self: Account, *args: Any) -> None:
        opening.set()
        release.wait(10)  # its folder is not there yet
        account_init(self, *args)

    monkeypatch.setattr(Account, "__init__", slow_init)
    opened: list[Account] = []
    threads = [threading.Thread(target=lambda: opened.append(store.store.account(bob)))
               for _ in range(2)]  # fmt: skip
    threads[0].start()
    assert opening.wait(10)
    threads[1].start()  # looks before the folder exists, then waits for the first
    time.sleep(0.2)
    release.set()
    for thread in threads:
        thread.join()
    assert len(opened) == 2 and opened[0] is opened[1]
    assert opened[0].deliver(message()).uid == 1  # still open


def test_a_view_lists_uids_unseen_and_keywords(account: Account) -> None:
    for subject in ("one", "two", "three"):
        account.deliver(message(subject))
    account.set_flags("INBOX", [1], ["\\Seen", "$Forwarded"], "add")
    view = account.view("inbox")
    assert (view.name, list(view.uids), view.unseen, view.first_unseen_uid) == (
        "INBOX",
        [1, 2, 3],
        2,
        2,
    )
    assert view.keywords == ("$Forwarded",)
    assert (view.uidnext, view.highestmodseq) == (4, account.mailbox("INBOX").highestmodseq)


def test_messages_by_uid_range_and_modseq_and_vanished_uids(account: Account) -> None:
    for subject in ("one", "two", "three", "four"):
        account.deliver(message(subject))
    before = account.mailbox("INBOX").highestmodseq
    account.set_flags("INBOX", [2], ["\\Flagged"], "add")
    account.expunge("INBOX", [4], only_deleted=False)
    assert [m.uid for m in account.messages("INBOX", [(1, 1), (3, 9)])] == [1, 3]
    [changed] = account.messages("INBOX", changed_since=before, headers=False)
    assert (changed.uid, changed.flags, changed.headers) == (2, ("\\Flagged",), {})
    assert account.vanished("INBOX", before) == [4]
    assert account.vanished("INBOX", before, [(1, 3)]) == []
    assert sorted(account.message_files("INBOX", [1, 4, 3])) == [1, 3]


def test_message_rows_are_the_index_rows(account: Account) -> None:
    account.deliver(message("one"), flags=["\\Seen", "$Later"], internal_date=1_700_000_000)
    [(uid, flags, modseq, date, size, kept)] = account.message_rows("INBOX")
    assert (uid, flags, date, size) == (1, "$Later \\Seen", 1_700_000_000, len(message("one")))
    assert first_values(kept_fields(kept))["subject"] == "one"
    assert account.message_rows("INBOX", headers=False)[0][5] == ""
    assert account.messages("INBOX")[0].modseq == modseq


def test_containing_leaves_out_only_messages_that_cannot_hold_the_text(account: Account) -> None:
    subjects = [
        "Zeppelin ride",
        "=?utf-8?q?zepp=65lin?=",  # "zeppelin" once decoded
        "caf\u00e9",  # 8-bit text: decoded, it may hold anything
        "nothing here",
        "the zep\r\n pelin",  # folded: "the zep pelin"
        '100%_sure "yes"',  # LIKE's wildcards and JSON's escapes, taken literally
    ]
    for subject in subjects:
        account.deliver(message(subject))

    def uids(needle: str) -> list[int]:
        return [m.uid for m in account.messages("INBOX", containing=needle)]

    assert uids("zeppelin") == [1, 2, 3]
    assert uids("zep pelin") == [1, 2, 3, 5]
    assert uids('100%_sure "yes"') == [2, 3, 6]
    assert uids("100x_sure") == [2, 3]
    assert uids(" \t") == [1, 2, 3, 4, 5, 6]  # only blanks: no words to look for


def test_subscriptions(account: Account) -> None:
    account.subscribe("Sent", False)
    assert not account.mailbox("Sent").subscribed
    account.subscribe("Sent", True)
    assert account.mailbox("Sent").subscribed
    with pytest.raises(MailboxNotFound):
        account.subscribe("Nowhere", True)


def test_renaming_inbox_moves_its_messages_and_leaves_it_empty(account: Account) -> None:
    account.create_mailbox("INBOX/Child")
    account.deliver(message("one"))
    account.deliver(message("two"))
    account.rename_mailbox("INBOX", "Old mail")
    assert account.messages("INBOX") == []
    assert [m.headers["subject"] for m in account.messages("Old mail")] == ["one", "two"]
    assert "INBOX/Child" in {box.name for box in account.mailboxes()}
    assert len(cur_files(account, "INBOX")) == 0


def test_changes_since_a_modseq(account: Account) -> None:
    account.deliver(message("one"))
    account.deliver(message("two"))
    since = account.mailbox("INBOX").highestmodseq
    account.deliver(message("three"))
    account.set_flags("INBOX", [1], ["\\Seen"], "add")
    account.expunge("INBOX", [2], only_deleted=False)
    changes = account.changes("INBOX", since)
    assert [(m.uid, m.flags) for m in changes.changed] == [(1, ("\\Seen",)), (3, ())]
    assert changes.vanished == [2]
    assert changes.highestmodseq == account.mailbox("INBOX").highestmodseq
    assert account.changes("INBOX", changes.highestmodseq).changed == []
