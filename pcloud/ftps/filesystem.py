"""The signed-in user's files as pyftpdlib's file system: `AbstractedFS` over `UserFiles`.

pyftpdlib hands each command's path to `ftp2fs` and then to the methods below. Here the "file
system path" is the client's path made absolute against the working folder ("/docs/a.txt"),
never a path on the server's disk, and the store checks it: "..", NUL and other control
characters, backslashes, over-long names (see `pcloud.store.files.paths`). Only CWD and CDUP
resolve "." and ".." (within "/", as `cd ..` needs), as SFTP's realpath does; any other path with
".." in it is refused by the store.

Every method blocks (file and SQLite I/O): pyftpdlib calls them on the connection's own thread.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from pyftpdlib.exceptions import FilesystemError
from pyftpdlib.filesystems import AbstractedFS

from pcloud.store.files import Entry, FileStoreError, NotFound, QuotaExceeded, Upload, UserFiles

if TYPE_CHECKING:
    from pcloud.ftps.server import Session

T = TypeVar("T")


def reply(error: FileStoreError) -> str:
    """The store's refusal as an FTP reply: 552 for the quota (RFC 959 §4.2, "exceeded storage
    allocation"), else 550 (file unavailable)."""
    code = 552 if isinstance(error, QuotaExceeded) else 550
    return f"{code} {error}."


def _refused(error: FileStoreError) -> FilesystemError:
    """pyftpdlib answers a FilesystemError with 550 and its message."""
    return FilesystemError(str(error))


def _stat_result(entry: Entry) -> os.stat_result:
    write = 0o200 if entry.writable else 0
    kind = stat.S_IFDIR | 0o500 if entry.is_dir else stat.S_IFREG | 0o400
    mtime = entry.mtime
    # mode, ino, dev, nlink, uid, gid, size, atime, mtime, ctime
    return os.stat_result((kind | write, 0, 0, 1, 0, 0, entry.size, mtime, mtime, mtime))


class Download:
    """A file being sent (RETR): the store's open file, seekable for REST. pyftpdlib reads it
    and logs `name`."""

    def __init__(self, file: BinaryIO, name: str) -> None:
        self.file = file
        self.name = name

    @property
    def closed(self) -> bool:
        return self.file.closed

    def read(self, size: int = -1) -> bytes:
        return self.file.read(size)

    def seek(self, offset: int) -> int:
        return self.file.seek(offset)

    def close(self) -> None:
        self.file.close()


class UploadFile:
    """A file being received (STOR, APPE): an upload of the store, put in place by
    `finish(complete=True)` once the whole transfer has arrived. Anything else drops it and the
    previous content stays."""

    def __init__(self, upload: Upload, name: str) -> None:
        self.upload = upload
        self.name = name
        self.closed = False
        self.failure = ""  # the reply to give instead of 226, once a write was refused

    def write(self, data: bytes) -> int:
        # After a refusal the rest of the transfer is read and dropped, so that the client
        # gets the reply at the end of its transfer, where every client looks for it.
        if self.failure:
            return len(data)
        try:
            self.upload.write(data)
        except FileStoreError as error:  # the quota: the upload dropped itself
            self.failure = reply(error)
        except OSError as error:  # the disk: RFC 959's "local error in processing"
            self.failure = f"451 {os.strerror(error.errno or errno.EIO)}."
        return len(data)

    def finish(self, *, complete: bool) -> str:
        """Commit or drop the upload; the failure reply, or "" when there is none."""
        if self.closed:
            return self.failure
        self.closed = True
        if not complete or self.failure:
            self.upload.abort()
            return self.failure
        try:
            self.upload.commit()
        except FileStoreError as error:  # the quota, or the folder went away meanwhile
            self.failure = reply(error)
        return self.failure

    def close(self) -> None:
        """pyftpdlib closes a file whose transfer did not end well (or never began)."""
        self.finish(complete=False)


class RestartRefused(FilesystemError):
    """REST named an offset past the end of the file (RFC 1123 §4.1.3.4: 554)."""


class StoreFS(AbstractedFS):
    """One session's view: the user's tree as "/", with `Shared/` for what others share."""

    def __init__(self, root: str, cmd_channel: Session) -> None:
        super().__init__("/", cmd_channel)
        self.files: UserFiles = cmd_channel.user_files()
        # The entries of the last listing, by path: LIST and MLSD stat every name they list,
        # and asking the store again for each would make a long listing slow. Each is used once.
        self._listed: dict[str, Entry] = {}

    def _call(self, function: Callable[..., T], *arguments: object) -> T:
        try:
            return function(*arguments)
        except FileStoreError as error:
            raise _refused(error) from None

    def _entry(self, path: str) -> Entry:
        entry = self._listed.pop(path, None)
        return entry if entry is not None else self._call(self.files.stat, path)

    def _exists(self, path: str) -> Entry | None:
        try:
            return self._entry(path)
        except FilesystemError:
            return None

    # -- paths --------------------------------------------------------------------------------

    def ftp2fs(self, ftppath: str) -> str:
        names = [n for n in posixpath.join(self.cwd, ftppath).split("/") if n not in ("", ".")]
        return "/" + "/".join(names)

    def fs2ftp(self, fspath: str) -> str:
        return fspath

    def validpath(self, path: str) -> bool:
        return True  # the store checks every path it is given

    def realpath(self, path: str) -> str:
        return path  # there are no links

    def chdir(self, path: str) -> None:
        entry = self._call(self.files.stat, posixpath.normpath(path))
        if not entry.is_dir:
            raise FilesystemError(f"/{entry.path} is not a folder")
        self.cwd = "/" + entry.path

    # -- reading ------------------------------------------------------------------------------

    def listdir(self, path: str) -> list[str]:
        entries = self._call(self.files.listdir, path)
        self._listed = {posixpath.join(path, e.name): e for e in entries}
        return [entry.name for entry in entries]

    listdirinfo = listdir

    def stat(self, path: str) -> os.stat_result:
        return _stat_result(self._entry(path))

    lstat = stat

    def isfile(self, path: str) -> bool:
        entry = self._exists(path)
        return entry is not None and not entry.is_dir

    def isdir(self, path: str) -> bool:
        entry = self._exists(path)
        return entry is not None and entry.is_dir

    def islink(self, path: str) -> bool:
        return False

    def lexists(self, path: str) -> bool:
        return self._exists(path) is not None

    def getsize(self, path: str) -> int:
        return self._entry(path).size

    def getmtime(self, path: str) -> float:
        return self._entry(path).mtime

    def get_user_by_uid(self, uid: int) -> str:
        return "owner"  # LIST's owner column: the store has no Unix users

    def get_group_by_gid(self, gid: int) -> str:
        return "group"

    def open(self, filename: str, mode: str) -> Download:
        if mode != "rb":  # uploads go through `upload` (see Session.ftp_STOR)
            raise FilesystemError(f"cannot open a file for {mode!r}")
        return Download(self._call(self.files.open_read, filename), filename)

    # -- changes ------------------------------------------------------------------------------

    def upload(self, path: str, *, append: bool, offset: int) -> UploadFile:
        """STOR (from the start, or from REST's offset) or APPE; raises FileStoreError or
        RestartRefused."""
        upload = self.files.upload(path, keep_content=append or offset > 0)
        if offset > upload.size:
            upload.abort()
            raise RestartRefused(f"REST offset {offset} is past the end ({upload.size} bytes)")
        if offset:
            upload.truncate(offset)
        return UploadFile(upload, path)

    def mkdir(self, path: str) -> None:
        self._call(self.files.mkdir, path)

    def rmdir(self, path: str) -> None:
        if self._call(self.files.listdir, path):  # NotAFolder for a file
            raise FilesystemError("the folder is not empty")
        self._call(self.files.delete, path)

    def remove(self, path: str) -> None:
        if self._call(self.files.stat, path).is_dir:
            raise FilesystemError("a folder: remove it with RMD")
        self._call(self.files.delete, path)

    def rename(self, src: str, dst: str) -> None:
        # As rename(2): a file replaces a file (the old one kept as a version), nothing
        # replaces a folder.
        try:
            target: Entry | None = self.files.stat(dst)
        except NotFound:
            target = None
        except FileStoreError as error:
            raise _refused(error) from None
        replace = target is not None and not target.is_dir
        self._call(lambda: self.files.move(src, dst, overwrite=replace))

    def utime(self, path: str, timeval: float) -> None:
        self._call(self.files.set_mtime, path, timeval)

    def chmod(self, path: str, mode: int) -> None:
        raise FilesystemError("permissions are not kept here")
