"""Chat state of the XMPP server: each user's roster with its subscription states (RFC 6121 §2,
§3), and messages kept for users who were offline (RFC 6121 §8.5.2.1.1, XEP-0160).

On-disk layout: `<data>/xmpp/xmpp.sqlite3` (WAL, see pcloud.store.sqlite):
    roster_items     (owner, contact): name, groups (JSON list), subscription ("none", "to",
                     "from", "both"), ask (our subscription request is pending out), pending_in
                     (the contact's request awaits the owner's answer), listed (the item is in
                     the owner's roster; an unanswered request from a stranger is kept unlisted)
    roster_versions  owner → version, raised by every change of a listed item (RFC 6121 §2.6)
    offline          messages as serialized stanzas, oldest first, per owner

Owners and contacts are bare JIDs (`user@domain`). The store knows nothing of XML: stanzas are
strings the protocol made. The subscription rules themselves live in pcloud.xmpp.subscription.
Every call is short and synchronous, on the event loop, holding the lock (as the directory).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pcloud.store.sqlite import open_database

log = logging.getLogger(__name__)

DATABASE_FILE = "xmpp.sqlite3"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE roster_items (
        owner TEXT NOT NULL,
        contact TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        groups TEXT NOT NULL DEFAULT '[]',
        subscription TEXT NOT NULL DEFAULT 'none',
        ask INTEGER NOT NULL DEFAULT 0,
        pending_in INTEGER NOT NULL DEFAULT 0,
        listed INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (owner, contact)
    );
    CREATE TABLE roster_versions (
        owner TEXT PRIMARY KEY,
        version INTEGER NOT NULL
    );
    CREATE TABLE offline (
        id INTEGER PRIMARY KEY,
        owner TEXT NOT NULL,
        stanza TEXT NOT NULL,
        stored INTEGER NOT NULL
    );
    CREATE INDEX offline_owner ON offline (owner, id);
    """,
)


@dataclass(frozen=True)
class RosterItem:
    contact: str
    name: str = ""
    groups: tuple[str, ...] = ()
    subscription: str = "none"  # "none", "to", "from", "both"
    ask: bool = False  # pending out
    pending_in: bool = False
    listed: bool = True


class XmppStore:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = open_database(folder / DATABASE_FILE, MIGRATIONS)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- roster -------------------------------------------------------------------------------

    def roster(self, owner: str) -> tuple[int, list[RosterItem]]:
        """The version and the listed items of a user's roster."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM roster_items WHERE owner = ? AND listed ORDER BY contact", (owner,)
            ).fetchall()
            return self._version(self._db, owner), [_item(row) for row in rows]

    def roster_version(self, owner: str) -> int:
        with self._lock:
            return self._version(self._db, owner)

    def item(self, owner: str, contact: str) -> RosterItem | None:
        """The owner's state for a contact, listed or not."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM roster_items WHERE owner = ? AND contact = ?", (owner, contact)
            ).fetchone()
        return _item(row) if row else None

    def items(self, owner: str, *, pending_in: bool = False) -> list[RosterItem]:
        """Every item of the owner's, listed or not; only those with a request awaiting their
        answer when `pending_in`."""
        where = " AND pending_in" if pending_in else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM roster_items WHERE owner = ?{where} ORDER BY contact", (owner,)
            ).fetchall()
        return [_item(row) for row in rows]

    def put_item(self, owner: str, item: RosterItem) -> int:
        """Create or replace an item; returns the roster version after the change. An item with
        no subscription, no request either way and not listed is deleted."""
        with self._transaction() as db:
            before = db.execute(
                "SELECT listed FROM roster_items WHERE owner = ? AND contact = ?",
                (owner, item.contact),
            ).fetchone()
            if item.subscription == "none" and not (item.ask or item.pending_in or item.listed):
                db.execute(
                    "DELETE FROM roster_items WHERE owner = ? AND contact = ?",
                    (owner, item.contact),
                )
            else:
                db.execute(
                    "INSERT OR REPLACE INTO roster_items VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        owner,
                        item.contact,
                        item.name,
                        json.dumps(list(item.groups)),
                        item.subscription,
                        int(item.ask),
                        int(item.pending_in),
                        int(item.listed),
                    ),
                )
            if item.listed or (before and before[0]):
                return self._bump(db, owner)
            return self._version(db, owner)

    def remove_item(self, owner: str, contact: str) -> int:
        """Delete an item and its subscription states; returns the roster version after."""
        with self._transaction() as db:
            db.execute("DELETE FROM roster_items WHERE owner = ? AND contact = ?", (owner, contact))
            return self._bump(db, owner)

    def _version(self, db: sqlite3.Connection, owner: str) -> int:
        row = db.execute("SELECT version FROM roster_versions WHERE owner = ?", (owner,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, db: sqlite3.Connection, owner: str) -> int:
        version = self._version(db, owner) + 1
        db.execute("INSERT OR REPLACE INTO roster_versions VALUES (?, ?)", (owner, version))
        return version

    # -- offline messages ---------------------------------------------------------------------

    def store_offline(self, owner: str, stanza: str, limit: int) -> bool:
        """Keep a message for a user who is offline; False when they already have `limit`."""
        with self._transaction() as db:
            (count,) = db.execute(
                "SELECT count(*) FROM offline WHERE owner = ?", (owner,)
            ).fetchone()
            if count >= limit:
                return False
            db.execute(
                "INSERT INTO offline (owner, stanza, stored) VALUES (?, ?, ?)",
                (owner, stanza, int(time.time())),
            )
        return True

    def take_offline(self, owner: str) -> list[tuple[str, int]]:
        """The messages kept for a user, oldest first, with when each was stored (Unix time);
        they are deleted from the store."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT stanza, stored FROM offline WHERE owner = ? ORDER BY id", (owner,)
            ).fetchall()
            db.execute("DELETE FROM offline WHERE owner = ?", (owner,))
        return [(row[0], row[1]) for row in rows]


def _item(row: sqlite3.Row | tuple[object, ...]) -> RosterItem:
    _, contact, name, groups, subscription, ask, pending_in, listed = row
    return RosterItem(
        str(contact),
        str(name),
        tuple(json.loads(str(groups))),
        str(subscription),
        bool(ask),
        bool(pending_in),
        bool(listed),
    )
