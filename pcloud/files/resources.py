"""WsgiDAV resources over the file store: the files and folders of the signed-in user's tree.

Implementation notes:
- Every operation is a call on the user's `UserFiles` (`environ["pcloud.files"]`, set at sign-in);
  the store checks paths, keeps versions, counts the quota and resolves `Shared/`. Its errors
  become WebDAV statuses here, in one place (`store_errors`).
- Resource paths are the client's (percent-decoded, WsgiDAV-normalised); members get the names
  the store lists (NFC). Lock and dead-property keys (`get_ref_url`) are "/<address><path>",
  NFC-normalised: every user has the same URLs, and one user's lock must not lock another's file.
- PUT (RFC 4918 §9.7) streams the request body (spooled by the bridge) into `files.upload`;
  the file appears, or changes, only when the body is complete. A new file is created by the
  upload's commit, not as an empty file first (which would leave an empty version behind).
- COPY and MOVE (§9.8, §9.9) run WsgiDAV's generic algorithm (overwrite, Depth, locks, 201 or
  204) over `copy_move_single` and `move_recursive`, which call the store's copy and move.
- `.versions` at the root is the read-only view of earlier versions (versions.py); it is not
  listed, so that sync clients do not mirror the history; a real file of that name made over
  SFTP is hidden from WebDAV.
"""

from __future__ import annotations

import errno
import posixpath
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO
from urllib.parse import quote

from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_CONFLICT,
    HTTP_FORBIDDEN,
    HTTP_INSUFFICIENT_STORAGE,
    HTTP_NOT_FOUND,
    DAVError,
)
from wsgidav.dav_provider import DAVCollection, DAVNonCollection

from pcloud.store.files import (
    Entry,
    FileStoreError,
    NotFound,
    ParentNotFound,
    PathRefused,
    PermissionDenied,
    QuotaExceeded,
    Upload,
    UserFiles,
)

VERSIONS = ".versions"
ENVIRON_FILES = "pcloud.files"  # the signed-in user's UserFiles
ENVIRON_ADDRESS = "pcloud.address"

# The first matching class gives the status (subclasses before their bases).
_STATUS: tuple[tuple[type[FileStoreError], int], ...] = (
    (PathRefused, HTTP_BAD_REQUEST),
    (ParentNotFound, HTTP_CONFLICT),  # §9.7.1, §9.3.1: the parent is missing
    (NotFound, HTTP_NOT_FOUND),
    (QuotaExceeded, HTTP_INSUFFICIENT_STORAGE),  # §9.7.1 / RFC 4331
    (PermissionDenied, HTTP_FORBIDDEN),
    (
        FileStoreError,
        HTTP_CONFLICT,
    ),  # AlreadyExists (a name in another case), NotAFolder, IsAFolder
)


def status_of(error: FileStoreError) -> int:
    return next(status for kind, status in _STATUS if isinstance(error, kind))


@contextmanager
def store_errors() -> Iterator[None]:
    """A refusal of the store as a WebDAV status with its reason."""
    try:
        yield
    except FileStoreError as error:
        raise DAVError(status_of(error), str(error)) from None


def child_path(parent: str, name: str) -> str:
    return posixpath.join(parent.rstrip("/") or "/", name)


def in_versions(path: str) -> bool:
    return path.strip("/").split("/")[0] == VERSIONS


def refuse_versions(dest_path: str) -> None:
    if in_versions(dest_path):
        raise DAVError(HTTP_FORBIDDEN, "earlier versions are read-only")


class Keyed:
    """Lock and property keys per user (see the module notes)."""

    path: str
    environ: dict[str, Any]

    def get_ref_url(self) -> str:
        preferred: str = self.get_preferred_path()  # type: ignore[attr-defined]
        return quote(f"/{self.environ[ENVIRON_ADDRESS]}{unicodedata.normalize('NFC', preferred)}")


class FileResource(Keyed, DAVNonCollection):
    def __init__(self, path: str, environ: dict[str, Any], entry: Entry | None) -> None:
        """`entry` None: a file a PUT is about to create."""
        super().__init__(path, environ)
        self.files: UserFiles = environ[ENVIRON_FILES]
        self.entry = entry
        self._writer: _Writer | None = None

    def get_content_length(self) -> int:
        return self.entry.size if self.entry else 0

    def get_content_type(self) -> str:
        return str(util.guess_mime_type(self.path))

    def get_creation_date(self) -> float | None:
        return self.entry.mtime if self.entry else None

    def get_display_name(self) -> str:
        return str(self.name)

    def get_etag(self) -> str | None:
        return self.entry.etag if self.entry else None

    def get_last_modified(self) -> float | None:
        return self.entry.mtime if self.entry else None

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return True

    def get_content(self) -> BinaryIO:
        with store_errors():
            return self.files.open_read(self.path)

    def begin_write(self, *, content_type: str | None = None) -> _Writer:
        with store_errors():
            self._writer = _Writer(self.files.upload(self.path))
        return self._writer

    def end_write(self, *, with_errors: bool) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        if writer.error is not None:
            raise DAVError(status_of(writer.error), str(writer.error))
        self.entry = writer.entry

    def delete(self) -> None:
        with store_errors():
            self.files.delete(self.path)
        self.remove_all_properties(recursive=True)
        self.remove_all_locks(recursive=True)

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        # For a MOVE, WsgiDAV deletes the source afterwards.
        refuse_versions(dest_path)
        with store_errors():
            self.files.copy(self.path, dest_path)
        copy_properties(self, dest_path)

    def support_recursive_move(self, dest_path: str) -> bool:
        return True

    def move_recursive(self, dest_path: str) -> None:
        move(self, dest_path)


class FolderResource(Keyed, DAVCollection):
    def __init__(self, path: str, environ: dict[str, Any], entry: Entry) -> None:
        super().__init__(path, environ)
        self.files: UserFiles = environ[ENVIRON_FILES]
        self.entry = entry

    def get_creation_date(self) -> float:
        return self.entry.mtime

    def get_display_name(self) -> str:
        return str(self.name)

    def get_last_modified(self) -> float:
        return self.entry.mtime

    def get_used_bytes(self) -> int:
        return _usage(self.environ)[0]

    def get_available_bytes(self) -> int | None:
        return _usage(self.environ)[1]

    def _entries(self) -> list[Entry]:
        with store_errors():
            entries = self.files.listdir(self.path)
        if not self.entry.path:
            entries = [entry for entry in entries if entry.name != VERSIONS]
        return entries

    def get_member_names(self) -> list[str]:
        return [entry.name for entry in self._entries()]

    def get_member(self, name: str) -> Any:
        return self.provider.get_resource_inst(child_path(self.path, name), self.environ)

    def get_member_list(self) -> list[Any]:
        # One listing rather than a stat per member.
        return [
            resource_of(child_path(self.path, e.name), self.environ, e) for e in self._entries()
        ]

    def create_empty_resource(self, name: str) -> FileResource:
        path = child_path(self.path, name)
        refuse_versions(path)
        if self.environ["REQUEST_METHOD"] == "PUT":
            return FileResource(path, self.environ, None)
        # LOCK on an unmapped URL (RFC 4918 §9.10.4) makes an empty file.
        with store_errors():
            entry = self.files.write(path, b"")
        return FileResource(path, self.environ, entry)

    def create_collection(self, name: str) -> None:
        path = child_path(self.path, name)
        refuse_versions(path)
        with store_errors():
            self.files.mkdir(path)

    def support_recursive_delete(self) -> bool:
        return True

    def delete(self) -> None:
        with store_errors():
            self.files.delete(self.path)
        self.remove_all_properties(recursive=True)
        self.remove_all_locks(recursive=True)

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        """The folder alone (WsgiDAV copies the members one by one)."""
        refuse_versions(dest_path)
        with store_errors():
            try:
                self.files.stat(dest_path)
            except NotFound:
                self.files.mkdir(dest_path)
        copy_properties(self, dest_path)

    def support_recursive_move(self, dest_path: str) -> bool:
        return True

    def move_recursive(self, dest_path: str) -> None:
        move(self, dest_path)


class _Writer:
    """Where WsgiDAV's PUT writes the body: an upload of the store. A refusal is kept for
    end_write, which turns it into the reply (WsgiDAV logs what write() raises as a server
    error); a full disk is a refusal too (507)."""

    def __init__(self, upload: Upload) -> None:
        self.upload = upload
        self.error: FileStoreError | None = None
        self.entry: Entry | None = None

    def _refused(self, error: BaseException) -> bool:
        self.upload.abort()
        if isinstance(error, FileStoreError):
            self.error = error
        elif isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            self.error = QuotaExceeded("the server's disk is full")
        else:
            return False
        return True

    def write(self, data: bytes) -> None:
        if self.error is not None:
            return  # the rest of the body is read and dropped
        try:
            self.upload.write(data)
        except BaseException as error:
            if not self._refused(error):
                raise

    def close(self) -> None:
        if self.error is not None:
            return
        try:
            self.entry = self.upload.commit()
        except BaseException as error:
            if not self._refused(error):
                raise


def resource_of(path: str, environ: dict[str, Any], entry: Entry) -> FileResource | FolderResource:
    if entry.is_dir:
        return FolderResource(path, environ, entry)
    return FileResource(path, environ, entry)


def move(resource: FileResource | FolderResource, dest_path: str) -> None:
    """MOVE onto a free destination (WsgiDAV removed what was there): locks on the source go
    (RFC 4918 §7.7: a lock does not move with its resource), dead properties follow."""
    refuse_versions(dest_path)
    resource.remove_all_locks(recursive=True)
    with store_errors():
        resource.files.move(resource.path, dest_path, overwrite=False)
    properties = resource.provider.prop_manager
    if properties is not None:
        target = resource.provider.get_resource_inst(dest_path, resource.environ)
        properties.move_properties(resource.get_ref_url(), target.get_ref_url(), with_children=True)


def copy_properties(resource: FileResource | FolderResource, dest_path: str) -> None:
    properties = resource.provider.prop_manager
    if properties is not None:
        target = resource.provider.get_resource_inst(dest_path, resource.environ)
        properties.copy_properties(resource.get_ref_url(), target.get_ref_url())


def _usage(environ: dict[str, Any]) -> tuple[int, int | None]:
    """(bytes counted against the quota, bytes left or None without a quota), once a request
    (RFC 4331)."""
    if "pcloud.usage" not in environ:
        usage = environ[ENVIRON_FILES].usage()
        left = max(usage.quota - usage.counted, 0) if usage.quota else None
        environ["pcloud.usage"] = (usage.counted, left)
    result: tuple[int, int | None] = environ["pcloud.usage"]
    return result
