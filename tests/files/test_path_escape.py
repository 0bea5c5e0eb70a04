"""Paths that try to leave the user's tree over WebDAV: every one refused with a 4xx, and
nothing outside the tree read, written or listed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pcloud.testing import RunningServer
from tests.files.conftest import ALICE, BOB, dav
from tests.https import fetch

SECRET = b"outside the tree"
BOBS = b"bob's private notes"

# (method, raw request path under the host, extra headers); {url} is the server's base URL.
TRICKS: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/files/../directory.sqlite3", {}),
    ("GET", "/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd", {}),
    ("GET", "/files/docs/%2e%2e%2f%2e%2e%2f" + BOB + "%2ftree%2fbob.txt", {}),
    ("GET", "/files/%2E%2E/" + BOB + "/tree/bob.txt", {}),
    ("PUT", "/files/..%5c..%5cescaped.txt", {}),
    ("PUT", "/files/..\\..\\escaped.txt", {}),
    ("PUT", "/files/docs/a%00b.txt", {}),
    ("PUT", "/files/%c0%ae%c0%ae/escaped.txt", {}),  # overlong UTF-8 dots
    ("PUT", "/files/%ff%fe.txt", {}),  # not UTF-8
    ("PUT", "/files/%ef%bc%8e%ef%bc%8e/escaped.txt", {}),  # fullwidth full stops
    ("PUT", "/files/docs%ef%bc%8f..%ef%bc%8fescaped.txt", {}),  # fullwidth solidus
    ("PUT", "/files/%e2%80%a5/escaped.txt", {}),  # two dot leader
    ("PUT", "/files/" + "n" * 256, {}),  # a name over 255 bytes
    ("MKCOL", "/files/" + "d/" * 70, {}),  # deeper than 64 levels
    ("COPY", "/files/docs/a.txt", {"Destination": "{url}/files/../escaped.txt"}),
    ("COPY", "/files/docs/a.txt", {"Destination": "{url}/files/%2e%2e/%2e%2e/escaped.txt"}),
    ("MOVE", "/files/docs/a.txt", {"Destination": "https://evil.example/files/a.txt"}),
    ("MOVE", "/files/docs/a.txt", {"Destination": "{url}/dav/" + ALICE + "/a.txt"}),
    ("MOVE", "/files/docs/a.txt", {"Destination": "file:///tmp/escaped.txt"}),
    ("COPY", "/files/docs/a.txt", {"Destination": "/files/docs/%00.txt"}),
    ("COPY", "/files/docs/a.txt", {"Destination": "/files/%ff.txt"}),
    ("GET", "/files/link/secret.txt", {}),  # a symlink planted in the tree
    ("PUT", "/files/link/new.txt", {}),
    ("DELETE", "/files/link", {}),
    ("COPY", "/files/link/secret.txt", {"Destination": "/files/docs/stolen.txt"}),
    ("MOVE", "/files/docs/a.txt", {"Destination": "/files/link/a.txt"}),
    ("PUT", "/files/DOCS/A.txt", {}),  # case: a second name for docs/a.txt's folder
    ("GET", "/files/Shared/" + BOB + "/bob.txt", {}),  # nothing is shared
]


@pytest.fixture
def planted(users: RunningServer, tmp_path: Path) -> Path:
    """Alice's docs/a.txt, Bob's bob.txt, and a symlink in Alice's tree to a folder outside."""
    assert dav(users, "MKCOL", "/docs/")[0] == 201
    assert dav(users, "PUT", "/docs/a.txt", b"alice")[0] == 201
    assert dav(users, "PUT", "/bob.txt", BOBS, user=BOB)[0] == 201
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    os.symlink(outside, users.data_dir / "files" / ALICE / "tree" / "link")
    return outside


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def test_escape_tricks_are_refused(users: RunningServer, planted: Path, tmp_path: Path) -> None:
    alice_tree = users.data_dir / "files" / ALICE / "tree"
    bob_tree = users.data_dir / "files" / BOB / "tree"
    before = snapshot(tmp_path)
    for method, path, headers in TRICKS:
        sent = {
            name: value.format(url=users.url("").rstrip("/")) for name, value in headers.items()
        }
        status, _, body = fetch(
            users, path, method=method, body=b"x" if method == "PUT" else None,
            headers=sent, user=ALICE,
        )  # fmt: skip
        assert 400 <= status < 500, (method, path, headers, status)
        assert SECRET not in body and BOBS not in body
    after = snapshot(tmp_path)
    changed = {name for name in set(before) | set(after) if before.get(name) != after.get(name)}
    # Only the server's own bookkeeping changed (indexes, logs): no file of either tree.
    assert not {name for name in changed if "/tree/" in name or "outside" in name}, changed
    assert sorted(p.name for p in alice_tree.iterdir()) == ["docs", "link"]
    assert sorted(p.name for p in (alice_tree / "docs").iterdir()) == ["a.txt"]
    assert sorted(p.name for p in bob_tree.iterdir()) == ["bob.txt"]
    assert (planted / "secret.txt").read_bytes() == SECRET
    assert sorted(p.name for p in planted.iterdir()) == ["secret.txt"]
    assert not list(tmp_path.rglob("escaped.txt"))
    # The symlink is not listed either.
    status, _, body = dav(users, "PROPFIND", "/", Depth="1")
    assert status == 207 and b"link" not in body
