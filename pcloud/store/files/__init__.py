"""The file store: users' files, their earlier versions, shares and public links, written once
for WebDAV, SFTP/SCP, XMPP uploads and the command line.

Layout of `<data>/files/`:
    <address>/             one user's tree, versions and index (see tree.py)
    shares.sqlite3         shares between users and public links (see sharing.py)
    webdav.sqlite3         WebDAV locks and dead properties (see webdav.py)
    .retired/<address>.<unix time>/   the files of a deleted user, out of reach of a new user of
                           the same address (moved there when that new user first uses files)

Protocols call `FileStore.user(address)` for a `UserFiles`, and give it the paths their clients
sent, untouched: `paths.safe_path` is applied here, in one place. A user's tree holds a virtual
folder `Shared/<owner>/<name>` for each file or folder shared with them; it resolves to the
owner's tree (not a symlink), with the share's rights, and writes there count against the
owner's quota. Public links are opened with `FileStore.open_link(token, password)`.

Every method blocks (file and SQLite I/O): call it from a worker thread (asyncio.to_thread).
No events are published yet: the subscribers of pcloud.events take every event of an account to
be about mail.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from pcloud.config import FilesSection
from pcloud.directory import User
from pcloud.directory.addresses import AddressError, normalize_address
from pcloud.store.files.paths import folded, is_within, join, name_of, safe_name, safe_path
from pcloud.store.files.sharing import Sharing
from pcloud.store.files.tree import CHUNK, UserTree
from pcloud.store.files.upload import Upload
from pcloud.store.files.values import (
    AlreadyExists,
    Entry,
    FileStoreError,
    IsAFolder,
    Link,
    LinkNotFound,
    NoSuchUser,
    NotAFolder,
    NotFound,
    ParentNotFound,
    PasswordRequired,
    PastFile,
    PathRefused,
    PermissionDenied,
    QuotaExceeded,
    Share,
    Usage,
    Version,
)

__all__ = [
    "AlreadyExists", "Entry", "FileStore", "FileStoreError", "IsAFolder", "Link", "LinkAccess",
    "LinkNotFound", "NoSuchUser", "NotAFolder", "NotFound", "ParentNotFound", "PasswordRequired",
    "PastFile", "PathRefused", "PermissionDenied", "QuotaExceeded", "Share", "Upload", "Usage",
    "UserFiles", "Version",
]  # fmt: skip

SHARED = "Shared"
Data = bytes | BinaryIO | Iterable[bytes]


class FileStore:
    """Every user's files under `<data>/files/`; a user's tree is opened at first use."""

    def __init__(
        self,
        root: Path,
        user_of: Callable[[str], User | None],
        policy: FilesSection,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`user_of(address)` is the directory's user (quota, existence), None for none;
        `clock` gives the time changes are stamped with."""
        self.root = root
        self.user_of = user_of
        self.policy = policy
        self.clock = clock
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.sharing = Sharing(root / "shares.sqlite3")
        self._lock = threading.Lock()  # guards _trees; held while opening (opening is short)
        self._trees: dict[str, tuple[int, UserTree]] = {}

    def close(self) -> None:
        with self._lock:
            for _, tree in self._trees.values():
                tree.close()
            self._trees.clear()
        self.sharing.close()

    def _user(self, address: str) -> User:
        try:
            user = self.user_of(normalize_address(address))
        except AddressError:
            user = None
        if user is None:
            raise NoSuchUser(f"no user {address}")
        return user

    def tree(self, address: str) -> UserTree:
        user = self._user(address)
        with self._lock:
            created, tree = self._trees.get(user.address, (None, None))
            if tree is not None and created == user.created:
                return tree
            if tree is not None:
                tree.close()
            folder = self.root / user.address
            self._retire_if_not(folder, user)
            tree = UserTree(
                folder, user.address, self.policy, lambda: self._quota(user.address), self.clock
            )
            self._trees[user.address] = (user.created, tree)
            return tree

    def _retire_if_not(self, folder: Path, user: User) -> None:
        """A folder left by a deleted user of the same address goes to .retired/; the folder
        records which user it belongs to in `owner` (their creation time)."""
        marker = folder / "owner"
        if folder.exists() and marker.exists() and marker.read_text() != str(user.created):
            retired = self.root / ".retired"
            retired.mkdir(mode=0o700, exist_ok=True)
            os.rename(folder, retired / f"{user.address}.{int(time.time())}")
        if not marker.exists():
            folder.mkdir(mode=0o700, exist_ok=True)
            marker.write_text(str(user.created))

    def _quota(self, address: str) -> int:
        user = self.user_of(address)
        return 0 if user is None else user.quota_bytes

    def user(self, address: str) -> UserFiles:
        """A user's view: their tree and what is shared with them."""
        return UserFiles(self, self._user(address).address)

    def prune(self, now: float) -> int:
        """Apply the retention policy to every user's versions; returns versions dropped."""
        dropped = 0
        for folder in sorted(self.root.iterdir()):
            if folder.is_dir() and not folder.name.startswith(".") and self.user_of(folder.name):
                dropped += self.tree(folder.name).prune(now)
        return dropped

    # -- sharing --------------------------------------------------------------------------------

    def share(self, owner: str, path: str, grantee: str, *, writable: bool) -> Share:
        owner, grantee = self._user(owner).address, self._user(grantee).address
        if owner == grantee:
            raise PermissionDenied("a user cannot share with themselves")
        place = self.user(owner)._own(path)
        if not place.rel:
            raise PermissionDenied("share a folder, not the whole tree")
        self.tree(owner).stat(place.rel)  # NotFound
        share = Share(owner, place.rel, grantee, writable, self.clock())
        self.sharing.add_share(share)
        return share

    def unshare(self, owner: str, path: str, grantee: str) -> None:
        self.sharing.remove_share(
            self._user(owner).address, safe_path(path), self._user(grantee).address
        )

    def shares(self, address: str | None = None) -> list[Share]:
        """Every share, or those a user owns or receives."""
        if address is None:
            return self.sharing.shares()
        address = self._user(address).address
        owned = self.sharing.shares(owner=address)
        return owned + self.sharing.shares(grantee=address)

    def add_link(
        self,
        owner: str,
        path: str,
        *,
        password: str | None = None,
        expires: float | None = None,
        upload_only: bool = False,
    ) -> Link:
        owner = self._user(owner).address
        entry = self.tree(owner).stat(safe_path(path))
        if upload_only and not entry.is_dir:
            raise NotAFolder("an upload link needs a folder to put files in")
        return self.sharing.add_link(
            owner, entry.path, upload_only=upload_only, expires=expires, password=password,
            now=self.clock(),
        )  # fmt: skip

    def links(self, owner: str | None = None) -> list[Link]:
        return self.sharing.links(None if owner is None else self._user(owner).address)

    def remove_link(self, owner: str, token: str) -> Link:
        return self.sharing.remove_link(self._user(owner).address, token)

    def open_link(self, token: str, password: str | None = None) -> LinkAccess:
        """What a public link gives access to (LinkNotFound, PasswordRequired)."""
        link = self.sharing.check_link(token, password, self.clock())
        try:
            tree = self.tree(link.owner)
        except NoSuchUser:
            raise LinkNotFound("no such link") from None
        if not tree.exists(link.path):
            raise LinkNotFound("the link's file or folder is gone")
        return LinkAccess(link, tree)


@dataclass(frozen=True)
class _Place:
    """Where a client path leads: a path in some tree (tree None: a virtual Shared/ folder)."""

    tree: UserTree | None
    rel: str  # in that tree
    writable: bool
    view: str  # the client's path
    base: str = ""  # the share's path in the owner's tree ("" for one's own tree)
    share_root: bool = False  # the shared file or folder itself

    def to_view(self, rel: str) -> str:
        """A path of that tree as the client sees it."""
        if not self.base:
            return rel
        prefix = self.view[: len(self.view) - len(self.rel) + len(self.base)]
        return prefix + rel[len(self.base) :]

    def own_tree(self) -> UserTree:
        if self.tree is None:
            raise PermissionDenied(f"/{self.view} is managed by sharing")
        return self.tree

    def writable_tree(self) -> UserTree:
        tree = self.own_tree()
        if not self.writable:
            raise PermissionDenied(f"/{self.view} is shared read-only")
        return tree


class UserFiles:
    """One user's files as their clients see them. Paths are client paths (text or bytes,
    leading "/" optional), checked by `safe_path`."""

    def __init__(self, store: FileStore, address: str) -> None:
        self.store = store
        self.address = address

    def _own(self, path: str | bytes) -> _Place:
        rel = safe_path(path)
        return _Place(self.store.tree(self.address), rel, True, rel)

    def _place(self, path: str | bytes) -> _Place:
        rel = safe_path(path)
        names = rel.split("/") if rel else []
        if not names or names[0] != SHARED:
            if names and folded(names[0]) == folded(SHARED):
                raise AlreadyExists(f"/{names[0]} is reserved for files shared with you")
            return _Place(self.store.tree(self.address), rel, True, rel)
        if len(names) < 3:
            if len(names) == 2 and not self._received(names[1]):
                raise NotFound(f"no file or folder /{rel}")
            return _Place(None, rel, False, rel)
        share = next((s for s in self._received(names[1]) if s.name == names[2]), None)
        if share is None:
            raise NotFound(f"no file or folder /{rel}")
        try:
            tree = self.store.tree(share.owner)
        except NoSuchUser:
            raise NotFound(f"no file or folder /{rel}") from None
        target = join(share.path, *names[3:])
        return _Place(tree, target, share.writable, rel, share.path, len(names) == 3)

    def _received(self, owner: str | None = None) -> list[Share]:
        shares = self.store.sharing.shares(grantee=self.address)
        return [s for s in shares if owner is None or s.owner == owner]

    def _entry(self, place: _Place, entry: Entry) -> Entry:
        path = place.to_view(entry.path)
        return replace(entry, path=path, name=name_of(path), writable=place.writable)

    def _virtual(self, path: str, shares: list[Share]) -> Entry:
        mtime = max((s.created for s in shares), default=0.0)
        return Entry(path, name_of(path), True, 0, mtime, f"shared-{mtime}", False)

    # -- reading --------------------------------------------------------------------------------

    def stat(self, path: str | bytes) -> Entry:
        place = self._place(path)
        if place.tree is None:
            owner = place.rel.partition("/")[2] or None
            return self._virtual(place.rel, self._received(owner))
        return self._entry(place, place.tree.stat(place.rel))

    def listdir(self, path: str | bytes) -> list[Entry]:
        place = self._place(path)
        if place.tree is not None:
            entries = [self._entry(place, e) for e in place.tree.listdir(place.rel)]
            if not place.rel and place.tree.address == self.address and self._received():
                entries.append(self._virtual(SHARED, self._received()))
            return sorted(entries, key=lambda entry: entry.name)
        received = self._received()
        if place.rel == SHARED:
            owners = sorted({s.owner for s in received})
            return [
                self._virtual(f"{SHARED}/{o}", [s for s in received if s.owner == o])
                for o in owners
            ]
        entries = []
        for share in self._received(name_of(place.rel)):
            try:
                entries.append(self.stat(f"{place.rel}/{share.name}"))
            except (NotFound, NoSuchUser):
                continue  # the owner moved or deleted what they shared
        return entries

    def open_read(self, path: str | bytes) -> BinaryIO:
        """The file, open for reading; seek for a range."""
        place = self._place(path)
        return place.own_tree().open_read(place.rel)

    def read_chunks(
        self, path: str | bytes, start: int = 0, length: int | None = None
    ) -> Iterator[bytes]:
        """The file's bytes from `start`, `length` of them (None: to the end), in chunks. The
        file is opened at once (so errors come now), and closed when the iterator ends."""
        return _chunks(self.open_read(path), start, length)

    # -- writing --------------------------------------------------------------------------------

    def upload(
        self,
        path: str | bytes,
        *,
        mtime: float | None = None,
        keep_content: bool = False,
        exclusive: bool = False,
    ) -> Upload:
        """A file to write in chunks (or at offsets) and then `commit`; see upload.py."""
        place = self._place(path)
        return Upload(place.writable_tree(), place.rel, mtime=mtime,
                      keep_content=keep_content, exclusive=exclusive)  # fmt: skip

    def write(self, path: str | bytes, data: Data, *, mtime: float | None = None) -> Entry:
        """Write a whole file atomically from bytes, a binary file or an iterable of chunks."""
        with self.upload(path, mtime=mtime) as upload:
            _feed(upload, data)
            entry = upload.commit()
        return self._entry(self._place(path), entry)

    def mkdir(self, path: str | bytes) -> Entry:
        place = self._place(path)
        return self._entry(place, place.writable_tree().mkdir(place.rel))

    def delete(self, path: str | bytes) -> None:
        """A file, or a folder with everything in it; the files' contents are kept as versions."""
        place = self._place(path)
        if place.share_root:
            raise PermissionDenied("a share is removed by its owner (`pcloud files unshare`)")
        place.writable_tree().delete(place.rel)

    def set_mtime(self, path: str | bytes, mtime: float) -> Entry:
        place = self._place(path)
        return self._entry(place, place.writable_tree().set_mtime(place.rel, mtime))

    def move(self, source: str | bytes, target: str | bytes, *, overwrite: bool = True) -> Entry:
        """Rename; across trees (into or out of a share) it is a copy and a delete."""
        src, dst = self._place(source), self._place(target)
        if src.share_root or dst.share_root:
            raise PermissionDenied("a share is renamed or removed by its owner")
        src_tree, dst_tree = src.writable_tree(), dst.writable_tree()
        if src_tree is dst_tree:
            is_file = not src_tree.stat(src.rel).is_dir
            self._make_room(dst, overwrite, renaming=src.rel, replace_file=is_file)
            return self._entry(dst, dst_tree.move(src.rel, dst.rel))
        entry = self.copy(source, target, overwrite=overwrite)
        src_tree.delete(src.rel)
        return entry

    def copy(self, source: str | bytes, target: str | bytes, *, overwrite: bool = True) -> Entry:
        src, dst = self._place(source), self._place(target)
        src_tree, dst_tree = src.own_tree(), dst.writable_tree()
        if src_tree is dst_tree and is_within(dst.rel, src.rel):
            raise PermissionDenied(f"/{src.view} cannot be copied into itself")
        if not src_tree.exists(src.rel):
            raise NotFound(f"no file or folder /{src.view}")
        self._make_room(dst, overwrite, replace_file=not src_tree.stat(src.rel).is_dir)
        _copy(src_tree, src.rel, dst_tree, dst.rel)
        return self._entry(dst, dst_tree.stat(dst.rel))

    def _make_room(
        self, place: _Place, overwrite: bool, *, renaming: str = "", replace_file: bool = False
    ) -> None:
        """Delete what is at a move's or copy's target (its files kept as versions), or refuse.
        A file copied or moved over a file simply replaces it (one version more, no delete)."""
        tree = place.own_tree()
        if not tree.exists(place.rel) or (renaming and folded(renaming) == folded(place.rel)):
            return
        if not overwrite:
            raise AlreadyExists(f"/{place.view} already exists")
        if place.share_root:
            raise PermissionDenied("a share is replaced by its owner")
        if not (replace_file and not tree.stat(place.rel).is_dir):
            tree.delete(place.rel)

    # -- usage and versions ---------------------------------------------------------------------

    def usage(self) -> Usage:
        return self.store.tree(self.address).usage()

    def versions(self, path: str | bytes) -> list[Version]:
        """Earlier contents of a file, or of every file in a folder, newest first."""
        place = self._place(path)
        return [
            replace(v, path=place.to_view(v.path)) for v in place.own_tree().versions(place.rel)
        ]

    def open_version(self, path: str | bytes, version: int) -> BinaryIO:
        """An earlier content of the file or folder at `path` (its id from `versions`)."""
        place = self._place(path)
        tree = place.own_tree()
        if not is_within(tree.version(version).path, place.rel):
            raise NotFound(f"no version {version} of /{place.view}")
        return tree.open_version(version)

    def state_at(self, path: str | bytes, at: float) -> list[PastFile]:
        """Every file at or under `path` as it was at time `at` (unix time)."""
        place = self._place(path)
        return [
            replace(f, path=place.to_view(f.path)) for f in place.own_tree().state_at(place.rel, at)
        ]

    def snapshot_times(self, now: float | None = None) -> list[float]:
        """The points in time whose state is kept, newest first (see retention.py)."""
        return self.store.tree(self.address).snapshot_times(
            self.store.clock() if now is None else now
        )

    def restore(
        self,
        path: str | bytes,
        *,
        at: float | None = None,
        version: int | None = None,
        to: str | bytes | None = None,
    ) -> list[str]:
        """Bring back a file as it was at `at`, or one `version` of it, or a folder's files as
        they were at `at` (files added since stay). It is written like any change: what is
        there now becomes a version too, so a restore can be undone. `to` restores elsewhere.
        Returns the client paths written."""
        place = self._place(path)
        tree = place.writable_tree()
        target = self._place(path if to is None else to)
        target_tree = target.writable_tree()
        if version is not None:
            kept = tree.version(version)
            if not is_within(kept.path, place.rel):
                raise NotFound(f"no version {version} of /{place.view}")
            files = [PastFile(kept.path, kept.size, kept.mtime, kept.sha256, kept.id)]
        elif at is not None:
            files = tree.state_at(place.rel, at)
            if not files:
                raise NotFound(f"/{place.view} held no files at that time")
        else:
            raise ValueError("restore needs `at` or `version`")
        written = []
        for file in files:
            rel = target.rel + file.path[len(place.rel) :]
            if file.version is None and target_tree is tree and rel == file.path:
                continue  # unchanged since
            _make_parents(target_tree, rel)
            with Upload(target_tree, rel, mtime=file.mtime) as upload:
                with (
                    tree.open_version(file.version)
                    if file.version is not None
                    else tree.open_read(file.path)
                ) as source:
                    _feed(upload, source)
                upload.commit()
            written.append(target.to_view(rel))
        return written


class LinkAccess:
    """What a public link opens: reading (a download link) or adding files (a drop box)."""

    def __init__(self, link: Link, tree: UserTree) -> None:
        self.link = link
        self._tree = tree

    def _readable(self, path: str | bytes) -> str:
        if self.link.upload_only:
            raise PermissionDenied("this link only takes uploads")
        rel = safe_path(path)
        return join(self.link.path, rel)

    def _view(self, entry: Entry) -> Entry:
        path = entry.path[len(self.link.path) :].lstrip("/")
        return replace(entry, path=path, name=name_of(path) or entry.name, writable=False)

    def stat(self, path: str | bytes = "") -> Entry:
        return self._view(self._tree.stat(self._readable(path)))

    def listdir(self, path: str | bytes = "") -> list[Entry]:
        return [self._view(e) for e in self._tree.listdir(self._readable(path))]

    def read_chunks(
        self, path: str | bytes = "", start: int = 0, length: int | None = None
    ) -> Iterator[bytes]:
        return _chunks(self._tree.open_read(self._readable(path)), start, length)

    def drop(self, name: str, data: Data) -> str:
        """Add a file to a drop box under a free name ("report (2).pdf" when "report.pdf" is
        taken: a drop box never replaces anything); returns the name used."""
        if not self.link.upload_only:
            raise PermissionDenied("this link is for downloads")
        name = safe_name(name)
        stem, dot, suffix = name.rpartition(".")
        if not stem:
            stem, dot, suffix = name, "", ""
        for number in range(1, 1000):
            candidate = name if number == 1 else f"{stem} ({number}){dot}{suffix}"
            try:
                upload = Upload(self._tree, join(self.link.path, candidate), exclusive=True)
            except AlreadyExists:
                continue
            with upload:
                _feed(upload, data)
                upload.commit()  # AlreadyExists if taken meanwhile: a stream cannot be replayed
            return candidate
        raise AlreadyExists(f"too many files named {name}")


def _feed(upload: Upload, data: Data) -> None:
    if isinstance(data, bytes):
        upload.write(data)
    elif hasattr(data, "read"):
        while chunk := data.read(CHUNK):
            upload.write(chunk)
    else:
        for chunk in data:
            upload.write(chunk)


def _chunks(file: BinaryIO, start: int, length: int | None) -> Iterator[bytes]:
    with file:
        file.seek(start)
        left = length
        while left is None or left > 0:
            chunk = file.read(CHUNK if left is None else min(CHUNK, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


def _copy(source: UserTree, path: str, target: UserTree, to: str) -> None:
    entry = source.stat(path)
    if not entry.is_dir:
        with Upload(target, to, mtime=entry.mtime) as upload, source.open_read(path) as file:
            _feed(upload, file)
            upload.commit()
        return
    target.mkdir(to)
    for child in source.listdir(path):
        _copy(source, child.path, target, join(to, child.name))


def _make_parents(tree: UserTree, path: str) -> None:
    names = path.split("/")[:-1]
    for depth in range(1, len(names) + 1):
        folder = "/".join(names[:depth])
        if not tree.exists(folder):
            tree.mkdir(folder)
        elif not tree.stat(folder).is_dir:
            raise NotAFolder(f"/{folder} is a file")
