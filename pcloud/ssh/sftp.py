"""SFTP (draft-ietf-secsh-filexfer-02, version 3, as OpenSSH speaks it) and SCP over the file
store: asyncssh's server class, translated to `UserFiles` calls.

The client sees the signed-in user's tree as `/` (with `Shared/` for what others shared with
them); the store checks every path (`..`, NUL, over-long names…) and refuses what could leave
it. Only `realpath` resolves `.` and `..`, within `/`, as `cd ..` needs; any other request with
`..` in its path is refused. Symbolic and hard links, file systems statistics and locks are not
offered. A file opened for writing is an upload that replaces the file when closed, so a reader
never sees half of it and an interrupted transfer (the session ends with the file still open)
leaves the previous content in place. SCP (`scp -O`; OpenSSH's scp speaks SFTP by default) is
asyncssh's, over this same class.

Every store call blocks: each runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import posixpath
import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import BinaryIO, NoReturn, TypeVar

import asyncssh

from pcloud.services import Services
from pcloud.store.files import (
    AlreadyExists,
    Entry,
    FileStoreError,
    IsAFolder,
    NotAFolder,
    NotFound,
    PathRefused,
    PermissionDenied,
    QuotaExceeded,
    Upload,
    UserFiles,
)

T = TypeVar("T")


@dataclass
class _Reading:
    path: bytes
    file: BinaryIO


@dataclass
class _Writing:
    path: bytes
    upload: Upload
    mtime: float | None = None  # set by the client (scp -p, sftp put -p), applied at close
    failed: bool = False  # a write was refused (quota): nothing to commit


def _refuse(error: FileStoreError) -> NoReturn:
    """The store's refusal as an SFTP status (RFC draft §7; version 3 knows only the first
    eight codes, and asyncssh sends the others as FAILURE to such clients)."""
    reason = str(error)
    if isinstance(error, NotFound):
        raise asyncssh.SFTPNoSuchFile(reason)
    if isinstance(error, PathRefused | PermissionDenied):
        raise asyncssh.SFTPPermissionDenied(reason)
    if isinstance(error, AlreadyExists):
        raise asyncssh.SFTPFileAlreadyExists(reason)
    if isinstance(error, QuotaExceeded):
        raise asyncssh.SFTPQuotaExceeded(reason)
    if isinstance(error, NotAFolder):
        raise asyncssh.SFTPNotADirectory(reason)
    if isinstance(error, IsAFolder):
        raise asyncssh.SFTPFileIsADirectory(reason)
    raise asyncssh.SFTPFailure(reason)


def _attrs(entry: Entry) -> asyncssh.SFTPAttrs:
    write = 0o200 if entry.writable else 0
    if entry.is_dir:
        kind, mode = asyncssh.FILEXFER_TYPE_DIRECTORY, stat.S_IFDIR | 0o500 | write
    else:
        kind, mode = asyncssh.FILEXFER_TYPE_REGULAR, stat.S_IFREG | 0o400 | write
    mtime = int(entry.mtime)
    return asyncssh.SFTPAttrs(
        type=kind, size=entry.size, permissions=mode, atime=mtime, mtime=mtime
    )


class FileServer(asyncssh.SFTPServer):
    """One SFTP (or SCP) session of a signed-in user."""

    def __init__(self, services: Services, channel: asyncssh.SSHServerChannel[bytes]) -> None:
        super().__init__(channel)
        principal = channel.get_extra_info("connection").get_owner().principal
        self.files: UserFiles = services.files.user(principal.address)

    async def _call(self, function: Callable[..., T], *arguments: object) -> T:
        try:
            return await asyncio.to_thread(function, *arguments)
        except FileStoreError as error:
            _refuse(error)

    # -- names and attributes -----------------------------------------------------------------

    def realpath(self, path: bytes) -> bytes:
        return posixpath.normpath(b"/" + path.lstrip(b"/"))

    async def stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return _attrs(await self._call(self.files.stat, path))

    lstat = stat  # the store has no links

    async def fstat(self, file_obj: object) -> asyncssh.SFTPAttrs:
        assert isinstance(file_obj, _Reading | _Writing)
        if isinstance(file_obj, _Writing):
            size = file_obj.upload.size
            return asyncssh.SFTPAttrs(type=asyncssh.FILEXFER_TYPE_REGULAR, size=size)
        return await self.stat(file_obj.path)

    async def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        # Only the modification time means something here (permissions, owners do not): the
        # rest is accepted for a file that exists (clients set modes after each upload).
        if attrs.mtime is not None:
            await self._call(self.files.set_mtime, path, float(attrs.mtime))
        else:
            await self._call(self.files.stat, path)

    lsetstat = setstat

    async def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        if isinstance(file_obj, _Writing):
            if attrs.size is not None:
                await asyncio.to_thread(file_obj.upload.truncate, attrs.size)
            if attrs.mtime is not None:
                file_obj.mtime = float(attrs.mtime)
        elif isinstance(file_obj, _Reading):
            await self.setstat(file_obj.path, attrs)

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        entries = await self._call(self.files.listdir, path)
        folder = await self.stat(path)
        for name in (b".", b".."):
            yield asyncssh.SFTPName(name, attrs=folder)
        for entry in entries:
            yield asyncssh.SFTPName(entry.name.encode(), attrs=_attrs(entry))

    # -- changes ------------------------------------------------------------------------------

    async def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        await self._call(self.files.mkdir, path)

    async def rmdir(self, path: bytes) -> None:
        entries = await self._call(self.files.listdir, path)  # NotAFolder for a file
        if entries:
            raise asyncssh.SFTPDirNotEmpty("the folder is not empty")
        await self._call(self.files.delete, path)

    async def remove(self, path: bytes) -> None:
        if (await self._call(self.files.stat, path)).is_dir:
            raise asyncssh.SFTPFileIsADirectory("a folder: remove it with rmdir")
        await self._call(self.files.delete, path)

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        # Version 3's rename never replaces; OpenSSH's posix-rename extension does.
        await self._call(lambda: self.files.move(oldpath, newpath, overwrite=False))

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._call(self.files.move, oldpath, newpath)

    # -- file contents ------------------------------------------------------------------------

    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if not pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND):
            return _Reading(path, await self._call(self.files.open_read, path))
        keep = not pflags & asyncssh.FXF_TRUNC
        exclusive = bool(pflags & asyncssh.FXF_EXCL)
        if not pflags & asyncssh.FXF_CREAT:
            await self._call(self.files.stat, path)  # it must exist already
        upload = await self._call(
            lambda: self.files.upload(path, keep_content=keep, exclusive=exclusive)
        )
        return _Writing(path, upload)

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        assert isinstance(file_obj, _Reading | _Writing)
        if isinstance(file_obj, _Writing):
            raise asyncssh.SFTPPermissionDenied("opened for writing only")

        def read_at() -> bytes:
            file_obj.file.seek(offset)
            return file_obj.file.read(size)

        return await asyncio.to_thread(read_at)

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        assert isinstance(file_obj, _Reading | _Writing)
        if isinstance(file_obj, _Reading):
            raise asyncssh.SFTPPermissionDenied("opened for reading only")
        try:
            await self._call(file_obj.upload.write_at, offset, data)
        except asyncssh.SFTPError:
            file_obj.failed = True  # the upload dropped itself
            raise
        return len(data)

    async def close(self, file_obj: object) -> None:
        assert isinstance(file_obj, _Reading | _Writing)
        if isinstance(file_obj, _Reading):
            await asyncio.to_thread(file_obj.file.close)
            return
        upload = file_obj.upload
        # The session's end closes files it left open: an interrupted transfer, dropped.
        if file_obj.failed or self.channel.is_closing():
            await asyncio.to_thread(upload.abort)
            return
        upload.mtime = file_obj.mtime
        await self._call(upload.commit)

    def exit(self) -> None:
        # OpenSSH's scp (over SFTP) fails unless the session ends with an exit status, as
        # sshd's sftp-server sends; asyncssh would only close the channel.
        self.channel.exit(0)

    async def fsync(self, file_obj: object) -> None:
        """Written files reach the disk when closed; until then there is nothing to keep."""

    # -- not offered (asyncssh's own would reach the server's file system) -------------------

    def readlink(self, path: bytes) -> bytes:
        raise asyncssh.SFTPOpUnsupported("there are no links here")

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("links are not offered")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("links are not offered")

    def statvfs(self, path: bytes) -> asyncssh.SFTPVFSAttrs:
        raise asyncssh.SFTPOpUnsupported("file system statistics are not offered")

    def fstatvfs(self, file_obj: object) -> asyncssh.SFTPVFSAttrs:
        raise asyncssh.SFTPOpUnsupported("file system statistics are not offered")
