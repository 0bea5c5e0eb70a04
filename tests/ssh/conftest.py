"""Users with SSH keys on the whole server, and a way to sign in with asyncssh's client."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from pcloud.testing import RunningServer, running_server

ADMIN = "admin@example.org"
ALICE = "alice@example.org"
BOB = "bob@example.org"


@dataclass(frozen=True)
class Account:
    address: str
    key: asyncssh.SSHKey
    key_file: Path  # the private key, for OpenSSH's -i


def new_key(folder: Path, name: str) -> tuple[asyncssh.SSHKey, Path]:
    key = asyncssh.generate_private_key("ssh-ed25519", comment=f"{name}'s laptop")
    path = folder / f"{name}.key"
    key.write_private_key(path)
    os.chmod(path, 0o600)  # OpenSSH refuses a private key others may read
    return key, path


@pytest.fixture
def accounts(server: RunningServer, tmp_path: Path) -> dict[str, Account]:
    """The administrator and two plain users, each with one key in the directory."""
    server.add_user(ALICE)
    server.add_user(BOB)
    result = {}
    for address in (ADMIN, ALICE, BOB):
        key, path = new_key(tmp_path, address.split("@")[0])
        server.services.directory.add_ssh_key(address, key.export_public_key().decode())
        result[address] = Account(address, key, path)
    return result


def connect(
    server: RunningServer, account: Account | None, login: str = "", **options: Any
) -> Any:  # asyncssh's connection, to be used with `async with`
    """An asyncssh client connection as `login` (default: the account's address)."""
    return asyncssh.connect(
        "127.0.0.1",
        server.port("ssh"),
        username=login or (account.address if account else ADMIN),
        client_keys=[account.key] if account else [],
        known_hosts=None,
        agent_path=None,  # never the keys of whoever runs the tests
        config=None,
        **options,
    )


@pytest.fixture
def lockout_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A server that locks an address out after two failed logins."""
    settings = {"login": {"address_lockout_failures": 2, "lockout_minutes": 1}}
    with running_server(tmp_path / "data", settings=settings) as running:
        yield running


async def log_lines(caplog: pytest.LogCaptureFixture, start: str, count: int) -> list[str]:
    """The log lines that start so, once there are `count` of them (the server logs some
    events on its own thread, a moment after the client saw their effect)."""
    for _ in range(500):
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(start)]
        if len(lines) >= count:
            return lines
        await asyncio.sleep(0.02)
    return lines
