"""SQLite databases of the data folder: opened one way, migrated one way.

WAL journal (readers never wait for the writer), `synchronous = FULL` (a committed transaction
is on disk before COMMIT returns, so an acknowledged change survives a power cut), foreign keys
on. Each database's schema is a tuple of migrations, one per version (PRAGMA user_version);
a migration is appended, never edited.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


class SchemaTooNew(Exception):
    """The data folder was written by a newer pcloud."""


def open_database(path: Path, migrations: tuple[str, ...]) -> sqlite3.Connection:
    """Open (creating) a database, private to this user, migrated to the current schema. The
    connection may be used from several threads, one at a time: the caller holds a lock."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA busy_timeout = 5000")
        path.chmod(0o600)
        _migrate(db, path, migrations)
    except BaseException:
        db.close()
        raise
    return db


def _migrate(db: sqlite3.Connection, path: Path, migrations: tuple[str, ...]) -> None:
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise SchemaTooNew(
            f"{path} is at schema version {version}, newer than this pcloud knows "
            f"({len(migrations)}): upgrade pcloud"
        )
    for number, script in enumerate(migrations[version:], start=version + 1):
        db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
