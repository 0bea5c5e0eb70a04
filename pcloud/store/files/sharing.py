"""Shares between users and public links: `<data>/files/shares.sqlite3` (WAL).

They concern two users (or one user and the world), so they live beside the trees, in one
database for the store. A share or link names a path in its owner's tree; moving or deleting that
path leaves it pointing at nothing (it resolves to "not found") until the owner revokes it.

Link tokens are 128-bit random strings kept as they are, so that `pcloud files link list` can
show the address again (they travel in URLs and server logs anyway); a link's password is chosen
by a person, so it is hashed as user passwords are (scrypt, passwords.py).
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from pathlib import Path

from pcloud.directory import passwords
from pcloud.store.files.values import (
    AlreadyExists,
    Link,
    LinkNotFound,
    NotFound,
    PasswordRequired,
    Share,
)
from pcloud.store.sqlite import open_database

MIGRATIONS = (
    """
    CREATE TABLE shares (
        owner TEXT NOT NULL,
        path TEXT NOT NULL,
        grantee TEXT NOT NULL,
        writable INTEGER NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (owner, path, grantee)
    );
    CREATE INDEX shares_grantee ON shares (grantee);
    CREATE TABLE links (
        token TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        path TEXT NOT NULL,
        upload_only INTEGER NOT NULL,
        expires REAL,
        password_hash TEXT,
        created REAL NOT NULL
    );
    """,
)


class Sharing:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_database(path, MIGRATIONS)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, *args: object) -> list[sqlite3.Row]:
        with self._lock:
            cursor = self._db.execute(sql, args)
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()

    # -- shares ---------------------------------------------------------------------------------

    def add_share(self, share: Share) -> None:
        """Add or change a share; its name must be free in the grantee's Shared/<owner>/."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for (path,) in self._db.execute(
                    "SELECT path FROM shares WHERE owner = ? AND grantee = ? AND path != ?",
                    (share.owner, share.grantee, share.path),
                ):
                    if path.rpartition("/")[2] == share.name:
                        raise AlreadyExists(
                            f"{share.grantee} already has Shared/{share.owner}/{share.name}"
                            f" (from /{path})"
                        )
                self._db.execute(
                    "INSERT OR REPLACE INTO shares VALUES (?, ?, ?, ?, ?)",
                    (share.owner, share.path, share.grantee, share.writable, share.created),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def remove_share(self, owner: str, path: str, grantee: str) -> None:
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM shares WHERE owner = ? AND path = ? AND grantee = ?",
                (owner, path, grantee),
            )
        if not cursor.rowcount:
            raise NotFound(f"/{path} of {owner} is not shared with {grantee}")

    def shares(self, *, owner: str | None = None, grantee: str | None = None) -> list[Share]:
        rows = self._rows(
            "SELECT * FROM shares WHERE (? IS NULL OR owner = ?) AND (? IS NULL OR grantee = ?)"
            " ORDER BY owner, path, grantee",
            owner, owner, grantee, grantee,
        )  # fmt: skip
        return [
            Share(r["owner"], r["path"], r["grantee"], bool(r["writable"]), r["created"])
            for r in rows
        ]

    # -- public links ---------------------------------------------------------------------------

    def add_link(
        self,
        owner: str,
        path: str,
        *,
        upload_only: bool,
        expires: float | None,
        password: str | None,
        now: float,
    ) -> Link:
        token = secrets.token_hex(16)  # never starts with '-', unlike token_urlsafe
        password_hash = passwords.hash_password(password) if password else None
        with self._lock:
            self._db.execute(
                "INSERT INTO links VALUES (?, ?, ?, ?, ?, ?, ?)",
                (token, owner, path, upload_only, expires, password_hash, now),
            )
        return Link(token, owner, path, upload_only, expires, password_hash is not None, now)

    def links(self, owner: str | None = None) -> list[Link]:
        rows = self._rows(
            "SELECT * FROM links WHERE ? IS NULL OR owner = ? ORDER BY owner, created",
            owner, owner,
        )  # fmt: skip
        return [_link(row) for row in rows]

    def remove_link(self, owner: str, token: str) -> Link:
        rows = self._rows("SELECT * FROM links WHERE token = ? AND owner = ?", token, owner)
        if not rows:
            raise NotFound(f"no link {token}")
        with self._lock:
            self._db.execute("DELETE FROM links WHERE token = ?", (token,))
        return _link(rows[0])

    def check_link(self, token: str, password: str | None, now: float) -> Link:
        """The link of a token, if it is valid now and the password (if it has one) matches."""
        rows = self._rows("SELECT * FROM links WHERE token = ?", token)
        if not rows or (rows[0]["expires"] is not None and rows[0]["expires"] <= now):
            raise LinkNotFound("no such link, or it has expired")
        stored = rows[0]["password_hash"]
        if stored is not None:
            if not password:
                raise PasswordRequired("this link needs a password")
            if not passwords.verify_password(password, stored):
                raise PasswordRequired("wrong password for this link")
        return _link(rows[0])


def _link(row: sqlite3.Row) -> Link:
    return Link(
        row["token"], row["owner"], row["path"], bool(row["upload_only"]), row["expires"],
        row["password_hash"] is not None, row["created"],
    )  # fmt: skip
