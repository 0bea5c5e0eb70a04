"""The outgoing mail queue: messages waiting for delivery to other servers.

On-disk layout (`<data>/queue/`):
    queue.sqlite3      one row per message (sender, when queued) and one per recipient still
                       to be delivered (attempts, when to try next, the last error)
    messages/<id>      the message itself, written and flushed before its rows are committed

A message is acknowledged only once both are on disk; its file is removed after its last
recipient is done (delivered, or returned to the sender), so a restart resumes where it was.
A message is sent twice only when the server stops between the other server's 250 and the
commit that records it (a crash, or a stop that cannot wait for a slow remote server).
Files without rows (a crash before the commit: never acknowledged) are removed at open.
"""

from __future__ import annotations

import logging
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pcloud.store.durable import fsync_folder, write_atomically
from pcloud.store.sqlite import open_database

log = logging.getLogger(__name__)

MIGRATIONS: tuple[str, ...] = (
    # 1: messages and their recipients.
    """
    CREATE TABLE messages (
        id TEXT PRIMARY KEY,
        sender TEXT NOT NULL,               -- "" for a bounce (RFC 5321 null reverse-path)
        created INTEGER NOT NULL,
        size INTEGER NOT NULL
    );
    CREATE TABLE recipients (
        message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt INTEGER NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (message_id, address)
    );
    CREATE INDEX recipients_due ON recipients (next_attempt);
    """,
)

_ID = re.compile(r"^\d+-[0-9a-f]{16}$")

# Waits between attempts: 5 minutes, doubling, at most 4 hours (RFC 5321 §4.5.4.1 asks for
# at least 30 minutes in general; the first retries come sooner because most failures are
# short greylisting).
FIRST_RETRY = 300
LONGEST_RETRY = 4 * 3600


@dataclass(frozen=True)
class Queued:
    id: str
    sender: str
    created: int
    size: int
    recipients: tuple[QueuedRecipient, ...]


@dataclass(frozen=True)
class QueuedRecipient:
    address: str
    attempts: int
    next_attempt: int
    last_error: str


class QueueStore:
    def __init__(self, folder: Path, on_enqueue: Callable[[], None] | None = None) -> None:
        self.folder = folder
        self.messages_folder = folder / "messages"
        self.messages_folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.on_enqueue = on_enqueue  # the delivery worker's wake-up call
        self._lock = threading.Lock()
        self._db = open_database(folder / "queue.sqlite3", MIGRATIONS)
        self._remove_unqueued_files()

    def _remove_unqueued_files(self) -> None:
        """Files left by a crash before their rows were committed: never acknowledged."""
        queued = {row[0] for row in self._db.execute("SELECT id FROM messages")}
        for path in self.messages_folder.iterdir():
            if path.name not in queued:
                log.warning("queue: removing a file that was never queued file=%s", path.name)
                path.unlink()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def message_file(self, message_id: str) -> Path:
        if not _ID.match(message_id):  # ids come from the command line too: no paths
            raise ValueError(f"not a queue id: {message_id!r}")
        return self.messages_folder / message_id

    def read(self, message_id: str) -> bytes | None:
        """The queued message, None when it is no longer queued."""
        try:
            return self.message_file(message_id).read_bytes()
        except FileNotFoundError:
            return None

    def enqueue(self, sender: str, recipients: list[str], message: bytes) -> str:
        """Queue a message; on disk when this returns."""
        message_id = f"{int(time.time())}-{secrets.token_hex(8)}"
        write_atomically(self.message_file(message_id), message, mode=0o600)
        now = int(time.time())
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO messages VALUES (?, ?, ?, ?)", (message_id, sender, now, len(message))
            )
            self._db.executemany(
                "INSERT INTO recipients (message_id, address, next_attempt) VALUES (?, ?, ?)",
                [(message_id, address, now) for address in sorted(set(recipients))],
            )
            self._db.execute("COMMIT")
        log.info("queued id=%s from=%s to=%s size=%d",
                 message_id, sender, ",".join(recipients), len(message))  # fmt: skip
        if self.on_enqueue:
            self.on_enqueue()
        return message_id

    def entries(self) -> list[Queued]:
        with self._lock:
            messages = self._rows("SELECT * FROM messages ORDER BY created, id")
            recipients = self._rows("SELECT * FROM recipients ORDER BY address")
        by_message: dict[str, list[QueuedRecipient]] = {}
        for r in recipients:
            by_message.setdefault(r["message_id"], []).append(
                QueuedRecipient(r["address"], r["attempts"], r["next_attempt"], r["last_error"])
            )
        return [
            Queued(
                m["id"], m["sender"], m["created"], m["size"], tuple(by_message.get(m["id"], []))
            )
            for m in messages
        ]  # fmt: skip

    def due(self, now: float) -> list[Queued]:
        return [
            Queued(q.id, q.sender, q.created, q.size,
                   tuple(r for r in q.recipients if r.next_attempt <= now))
            for q in self.entries()
            if any(r.next_attempt <= now for r in q.recipients)
        ]  # fmt: skip

    def next_due(self) -> int | None:
        with self._lock:
            (when,) = self._db.execute("SELECT min(next_attempt) FROM recipients").fetchone()
        return int(when) if when is not None else None

    def done(self, message_id: str, address: str) -> None:
        """The recipient is delivered, or returned to the sender: forget it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "DELETE FROM recipients WHERE message_id = ? AND address = ?", (message_id, address)
            )
            left = self._db.execute(
                "SELECT count(*) FROM recipients WHERE message_id = ?", (message_id,)
            ).fetchone()[0]
            if not left:
                self._db.execute("DELETE FROM messages WHERE id = ?", (message_id,))
            self._db.execute("COMMIT")
            if not left:
                self.message_file(message_id).unlink(missing_ok=True)
                fsync_folder(self.messages_folder)

    def defer(self, message_id: str, address: str, error: str) -> None:
        """Try again later, each time waiting twice as long (nothing if it is gone)."""
        with self._lock:
            self._db.execute(
                "UPDATE recipients SET attempts = attempts + 1, last_error = ?,"
                " next_attempt = ? + min(?, ? << min(attempts, 20))"
                " WHERE message_id = ? AND address = ?",
                (error, int(time.time()), LONGEST_RETRY, FIRST_RETRY, message_id, address),
            )

    def retry_now(self, message_id: str | None = None) -> int:
        """Make recipients due now (all, or one message's); returns how many."""
        with self._lock:
            if message_id is None:
                cursor = self._db.execute("UPDATE recipients SET next_attempt = 0")
            else:
                cursor = self._db.execute(
                    "UPDATE recipients SET next_attempt = 0 WHERE message_id = ?", (message_id,)
                )
        if self.on_enqueue:
            self.on_enqueue()
        return cursor.rowcount

    def delete(self, message_id: str) -> bool:
        if not _ID.match(message_id):
            return False
        with self._lock:
            deleted = self._db.execute("DELETE FROM messages WHERE id = ?", (message_id,)).rowcount
        if deleted:
            self.message_file(message_id).unlink(missing_ok=True)
        return bool(deleted)

    def _rows(self, sql: str, *args: object) -> list[sqlite3.Row]:
        cursor = self._db.execute(sql, args)
        cursor.row_factory = sqlite3.Row
        return cursor.fetchall()
