"""Chat state of the XMPP server: each user's roster with its subscription states (RFC 6121 §2,
§3), and messages kept for users who were offline (RFC 6121 §8.5.2.1.1, XEP-0160).

On-disk layout: `<data>/xmpp/xmpp.sqlite3` (WAL, see pcloud.store.sqlite):
    roster_items     (owner, contact): name, groups (JSON list), subscription ("none", "to",
                     "from", "both"), ask (our subscription request is pending out), pending_in
                     (the contact's request awaits the owner's answer), listed (the item is in
                     the owner's roster; an unanswered request from a stranger is kept unlisted)
    roster_versions  owner → version, raised by every change of a listed item (RFC 6121 §2.6)
    offline          messages as serialized stanzas, oldest first, per owner
    archive          each user's message archive (XEP-0313): chat messages they sent or
                     received, with the bare JID of the other side (`with_jid`), a random id
                     (`uid`, what clients page by), and when (`stamp`, microseconds)

A deleted user's chat state goes with them (`forget_user`, called by `pcloud user del`): their
roster, kept messages and archive, and their items in everyone else's roster, so that a new user
of the same address inherits neither contacts nor subscriptions.

Owners and contacts are bare JIDs (`user@domain`). The store knows nothing of XML: stanzas are
strings the protocol made. The subscription rules themselves live in pcloud.xmpp.subscription.
Every call is short and synchronous, on the event loop, holding the lock (as the directory).
"""

from __future__ import annotations

import json
import logging
import secrets
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
    """
    CREATE TABLE archive (
        id INTEGER PRIMARY KEY,
        owner TEXT NOT NULL,
        uid TEXT NOT NULL UNIQUE,
        with_jid TEXT NOT NULL,
        stamp INTEGER NOT NULL,
        stanza TEXT NOT NULL
    );
    CREATE INDEX archive_owner ON archive (owner, id);
    CREATE INDEX archive_with ON archive (owner, with_jid, id);
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


@dataclass(frozen=True)
class Archived:
    uid: str
    stamp: int  # microseconds since the epoch
    stanza: str


@dataclass(frozen=True)
class Page:
    items: list[Archived]  # oldest first
    complete: bool  # no more in the direction paged
    count: int  # how many match the query in all


class UnknownArchiveId(Exception):
    """An `after` or `before` id that is not in the owner's archive."""


class XmppStore:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = open_database(folder / DATABASE_FILE, MIGRATIONS)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self, *, flushed: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction; `flushed=False` commits without waiting for the disk (the next
        flushed commit takes it there: the log is written in order)."""
        with self._lock:
            if not flushed:
                self._db.execute("PRAGMA synchronous = NORMAL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            finally:
                if not flushed:
                    self._db.execute("PRAGMA synchronous = FULL")

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

    def forget_user(self, address: str) -> list[str]:
        """Delete everything of a deleted user's: their roster and kept messages, and their
        items in others' rosters. Returns the owners whose listed roster lost them."""
        address = address.lower()  # a bare JID is stored as its stringprep makes it
        with self._transaction() as db:
            owners = [
                str(row[0])
                for row in db.execute(
                    "SELECT owner FROM roster_items WHERE contact = ? AND listed ORDER BY owner",
                    (address,),
                )
            ]
            db.execute(
                "DELETE FROM roster_items WHERE owner = ? OR contact = ?", (address, address)
            )
            db.execute("DELETE FROM offline WHERE owner = ?", (address,))
            db.execute("DELETE FROM archive WHERE owner = ?", (address,))
            # raised, not reset: a client's cached version must not match a new user's roster
            for owner in [address, *owners]:
                self._bump(db, owner)
        log.info("xmpp data deleted address=%s rosters_changed=%d", address, len(owners))
        return owners

    # -- message archive (XEP-0313) ----------------------------------------------------------

    def archive(self, entries: list[tuple[str, str, str]]) -> None:
        """Keep messages in archives, in one transaction: (owner, with_jid, stanza) each.

        Not flushed: this runs on the event loop, and the archive holds copies of messages
        already delivered, so a power cut may cost its last second or so (never a message
        waiting for an offline user: those commits are flushed, and take these with them)."""
        stamp = time.time_ns() // 1000
        with self._transaction(flushed=False) as db:
            db.executemany(
                "INSERT INTO archive (owner, uid, with_jid, stamp, stanza) VALUES (?, ?, ?, ?, ?)",
                [(owner, secrets.token_urlsafe(12), peer, stamp, text)
                 for owner, peer, text in entries],
            )  # fmt: skip

    def archived(
        self,
        owner: str,
        *,
        with_jid: str | None = None,
        start: int | None = None,
        end: int | None = None,
        after: str | None = None,
        before: str | None = None,
        last: bool = False,
        limit: int = 100,
    ) -> Page:
        """A page of a user's archive, oldest first: the first `limit` matches after `after`,
        or with `last` (or `before`) the last `limit` before `before`."""
        where, values = ["owner = ?"], [owner]
        if with_jid is not None:
            where.append("with_jid = ?")
            values.append(with_jid)
        if start is not None:
            where.append("stamp >= ?")
            values.append(str(start))
        if end is not None:
            where.append("stamp <= ?")
            values.append(str(end))
        matching = " AND ".join(where)
        with self._lock:
            (count,) = self._db.execute(
                f"SELECT count(*) FROM archive WHERE {matching}", values
            ).fetchone()
            low, high = _page_bounds(self._db, owner, after, before)
            backwards = last or bool(before)
            rows = self._db.execute(
                f"SELECT uid, stamp, stanza FROM archive WHERE {matching} AND id > ? AND id < ?"
                f" ORDER BY id {'DESC' if backwards else 'ASC'} LIMIT ?",
                [*values, low, high, limit + 1],
            ).fetchall()
        complete = len(rows) <= limit
        items = [Archived(str(r[0]), int(r[1]), str(r[2])) for r in rows[:limit]]
        if backwards:
            items.reverse()
        return Page(items, complete, int(count))

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


def _page_bounds(
    db: sqlite3.Connection, owner: str, after: str | None, before: str | None
) -> tuple[int, int]:
    """The row ids strictly between which a page lies."""
    bounds = []
    for uid, default in ((after, 0), (before, 2**63 - 1)):
        if not uid:
            bounds.append(default)
            continue
        row = db.execute(
            "SELECT id FROM archive WHERE owner = ? AND uid = ?", (owner, uid)
        ).fetchone()
        if row is None:
            raise UnknownArchiveId(uid)
        bounds.append(int(row[0]))
    return bounds[0], bounds[1]


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
