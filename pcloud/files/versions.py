"""The read-only view of earlier versions: `/files/.versions/<time>/…` is the user's tree as it
was at that time (`UserFiles.state_at`), browsable and downloadable like the live tree.

- `/files/.versions/` lists one folder per point in time the store keeps (`snapshot_times`:
  hourly, daily, weekly), plus one per version replaced within the last `keep_all_minutes`
  (the moment before it was replaced), so that every version kept is in at least one folder.
  Any other time may be typed in too. Names are UTC in ISO 8601 basic format, which has no
  ":" (Windows refuses it in names): `20240501T140000Z`, or `20240501T135959.123Z`.
- Restoring is copying back: COPY (a file manager's copy and paste, or drag and drop) from the
  view into the live tree writes that content there, as any write does (what was there becomes
  a version in turn). Nothing in the view can be changed, moved, deleted or locked (403).
- Folders are not versioned: a past folder is there when files were in it.
"""

from __future__ import annotations

import math
import re
import time
import unicodedata
from calendar import timegm
from typing import Any, BinaryIO, NoReturn

from wsgidav import util
from wsgidav.dav_error import HTTP_FORBIDDEN, DAVError
from wsgidav.dav_provider import DAVCollection, DAVNonCollection

from pcloud.files.resources import (
    ENVIRON_FILES,
    VERSIONS,
    Keyed,
    child_path,
    refuse_versions,
    store_errors,
)
from pcloud.store.files import NotFound, PastFile, UserFiles

_NAME = re.compile(r"(\d{8}T\d{6})(?:\.(\d{3}))?Z")


def time_name(milliseconds: int) -> str:
    seconds, fraction = divmod(milliseconds, 1000)
    name = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds))
    return f"{name}.{fraction:03d}Z" if fraction else f"{name}Z"


def parse_time_name(name: str) -> int | None:
    """Milliseconds since the epoch, or None when the name is not a time of ours."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    try:
        moment = time.strptime(match[1], "%Y%m%dT%H%M%S")
    except ValueError:
        return None
    return timegm(moment) * 1000 + int(match[2] or 0)


def points(files: UserFiles) -> list[int]:
    """The times listed in the view (milliseconds), newest first."""
    now = files.store.clock()
    chosen = {round(point * 1000) for point in files.snapshot_times(now)}
    recent = now - files.store.policy.keep_all_minutes * 60
    # The last millisecond before the version was replaced: it was the content then.
    chosen |= {math.ceil(v.replaced * 1000) - 1 for v in files.versions("") if v.replaced > recent}
    return sorted(chosen, reverse=True)


class _ReadOnly(Keyed):
    """What every resource of the view refuses."""

    def prevent_locking(self) -> bool:
        return True

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise DAVError(HTTP_FORBIDDEN, "earlier versions are read-only (copy them out instead)")

    set_property_value = handle_delete = handle_move = delete = _refuse


class VersionsRoot(_ReadOnly, DAVCollection):
    def __init__(self, path: str, environ: dict[str, Any]) -> None:
        super().__init__(path, environ)
        self.files: UserFiles = environ[ENVIRON_FILES]

    def get_display_name(self) -> str:
        return VERSIONS

    def get_member_names(self) -> list[str]:
        with store_errors():
            return [time_name(point) for point in points(self.files)]

    def get_member(self, name: str) -> Any:
        return versions_resource(child_path(self.path, name), self.environ)

    def support_recursive_delete(self) -> bool:
        return False


class PastFolder(_ReadOnly, DAVCollection):
    """A folder as it was at `at` (the top one: the whole tree)."""

    def __init__(
        self, path: str, environ: dict[str, Any], at: float, rel: str, state: list[PastFile]
    ) -> None:
        """`state`: the files under `rel` at that time."""
        super().__init__(path, environ)
        self.at = at
        self.rel = rel
        self.state = state

    def get_display_name(self) -> str:
        return str(self.name)

    def get_last_modified(self) -> float | None:
        return max((file.mtime for file in self.state), default=None)

    def _members(self) -> dict[str, PastFile | list[PastFile]]:
        """name -> the file, or the files under that folder."""
        prefix = self.rel + "/" if self.rel else ""
        members: dict[str, PastFile | list[PastFile]] = {}
        for file in self.state:
            name, slash, _ = file.path[len(prefix) :].partition("/")
            if not slash:
                members[name] = file
            else:
                inside = members.setdefault(name, [])
                if isinstance(inside, list):
                    inside.append(file)
        return members

    def get_member_names(self) -> list[str]:
        return sorted(self._members())

    def get_member(self, name: str) -> Any:
        return self._member(name, self._members().get(name))

    def get_member_list(self) -> list[Any]:
        return [self._member(name, found) for name, found in sorted(self._members().items())]

    def _member(self, name: str, found: PastFile | list[PastFile] | None) -> Any:
        path = child_path(self.path, name)
        if found is None:
            return None
        if isinstance(found, list):
            return PastFolder(path, self.environ, self.at, f"{self.rel}/{name}".lstrip("/"), found)
        return PastFileResource(path, self.environ, found)

    def support_recursive_delete(self) -> bool:
        return False

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        """Restoring a folder: the folder alone (WsgiDAV copies the files one by one)."""
        refuse_versions(dest_path)
        files: UserFiles = self.environ[ENVIRON_FILES]
        with store_errors():
            try:
                files.stat(dest_path)
            except NotFound:
                files.mkdir(dest_path)

    def support_recursive_move(self, dest_path: str) -> bool:
        return False


class PastFileResource(_ReadOnly, DAVNonCollection):
    def __init__(self, path: str, environ: dict[str, Any], file: PastFile) -> None:
        super().__init__(path, environ)
        self.file = file

    def get_content_length(self) -> int:
        return self.file.size

    def get_content_type(self) -> str:
        return str(util.guess_mime_type(self.path))

    def get_display_name(self) -> str:
        return str(self.name)

    def get_etag(self) -> str:
        return self.file.sha256 or f"version-{self.file.version}"

    def get_last_modified(self) -> float:
        return self.file.mtime

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return True

    def get_content(self) -> BinaryIO:
        files: UserFiles = self.environ[ENVIRON_FILES]
        with store_errors():
            if self.file.version is None:  # still the current content
                return files.open_read(self.file.path)
            return files.open_version(self.file.path, self.file.version)

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        """Restore: this content written at `dest_path` (a MOVE was refused before)."""
        refuse_versions(dest_path)
        files: UserFiles = self.environ[ENVIRON_FILES]
        with store_errors():
            if self.file.version is None:
                files.copy(self.file.path, dest_path)
            else:
                files.restore(self.file.path, version=self.file.version, to=dest_path)

    def support_recursive_move(self, dest_path: str) -> bool:
        return False


def versions_resource(path: str, environ: dict[str, Any]) -> Any:
    """The resource at a path of the view, or None."""
    names = path.strip("/").split("/")  # names[0] is VERSIONS
    if len(names) == 1:
        return VersionsRoot(path, environ)
    milliseconds = parse_time_name(names[1])
    if milliseconds is None:
        return None
    rel = unicodedata.normalize("NFC", "/".join(names[2:]))  # as the store names files
    files: UserFiles = environ[ENVIRON_FILES]
    with store_errors():
        state = files.state_at(rel, milliseconds / 1000)
    exact = next((file for file in state if file.path == rel), None)
    if exact is not None and rel:
        return PastFileResource(path, environ, exact)
    if state or not rel:
        return PastFolder(path, environ, milliseconds / 1000, rel, state)
    return None
