"""A whole server with the FTPS listener on, two users, and Python's FTPS client signed in."""

from __future__ import annotations

import ftplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcloud.testing import RunningServer, running_server

ALICE = "alice@example.org"
BOB = "bob@example.org"
PASSWORD = "correct horse battery"  # RunningServer.add_user's default
# Passive ports from the kernel: tests run beside other servers on the same machine.
FTPS_ON = {"listeners.ftps": {"enabled": True}, "ftps": {"passive_ports": ""}}


@pytest.fixture
def ftps(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(tmp_path / "data", settings=FTPS_ON) as running:
        running.add_user(ALICE)
        running.add_user(BOB)
        yield running


def connect(server: RunningServer) -> ftplib.FTP_TLS:
    """Connected and in TLS (AUTH TLS), not signed in."""
    client = ftplib.FTP_TLS(context=server.ssl_context(), timeout=30)
    client.connect("127.0.0.1", server.port("ftps"))
    client.auth()
    return client


def sign_in(server: RunningServer, user: str = ALICE) -> ftplib.FTP_TLS:
    """Signed in, with protected data connections (PBSZ 0, PROT P) and binary transfers."""
    client = connect(server)
    client.login(user, PASSWORD)
    client.prot_p()
    client.voidcmd("TYPE I")
    return client


def tree(server: RunningServer, user: str = ALICE) -> Path:
    """A user's files as the store keeps them on disk."""
    return server.data_dir / "files" / user / "tree"
