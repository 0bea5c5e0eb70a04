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
                     received, with the bare JID of the other side (`with_jid`), a unique id
                     (`uid`, what clients page by), and when (`stamp`, microseconds)
    pep_nodes        each user's personal pubsub nodes (XEP-0163): (owner, node) → config JSON
    pep_items        their items, in publishing order (`id`): item_id and payload (XML text)
    vcards           each user's vCard (XEP-0054) as XML text, without its photo (the avatar
                     store keeps that)
    blocklist        the JIDs each user blocks (XEP-0191), as JID strings (full, bare, domain)
    roster_seeded    the contacts put in each user's roster from their address book, so that
                     one the user removes is not put back (pcloud.xmpp.contacts)

A deleted user's chat state goes with them (`forget_user`, called by `pcloud user del`): their
roster, kept messages, archive, personal pubsub nodes, vCard and blocklist, and their items in
everyone else's roster, so that a new user of the same address inherits neither contacts nor
subscriptions.

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
    """
    CREATE TABLE pep_nodes (
        owner TEXT NOT NULL,
        node TEXT NOT NULL,
        config TEXT NOT NULL,
        PRIMARY KEY (owner, node)
    );
    CREATE TABLE pep_items (
        id INTEGER PRIMARY KEY,
        owner TEXT NOT NULL,
        node TEXT NOT NULL,
        item_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        UNIQUE (owner, node, item_id)
    );
    CREATE INDEX pep_items_node ON pep_items (owner, node, id);
    CREATE TABLE vcards (
        owner TEXT PRIMARY KEY,
        vcard TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE blocklist (
        owner TEXT NOT NULL,
        jid TEXT NOT NULL,
        PRIMARY KEY (owner, jid)
    );
    CREATE TABLE roster_seeded (
        owner TEXT NOT NULL,
        contact TEXT NOT NULL,
        PRIMARY KEY (owner, contact)
    );
    """,
    """
    CREATE TABLE deleted_users (
        address TEXT PRIMARY KEY,
        contacts TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE private_storage (
        owner TEXT NOT NULL,
        namespace TEXT NOT NULL,
        element TEXT NOT NULL,
        PRIMARY KEY (owner, namespace)
    );
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


class PepQuotaExceeded(Exception):
    """A publish or a new node beyond what one user may keep; the message says which bound."""


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
            for table in (
                "pep_nodes",
                "pep_items",
                "vcards",
                "blocklist",
                "roster_seeded",
                "private_storage",
            ):
                db.execute(f"DELETE FROM {table} WHERE owner = ?", (address,))
            # raised, not reset: a client's cached version must not match a new user's roster
            for owner in [address, *owners]:
                self._bump(db, owner)
            # for a running server, whose sessions the deleting process cannot reach
            db.execute(
                "INSERT OR REPLACE INTO deleted_users VALUES (?, ?)", (address, json.dumps(owners))
            )
        log.info("xmpp data deleted address=%s rosters_changed=%d", address, len(owners))
        return owners

    # -- private XML storage (XEP-0049) -------------------------------------------------------

    def private_element(self, owner: str, namespace: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT element FROM private_storage WHERE owner = ? AND namespace = ?",
                (owner, namespace),
            ).fetchone()
        return str(row[0]) if row else None

    def put_private_element(self, owner: str, namespace: str, element: str, limit: int) -> bool:
        """Keep (or replace) the owner's element of a namespace; False when they already have
        `limit` others."""
        with self._transaction() as db:
            (others,) = db.execute(
                "SELECT count(*) FROM private_storage WHERE owner = ? AND namespace != ?",
                (owner, namespace),
            ).fetchone()
            if others >= limit:
                return False
            db.execute(
                "INSERT OR REPLACE INTO private_storage VALUES (?, ?, ?)",
                (owner, namespace, element),
            )
        return True

    # -- users deleted while the server runs (pcloud.xmpp.accounts) ------------------------

    def deleted_users(self) -> list[tuple[str, list[str]]]:
        """Users deleted since the server last looked, each with the owners whose roster lost
        them (see pcloud.xmpp.accounts)."""
        with self._lock:
            rows = self._db.execute("SELECT address, contacts FROM deleted_users").fetchall()
        return [(str(address), json.loads(contacts)) for address, contacts in rows]

    def clear_deleted(self, address: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM deleted_users WHERE address = ?", (address,))

    # -- message archive (XEP-0313) ----------------------------------------------------------

    def archive(self, entries: list[tuple[str, str, str, int, str]]) -> None:
        """Keep messages in archives, in one transaction: (owner, uid, with_jid, stamp, stanza)
        each, the uid unique (the protocol makes it: messages carry it as they are delivered).

        Not flushed: this runs on the event loop, and the archive holds copies of messages
        already delivered, so a power cut may cost its last second or so (never a message
        waiting for an offline user: those commits are flushed, and take these with them)."""
        with self._transaction(flushed=False) as db:
            db.executemany(
                "INSERT INTO archive (owner, uid, with_jid, stamp, stanza) VALUES (?, ?, ?, ?, ?)",
                entries,
            )

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

    # -- personal eventing (XEP-0163) and vCards (XEP-0054) ------------------------------------

    def pep_config(self, owner: str, node: str) -> dict[str, str] | None:
        """A node's configuration, or None when the owner has no such node."""
        with self._lock:
            row = self._db.execute(
                "SELECT config FROM pep_nodes WHERE owner = ? AND node = ?", (owner, node)
            ).fetchone()
        return dict(json.loads(row[0])) if row else None

    def pep_nodes(self, owner: str) -> dict[str, dict[str, str]]:
        """Every node of the owner's, with its configuration."""
        with self._lock:
            rows = self._db.execute(
                "SELECT node, config FROM pep_nodes WHERE owner = ? ORDER BY node", (owner,)
            ).fetchall()
        return {str(node): dict(json.loads(config)) for node, config in rows}

    def pep_items(
        self, owner: str, node: str, *, item_ids: list[str] | None = None, last: int = 0
    ) -> list[tuple[str, str]]:
        """(item id, payload) of a node's items, oldest first: those named, or the `last` most
        recently published, or all."""
        query = "SELECT item_id, payload FROM pep_items WHERE owner = ? AND node = ?"
        values: list[object] = [owner, node]
        if item_ids is not None:
            query += f" AND item_id IN ({', '.join('?' * len(item_ids))})"
            values += item_ids
        query += " ORDER BY id DESC"
        if last:
            query += " LIMIT ?"
            values.append(last)
        with self._lock:
            rows = self._db.execute(query, values).fetchall()
        return [(str(item_id), str(payload)) for item_id, payload in reversed(rows)]

    def pep_configure(
        self, owner: str, node: str, config: dict[str, str], *, keep: int, max_nodes: int
    ) -> None:
        """Create a node or replace its configuration, keeping its `keep` latest items;
        PepQuotaExceeded when a new node would be more than `max_nodes`."""
        with self._transaction() as db:
            self._put_node(db, owner, node, config, max_nodes, replace=True)
            self._trim(db, owner, node, keep)

    def pep_publish(
        self,
        owner: str,
        node: str,
        config: dict[str, str],
        item: tuple[str, str],
        *,
        keep: int,
        max_nodes: int,
        max_bytes: int,
    ) -> None:
        """Publish an (item id, payload) to a node, created with `config` if it is new; an item
        of the same id is replaced and becomes the latest. PepQuotaExceeded beyond `max_nodes`
        nodes or `max_bytes` characters of payloads for the owner."""
        item_id, payload = item
        with self._transaction() as db:
            self._put_node(db, owner, node, config, max_nodes, replace=False)
            (used,) = db.execute(
                "SELECT coalesce(sum(length(payload)), 0) FROM pep_items"
                " WHERE owner = ? AND NOT (node = ? AND item_id = ?)",
                (owner, node, item_id),
            ).fetchone()
            if used + len(payload) > max_bytes:
                raise PepQuotaExceeded(f"more than {max_bytes} characters of items")
            db.execute(
                "INSERT OR REPLACE INTO pep_items (owner, node, item_id, payload)"
                " VALUES (?, ?, ?, ?)",
                (owner, node, item_id, payload),
            )
            self._trim(db, owner, node, keep)

    def pep_retract(self, owner: str, node: str, item_id: str) -> bool:
        """Delete an item; False when there was none."""
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM pep_items WHERE owner = ? AND node = ? AND item_id = ?",
                (owner, node, item_id),
            )
        return cursor.rowcount > 0

    def pep_delete(self, owner: str, node: str) -> bool:
        """Delete a node and its items; False when there was none."""
        with self._transaction() as db:
            db.execute("DELETE FROM pep_items WHERE owner = ? AND node = ?", (owner, node))
            cursor = db.execute("DELETE FROM pep_nodes WHERE owner = ? AND node = ?", (owner, node))
        return cursor.rowcount > 0

    def _put_node(
        self,
        db: sqlite3.Connection,
        owner: str,
        node: str,
        config: dict[str, str],
        max_nodes: int,
        *,
        replace: bool,
    ) -> None:
        exists = db.execute(
            "SELECT 1 FROM pep_nodes WHERE owner = ? AND node = ?", (owner, node)
        ).fetchone()
        if exists and not replace:
            return
        if not exists:
            (count,) = db.execute(
                "SELECT count(*) FROM pep_nodes WHERE owner = ?", (owner,)
            ).fetchone()
            if count >= max_nodes:
                raise PepQuotaExceeded(f"more than {max_nodes} nodes")
        db.execute(
            "INSERT OR REPLACE INTO pep_nodes VALUES (?, ?, ?)",
            (owner, node, json.dumps(config, sort_keys=True)),
        )

    def _trim(self, db: sqlite3.Connection, owner: str, node: str, keep: int) -> None:
        db.execute(
            "DELETE FROM pep_items WHERE owner = ? AND node = ? AND id NOT IN"
            " (SELECT id FROM pep_items WHERE owner = ? AND node = ? ORDER BY id DESC LIMIT ?)",
            (owner, node, owner, node, keep),
        )

    def vcard(self, owner: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT vcard FROM vcards WHERE owner = ?", (owner,)).fetchone()
        return str(row[0]) if row else None

    def put_vcard(self, owner: str, text: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO vcards VALUES (?, ?)", (owner, text))

    # -- blocking (XEP-0191) and roster seeding from the address book ---------------------------

    def blocked(self, owner: str) -> frozenset[str]:
        with self._lock:
            rows = self._db.execute("SELECT jid FROM blocklist WHERE owner = ?", (owner,))
            return frozenset(str(row[0]) for row in rows)

    def block(self, owner: str, jids: list[str], limit: int) -> list[str] | None:
        """Add JIDs to a user's blocklist; returns those it did not hold, or None (and changes
        nothing) when it would hold more than `limit`."""
        with self._transaction() as db:
            rows = db.execute("SELECT jid FROM blocklist WHERE owner = ?", (owner,))
            present = {str(row[0]) for row in rows}
            added = [jid for jid in dict.fromkeys(jids) if jid not in present]
            if len(present) + len(added) > limit:
                return None
            db.executemany("INSERT INTO blocklist VALUES (?, ?)", [(owner, j) for j in added])
        return added

    def unblock(self, owner: str, jids: list[str] | None) -> list[str]:
        """Take JIDs (None: all) off a user's blocklist; returns those it held."""
        with self._transaction() as db:
            rows = db.execute("SELECT jid FROM blocklist WHERE owner = ? ORDER BY jid", (owner,))
            present = [str(row[0]) for row in rows]
            removed = present if jids is None else [j for j in dict.fromkeys(jids) if j in present]
            db.executemany(
                "DELETE FROM blocklist WHERE owner = ? AND jid = ?", [(owner, j) for j in removed]
            )
        return removed

    def seed_roster(self, owner: str, items: list[RosterItem]) -> list[tuple[RosterItem, int]]:
        """Put address book contacts in a user's roster, each once ever: one seeded before (and
        perhaps removed by the user since) or already listed is passed over; an unlisted one
        (a stranger's pending request) becomes listed with its subscription state kept.
        Returns the items listed, each with the roster version after it."""
        listed: list[tuple[RosterItem, int]] = []
        with self._transaction() as db:
            for item in items:
                first = db.execute(
                    "INSERT INTO roster_seeded VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (owner, item.contact),
                )
                if not first.rowcount:
                    continue
                added = db.execute(
                    "INSERT INTO roster_items (owner, contact, name, groups) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (owner, contact) DO UPDATE"
                    " SET name = excluded.name, groups = excluded.groups, listed = 1"
                    " WHERE NOT listed",
                    (owner, item.contact, item.name, json.dumps(list(item.groups))),
                )
                if added.rowcount:
                    row = db.execute(
                        "SELECT * FROM roster_items WHERE owner = ? AND contact = ?",
                        (owner, item.contact),
                    ).fetchone()
                    listed.append((_item(row), self._bump(db, owner)))
        return listed


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
