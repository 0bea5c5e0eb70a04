"""The directory's SQLite schema, one migration per version (PRAGMA user_version).

A migration is appended, never edited: a data folder at version N runs migrations N+1.. at open.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: domains, users, app passwords, SSH keys, aliases.
    """
    CREATE TABLE domains (
        name TEXT PRIMARY KEY,
        created INTEGER NOT NULL
    );
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL UNIQUE,
        domain TEXT NOT NULL REFERENCES domains(name),
        display_name TEXT NOT NULL DEFAULT '',
        password_hash TEXT NOT NULL,
        is_admin INTEGER NOT NULL DEFAULT 0,
        quota_bytes INTEGER NOT NULL DEFAULT 0,  -- 0: no limit
        created INTEGER NOT NULL
    );
    CREATE TABLE app_passwords (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        created INTEGER NOT NULL,
        last_used INTEGER,
        UNIQUE (user_id, label)
    );
    CREATE TABLE ssh_keys (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        public_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        comment TEXT NOT NULL DEFAULT '',
        created INTEGER NOT NULL,
        UNIQUE (user_id, fingerprint)
    );
    -- An alias delivers to each of its targets: local users or external addresses.
    -- The address "@domain" is that domain's catch-all.
    CREATE TABLE aliases (
        address TEXT NOT NULL,
        domain TEXT NOT NULL REFERENCES domains(name),
        target TEXT NOT NULL,
        created INTEGER NOT NULL,
        PRIMARY KEY (address, target)
    );
    """,
)


class SchemaTooNew(Exception):
    """The data folder was written by a newer pcloud."""


def migrate(db: sqlite3.Connection) -> None:
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise SchemaTooNew(
            f"the directory is at schema version {version}, newer than this pcloud knows "
            f"({len(MIGRATIONS)}): upgrade pcloud"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
