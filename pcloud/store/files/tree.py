"""One user's files: the tree their clients see, the earlier versions of its files, the index.

Layout of `<data>/files/<address>/`:
    tree/                  the files and folders as clients see them (0600/0700), plain files
    blobs/<ab>/<sha256>    earlier contents, named by their SHA-256, each stored once
    tmp/                   uploads in progress, renamed into tree/ once complete
    owner                  the creation time of the user the folder belongs to (see FileStore)
    index.sqlite3          `live`: every file and folder of tree/ (size, mtime, inode, content
                           hash, since when it holds that content); `versions`: what each path
                           held before (hash, size, mtime, since, replaced, why); `state`

One index per user rather than one for the store: a user's files, versions and index are backed
up, moved or retired together, and one user's changes never wait for another's.

Invariants:
- Files in tree/ are never changed in place: a write goes to tmp/, is flushed, and renamed over
  its path. So a blob can be a hard link to the file it was (taken when the content leaves its
  path: O(1) whatever the size), and a reader holding a file open keeps the content it opened.
- Every content that leaves a path (overwritten, deleted, moved away) gets a `versions` row and
  its blob, in the same transaction as the change. Folders are not versioned: they come back
  with the files in them.
- Changes run inside `BEGIN IMMEDIATE`, so that the server and a `pcloud files` command in
  another process take turns. A crash between the file operation and the commit is repaired at
  the next open: `live` is reconciled with tree/ (a file whose inode, size or mtime differs is
  taken as it is, its hash computed when needed).
- No path from a client reaches this module unchecked (paths.safe_path), and no symlink is ever
  followed: each level is checked with lstat and files are opened with O_NOFOLLOW; symlinks put
  in tree/ by someone else are ignored (not listed, not served, not replaced).
- The methods block (file and SQLite I/O): protocols call them from worker threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from pcloud.config import FilesSection
from pcloud.store.durable import fsync_folder
from pcloud.store.files import retention
from pcloud.store.files.paths import folded, is_within, name_of, parent_of
from pcloud.store.files.values import (
    AlreadyExists,
    Entry,
    IsAFolder,
    NotAFolder,
    NotFound,
    ParentNotFound,
    PastFile,
    PathRefused,
    PermissionDenied,
    QuotaExceeded,
    Usage,
    Version,
)
from pcloud.store.sqlite import open_database

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
LEFTOVER_SECONDS = 3600  # a temporary file untouched this long belongs to no running upload
PRUNE_EVERY = 3600

MIGRATIONS = (
    """
    CREATE TABLE live (
        path TEXT PRIMARY KEY,
        folded TEXT NOT NULL UNIQUE,  -- no two names that differ only in case
        is_dir INTEGER NOT NULL,
        sha256 TEXT,  -- NULL: not known yet (a file found in tree/, not written by the store)
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        since REAL NOT NULL
    );
    CREATE TABLE versions (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        since REAL NOT NULL,
        replaced REAL NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE INDEX versions_path ON versions (path, replaced);
    CREATE INDEX versions_sha256 ON versions (sha256);
    CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL);
    CREATE TABLE state (key TEXT PRIMARY KEY, value);
    """,
)


def _within(path: str) -> tuple[str, tuple[str, ...]]:
    """SQL matching `path` and every path inside it, with its parameters: a range on the primary
    key ("a" matches "a" and "a/" < p < "a0", "/" + 1 being "0"); "" is the root, holding all."""
    if not path:
        return "1", ()
    return "(path = ? OR (path > ? || '/' AND path < ? || '0'))", (path, path, path)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class UserTree:
    """One user's tree. Paths here are already safe (paths.safe_path) and relative."""

    def __init__(
        self,
        folder: Path,
        address: str,
        policy: FilesSection,
        quota: Callable[[], int],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = folder
        self.address = address
        self.policy = policy
        self.quota = quota  # bytes, 0 for none; asked at each write, so a change applies at once
        self.clock = clock  # the time versions are stamped with (tests go back and forth in it)
        self.root = folder / "tree"
        self.blobs = folder / "blobs"
        self.tmp = folder / "tmp"
        for path in (folder, self.root, self.blobs, self.tmp):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = open_database(folder / "index.sqlite3", MIGRATIONS)
        self._last_prune = 0.0
        with self._change():
            self._reconcile()
        self._remove_leftovers()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- plumbing -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _change(self) -> Iterator[None]:
        """One change: the lock and a write transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _row(self, path: str) -> sqlite3.Row | None:
        cursor = self._db.execute("SELECT * FROM live WHERE path = ?", (path,))
        cursor.row_factory = sqlite3.Row
        row: sqlite3.Row | None = cursor.fetchone()
        return row

    def _rows(self, sql: str, *args: object) -> list[sqlite3.Row]:
        cursor = self._db.execute(sql, args)
        cursor.row_factory = sqlite3.Row
        return cursor.fetchall()

    def disk(self, path: str) -> Path:
        """Where a path is in tree/, refusing it when any level of it is a symlink."""
        current = self.root
        for name in path.split("/") if path else ():
            current = current / name
            try:
                if stat.S_ISLNK(os.lstat(current).st_mode):
                    raise PathRefused("symbolic links are not followed")
            except (FileNotFoundError, NotADirectoryError):  # "a/b" with "a" a file: no such
                break
        return current

    def _lstat(self, path: str) -> os.stat_result | None:
        try:
            result = os.lstat(self.disk(path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not (stat.S_ISREG(result.st_mode) or stat.S_ISDIR(result.st_mode)):
            return None  # a symlink or a device someone put there: not part of the tree
        return result

    def _entry(self, path: str, result: os.stat_result, writable: bool) -> Entry:
        is_dir = stat.S_ISDIR(result.st_mode)
        return Entry(
            path=path,
            name=name_of(path),
            is_dir=is_dir,
            size=0 if is_dir else result.st_size,
            mtime=result.st_mtime_ns / 1e9,
            etag=f"{result.st_ino:x}-{result.st_mtime_ns:x}-{result.st_size:x}",
            writable=writable,
        )

    def _blob(self, sha256: str) -> Path:
        return self.blobs / sha256[:2] / sha256

    def _index_live(
        self, path: str, result: os.stat_result, sha256: str | None, since: float
    ) -> None:
        is_dir = stat.S_ISDIR(result.st_mode)
        # Not INSERT OR REPLACE: that would drop a row whose name differs only in case.
        self._db.execute(
            "INSERT INTO live VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET"
            " is_dir = excluded.is_dir, sha256 = excluded.sha256, size = excluded.size,"
            " mtime_ns = excluded.mtime_ns, inode = excluded.inode, since = excluded.since",
            (path, folded(path), is_dir, sha256, 0 if is_dir else result.st_size,
             result.st_mtime_ns, result.st_ino, since),
        )  # fmt: skip

    def _check_new_name(self, path: str, renaming: str | None = None) -> None:
        """A new name in an existing folder, not taken, not even in another case (but a folder
        renamed to another case of its own name is fine)."""
        parent = parent_of(path)
        result = self._lstat(parent)
        if result is None:
            raise ParentNotFound(f"no folder /{parent}")
        if not stat.S_ISDIR(result.st_mode):
            raise NotAFolder(f"/{parent} is a file")
        for row in self._rows("SELECT path FROM live WHERE folded = ?", folded(path)):
            if renaming is None or not is_within(row["path"], renaming):
                raise AlreadyExists(f"/{row['path']} already exists")

    # -- reading --------------------------------------------------------------------------------

    def stat(self, path: str, writable: bool = True) -> Entry:
        result = self._lstat(path)
        if result is None:
            raise NotFound(f"no file or folder /{path}")
        return self._entry(path, result, writable)

    def listdir(self, path: str, writable: bool = True) -> list[Entry]:
        folder = self.stat(path)
        if not folder.is_dir:
            raise NotAFolder(f"/{path} is a file")
        entries = []
        with os.scandir(self.disk(path)) as scan:
            for item in scan:
                result = item.stat(follow_symlinks=False)
                if stat.S_ISREG(result.st_mode) or stat.S_ISDIR(result.st_mode):
                    child = f"{path}/{item.name}" if path else item.name
                    entries.append(self._entry(child, result, writable))
        return sorted(entries, key=lambda entry: entry.name)

    def open_read(self, path: str) -> BinaryIO:
        """The file's current content, open for reading (seek for ranges); a later write does
        not change what this handle reads."""
        try:
            descriptor = os.open(self.disk(path), os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no file /{path}") from None
        except OSError as error:  # ELOOP: the file itself is a symlink
            raise PathRefused(f"/{path} cannot be read: {error.strerror}") from None
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            raise IsAFolder(f"/{path} is a folder")
        return os.fdopen(descriptor, "rb")

    # -- writing --------------------------------------------------------------------------------

    def room(self, replacing: str | None = None) -> int | None:
        """Bytes that may still be written (None: no limit), counting the file a write replaces
        as freed when versions do not count against the quota."""
        limit = self.quota()
        if not limit:
            return None
        freed = 0
        if replacing is not None and not self.policy.versions_count_against_quota:
            row = self._row(replacing)
            freed = row["size"] if row is not None else 0
        return limit - self.usage().counted + freed

    def new_temporary(self) -> tuple[Path, int]:
        """A new file in tmp/ and its descriptor, open for writing."""
        path = self.tmp / f"{uuid.uuid4().hex}.part"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        return path, descriptor

    def exists(self, path: str) -> bool:
        return self._lstat(path) is not None

    def check_writable_file(self, path: str, exclusive: bool = False) -> None:
        """Fail early, before an upload streams, when the path cannot take a file."""
        if not path:
            raise IsAFolder("the root is a folder")
        result = self._lstat(path)
        if result is None:
            self._check_new_name(path)
        elif stat.S_ISDIR(result.st_mode):
            raise IsAFolder(f"/{path} is a folder")
        elif exclusive:
            raise AlreadyExists(f"/{path} already exists")

    def commit_upload(
        self, path: str, temporary: Path, sha256: str, mtime: float | None, exclusive: bool
    ) -> Entry:
        """Put a flushed temporary file at `path`, the previous content becoming a version."""
        size = temporary.stat().st_size
        if mtime is not None:
            os.utime(temporary, ns=(time.time_ns(), int(mtime * 1e9)))
        with self._change():
            self.check_writable_file(path, exclusive)
            room = self.room(path)
            if room is not None and size > room:
                raise QuotaExceeded(f"the quota of {self.quota()} bytes would be exceeded")
            now = self.clock()
            row = self._row(path)
            if row is not None:
                self._keep_version(row, "overwritten", now)
            target = self.disk(path)
            os.replace(temporary, target)
            fsync_folder(target.parent)
            self._index_live(path, os.lstat(target), sha256, now)
        self._prune_now_and_then(now)
        return self.stat(path)

    def _keep_version(self, row: sqlite3.Row, reason: str, now: float) -> None:
        """Record the file's content as a version and keep its blob (a hard link)."""
        disk = self.disk(row["path"])
        sha256 = row["sha256"]
        current = os.lstat(disk)
        if sha256 is None or current.st_ino != row["inode"]:
            sha256 = _hash_file(disk)
        blob = self._blob(sha256)
        if not blob.exists():
            blob.parent.mkdir(mode=0o700, exist_ok=True)
            os.link(disk, blob)
            fsync_folder(blob.parent)
        self._db.execute("INSERT OR IGNORE INTO blobs VALUES (?, ?)", (sha256, current.st_size))
        self._db.execute(
            "INSERT INTO versions (path, sha256, size, mtime_ns, since, replaced, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (row["path"], sha256, current.st_size, current.st_mtime_ns, row["since"], now, reason),
        )

    def mkdir(self, path: str) -> Entry:
        if not path:
            raise AlreadyExists("the root exists")
        with self._change():
            if self._lstat(path) is not None:
                raise AlreadyExists(f"/{path} already exists")
            self._check_new_name(path)
            target = self.disk(path)
            target.mkdir(mode=0o700)
            fsync_folder(target.parent)
            self._index_live(path, os.lstat(target), None, self.clock())
        return self.stat(path)

    def delete(self, path: str) -> None:
        """Delete a file, or a folder and all in it; every file's content is kept as a version."""
        if not path:
            raise PermissionDenied("the root cannot be deleted")
        with self._change():
            result = self._lstat(path)
            if result is None:
                raise NotFound(f"no file or folder /{path}")
            now = self.clock()
            within, args = _within(path)
            files = self._rows(f"SELECT * FROM live WHERE {within} AND NOT is_dir", *args)
            for row in files:
                self._keep_version(row, "deleted", now)
            target = self.disk(path)
            if stat.S_ISDIR(result.st_mode):
                # Out of the tree in one rename: no client sees it half deleted.
                doomed = self.tmp / f"{uuid.uuid4().hex}.deleted"
                os.rename(target, doomed)
                shutil.rmtree(doomed)
            else:
                target.unlink()
            fsync_folder(target.parent)
            self._db.execute(f"DELETE FROM live WHERE {within}", args)

    def move(self, source: str, target: str) -> Entry:
        """Rename within this tree. A file may replace a file (in one rename, the replaced content
        kept as a version); any other existing target must have been deleted first."""
        if not source or is_within(target, source):
            raise PermissionDenied(f"/{source} cannot be moved into itself")
        with self._change():
            if self._lstat(source) is None:
                raise NotFound(f"no file or folder /{source}")
            now = self.clock()
            replaced = self._row(target) if folded(source) != folded(target) else None
            if replaced is not None:
                moving = self._row(source)
                if replaced["is_dir"] or moving is None or moving["is_dir"]:
                    raise AlreadyExists(f"/{target} already exists")
                self._keep_version(replaced, "overwritten", now)
                self._db.execute("DELETE FROM live WHERE path = ?", (target,))
            self._check_new_name(target, renaming=source)
            within, args = _within(source)
            rows = self._rows(f"SELECT * FROM live WHERE {within}", *args)
            for row in rows:
                if not row["is_dir"]:
                    self._keep_version(row, "moved", now)
            from_disk, to_disk = self.disk(source), self.disk(target)
            os.rename(from_disk, to_disk)
            fsync_folder(to_disk.parent)
            if from_disk.parent != to_disk.parent:
                fsync_folder(from_disk.parent)
            self._db.execute(f"DELETE FROM live WHERE {within}", args)
            for row in rows:
                moved = target + row["path"][len(source) :]
                self._db.execute(
                    "INSERT INTO live VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (moved, folded(moved), row["is_dir"], row["sha256"], row["size"],
                     row["mtime_ns"], row["inode"], now),
                )  # fmt: skip
        return self.stat(target)

    def set_mtime(self, path: str, mtime: float) -> Entry:
        with self._change():
            if self._lstat(path) is None:
                raise NotFound(f"no file or folder /{path}")
            target = self.disk(path)
            os.utime(target, ns=(time.time_ns(), int(mtime * 1e9)), follow_symlinks=False)
            self._db.execute(
                "UPDATE live SET mtime_ns = ? WHERE path = ?", (os.lstat(target).st_mtime_ns, path)
            )
        return self.stat(path)

    # -- versions -------------------------------------------------------------------------------

    def usage(self) -> Usage:
        (files,) = self._db.execute(
            "SELECT coalesce(sum(size), 0) FROM live WHERE NOT is_dir"
        ).fetchone()
        # A blob that is also a current file is the same inode (a hard link): counted once.
        (versions,) = self._db.execute(
            "SELECT coalesce(sum(size), 0) FROM blobs WHERE sha256 NOT IN"
            " (SELECT sha256 FROM live WHERE sha256 IS NOT NULL)"
        ).fetchone()
        counted = files + (versions if self.policy.versions_count_against_quota else 0)
        return Usage(files, versions, counted, self.quota())

    def versions(self, path: str) -> list[Version]:
        """Earlier contents of a file, or of every file in a folder, newest first."""
        within, args = _within(path)
        rows = self._rows(
            f"SELECT * FROM versions WHERE {within} ORDER BY replaced DESC, id DESC", *args
        )
        return [_version(row) for row in rows]

    def version(self, version_id: int) -> Version:
        rows = self._rows("SELECT * FROM versions WHERE id = ?", version_id)
        if not rows:
            raise NotFound(f"no version {version_id}")
        return _version(rows[0])

    def open_version(self, version_id: int) -> BinaryIO:
        return open(self._blob(self.version(version_id).sha256), "rb")

    def state_at(self, path: str, at: float) -> list[PastFile]:
        """Every file at or under `path` as it was at time `at`, by path."""
        within, args = _within(path)
        past = self._rows(f"SELECT * FROM versions WHERE {within} AND since <= ? AND replaced > ?",
                          *args, at, at)  # fmt: skip
        live = self._rows(f"SELECT * FROM live WHERE {within} AND since <= ? AND NOT is_dir",
                          *args, at)  # fmt: skip
        files = [
            PastFile(r["path"], r["size"], r["mtime_ns"] / 1e9, r["sha256"], r["id"]) for r in past
        ] + [PastFile(r["path"], r["size"], r["mtime_ns"] / 1e9, r["sha256"], None) for r in live]
        return sorted(files, key=lambda file: file.path)

    def snapshot_times(self, now: float) -> list[float]:
        """The points in time whose state is kept (see retention.py), newest first, from the
        first change on."""
        (oldest,) = self._db.execute("SELECT min(since) FROM versions").fetchone()
        points = retention.snapshot_times(self.policy, now)
        return sorted((p for p in points if oldest is not None and p >= oldest), reverse=True)

    def prune(self, now: float) -> int:
        """Apply the retention policy; returns how many versions were dropped."""
        points = retention.snapshot_times(self.policy, now)
        with self._change():
            doomed = [
                row["id"]
                for row in self._rows("SELECT id, since, replaced FROM versions")
                if not retention.keeps(self.policy, points, now, row["since"], row["replaced"])
            ]
            self._db.executemany("DELETE FROM versions WHERE id = ?", [(i,) for i in doomed])
            unused = self._rows(
                "SELECT sha256 FROM blobs WHERE sha256 NOT IN (SELECT sha256 FROM versions)"
            )
            for row in unused:
                self._blob(row["sha256"]).unlink(missing_ok=True)
            self._db.executemany(
                "DELETE FROM blobs WHERE sha256 = ?", [(row["sha256"],) for row in unused]
            )
            self._db.execute("INSERT OR REPLACE INTO state VALUES ('pruned', ?)", (now,))
        self._last_prune = now
        if doomed:
            log.info("versions pruned account=%s versions=%d blobs=%d",
                     self.address, len(doomed), len(unused))  # fmt: skip
        return len(doomed)

    def _prune_now_and_then(self, now: float) -> None:
        if now - self._last_prune >= PRUNE_EVERY:
            self.prune(now)

    # -- repair ---------------------------------------------------------------------------------

    def _reconcile(self) -> None:
        """Make `live` agree with tree/ (after a crash, or files put there by hand)."""
        known = {row["path"]: row for row in self._rows("SELECT * FROM live")}
        seen: set[str] = set()
        changed = 0
        for folder, dirs, files in os.walk(self.root):
            base = os.path.relpath(folder, self.root)
            for name in [*dirs, *files]:
                path = name if base == "." else f"{base}/{name}"
                result = os.lstat(os.path.join(folder, name))
                if not (stat.S_ISREG(result.st_mode) or stat.S_ISDIR(result.st_mode)):
                    continue  # os.walk does not descend into symlinked folders either
                seen.add(path)
                row = known.get(path)
                if row is not None and _unchanged(row, result):
                    continue
                changed += 1
                try:
                    self._index_live(path, result, None, result.st_mtime_ns / 1e9)
                except sqlite3.IntegrityError:  # two names differing in case, put by hand
                    log.warning("reconcile: name clash ignored account=%s path=%s",
                                self.address, path)  # fmt: skip
        gone = set(known) - seen
        self._db.executemany("DELETE FROM live WHERE path = ?", [(p,) for p in gone])
        if changed or gone:
            log.warning("reconcile: index repaired account=%s changed=%d gone=%d",
                        self.address, changed, len(gone))  # fmt: skip
        row = self._db.execute("SELECT value FROM state WHERE key = 'pruned'").fetchone()
        self._last_prune = row[0] if row else 0.0

    def _remove_leftovers(self) -> None:
        """Temporary files of uploads a crash interrupted (not those of a running upload:
        another process's uploads write to them all the time)."""
        limit = time.time() - LEFTOVER_SECONDS
        for entry in os.scandir(self.tmp):
            if entry.stat(follow_symlinks=False).st_mtime < limit:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)


def _unchanged(row: sqlite3.Row, result: os.stat_result) -> bool:
    if stat.S_ISDIR(result.st_mode):  # a folder's mtime changes with its content: not tracked
        return bool(row["is_dir"])
    return not row["is_dir"] and (row["inode"], row["mtime_ns"], row["size"]) == (
        result.st_ino,
        result.st_mtime_ns,
        result.st_size,
    )


def _version(row: sqlite3.Row) -> Version:
    return Version(
        row["id"], row["path"], row["size"], row["mtime_ns"] / 1e9, row["since"],
        row["replaced"], row["reason"], row["sha256"],
    )  # fmt: skip
