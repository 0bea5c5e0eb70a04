"""The file store: paths, atomic streaming writes, versions and snapshots, shares, links, quota.

The store runs over a real directory in a temporary data folder; what a caller gets back and
what is on disk are both checked.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcloud.config import FilesSection, LoginSection
from pcloud.directory import Directory
from pcloud.store.files import (
    AlreadyExists,
    FileStore,
    IsAFolder,
    LinkNotFound,
    NotAFolder,
    NotFound,
    ParentNotFound,
    PasswordRequired,
    PathRefused,
    PermissionDenied,
    QuotaExceeded,
)
from pcloud.store.files.retention import DAY, HOUR, WEEK

ALICE = "alice@example.org"
BOB = "bob@example.org"
PASSWORD = "correct horse battery"
MB = 1024 * 1024


class Clock:
    """The time the store stamps changes with, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Directory]:
    directory = Directory(
        tmp_path / "directory.sqlite3", default_domain="example.org", login_policy=LoginSection()
    )
    directory.add_domain("example.org")
    directory.add_user(ALICE, PASSWORD)
    directory.add_user(BOB, PASSWORD)
    yield directory
    directory.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def open_store(
    tmp_path: Path, directory: Directory, clock: Clock, policy: FilesSection | None = None
) -> FileStore:
    return FileStore(tmp_path / "files", directory.user, policy or FilesSection(), clock)


@pytest.fixture
def store(tmp_path: Path, directory: Directory, clock: Clock) -> Iterator[FileStore]:
    store = open_store(tmp_path, directory, clock)
    yield store
    store.close()


def read(store: FileStore, address: str, path: str) -> bytes:
    return b"".join(store.user(address).read_chunks(path))


def tree(tmp_path: Path, address: str = ALICE) -> Path:
    return tmp_path / "files" / address / "tree"


def leftovers(tmp_path: Path, address: str = ALICE) -> list[str]:
    return os.listdir(tmp_path / "files" / address / "tmp")


# -- basics -------------------------------------------------------------------------------------


def test_write_read_list_stat_and_the_files_on_disk(store: FileStore, tmp_path: Path) -> None:
    files = store.user(ALICE)
    files.mkdir("/Documents")
    entry = files.write("/Documents/a.txt", b"hello", mtime=1_600_000_000)
    assert (entry.path, entry.name, entry.size, entry.is_dir) == (
        "Documents/a.txt",
        "a.txt",
        5,
        False,
    )
    assert entry.mtime == 1_600_000_000
    assert (tree(tmp_path) / "Documents" / "a.txt").read_bytes() == b"hello"
    assert [e.name for e in files.listdir("/")] == ["Documents"]
    assert [e.path for e in files.listdir("Documents")] == ["Documents/a.txt"]
    assert files.stat("Documents").is_dir
    assert read(store, ALICE, "Documents/a.txt") == b"hello"
    assert b"".join(files.read_chunks("Documents/a.txt", 1, 3)) == b"ell"
    assert b"".join(files.read_chunks("Documents/a.txt", 3)) == b"lo"
    with files.open_read("Documents/a.txt") as file:
        file.seek(4)
        assert file.read() == b"o"
    # Bob does not see it.
    assert store.user(BOB).listdir("") == []
    with pytest.raises(NotFound):
        store.user(BOB).stat("Documents/a.txt")


def test_errors_of_ordinary_operations(store: FileStore) -> None:
    files = store.user(ALICE)
    files.write("f", b"x")
    with pytest.raises(ParentNotFound):
        files.write("missing/f", b"x")
    with pytest.raises(ParentNotFound):
        files.mkdir("missing/sub")
    with pytest.raises(AlreadyExists):
        files.mkdir("f")
    with pytest.raises(IsAFolder):
        files.write("/", b"x")
    files.mkdir("d")
    with pytest.raises(IsAFolder):
        files.write("d", b"x")
    with pytest.raises(IsAFolder):
        files.open_read("d")
    with pytest.raises(NotFound):
        files.delete("nothing")
    with pytest.raises(PermissionDenied):
        files.delete("/")
    with pytest.raises(PermissionDenied):
        files.move("d", "d/inside")
    # A path that goes on below a file names nothing.
    with pytest.raises(NotFound):
        files.stat("f/below")
    with pytest.raises(NotFound):
        files.open_read("f/below/deeper")
    with pytest.raises(NotAFolder):
        files.write("f/below", b"x")
    with pytest.raises(NotAFolder):
        files.mkdir("f/below")


def test_move_copy_and_mtime(store: FileStore, tmp_path: Path) -> None:
    files = store.user(ALICE)
    files.mkdir("a")
    files.mkdir("a/b")
    files.write("a/b/f.txt", b"content")
    files.copy("a", "copy")
    assert read(store, ALICE, "copy/b/f.txt") == b"content"
    files.move("a", "moved")
    assert not (tree(tmp_path) / "a").exists()
    assert (tree(tmp_path) / "moved" / "b" / "f.txt").read_bytes() == b"content"
    files.write("other", b"other")
    with pytest.raises(AlreadyExists):
        files.move("other", "copy/b/f.txt", overwrite=False)
    files.move("other", "copy/b/f.txt")
    assert read(store, ALICE, "copy/b/f.txt") == b"other"
    assert [v.reason for v in files.versions("copy/b/f.txt")] == ["overwritten"]
    files.move("moved", "MOVED")  # only the case changes
    assert [e.name for e in files.listdir("")] == ["MOVED", "copy"]
    entry = files.set_mtime("MOVED/b/f.txt", 1_500_000_000)
    assert entry.mtime == 1_500_000_000
    assert (tree(tmp_path) / "MOVED" / "b" / "f.txt").stat().st_mtime == 1_500_000_000


# -- path safety --------------------------------------------------------------------------------

ESCAPES = [
    "..",
    "../outside",
    "/../outside",
    "a/../../outside",
    "Documents/../../outside",
    "./../outside",
    "..\\outside",
    "a\\b",
    "with\x00nul",
    "new\nline",
    "tab\there",
    "\uff0e\uff0e/outside",  # fullwidth dots: ".." once folded (NFKC)
    "\u2025/outside",  # two-dot leader: ".." once folded
    "a\uff0fb",  # fullwidth solidus: "/" once folded
    b"\xff\xfe",  # not UTF-8
    b"../outside",
    "x" * 256,  # a name over 255 bytes
    "é" * 128,  # 256 bytes in UTF-8
    "/".join(["d"] * 65),  # too deep
    "/".join(["x" * 200] * 16),  # a path over 3,000 bytes
]


@pytest.mark.parametrize("path", ESCAPES, ids=repr)
def test_path_tricks_are_refused(store: FileStore, tmp_path: Path, path: str | bytes) -> None:
    files = store.user(ALICE)
    files.mkdir("Documents")
    for attempt in (
        lambda: files.write(path, b"x"),
        lambda: files.stat(path),
        lambda: files.listdir(path),
        lambda: files.mkdir(path),
        lambda: files.delete(path),
        lambda: files.move("Documents", path),
    ):
        with pytest.raises(PathRefused):
            attempt()
    on_disk = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "outside" in p.name}
    assert on_disk == set()


def test_harmless_looking_names_stay_inside(store: FileStore, tmp_path: Path) -> None:
    files = store.user(ALICE)
    for name in ("%2e%2e", "...", "..x", " .. ", "~", "$HOME"):
        files.write(f"/{name}", b"x")
        assert (tree(tmp_path) / name).read_bytes() == b"x"
    # Leading, doubled slashes and "." all mean the user's own root.
    files.write("//./inside", b"y")
    assert (tree(tmp_path) / "inside").read_bytes() == b"y"


def test_symlinks_are_never_followed_nor_listed(store: FileStore, tmp_path: Path) -> None:
    files = store.user(ALICE)
    files.mkdir("d")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    # Someone with shell access puts symlinks in the tree.
    os.symlink(outside, tree(tmp_path) / "d" / "link")
    os.symlink(outside / "secret", tree(tmp_path) / "file-link")
    assert [e.name for e in files.listdir("")] == ["d"]
    assert files.listdir("d") == []
    for attempt in (
        lambda: files.listdir("d/link"),
        lambda: files.stat("d/link/secret"),
        lambda: files.open_read("d/link/secret"),
        lambda: files.write("d/link/new", b"x"),
        lambda: files.write("d/link/secret", b"x"),
        lambda: files.open_read("file-link"),
        lambda: files.delete("d/link/secret"),
    ):
        with pytest.raises((PathRefused, NotFound)):
            attempt()
    assert os.listdir(outside) == ["secret"]
    assert (outside / "secret").read_bytes() == b"secret"


def test_unicode_forms_and_case(store: FileStore, tmp_path: Path) -> None:
    files = store.user(ALICE)
    files.write("caf\u0065\u0301.txt", b"nfd")  # as macOS sends it
    assert os.listdir(tree(tmp_path)) == ["caf\u00e9.txt"]
    assert read(store, ALICE, "caf\u00e9.txt") == b"nfd"
    files.write("Report.txt", b"1")
    with pytest.raises(AlreadyExists):
        files.write("report.TXT", b"2")  # a case-insensitive client could not tell them apart
    with pytest.raises(AlreadyExists):
        files.mkdir("REPORT.txt")
    with pytest.raises(NotFound):
        files.stat("report.txt")  # lookups are exact
    with pytest.raises(AlreadyExists):
        files.mkdir("shared")  # the root's Shared/ is reserved, in any case


# -- atomic, streamed writes --------------------------------------------------------------------


def test_an_interrupted_upload_leaves_the_old_content(store: FileStore, tmp_path: Path) -> None:
    files = store.user(ALICE)
    files.write("f", b"old content")

    def broken() -> Iterator[bytes]:
        yield b"new "
        yield b"partial"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        files.write("f", broken())
    assert read(store, ALICE, "f") == b"old content"
    assert leftovers(tmp_path) == []
    assert files.versions("f") == []
    # A reader that opened the file before a write keeps reading what it opened.
    with files.open_read("f") as before:
        files.write("f", b"newer")
        assert before.read() == b"old content"
    # An upload left without commit is dropped.
    with files.upload("f") as upload:
        upload.write(b"never committed")
    assert read(store, ALICE, "f") == b"newer"
    assert leftovers(tmp_path) == []


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_large_files_stream_in_flat_memory(store: FileStore) -> None:
    files = store.user(ALICE)
    chunk = os.urandom(MB)
    size = 200 * MB
    start = _rss()
    peak = start

    def chunks() -> Iterator[bytes]:
        nonlocal peak
        for _ in range(size // MB):
            peak = max(peak, _rss())
            yield chunk

    files.write("big", chunks())
    assert peak - start < 40 * MB, f"memory grew by {(peak - start) // MB} MB"
    digest = hashlib.sha256()
    reading_peak = _rss()
    for part in files.read_chunks("big"):
        digest.update(part)
        reading_peak = max(reading_peak, _rss())
    assert digest.hexdigest() == hashlib.sha256(chunk * (size // MB)).hexdigest()
    assert reading_peak - start < 40 * MB


def test_uploads_at_offsets_and_from_the_current_content(store: FileStore) -> None:
    files = store.user(ALICE)
    with files.upload("f") as upload:  # an SFTP client may write out of order
        upload.write_at(5, b"world")
        upload.write_at(0, b"hello")
        upload.commit()
    assert read(store, ALICE, "f") == b"helloworld"
    with files.upload("f", keep_content=True) as upload:  # append
        upload.write(b"!")
        upload.commit()
    assert read(store, ALICE, "f") == b"helloworld!"
    # The content hash is right either way: the same content is one blob.
    files.write("f", b"helloworld")
    versions = files.versions("f")
    assert versions[1].sha256 == hashlib.sha256(b"helloworld").hexdigest()
    with pytest.raises(AlreadyExists):
        files.upload("f", exclusive=True)


# -- versions and snapshots ---------------------------------------------------------------------


def test_every_overwrite_keeps_a_version_restored_byte_identical(
    store: FileStore, tmp_path: Path, clock: Clock
) -> None:
    files = store.user(ALICE)
    first = os.urandom(300_000)
    files.write("doc.bin", first)
    for content in (b"second", b"third", b"fourth"):
        clock.now += 60
        files.write("doc.bin", content)
    versions = files.versions("doc.bin")
    assert [v.size for v in versions] == [5, 6, len(first)]
    assert [v.reason for v in versions] == ["overwritten"] * 3
    assert versions[-1].sha256 == hashlib.sha256(first).hexdigest()
    with files.open_version("doc.bin", versions[-1].id) as old:
        assert old.read() == first
    clock.now += 60
    assert files.restore("doc.bin", version=versions[-1].id) == ["doc.bin"]
    assert read(store, ALICE, "doc.bin") == first
    # The restore is a change like any other: "fourth" is now a version too.
    assert files.versions("doc.bin")[0].size == len(b"fourth")
    # Contents are stored once: restoring `first` made no second blob of it.
    blobs = [p for p in (tmp_path / "files" / ALICE / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 4


def test_deleted_folder_restored_as_of_a_point_in_time(store: FileStore, clock: Clock) -> None:
    files = store.user(ALICE)
    files.mkdir("project")
    files.mkdir("project/src")
    files.write("project/src/main.py", b"print(1)")
    files.write("project/README", b"v1")
    clock.now += 100
    before = clock.now
    clock.now += 100
    files.write("project/README", b"v2")
    files.write("project/new", b"added later")
    clock.now += 100
    files.delete("project")
    assert files.listdir("") == []
    assert {v.path: v.reason for v in files.versions("project")}["project/new"] == "deleted"
    assert [(f.path, f.size) for f in files.state_at("project", before)] == [
        ("project/README", 2),
        ("project/src/main.py", 8),
    ]
    clock.now += 100
    restored = files.restore("project", at=before)
    assert sorted(restored) == ["project/README", "project/src/main.py"]
    assert read(store, ALICE, "project/README") == b"v1"
    assert read(store, ALICE, "project/src/main.py") == b"print(1)"
    # Restored elsewhere, as of just before the delete.
    files.restore("project", at=clock.now - 150, to="copy")
    assert read(store, ALICE, "copy/README") == b"v2"
    assert read(store, ALICE, "copy/new") == b"added later"
    with pytest.raises(NotFound):
        files.restore("project", at=before - 1000)


def test_a_moved_file_is_found_at_its_old_path_in_the_past(store: FileStore, clock: Clock) -> None:
    files = store.user(ALICE)
    files.write("old-name", b"x")
    clock.now += 10
    files.move("old-name", "new-name")
    assert [f.path for f in files.state_at("", clock.now - 5)] == ["old-name"]
    assert [f.path for f in files.state_at("", clock.now + 1)] == ["new-name"]


def test_prune_keeps_hourly_daily_and_weekly_snapshots(
    store: FileStore, clock: Clock, tmp_path: Path
) -> None:
    files = store.user(ALICE)
    start = 1_700_000_000.0 // WEEK * WEEK + 7 * 60  # a Thursday, 00:07 UTC
    # A new content every hour, at 7 past, for 45 days (the store prunes now and then itself).
    for number in range(45 * 24):
        clock.now = start + number * HOUR
        files.write("log.txt", str(number).encode())
    now = clock.now
    store.tree(ALICE).prune(now)
    kept = files.versions("log.txt")
    # Every point in time the policy keeps still shows its content...
    points = files.snapshot_times(now)
    for point in points:
        assert len(files.state_at("log.txt", point)) == 1, point
    hourly = [p for p in points if p > now - DAY]
    assert len(hourly) == 24
    assert len([p for p in points if now - 30 * DAY < p <= now - DAY]) == 29  # midnights
    # ...and nothing else: the noon of ten days ago is gone, the last hour is all there.
    assert files.state_at("log.txt", now // DAY * DAY - 10 * DAY + 12 * HOUR) == []
    assert len([v for v in kept if v.replaced > now - HOUR]) == 1
    assert len(kept) == len({p // HOUR for p in points if p < now - HOUR}) + 1
    # Unused blobs are gone from disk.
    blobs = [p for p in (tmp_path / "files" / ALICE / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == len({v.sha256 for v in kept})


def test_a_file_put_in_the_tree_by_hand_is_versioned_when_replaced(
    tmp_path: Path, directory: Directory, clock: Clock
) -> None:
    store = open_store(tmp_path, directory, clock)
    store.user(ALICE).write("placeholder", b"")
    store.close()
    (tree(tmp_path) / "by-hand.txt").write_bytes(b"copied in with cp")
    store = open_store(tmp_path, directory, clock)
    files = store.user(ALICE)
    files.write("by-hand.txt", b"replaced")
    [version] = files.versions("by-hand.txt")
    assert version.sha256 == hashlib.sha256(b"copied in with cp").hexdigest()
    with files.open_version("by-hand.txt", version.id) as old:
        assert old.read() == b"copied in with cp"
    store.close()


# -- quota --------------------------------------------------------------------------------------


def test_quota_refuses_writes_and_counts_versions(
    store: FileStore, directory: Directory, tmp_path: Path
) -> None:
    directory.set_quota(ALICE, 1000)
    files = store.user(ALICE)
    files.write("a", b"x" * 600)
    with pytest.raises(QuotaExceeded):
        files.write("b", b"y" * 500)
    with pytest.raises(QuotaExceeded):
        files.write("b", iter([b"y" * 300, b"y" * 300]))  # stopped while streaming
    assert leftovers(tmp_path) == []
    with pytest.raises(NotFound):
        files.stat("b")
    files.write("a", b"z" * 300)  # the 600 bytes stay, as a version
    usage = files.usage()
    assert (usage.files, usage.versions, usage.counted, usage.quota) == (300, 600, 900, 1000)
    with pytest.raises(QuotaExceeded):
        files.write("c", b"c" * 200)


def test_versions_need_not_count_against_the_quota(
    tmp_path: Path, directory: Directory, clock: Clock
) -> None:
    store = open_store(tmp_path, directory, clock, FilesSection(versions_count_against_quota=False))
    directory.set_quota(ALICE, 1000)
    files = store.user(ALICE)
    files.write("a", b"x" * 900)
    files.write("a", b"z" * 900)  # the file it replaces is freed
    assert files.usage().counted == 900
    store.close()


# -- shares and links ---------------------------------------------------------------------------


def test_a_read_only_share_appears_in_the_grantees_tree(store: FileStore) -> None:
    alice, bob = store.user(ALICE), store.user(BOB)
    alice.mkdir("Photos")
    alice.write("Photos/cat.jpg", b"cat")
    alice.write("private.txt", b"mine")
    store.share(ALICE, "/Photos", BOB, writable=False)
    assert [e.path for e in bob.listdir("")] == ["Shared"]
    assert [e.name for e in bob.listdir("Shared")] == [ALICE]
    [photos] = bob.listdir(f"Shared/{ALICE}")
    assert (photos.path, photos.is_dir, photos.writable) == (f"Shared/{ALICE}/Photos", True, False)
    assert [e.path for e in bob.listdir(f"Shared/{ALICE}/Photos")] == [
        f"Shared/{ALICE}/Photos/cat.jpg"
    ]
    assert read(store, BOB, f"Shared/{ALICE}/Photos/cat.jpg") == b"cat"
    for attempt in (
        lambda: bob.write(f"Shared/{ALICE}/Photos/dog.jpg", b"dog"),
        lambda: bob.delete(f"Shared/{ALICE}/Photos/cat.jpg"),
        lambda: bob.mkdir(f"Shared/{ALICE}"),
    ):
        with pytest.raises(PermissionDenied):
            attempt()
    with pytest.raises(NotFound):
        bob.write("Shared/x", b"x")
    with pytest.raises(NotFound):
        bob.stat(f"Shared/{ALICE}/private.txt")
    with pytest.raises(PathRefused):
        bob.stat(f"Shared/{ALICE}/Photos/../private.txt")
    store.unshare(ALICE, "Photos", BOB)
    assert bob.listdir("") == []
    with pytest.raises(NotFound):
        bob.stat(f"Shared/{ALICE}/Photos/cat.jpg")


def test_a_read_write_share_writes_into_the_owners_tree(
    store: FileStore, directory: Directory, tmp_path: Path
) -> None:
    alice, bob = store.user(ALICE), store.user(BOB)
    alice.mkdir("Team")
    store.share(ALICE, "Team", BOB, writable=True)
    bob.write(f"Shared/{ALICE}/Team/notes.txt", b"from bob")
    assert (tree(tmp_path, ALICE) / "Team" / "notes.txt").read_bytes() == b"from bob"
    bob.write(f"Shared/{ALICE}/Team/notes.txt", b"edited")
    [version] = bob.versions(f"Shared/{ALICE}/Team/notes.txt")
    assert version.path == f"Shared/{ALICE}/Team/notes.txt"
    assert alice.versions("Team/notes.txt")[0].id == version.id
    # Moving out of the share is a copy and a delete; the owner keeps the version.
    bob.move(f"Shared/{ALICE}/Team/notes.txt", "mine.txt")
    assert read(store, BOB, "mine.txt") == b"edited"
    assert [e.name for e in alice.listdir("Team")] == []
    with pytest.raises(PermissionDenied):
        bob.delete(f"Shared/{ALICE}/Team")  # only the owner removes a share
    # Writes count against the owner's quota.
    directory.set_quota(ALICE, 100)
    with pytest.raises(QuotaExceeded):
        bob.write(f"Shared/{ALICE}/Team/big", b"x" * 200)
    with pytest.raises(PermissionDenied):
        store.share(ALICE, "Team", ALICE, writable=True)


def test_download_links_with_password_and_expiry(store: FileStore, clock: Clock) -> None:
    alice = store.user(ALICE)
    alice.mkdir("Public")
    alice.write("Public/paper.pdf", b"%PDF")
    alice.write("secret", b"no")
    link = store.add_link(ALICE, "/Public", password=PASSWORD, expires=clock.now + 3600)
    assert len(link.token) >= 22 and link.has_password
    with pytest.raises(PasswordRequired):
        store.open_link(link.token)
    with pytest.raises(PasswordRequired):
        store.open_link(link.token, "wrong password")
    access = store.open_link(link.token, PASSWORD)
    assert [e.path for e in access.listdir()] == ["paper.pdf"]
    assert b"".join(access.read_chunks("paper.pdf")) == b"%PDF"
    with pytest.raises(PathRefused):
        access.stat("../secret")
    with pytest.raises(PermissionDenied):
        access.drop("x", b"x")
    clock.now += 3601
    with pytest.raises(LinkNotFound):
        store.open_link(link.token, PASSWORD)
    with pytest.raises(LinkNotFound):
        store.open_link("not-a-token")
    assert [x.token for x in store.links(ALICE)] == [link.token]
    with pytest.raises(NotFound):
        store.remove_link(BOB, link.token)  # only its owner's
    store.remove_link(ALICE, link.token)
    assert store.links() == []


def test_an_upload_only_link_is_a_drop_box(store: FileStore, tmp_path: Path) -> None:
    alice = store.user(ALICE)
    alice.mkdir("Inbox")
    alice.write("Inbox/existing.txt", b"private")
    link = store.add_link(ALICE, "Inbox", upload_only=True)
    access = store.open_link(link.token)
    with pytest.raises(PermissionDenied):
        access.listdir()
    with pytest.raises(PermissionDenied):
        b"".join(access.read_chunks("existing.txt"))
    assert access.drop("existing.txt", b"dropped") == "existing (2).txt"
    assert access.drop("existing.txt", io.BytesIO(b"again")) == "existing (3).txt"
    assert read(store, ALICE, "Inbox/existing.txt") == b"private"
    assert (tree(tmp_path) / "Inbox" / "existing (2).txt").read_bytes() == b"dropped"
    with pytest.raises(PathRefused):
        access.drop("../escape", b"x")


def test_a_new_user_of_a_deleted_address_starts_empty(
    tmp_path: Path, directory: Directory, clock: Clock
) -> None:
    store = open_store(tmp_path, directory, clock)
    store.user(ALICE).write("old", b"previous owner's")
    store.close()
    # The folder was a user's created at another time (creation times are in seconds: a test
    # cannot wait for the next one cheaply, so it names an earlier user).
    (tmp_path / "files" / ALICE / "owner").write_text("1")
    store = open_store(tmp_path, directory, clock)
    assert store.user(ALICE).listdir("") == []
    [retired] = (tmp_path / "files" / ".retired").iterdir()
    assert (retired / "tree" / "old").read_bytes() == b"previous owner's"
    store.close()
