"""WebDAV's own state beside the files: locks and dead properties, kept across restarts.

Layout: `<data>/files/webdav.sqlite3`, two tables of JSON values by key (bytes, such as XML
with its declaration, as {"base64": …}):
    locks        WsgiDAV's lock storage records: "<token>" -> the lock (owner, depth, scope,
                 expiry, root URL...) and "URL2TOKEN:<URL>" -> the tokens locking that URL
    properties   "<URL>" -> {property name in Clark notation: its XML as text}
The URLs are WebDAV's keys, "/<address>/<path>" (one key space for every user).

The state is WebDAV's alone (SFTP knows no locks or properties): a file renamed over SFTP leaves
its properties behind at the old URL. Each change is one committed transaction.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, MutableMapping
from typing import Any

from pcloud.store.files import FileStore
from pcloud.store.sqlite import open_database

MIGRATIONS = (
    """
    CREATE TABLE locks (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE properties (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
)
TABLES = ("locks", "properties")


class WebdavState:
    """The database, and one mapping per table."""

    def __init__(self, store: FileStore) -> None:
        self._db = open_database(store.root / "webdav.sqlite3", MIGRATIONS)
        self._lock = threading.Lock()
        self.locks = JsonTable(self._db, self._lock, "locks")
        self.properties = JsonTable(self._db, self._lock, "properties")

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _dumps(value: Any) -> str:
    def encode(item: object) -> dict[str, str]:
        if isinstance(item, bytes):
            return {"base64": base64.b64encode(item).decode()}
        raise TypeError(f"{type(item).__name__} is not stored")

    return json.dumps(value, default=encode)


def _loads(text: str) -> Any:
    def decode(item: dict[str, Any]) -> Any:
        return base64.b64decode(item["base64"]) if item.keys() == {"base64"} else item

    return json.loads(text, object_hook=decode)


class JsonTable(MutableMapping[str, Any]):
    """A table as a dict of JSON values (what WsgiDAV's in-memory storages keep in a dict).
    Values are copies: change one and assign it back."""

    def __init__(self, db: Any, lock: threading.Lock, table: str) -> None:
        assert table in TABLES  # the name goes into SQL text
        self._db = db
        self._lock = lock
        self._table = table

    def _query(self, sql: str, *args: object) -> list[Any]:
        with self._lock:
            return self._db.execute(sql.format(table=self._table), args).fetchall()  # type: ignore[no-any-return]

    def __getitem__(self, key: str) -> Any:
        rows = self._query("SELECT value FROM {table} WHERE key = ?", key)
        if not rows:
            raise KeyError(key)
        return _loads(rows[0][0])

    def __setitem__(self, key: str, value: Any) -> None:
        self._query("INSERT OR REPLACE INTO {table} VALUES (?, ?)", key, _dumps(value))

    def __delitem__(self, key: str) -> None:
        with self._lock:
            cursor = self._db.execute(f"DELETE FROM {self._table} WHERE key = ?", (key,))
        if not cursor.rowcount:
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return bool(self._query("SELECT 1 FROM {table} WHERE key = ?", key))

    def __iter__(self) -> Iterator[str]:
        return iter([row[0] for row in self._query("SELECT key FROM {table}")])

    def __len__(self) -> int:
        count: int = self._query("SELECT count(*) FROM {table}")[0][0]
        return count

    def items(self) -> Any:  # one query rather than one per key
        return [(key, _loads(value)) for key, value in self._query("SELECT * FROM {table}")]

    def clear(self) -> None:
        self._query("DELETE FROM {table}")
