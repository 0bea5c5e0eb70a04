"""The mail store: mailboxes and messages of every account, written once for every protocol.

SMTP delivery, IMAP, JMAP and the web panel all deliver, append, copy, move, flag and expunge
through `Account`; each change is on disk (files flushed, index committed) before it returns
and before its event is published.

Layout: `<data>/mail/<address>/` is an account (see maildir.py and index.py); a deleted user's
mail is moved to `<data>/mail/.retired/<address>.<unix time>/`, so a new user of the same
address starts empty.

Invariants:
- A delivery is one transaction: the message's row and its content (table `unwritten`), so one
  flush of the index makes it durable. Its file is written afterwards, in a batch by a
  background thread (or by whoever needs the files first: reading a message, copy, expunge,
  close, reopen): flushed in tmp/, renamed into cur/, cur/ flushed, and only then is the
  content dropped from the index. Every other message in the index has its complete file in
  cur/, and a file in cur/ is always one the index knows. Expunged files are first moved to
  tmp/, the index is committed, then the files are removed: an expunged message never comes
  back.
- Deliveries commit in groups: whoever takes the lock next stores every delivery waiting, in
  one transaction, and publishes their events in UID order.
- Opening an account reconciles the index with the files: files still unwritten are written, a
  file without a row is indexed (with the flags of a `:2,` Maildir suffix if it has one), a row
  without a file is dropped and logged, a mailbox whose folder is gone (a crash during a rename
  or delete) is recreated empty, and tmp/ is cleared of what a crash left there.
- One lock per account serialises its changes (and a second one its file writing, see
  Account._writing); the methods block (file and SQLite I/O), so that protocols call them
  from worker threads (asyncio.to_thread).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from array import array
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcloud.directory import User
from pcloud.directory.addresses import AddressError, normalize_address
from pcloud.events import Events, Expunged, FlagsChanged, MailboxChanged, MessageAdded
from pcloud.store import maildir
from pcloud.store.durable import fsync_folder
from pcloud.store.index import (
    MIGRATIONS,
    cached_header_lines,
    first_values,
    kept_fields,
    text_filter,
)
from pcloud.store.mail_values import (
    DEFAULT_MAILBOXES,
    MAILDIR_FLAGS,
    SPECIAL_USES,
    FlagChange,
    FlagMode,
    Mailbox,
    MailboxChanges,
    MailboxExists,
    MailboxNotFound,
    MailboxView,
    MailStoreError,
    Message,
    NoSuchAccount,
    QuotaExceeded,
    Stored,
    normalize_flags,
    normalize_mailbox_name,
    split_flags,
)
from pcloud.store.maildir import INBOX
from pcloud.store.sqlite import open_database

log = logging.getLogger(__name__)

# Seconds a delivered message waits before its file is written, so that files are written in
# batches (one flush of the folder and one index transaction for many) and seldom while a
# delivery is being stored: with one client sending, writing each file at once halved the rate.
WRITE_DELAY = 0.5

# A message as its index row has it: UID, flags (space-separated, sorted), MODSEQ, internal
# date, size, and the header fields the index keeps, as stored (read with index.kept_fields;
# "" when not asked for).
MessageRow = tuple[int, str, int, int, int, str]


@dataclass(eq=False)
class _Delivery:
    """A message waiting for the transaction that stores it (see Account.deliver)."""

    mailbox: str
    content: bytes
    flags: tuple[str, ...]
    internal_date: int
    headers: str
    stored: Stored | None = None  # once committed
    error: MailStoreError | None = None  # refused
    failure: Exception | None = None  # the commit failed

    @property
    def done(self) -> bool:
        return self.stored is not None or self.error is not None or self.failure is not None


class Account:
    """One account's mailboxes. Get it from `MailStore.account(address)`."""

    def __init__(
        self,
        folder: Path,
        address: str,
        events: Events,
        quota: Callable[[], int],
        writer: Executor,
    ) -> None:
        self.folder = folder
        self.address = address
        self.events = events
        self.quota = quota  # bytes, 0 for none; asked at each change, so it applies at once
        self._writer = writer  # where delivered files are written (see deliver)
        self._lock = threading.Lock()
        # Held by whoever writes delivered files, taken before the lock; deliveries need only
        # the lock, so that they go on while the background writer writes.
        self._writing = threading.Lock()
        self._waiting_lock = threading.Lock()  # guards the two below
        self._waiting: list[_Delivery] = []
        self._write_due = False
        self._closed = False
        maildir.create_folder(folder, "")
        self._db = open_database(folder / "index.sqlite3", MIGRATIONS)
        with self._writing, self._lock:
            self._create_default_mailboxes()
            self._reconcile()
            self._write_out()

    def close(self) -> None:
        with self._writing, self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._write_out()
            except OSError as error:  # written at the next open
                log.warning("mail files not written account=%s error=%s", self.address, error)
            self._db.close()

    # -- helpers ------------------------------------------------------------------------------

    def _rows(self, sql: str, *args: object) -> list[sqlite3.Row]:
        cursor = self._db.execute(sql, args)
        cursor.row_factory = sqlite3.Row
        return cursor.fetchall()

    def _mailbox_row(self, name: str) -> sqlite3.Row:
        rows = self._rows("SELECT * FROM mailboxes WHERE name = ?", normalize_mailbox_name(name))
        if not rows:
            raise MailboxNotFound(f"no mailbox {name}")
        return rows[0]

    def _folder_path(self, folder: str) -> Path:
        return self.folder / folder if folder else self.folder

    def _begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def _check_quota(self, adding: int, limit: int) -> None:
        if not limit:
            return
        (used,) = self._db.execute("SELECT bytes FROM account").fetchone()
        if used + adding > limit:
            raise QuotaExceeded(
                f"mailbox full: {used + adding} bytes would exceed the quota of {limit}"
            )

    def _insert_mailbox(self, name: str, special_use: str | None) -> None:
        folder = maildir.folder_name(name)
        maildir.create_folder(self.folder, folder)
        # Seconds since 2020 (fits 32 bits for a century), and never one used before here.
        (last,) = self._db.execute("SELECT last_uidvalidity FROM account").fetchone()
        uidvalidity = max(int(time.time()) - 1_577_836_800, last + 1)
        self._db.execute("UPDATE account SET last_uidvalidity = ?", (uidvalidity,))
        self._db.execute(
            "INSERT INTO mailboxes (name, folder, special_use, uidvalidity, uidnext,"
            " highestmodseq) VALUES (?, ?, ?, ?, 1, 1)",
            (name, folder, special_use, uidvalidity),
        )

    def _create_default_mailboxes(self) -> None:
        if self._db.execute("SELECT count(*) FROM mailboxes").fetchone()[0]:
            return
        self._begin()
        for name, special_use in DEFAULT_MAILBOXES:
            self._insert_mailbox(name, special_use)
        self._db.execute("COMMIT")

    def _reconcile(self) -> None:
        """Make the index agree with the files (after a crash, or another program's writes)."""
        known_folders = {row["folder"] for row in self._rows("SELECT folder FROM mailboxes")}
        self._begin()
        try:
            for entry in sorted(self.folder.iterdir()):
                if (
                    entry.is_dir()
                    and entry.name.startswith(".")
                    and entry.name not in known_folders
                ):
                    name = maildir.mailbox_name(entry.name)
                    log.warning("reconcile: folder without mailbox account=%s mailbox=%s",
                                self.address, name)  # fmt: skip
                    self._insert_mailbox(name, None)
            for mailbox in self._rows("SELECT id, name, folder FROM mailboxes"):
                self._reconcile_mailbox(mailbox)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _reconcile_mailbox(self, mailbox: sqlite3.Row) -> None:
        path = self._folder_path(mailbox["folder"])
        if not all((path / sub).is_dir() for sub in maildir.SUBFOLDERS):
            # A crash during a rename or delete: the rows below are dropped as files without
            # rows (mail renamed away comes back as a mailbox of its own, with new UIDs).
            log.warning("reconcile: mailbox folder missing, recreated account=%s mailbox=%s",
                        self.address, mailbox["name"])  # fmt: skip
            maildir.create_folder(self.folder, mailbox["folder"])
        removed = maildir.remove_leftovers(path, time.time())
        if removed:
            log.warning("reconcile: leftovers removed from tmp account=%s mailbox=%s files=%s",
                        self.address, mailbox["name"], removed)  # fmt: skip
        files = maildir.message_files(path)
        indexed = {
            row["file"]: row["uid"]
            for row in self._rows(
                "SELECT file, uid FROM messages WHERE mailbox_id = ?", mailbox["id"]
            )
        }
        unwritten = {
            uid
            for (uid,) in self._db.execute(
                "SELECT uid FROM unwritten WHERE mailbox_id = ?", (mailbox["id"],)
            )
        }
        missing = [
            uid for file, uid in indexed.items() if file not in files and uid not in unwritten
        ]
        if missing:
            log.warning("reconcile: messages without files dropped account=%s mailbox=%s uids=%s",
                        self.address, mailbox["name"], missing)  # fmt: skip
            self._delete_rows(mailbox["id"], missing)
        new_files = sorted(set(files) - set(indexed))
        for file in new_files:
            data = files[file].read_bytes()
            suffix = file.partition(":2,")[2]
            flags = normalize_flags(MAILDIR_FLAGS[c] for c in suffix if c in MAILDIR_FLAGS)
            self._add_row(
                mailbox["id"], file, flags, int(files[file].stat().st_mtime), len(data),
                json.dumps(cached_header_lines(data)),
            )  # fmt: skip
        if new_files:  # one line, not one per file: an imported Maildir may hold 100,000
            log.warning("reconcile: files indexed account=%s mailbox=%s count=%d",
                        self.address, mailbox["name"], len(new_files))  # fmt: skip

    def _next_modseq(self, mailbox_id: int) -> int:
        (modseq,) = self._db.execute(
            "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?"
            " RETURNING highestmodseq",
            (mailbox_id,),
        ).fetchone()
        return int(modseq)

    def _add_row(
        self,
        mailbox_id: int,
        file: str,
        flags: Sequence[str],
        internal_date: int,
        size: int,
        headers: str,
    ) -> tuple[int, int]:
        """Index a message (its file in place, or its content about to be stored with it);
        returns its UID and MODSEQ."""
        uid, modseq = self._db.execute(
            "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1"
            " WHERE id = ? RETURNING uidnext - 1, highestmodseq",
            (mailbox_id,),
        ).fetchone()
        self._db.execute(
            "INSERT INTO messages (mailbox_id, uid, file, flags, modseq, internal_date, size,"
            " headers) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (mailbox_id, uid, file, " ".join(flags), modseq, internal_date, size, headers),
        )  # fmt: skip
        return uid, modseq

    def _delete_rows(self, mailbox_id: int, uids: Sequence[int]) -> int:
        modseq = self._next_modseq(mailbox_id)
        for uid in uids:
            self._db.execute(
                "DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", (mailbox_id, uid)
            )
            self._db.execute(
                "INSERT OR REPLACE INTO vanished VALUES (?, ?, ?)", (mailbox_id, uid, modseq)
            )
        return modseq

    # -- mailboxes ----------------------------------------------------------------------------

    def mailboxes(self, name: str | None = None) -> list[Mailbox]:
        """Every mailbox (INBOX first), or the one named, with its counts."""
        where, args = ("WHERE m.name = ?", [normalize_mailbox_name(name)]) if name else ("", [])
        with self._lock:
            rows = self._rows(
                "SELECT m.*, count(x.uid) AS messages, coalesce(sum(x.size), 0) AS size,"
                " coalesce(sum(x.uid IS NOT NULL"
                "              AND instr(' ' || x.flags || ' ', ' \\Seen ') = 0), 0) AS unseen,"
                " coalesce(sum(instr(' ' || x.flags || ' ', ' \\Deleted ') > 0), 0) AS deleted"
                f" FROM mailboxes m LEFT JOIN messages x ON x.mailbox_id = m.id {where}"
                " GROUP BY m.id ORDER BY m.name = 'INBOX' DESC, m.name",
                *args,
            )
        return [
            Mailbox(r["name"], r["special_use"], r["uidvalidity"], r["uidnext"], r["highestmodseq"],
                    bool(r["subscribed"]), r["messages"], r["unseen"], r["size"], r["deleted"])
            for r in rows
        ]  # fmt: skip

    def mailbox(self, name: str) -> Mailbox:
        found = self.mailboxes(name)
        if not found:
            raise MailboxNotFound(f"no mailbox {name}")
        return found[0]

    def view(self, name: str) -> MailboxView:
        """A mailbox's state and UIDs, consistent with each other (one read transaction)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                row = self._mailbox_row(name)
                uids = array("I")
                unseen, first_unseen, flag_sets = 0, None, set()
                for uid, flags in self._db.execute(
                    "SELECT uid, flags FROM messages WHERE mailbox_id = ? ORDER BY uid",
                    (row["id"],),
                ):
                    uids.append(uid)
                    if "\\Seen" not in flags:
                        unseen += 1
                        first_unseen = first_unseen or uid
                    flag_sets.add(flags)
            finally:
                self._db.execute("COMMIT")
        keywords = {flag for text in flag_sets for flag in split_flags(text)}
        return MailboxView(
            row["name"], row["uidvalidity"], row["uidnext"], row["highestmodseq"], uids, unseen,
            first_unseen, tuple(sorted(flag for flag in keywords if not flag.startswith("\\"))),
        )  # fmt: skip

    def special_mailbox(self, special_use: str) -> str:
        """The mailbox with this special use (RFC 6154), or INBOX when there is none."""
        with self._lock:
            rows = self._rows(
                "SELECT name FROM mailboxes WHERE special_use = ? ORDER BY id", special_use
            )
        return str(rows[0]["name"]) if rows else INBOX

    def subscribe(self, name: str, subscribed: bool) -> None:
        """Mark a mailbox subscribed or not (IMAP SUBSCRIBE/UNSUBSCRIBE, RFC 9051 §6.3.7)."""
        name = normalize_mailbox_name(name)
        with self._lock:
            self._mailbox_row(name)
            self._db.execute(
                "UPDATE mailboxes SET subscribed = ? WHERE name = ?", (int(subscribed), name)
            )

    def create_mailbox(self, name: str, special_use: str | None = None) -> None:
        name = normalize_mailbox_name(name)
        if special_use is not None and special_use not in SPECIAL_USES:
            raise MailStoreError(f"{special_use} is not a special use")
        with self._lock:
            self._begin()
            try:
                if self._rows("SELECT 1 FROM mailboxes WHERE name = ?", name):
                    raise MailboxExists(f"mailbox {name} already exists")
                self._insert_mailbox(name, special_use)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        log.info("mailbox created account=%s mailbox=%s", self.address, name)
        self.events.publish(MailboxChanged(self.address, name, name, created=True))

    def rename_mailbox(self, old: str, new: str) -> None:
        """Rename a mailbox and the mailboxes below it; their UIDs stay valid. Renaming INBOX
        moves its messages to a new mailbox and leaves INBOX empty (RFC 9051 §6.3.6)."""
        old, new = normalize_mailbox_name(old), normalize_mailbox_name(new)
        if old == INBOX:
            self.create_mailbox(new)
            self.move(INBOX, [message.uid for message in self.messages(INBOX, headers=False)], new)
            return
        if new == old or new.startswith(old + "/"):
            raise MailStoreError(f"cannot rename {old} into itself")
        with self._lock:
            self._begin()
            renamed: list[tuple[Path, Path]] = []
            try:
                self._mailbox_row(old)
                if self._rows("SELECT 1 FROM mailboxes WHERE name = ?", new):
                    raise MailboxExists(f"mailbox {new} already exists")
                moving = self._rows(
                    "SELECT id, name, folder FROM mailboxes"
                    " WHERE name = ? OR substr(name, 1, ?) = ?",
                    old, len(old) + 1, old + "/",
                )  # fmt: skip
                for row in moving:
                    name = new + row["name"][len(old) :]
                    folder = maildir.folder_name(name)
                    before, after = self._folder_path(row["folder"]), self._folder_path(folder)
                    os.rename(before, after)
                    renamed.append((before, after))
                    self._db.execute(
                        "UPDATE mailboxes SET name = ?, folder = ? WHERE id = ?",
                        (name, folder, row["id"]),
                    )
                fsync_folder(self.folder)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._undo_renames(renamed)
                raise
        log.info("mailbox renamed account=%s from=%s to=%s", self.address, old, new)
        self.events.publish(MailboxChanged(self.address, old, new))

    def _undo_renames(self, renamed: list[tuple[Path, Path]]) -> None:
        """Put folders back where they were, as far as possible (reconcile copes with the rest
        at the next open)."""
        try:
            for before, after in reversed(renamed):
                os.rename(after, before)
            fsync_folder(self.folder)
        except OSError as error:
            log.warning("folder move not undone account=%s error=%s", self.address, error)

    def delete_mailbox(self, name: str) -> None:
        """Delete a mailbox and its messages (the mailboxes below it stay)."""
        name = normalize_mailbox_name(name)
        if name == INBOX:
            raise MailStoreError("INBOX cannot be deleted")
        with self._lock:
            row = self._mailbox_row(name)
            path = self._folder_path(row["folder"])
            doomed = self.folder / "tmp" / f"deleted-{row['id']}-{time.time_ns()}"
            os.rename(path, doomed)  # out of sight first: reconcile must not bring it back
            try:
                fsync_folder(self.folder)
                self._begin()
                self._db.execute("DELETE FROM mailboxes WHERE id = ?", (row["id"],))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._undo_renames([(path, doomed)])
                raise
            # A delivery writing into it meanwhile may make this fail; the next open clears it.
            shutil.rmtree(doomed, ignore_errors=True)
        log.info("mailbox deleted account=%s mailbox=%s", self.address, name)
        self.events.publish(MailboxChanged(self.address, name, None))

    # -- messages -----------------------------------------------------------------------------

    def deliver(
        self,
        message: bytes,
        *,
        mailbox: str = INBOX,
        flags: Iterable[str] = (),
        internal_date: float | None = None,
    ) -> Stored:
        """Store a message (SMTP delivery, IMAP APPEND); on disk when this returns.

        Group commit: the message waits for the account's lock; whoever takes it next stores
        every message waiting in one transaction, so concurrent deliveries share one flush.
        The file is written afterwards (see the module's invariants)."""
        delivery = _Delivery(
            normalize_mailbox_name(mailbox), message, normalize_flags(flags),
            int(internal_date or time.time()), json.dumps(cached_header_lines(message)),
        )  # fmt: skip
        with self._waiting_lock:
            self._waiting.append(delivery)
        with self._lock:
            if not delivery.done:
                self._commit_waiting()
        if delivery.failure is not None:
            raise MailStoreError("could not store the message") from delivery.failure
        if delivery.error is not None:
            raise delivery.error
        assert delivery.stored is not None
        return delivery.stored

    def _commit_waiting(self) -> None:
        """Store every delivery waiting, then publish their events in commit order (the caller
        holds the lock). Each delivery gets its Stored, its own refusal, or the failure."""
        with self._waiting_lock:
            batch, self._waiting = self._waiting, []
        limit = self.quota()
        try:
            self._begin()
            for delivery in batch:
                size = len(delivery.content)
                try:
                    row = self._mailbox_row(delivery.mailbox)
                    self._check_quota(size, limit)  # with the rows added before it
                except (MailboxNotFound, QuotaExceeded) as error:
                    delivery.error = error
                    continue
                uid, modseq = self._add_row(
                    row["id"], maildir.unique_name(size), delivery.flags,
                    delivery.internal_date, size, delivery.headers,
                )  # fmt: skip
                self._db.execute(
                    "INSERT INTO unwritten VALUES (?, ?, ?)", (row["id"], uid, delivery.content)
                )
                delivery.stored = Stored(row["name"], uid, row["uidvalidity"], modseq)
            self._db.execute("COMMIT")
        except Exception as error:
            with contextlib.suppress(sqlite3.ProgrammingError):  # closed (retired) meanwhile
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            log.warning("mail commit failed account=%s messages=%d error=%s",
                        self.address, len(batch), error)  # fmt: skip
            for delivery in batch:
                if delivery.error is None:  # each delivering thread raises an error of its own
                    delivery.stored, delivery.failure = None, error
            return
        stored = [delivery.stored for delivery in batch if delivery.stored is not None]
        if stored:
            self._schedule_write_out()
        for done in stored:
            self.events.publish(MessageAdded(self.address, done.mailbox, done.uid, done.modseq))

    def _schedule_write_out(self) -> None:
        with self._waiting_lock:
            if self._write_due:
                return
            self._write_due = True
        self._writer.submit(self._write_out_soon, time.monotonic() + WRITE_DELAY)

    def _write_out_soon(self, due: float) -> None:
        """Write delivered files in the background, once `due`."""
        time.sleep(max(0.0, due - time.monotonic()))
        with self._waiting_lock:
            self._write_due = False  # what is committed from now on needs another run
        try:
            with self._writing:
                self._write_pending()
        except Exception as error:  # tried again by the next delivery, reader or open
            log.warning("mail files not written yet account=%s error=%r", self.address, error)

    def _write_pending(self) -> None:
        """Write every file not written yet, taking the account's lock only to read each
        message and to note what is written, so that deliveries go on meanwhile (the caller
        holds `_writing`)."""
        while True:
            with self._lock:
                if self._closed:
                    return
                pending = self._unwritten()
            if not pending:
                return
            written = self._write_files(pending, self._lock)
            with self._lock:
                if self._closed:
                    return
                self._drop_written(written)

    def _write_out(self) -> None:
        """Write every file not written yet (the caller holds `_writing` and the lock)."""
        while pending := self._unwritten():
            self._drop_written(self._write_files(pending, contextlib.nullcontext()))

    def _unwritten(self) -> list[tuple[int, int, str]]:
        """Some messages whose files are not written: mailbox id, UID, file name."""
        return self._db.execute(
            "SELECT mailbox_id, uid, file FROM unwritten JOIN messages USING (mailbox_id, uid)"
            " LIMIT 100"
        ).fetchall()

    def _write_files(
        self, pending: list[tuple[int, int, str]], lock: contextlib.AbstractContextManager[Any]
    ) -> list[tuple[int, int]]:
        """Write these messages' files into cur/ (through tmp/, flushed, cur/ flushed), taking
        `lock` only to read each one; returns the (mailbox id, UID) of those written. A mailbox
        renamed or deleted meanwhile fails a rename here (tried again later) or takes the file
        with it."""
        written, folders = [], set()
        for mailbox_id, uid, file in pending:
            with lock:
                found = self._db.execute(
                    "SELECT b.folder, u.content FROM unwritten u JOIN messages m"
                    " USING (mailbox_id, uid) JOIN mailboxes b ON b.id = u.mailbox_id"
                    " WHERE u.mailbox_id = ? AND u.uid = ? AND m.file = ?",
                    (mailbox_id, uid, file),
                ).fetchone()
            if found is None:  # it went with its mailbox
                continue
            path = self._folder_path(found[0])
            maildir.write_message(path, file, found[1])
            os.rename(path / "tmp" / file, path / "cur" / file)
            folders.add(path)
            written.append((mailbox_id, uid))
        for path in folders:
            fsync_folder(path / "cur")
        return written

    def _drop_written(self, written: list[tuple[int, int]]) -> None:
        """Drop from the index the content of messages whose files are on disk (the caller
        holds the lock). Not flushed: the next flushed commit takes it to disk (the log is
        written in order), and a crash before that only writes the same files again."""
        self._db.execute("PRAGMA synchronous = NORMAL")
        try:
            self._begin()
            self._db.executemany("DELETE FROM unwritten WHERE mailbox_id = ? AND uid = ?", written)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        finally:
            self._db.execute("PRAGMA synchronous = FULL")

    def messages(
        self,
        mailbox: str,
        uid_ranges: Sequence[tuple[int, int]] | None = None,
        *,
        headers: bool | Collection[str] = True,
        changed_since: int | None = None,
        containing: str | None = None,
    ) -> list[Message]:
        """Messages in UID order: all, or those in the (low, high) UID ranges; with the first
        value of each header field the index keeps (or of those named by `headers`; none for
        False); only those whose MODSEQ exceeds changed_since; with `containing`, leaving out
        messages whose kept fields surely do not hold that text (index.text_filter), without
        decoding their rows."""
        rows = self.message_rows(
            mailbox, uid_ranges, headers=bool(headers), changed_since=changed_since,
            containing=containing,
        )  # fmt: skip
        names = None if isinstance(headers, bool) else headers
        return [
            Message(r[0], split_flags(r[1]), r[2], r[3], r[4],
                    first_values(kept_fields(r[5]), names) if headers else {})
            for r in rows
        ]  # fmt: skip

    def message_rows(
        self,
        mailbox: str,
        uid_ranges: Sequence[tuple[int, int]] | None = None,
        *,
        headers: bool = True,
        changed_since: int | None = None,
        containing: str | None = None,
    ) -> list[MessageRow]:
        """What messages() returns, as the index has it: for listing many messages (IMAP FETCH
        1:*), which building a Message for each would slow down by a third."""
        columns = "uid, flags, modseq, internal_date, size, " + ("headers" if headers else "''")
        sql = f"SELECT {columns} FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ?"
        if changed_since is not None:
            sql += f" AND modseq > {int(changed_since)}"
        arguments: list[str] = []
        if containing is not None:
            condition, arguments = text_filter(containing)
            sql += f" AND {condition}"
        with self._lock:
            row = self._mailbox_row(mailbox)
            return [
                found
                for low, high in uid_ranges or [(1, 2**32)]
                for found in self._db.execute(
                    sql + " ORDER BY uid", (row["id"], low, high, *arguments)
                )
            ]

    def vanished(
        self, mailbox: str, since_modseq: int, uid_ranges: Sequence[tuple[int, int]] | None = None
    ) -> list[int]:
        """UIDs expunged after `since_modseq` (RFC 7162 QRESYNC), ascending."""
        with self._lock:
            row = self._mailbox_row(mailbox)
            return [
                uid
                for low, high in uid_ranges or [(1, 2**32)]
                for (uid,) in self._db.execute(
                    "SELECT uid FROM vanished WHERE mailbox_id = ? AND modseq > ?"
                    " AND uid BETWEEN ? AND ? ORDER BY uid",
                    (row["id"], since_modseq, low, high),
                )
            ]

    def changes(self, mailbox: str, since_modseq: int) -> MailboxChanges:
        """Messages added or changed, and UIDs expunged, after `since_modseq`."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                row = self._mailbox_row(mailbox)
                # Sorted here: ORDER BY uid would make SQLite walk the whole mailbox in UID order
                # rather than the few changed rows by MODSEQ, at every catch-up.
                changed = [
                    Message(r[0], split_flags(r[1]), r[2], r[3], r[4], {})
                    for r in sorted(
                        self._db.execute(
                            "SELECT uid, flags, modseq, internal_date, size FROM messages"
                            " WHERE mailbox_id = ? AND modseq > ?",
                            (row["id"], since_modseq),
                        )
                    )
                ]
                vanished = [
                    uid
                    for (uid,) in self._db.execute(
                        "SELECT uid FROM vanished WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
                        (row["id"], since_modseq),
                    )
                ]
            finally:
                self._db.execute("COMMIT")
        return MailboxChanges(row["uidvalidity"], row["highestmodseq"], changed, vanished)

    def message_files(self, mailbox: str, uids: Iterable[int]) -> dict[int, Path]:
        """The files of these messages (those that still exist), to stream from."""
        wanted = set(uids)
        if not wanted:
            return {}
        with self._writing:
            self._write_pending()
        with self._lock:
            row = self._mailbox_row(mailbox)
            cur = self._folder_path(row["folder"]) / "cur"
            return {
                uid: cur / file
                for uid, file in self._db.execute(
                    "SELECT uid, file FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ?",
                    (row["id"], min(wanted), max(wanted)),
                )
                if uid in wanted
            }

    def message_file(self, mailbox: str, uid: int) -> Path:
        """The message's file, to stream from (it never changes while it exists)."""
        found = self.message_files(mailbox, [uid])
        if uid not in found:
            raise MailStoreError(f"no message {uid} in {mailbox}")
        return found[uid]

    def set_flags(
        self,
        mailbox: str,
        uids: Iterable[int],
        flags: Iterable[str],
        mode: FlagMode,
        *,
        unchanged_since: int | None = None,
    ) -> FlagChange:
        """Add, remove or replace flags (IMAP STORE, RFC 7162 UNCHANGEDSINCE)."""
        wanted = set(normalize_flags(flags))
        with self._lock:
            row = self._mailbox_row(mailbox)
            self._begin()
            changed, failed, modseq = [], [], row["highestmodseq"]
            try:
                current = {
                    r["uid"]: r
                    for r in self._rows(
                        "SELECT uid, flags, modseq FROM messages WHERE mailbox_id = ?", row["id"]
                    )
                }
                updates = []
                for uid in sorted(set(uids)):
                    message = current.get(uid)
                    if message is None:
                        continue
                    if unchanged_since is not None and message["modseq"] > unchanged_since:
                        failed.append(uid)
                        continue
                    before = set(split_flags(message["flags"]))
                    after = {"add": before | wanted, "remove": before - wanted, "replace": wanted}[
                        mode
                    ]
                    if after != before:
                        updates.append((uid, " ".join(sorted(after))))
                if updates:
                    modseq = self._next_modseq(row["id"])
                    for uid, text in updates:
                        self._db.execute(
                            "UPDATE messages SET flags = ?, modseq = ?"
                            " WHERE mailbox_id = ? AND uid = ?",
                            (text, modseq, row["id"], uid),
                        )
                        changed.append(uid)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        if changed:
            self.events.publish(FlagsChanged(self.address, row["name"], tuple(changed), modseq))
        return FlagChange(modseq, changed, failed)

    def copy(self, source: str, uids: Iterable[int], target: str) -> list[tuple[int, int]]:
        """Copy messages (hard links: the content is shared); returns (old UID, new UID) pairs."""
        with self._writing, self._lock:
            self._write_out()
            source_row, target_row = self._mailbox_row(source), self._mailbox_row(target)
            rows = self._rows(
                "SELECT uid, file, flags, internal_date, size, headers FROM messages"
                " WHERE mailbox_id = ?"
                " ORDER BY uid",
                source_row["id"],
            )
            wanted = set(uids)
            rows = [r for r in rows if r["uid"] in wanted]
            self._check_quota(sum(r["size"] for r in rows), self.quota())
            source_path = self._folder_path(source_row["folder"]) / "cur"
            target_path = self._folder_path(target_row["folder"])
            links: list[str] = []
            pairs, added = [], []
            try:
                for r in rows:
                    links.append(maildir.link_message(source_path / r["file"], target_path))
                fsync_folder(target_path / "cur")
                self._begin()
                for r, link in zip(rows, links, strict=True):
                    uid, modseq = self._add_row(
                        target_row["id"], link, split_flags(r["flags"]), r["internal_date"],
                        r["size"], r["headers"],
                    )  # fmt: skip
                    pairs.append((r["uid"], uid))
                    added.append(MessageAdded(self.address, target_row["name"], uid, modseq))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                for link in links:
                    (target_path / "cur" / link).unlink(missing_ok=True)
                raise
        for event in added:
            self.events.publish(event)
        return pairs

    def move(self, source: str, uids: Iterable[int], target: str) -> list[tuple[int, int]]:
        """Copy, then expunge from the source (RFC 6851)."""
        pairs = self.copy(source, uids, target)
        self.expunge(source, [old for old, _ in pairs], only_deleted=False)
        return pairs

    def expunge(
        self, mailbox: str, uids: Iterable[int] | None = None, *, only_deleted: bool = True
    ) -> list[int]:
        """Remove messages for good: those flagged \\Deleted (all, or only among `uids`), or
        with only_deleted=False exactly `uids`. Returns the UIDs removed."""
        with self._writing, self._lock:
            self._write_out()
            row = self._mailbox_row(mailbox)
            rows = self._rows(
                "SELECT uid, file, flags FROM messages WHERE mailbox_id = ? ORDER BY uid", row["id"]
            )
            wanted = None if uids is None else set(uids)
            doomed = [
                r for r in rows
                if (wanted is None or r["uid"] in wanted)
                and (not only_deleted or "\\Deleted" in split_flags(r["flags"]))
            ]  # fmt: skip
            if not doomed:
                return []
            folder_path = self._folder_path(row["folder"])
            moved = []
            try:
                for r in doomed:  # out of sight first: reconcile must not bring them back
                    hidden = folder_path / "tmp" / f"expunged-{r['file']}"
                    os.rename(folder_path / "cur" / r["file"], hidden)
                    moved.append((folder_path / "cur" / r["file"], hidden))
                fsync_folder(folder_path / "cur")
                self._begin()
                modseq = self._delete_rows(row["id"], [r["uid"] for r in doomed])
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                for original, hidden in reversed(moved):
                    os.rename(hidden, original)
                fsync_folder(folder_path / "cur")  # back for good: reconcile would drop them
                raise
            for _, hidden in moved:
                with contextlib.suppress(OSError):  # a leftover goes at the next open
                    hidden.unlink()
        removed = [r["uid"] for r in doomed]
        self.events.publish(Expunged(self.address, row["name"], tuple(removed), modseq))
        return removed

    def usage(self) -> tuple[int, int]:
        """(bytes, messages) stored in all mailboxes, as the quota counts them."""
        with self._lock:
            used_bytes, count = self._db.execute("SELECT bytes, messages FROM account").fetchone()
        return used_bytes, count


class MailStore:
    """Every account's mail under `<data>/mail/`; an account is opened at first use."""

    def __init__(self, root: Path, user_of: Callable[[str], User | None], events: Events) -> None:
        """`user_of(address)` is the directory's user (for the quota), None for no such user."""
        self.root = root
        self.user_of = user_of
        self.events = events
        self._lock = threading.Lock()  # guards the two dicts below, never held while opening
        # Keyed by address, with the generation (see _generation): a user deleted and created again
        # is another account.
        self._accounts: dict[str, tuple[tuple[int, int], Account]] = {}
        self._opening: dict[str, threading.Lock] = {}  # one per address: it opens once
        # One thread writes delivered messages' files, for every account (Account.deliver).
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="pcloud-mail-writer")
        root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _address(self, address: str) -> str:
        try:
            return normalize_address(address)
        except AddressError:
            raise NoSuchAccount(f"no account {address}") from None

    def _address_lock(self, address: str) -> threading.Lock:
        with self._lock:
            return self._opening.setdefault(address, threading.Lock())

    def _quota(self, address: str) -> int:
        user = self.user_of(address)
        return 0 if user is None else user.quota_bytes

    def account(self, address: str) -> Account:
        address = self._address(address)
        user = self.user_of(address)
        if user is None:
            raise NoSuchAccount(f"no account {address}")
        generation = self._generation(address, user.created)
        with self._lock:
            cached, account = self._accounts.get(address, (None, None))
        if account is not None and cached == generation:
            return account
        with self._address_lock(address):  # opening reconciles: the other accounts go on
            # Again: the folder may have been created meanwhile, by the opening of this account
            # that made us wait (a generation of 0 then would close the account just opened).
            generation = self._generation(address, user.created)
            with self._lock:
                cached, account = self._accounts.get(address, (None, None))
            if account is not None and cached == generation:
                return account
            if account is not None:
                account.close()  # a previous user's, whose mail was retired meanwhile
            account = Account(
                self.root / address,
                address,
                self.events,
                lambda: self._quota(address),
                self._writer,
            )
            with self._lock:
                self._accounts[address] = (self._generation(address, user.created), account)
            return account

    def _generation(self, address: str, created: int) -> tuple[int, int]:
        """What tells one holder of an address from the next: when the user was created, and
        which folder holds the mail (`pcloud user del` moves it away, from another process)."""
        try:
            folder = (self.root / address).stat().st_ino
        except FileNotFoundError:
            folder = 0
        return created, folder

    def retire(self, address: str) -> Path | None:
        """Move a deleted user's mail to `.retired/<address>.<unix time>/`, out of reach of a
        new user of the same address; returns where it went (None: there was no mail)."""
        address = self._address(address)
        with self._address_lock(address):
            with self._lock:
                _, account = self._accounts.pop(address, (None, None))
            if account is not None:
                account.close()
            source = self.root / address
            if not source.exists():
                return None
            retired = self.root / ".retired"
            retired.mkdir(mode=0o700, exist_ok=True)
            now = int(time.time())
            while (retired / f"{address}.{now}").exists():  # retired twice within a second
                now += 1
            target = retired / f"{address}.{now}"
            os.rename(source, target)
            fsync_folder(retired)
            fsync_folder(self.root)
            # A server (this process or another) may have stored messages whose files it had
            # not written yet: opening the account writes them, so that all of it is files.
            Account(target, address, self.events, lambda: 0, self._writer).close()
        log.info("mail retired account=%s to=%s", address, target)
        return target

    def close(self) -> None:
        with self._lock:
            for _, account in self._accounts.values():
                account.close()
            self._accounts.clear()
        self._writer.shutdown(cancel_futures=True)  # the accounts wrote all at close
