"""SCRAM keys in the directory (RFC 5802): written with the password, added at the first password
login of older users, checked by a SCRAM client's proof, throttled like every login."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import scramp

from pcloud.config import LoginSection
from pcloud.directory import Directory

PASSWORD = "correct horse battery"
FAST = LoginSection(first_delay_ms=1, max_delay_ms=5, address_lockout_failures=3)


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Directory]:
    opened = Directory(
        tmp_path / "directory.sqlite3", default_domain="example.org", login_policy=FAST
    )
    opened.add_domain("example.org")
    yield opened
    opened.close()


async def scram_login(
    directory: Directory,
    login: str,
    password: str,
    mechanism: str = "SCRAM-SHA-256",
    remote: str = "192.0.2.1",
) -> str | None:
    """A whole SCRAM exchange between scramp's client and the directory's keys."""
    client = scramp.ScramClient([mechanism], login, password)
    server = scramp.ScramMechanism(mechanism).make_server(
        lambda name: _auth_info(directory, name, mechanism)
    )
    server.set_client_first(client.get_client_first())
    client.set_server_first(server.get_server_first())

    def proof_is_valid() -> bool:
        try:
            server.set_client_final(client.get_client_final())
        except scramp.ScramException:
            return False
        client.set_server_final(server.get_server_final())  # the server proves itself too
        return True

    principal = await directory.authenticate_scram(
        login, proof_is_valid, service="test", remote=remote
    )
    return principal.address if principal else None


def _auth_info(directory: Directory, login: str, mechanism: str) -> tuple[bytes, bytes, bytes, int]:
    keys = directory.scram_keys(login, mechanism)
    return keys.salt, keys.stored_key, keys.server_key, keys.iterations


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
async def test_scram_login_with_the_keys_written_with_the_password(
    directory: Directory, mechanism: str
) -> None:
    directory.add_user("alice@example.org", PASSWORD)
    assert await scram_login(directory, "alice@example.org", PASSWORD, mechanism) == (
        "alice@example.org"
    )
    assert await scram_login(directory, "alice", PASSWORD, mechanism) == "alice@example.org"
    assert await scram_login(directory, "alice@example.org", "wrong password", mechanism) is None
    directory.set_password("alice@example.org", "a brand new secret")
    assert await scram_login(directory, "alice@example.org", PASSWORD, mechanism) is None
    assert await scram_login(directory, "alice@example.org", "a brand new secret", mechanism)


async def test_older_passwords_get_scram_keys_at_their_next_password_login(
    directory: Directory, tmp_path: Path
) -> None:
    directory.add_user("alice@example.org", PASSWORD)
    secret = directory.add_app_password("alice@example.org", "phone")
    db = sqlite3.connect(tmp_path / "directory.sqlite3")
    with db:
        db.execute("DELETE FROM scram_keys")  # as a directory from before migration 4
    assert await scram_login(directory, "alice@example.org", PASSWORD) is None
    # an app password gives no SCRAM keys (it is not the password)
    assert await directory.authenticate("alice@example.org", secret, service="t", remote="x")
    assert await scram_login(directory, "alice@example.org", PASSWORD) is None
    assert await directory.authenticate("alice@example.org", PASSWORD, service="t", remote="x")
    mechanisms = {row[0] for row in db.execute("SELECT mechanism FROM scram_keys")}
    assert mechanisms == {"SCRAM-SHA-1", "SCRAM-SHA-256"}
    assert await scram_login(directory, "alice@example.org", PASSWORD) == "alice@example.org"


def test_unknown_logins_get_the_same_salt_every_time(directory: Directory) -> None:
    directory.add_user("alice@example.org", PASSWORD)
    known = directory.scram_keys("alice@example.org", "SCRAM-SHA-256")
    assert directory.scram_keys("alice@example.org", "SCRAM-SHA-256") == known
    unknown = directory.scram_keys("nobody@example.org", "SCRAM-SHA-256")
    assert unknown.salt == directory.scram_keys("nobody@example.org", "SCRAM-SHA-256").salt
    assert unknown.iterations == known.iterations
    assert len(unknown.salt) == len(known.salt)


async def test_scram_failures_are_throttled(directory: Directory) -> None:
    directory.add_user("alice@example.org", PASSWORD)
    for _ in range(3):
        assert await scram_login(directory, "alice@example.org", "wrong password") is None
    # locked out: even the right proof is refused, and so is PLAIN from that address
    assert await scram_login(directory, "alice@example.org", PASSWORD) is None
    assert not await directory.authenticate(
        "alice@example.org", PASSWORD, service="t", remote="192.0.2.1"
    )
    assert await scram_login(directory, "alice@example.org", PASSWORD, remote="192.0.2.9")
