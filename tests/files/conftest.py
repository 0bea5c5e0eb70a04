"""Users with files on the whole server, and WebDAV requests signed in as one of them."""

from __future__ import annotations

import pytest

from pcloud.testing import RunningServer
from tests.https import PASSWORD, fetch

ALICE = "alice@example.org"
BOB = "bob@example.org"


@pytest.fixture
def users(server: RunningServer) -> RunningServer:
    server.add_user(ALICE, PASSWORD)
    server.add_user(BOB, PASSWORD)
    return server


def dav(
    server: RunningServer,
    method: str,
    path: str,
    body: bytes | None = None,
    user: str = ALICE,
    **headers: str,
) -> tuple[int, dict[str, str], bytes]:
    """One request under /files/ signed in as `user`; header names as keywords, "_" for "-"."""
    sent = {name.replace("_", "-"): value for name, value in headers.items()}
    return fetch(server, "/files" + path, method=method, body=body, headers=sent, user=user)


def on_disk(server: RunningServer, address: str, path: str) -> bytes:
    """A file of a user's tree as the store keeps it on disk."""
    return (server.data_dir / "files" / address / "tree" / path).read_bytes()
