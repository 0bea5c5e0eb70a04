"""A file being written: streamed to a temporary file of the store, put in place by `commit`.

Memory stays flat whatever the size: data goes to disk as it comes, and the SHA-256 that names
the content is computed on the way (or, when a client wrote out of order, as SFTP may, read back
once at commit). Until `commit` the old content is untouched and readers see it; `abort`, an
exception in a `with` block or a refused commit leaves no temporary file behind.
"""

from __future__ import annotations

import hashlib
import os
from types import TracebackType

from pcloud.store.files.tree import CHUNK, UserTree
from pcloud.store.files.values import Entry, QuotaExceeded


class Upload:
    def __init__(
        self,
        tree: UserTree,
        path: str,
        *,
        mtime: float | None = None,
        keep_content: bool = False,
        exclusive: bool = False,
    ) -> None:
        """`keep_content` starts from the current content (SFTP open without truncation, or
        append); `exclusive` refuses to replace an existing file."""
        tree.check_writable_file(path, exclusive=exclusive)
        self.tree = tree
        self.path = path
        self.mtime = mtime
        self.exclusive = exclusive
        self.size = 0
        self._room = tree.room(path)
        self._digest: hashlib._Hash | None = hashlib.sha256()
        self._temporary, self._descriptor = tree.new_temporary()
        self._done = False
        if keep_content and tree.exists(path):
            try:
                with tree.open_read(path) as current:
                    while chunk := current.read(CHUNK):
                        self.write(chunk)
            except BaseException:
                self.abort()
                raise

    def write(self, data: bytes) -> None:
        """Append."""
        self.write_at(self.size, data)

    def write_at(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if self._room is not None and end > self._room:
            self.abort()
            raise QuotaExceeded(f"the quota of {self.tree.quota()} bytes would be exceeded")
        if self._digest is not None and offset == self.size:
            self._digest.update(data)
        elif data:
            self._digest = None  # out of order: hashed from the file at commit
        written = 0
        while written < len(data):
            written += os.pwrite(self._descriptor, memoryview(data)[written:], offset + written)
        self.size = max(self.size, end)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._descriptor, size)
        if size != self.size:
            self._digest = None
        self.size = size

    def commit(self) -> Entry:
        """Flush and put the file in place; the previous content becomes a version."""
        try:
            try:
                os.fsync(self._descriptor)
            finally:
                os.close(self._descriptor)
                self._done = True
            if self._digest is None:
                self._digest = hashlib.sha256()
                with open(self._temporary, "rb") as file:
                    while chunk := file.read(CHUNK):
                        self._digest.update(chunk)
            return self.tree.commit_upload(
                self.path, self._temporary, self._digest.hexdigest(), self.mtime, self.exclusive
            )
        finally:
            self._temporary.unlink(missing_ok=True)

    def abort(self) -> None:
        if not self._done:
            self._done = True
            os.close(self._descriptor)
        self._temporary.unlink(missing_ok=True)

    def __enter__(self) -> Upload:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Leaving the block without `commit` (an exception, say) drops the upload."""
        self.abort()
