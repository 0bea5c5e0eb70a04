"""What the file store hands out, and the errors it raises (each maps to one protocol reply)."""

from __future__ import annotations

from dataclasses import dataclass


class FileStoreError(Exception):
    """A request that cannot be done; the message is for the person who asked."""


class PathRefused(FileStoreError, ValueError):
    """The client path cannot name anything in a user's tree (WebDAV 400, SFTP bad message)."""


class NotFound(FileStoreError):
    """No such file or folder (404, SFTP no such file)."""


class ParentNotFound(NotFound):
    """The folder to create something in does not exist (WebDAV 409 Conflict)."""


class AlreadyExists(FileStoreError):
    """The name is taken, maybe by a name differing only in case (405/412, SFTP failure)."""


class NotAFolder(FileStoreError):
    """A folder was needed (listing, a parent) and a file was found (409)."""


class IsAFolder(FileStoreError):
    """A file was needed (read, write) and a folder was found (405/409)."""


class PermissionDenied(FileStoreError):
    """A read-only share, the virtual Shared/ folders, or the root (403)."""


class QuotaExceeded(FileStoreError):
    """The write would take the owner over their quota (507, SFTP failure)."""


class NoSuchUser(FileStoreError):
    """No user of that address in the directory."""


class LinkNotFound(FileStoreError):
    """No public link of that token, or it expired or its target is gone (404)."""


class PasswordRequired(FileStoreError):
    """The link has a password and none, or a wrong one, was given (401)."""


@dataclass(frozen=True)
class Entry:
    """A file or folder as a client lists it. `path` is the client's path, without a leading
    slash ("" for the root). The etag changes whenever the content does (new inode)."""

    path: str
    name: str
    is_dir: bool
    size: int
    mtime: float
    etag: str
    writable: bool


@dataclass(frozen=True)
class Version:
    """Content a path held before: from `since` until `replaced` (unix times), when it was
    overwritten, deleted or moved away (`reason`)."""

    id: int
    path: str
    size: int
    mtime: float
    since: float
    replaced: float
    reason: str
    sha256: str


@dataclass(frozen=True)
class PastFile:
    """A file as it was at a point in time; `version` is None when that is still its content."""

    path: str
    size: int
    mtime: float
    sha256: str | None
    version: int | None


@dataclass(frozen=True)
class Usage:
    files: int  # bytes of the current files
    versions: int  # bytes of earlier versions, each content once
    counted: int  # what the quota is measured against
    quota: int  # 0: no limit


@dataclass(frozen=True)
class Share:
    owner: str
    path: str  # in the owner's tree
    grantee: str
    writable: bool
    created: float

    @property
    def name(self) -> str:
        """Its name in the grantee's Shared/<owner>/ folder."""
        return self.path.rpartition("/")[2]


@dataclass(frozen=True)
class Link:
    token: str
    owner: str
    path: str
    upload_only: bool  # a drop box: anyone with the link may add files, not see any
    expires: float | None
    has_password: bool
    created: float
