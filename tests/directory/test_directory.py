"""The directory: users, credentials, aliases, migrations, and the one authenticate() call."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from pcloud.config import LoginSection
from pcloud.directory import Directory, DirectoryError, InvalidValue
from pcloud.directory.schema import MIGRATIONS
from pcloud.store.sqlite import SchemaTooNew

PASSWORD = "correct horse battery"
FAST = LoginSection(first_delay_ms=1, max_delay_ms=5)


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Directory]:
    opened = Directory(
        tmp_path / "directory.sqlite3", default_domain="example.org", login_policy=FAST
    )
    opened.add_domain("example.org")
    yield opened
    opened.close()


async def login(
    directory: Directory, name: str, secret: str, remote: str = "192.0.2.1"
) -> str | None:
    principal = await directory.authenticate(name, secret, service="test", remote=remote)
    return principal.credential if principal else None


def test_passwords_are_stored_only_as_scrypt_hashes(directory: Directory, tmp_path: Path) -> None:
    directory.add_user("alice@example.org", PASSWORD)
    directory.set_password("alice@example.org", "another long secret")
    secret = directory.add_app_password("alice@example.org", "phone")
    directory.close()
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("directory.sqlite3*"))
    for plain in (PASSWORD, "another long secret", secret):
        assert plain.encode() not in stored
    db = sqlite3.connect(tmp_path / "directory.sqlite3")
    (password_hash,) = db.execute("SELECT password_hash FROM users").fetchone()
    assert password_hash.startswith("$scrypt$ln=15,r=8,p=1$")


async def test_authenticate_with_password_and_app_passwords(directory: Directory) -> None:
    directory.add_user("alice@example.org", PASSWORD)
    assert await login(directory, "alice@example.org", PASSWORD) == "password"
    assert await login(directory, "Alice@Example.ORG", PASSWORD) == "password"
    assert await login(directory, "alice", PASSWORD) == "password"  # the main domain
    assert await login(directory, "alice@example.org", "wrong password") is None
    assert await login(directory, "nobody@example.org", PASSWORD) is None

    phone = directory.add_app_password("alice@example.org", "phone")
    assert await login(directory, "alice@example.org", phone) == "app-password:phone"
    assert directory.app_passwords("alice@example.org")[0].last_used is not None
    directory.revoke_app_password("alice@example.org", "phone")
    assert await login(directory, "alice@example.org", phone) is None
    assert await login(directory, "alice@example.org", PASSWORD) == "password"


async def test_a_password_changed_elsewhere_is_not_remembered(
    directory: Directory, tmp_path: Path
) -> None:
    # The server remembers passwords that matched lately (HTTP clients send one per request);
    # a change made by the command line, another process, must end that at once.
    directory.add_user("alice@example.org", PASSWORD)
    assert await login(directory, "alice@example.org", PASSWORD) == "password"
    assert await login(directory, "alice@example.org", PASSWORD) == "password"  # remembered
    command_line = Directory(
        tmp_path / "directory.sqlite3", default_domain="example.org", login_policy=FAST
    )
    command_line.set_password("alice@example.org", "a brand new password")
    command_line.close()
    assert await login(directory, "alice@example.org", PASSWORD) is None
    assert await login(directory, "alice@example.org", "a brand new password") == "password"


async def test_ten_failures_from_one_address_lock_it_out(
    directory: Directory, caplog: pytest.LogCaptureFixture
) -> None:
    directory.add_user("alice@example.org", PASSWORD)
    directory.add_user("bob@example.org", PASSWORD)
    for _ in range(10):
        assert await login(directory, "alice@example.org", "guess", remote="203.0.113.9") is None
    # Now even the right password is refused from that address, for any login ...
    assert await login(directory, "bob@example.org", PASSWORD, remote="203.0.113.9") is None
    # ... while other addresses go on as before.
    assert await login(directory, "bob@example.org", PASSWORD, remote="198.51.100.1") == "password"
    assert "login refused: locked out login=bob@example.org" in caplog.text
    assert caplog.text.count("login failed login=alice@example.org") == 10


async def test_ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4(directory: Directory) -> None:
    directory.add_user("alice@example.org", PASSWORD)
    for host in range(10):
        await login(directory, "alice@example.org", "guess", remote=f"2001:db8::{host + 1}")
    assert await login(directory, "alice@example.org", PASSWORD, remote="2001:db8::ff") is None
    for _ in range(10):
        await login(directory, "alice@example.org", "guess", remote="::ffff:192.0.2.7")
    assert await login(directory, "alice@example.org", PASSWORD, remote="192.0.2.7") is None


async def test_many_addresses_guessing_one_login_lock_that_login(tmp_path: Path) -> None:
    policy = LoginSection(first_delay_ms=1, max_delay_ms=2, login_lockout_failures=5)
    directory = Directory(tmp_path / "d.sqlite3", default_domain="example.org", login_policy=policy)
    directory.add_domain("example.org")
    directory.add_user("alice@example.org", PASSWORD)
    for host in range(5):
        await login(directory, "alice@example.org", "guess", remote=f"192.0.2.{host + 1}")
    assert await login(directory, "alice@example.org", PASSWORD, remote="198.51.100.1") is None
    directory.close()


async def test_a_success_clears_the_failures(directory: Directory) -> None:
    directory.add_user("alice@example.org", PASSWORD)
    for _ in range(9):
        await login(directory, "alice@example.org", "typo")
    assert await login(directory, "alice@example.org", PASSWORD) == "password"
    for _ in range(9):
        await login(directory, "alice@example.org", "typo")
    assert await login(directory, "alice@example.org", PASSWORD) == "password"


def test_delays_double_then_lockout_expires() -> None:
    from pcloud.directory.throttle import Throttle

    now = [1000.0]
    policy = LoginSection(
        delay_after_failures=3,
        first_delay_ms=500,
        max_delay_ms=4000,
        address_lockout_failures=10,
        lockout_minutes=15,
    )
    throttle = Throttle(policy, clock=lambda: now[0])
    delays = []
    for _ in range(10):
        assert not throttle.locked("192.0.2.1", "alice@example.org")
        throttle.attempt("192.0.2.1", "alice@example.org")
        delays.append(throttle.failure_delay("192.0.2.1", "alice@example.org"))
    assert delays == [0, 0, 0, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert throttle.locked("192.0.2.1", "alice@example.org")
    now[0] += 15 * 60 + 1
    assert not throttle.locked("192.0.2.1", "alice@example.org")


def test_users_bad_input_and_conflicts(directory: Directory) -> None:
    user = directory.add_user("Alice@Example.org", PASSWORD, display_name="Alice", quota_bytes=10)
    assert (user.address, user.display_name, user.quota_bytes) == ("alice@example.org", "Alice", 10)
    with pytest.raises(DirectoryError, match="already exists"):
        directory.add_user("alice@example.org", PASSWORD)
    for bad in (
        "alice",
        "a b@example.org",
        "@example.org",
        "a..b@example.org",
        "a@b@example.org",
        '"a@b"@example.org',
        "a%b@example.org",
        "a@-bad-.org",
    ):
        with pytest.raises(InvalidValue):
            directory.add_user(bad, PASSWORD)
    with pytest.raises(InvalidValue, match="at least 10 characters"):
        directory.add_user("bob@example.org", "short")
    with pytest.raises(InvalidValue, match="must not contain the user name"):
        directory.add_user("bob@example.org", "bob-is-the-best")
    with pytest.raises(DirectoryError, match="not hosted"):
        directory.add_user("bob@elsewhere.org", PASSWORD)
    with pytest.raises(DirectoryError, match="no user"):
        directory.set_password("bob@example.org", PASSWORD)
    assert [u.address for u in directory.users()] == ["alice@example.org"]


def test_the_last_administrator_cannot_be_deleted(directory: Directory) -> None:
    directory.add_user("admin@example.org", PASSWORD, is_admin=True)
    with pytest.raises(DirectoryError, match="last administrator"):
        directory.delete_user("admin@example.org")
    directory.add_user("root@example.org", PASSWORD, is_admin=True)
    directory.delete_user("admin@example.org")
    assert directory.user("admin@example.org") is None


def test_aliases_and_catch_all(directory: Directory) -> None:
    directory.add_user("alice@example.org", PASSWORD)
    directory.add_user("bob@example.org", PASSWORD)
    directory.add_alias("team@example.org", ["alice@example.org", "Bob@example.org"])
    directory.add_alias("forward@example.org", ["someone@elsewhere.net"])
    assert directory.resolve("team@example.org") == ["alice@example.org", "bob@example.org"]
    assert directory.resolve("forward@example.org") == ["someone@elsewhere.net"]
    assert directory.resolve("alice@example.org") == ["alice@example.org"]
    assert directory.resolve("stranger@example.org") is None
    directory.add_alias("@example.org", ["alice@example.org"])
    assert directory.resolve("stranger@example.org") == ["alice@example.org"]

    with pytest.raises(DirectoryError, match="is a user"):
        directory.add_alias("alice@example.org", ["bob@example.org"])
    with pytest.raises(DirectoryError, match="not a user"):
        directory.add_alias("x@example.org", ["ghost@example.org"])
    with pytest.raises(DirectoryError, match="not hosted"):
        directory.add_alias("x@elsewhere.net", ["alice@example.org"])
    with pytest.raises(InvalidValue):
        directory.add_alias("x@example.org", ["not an address"])
    with pytest.raises(DirectoryError, match="is an alias"):
        directory.add_user("team@example.org", PASSWORD)

    assert directory.delete_user("bob@example.org") == ["team@example.org"]
    assert directory.resolve("team@example.org") == ["alice@example.org"]
    directory.delete_alias("team@example.org")
    with pytest.raises(DirectoryError, match="no alias"):
        directory.delete_alias("team@example.org")
    assert directory.counts() == {"domains": 1, "users": 1, "aliases": 2}


def test_ssh_keys(directory: Directory) -> None:
    directory.add_user("alice@example.org", PASSWORD)
    public = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    key = directory.add_ssh_key("alice@example.org", public + " alice@laptop\n")
    assert key.fingerprint.startswith("SHA256:") and key.comment == "alice@laptop"
    with pytest.raises(DirectoryError, match="already has the key"):
        directory.add_ssh_key("alice@example.org", public)
    with pytest.raises(InvalidValue):
        directory.add_ssh_key("alice@example.org", "ssh-ed25519 AAAAnotakey")
    assert [k.fingerprint for k in directory.ssh_keys("alice@example.org")] == [key.fingerprint]
    directory.remove_ssh_key("alice@example.org", key.fingerprint)
    assert directory.ssh_keys("alice@example.org") == []


def test_schema_is_migrated_and_a_newer_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "directory.sqlite3"
    Directory(path, default_domain="example.org", login_policy=FAST).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(SchemaTooNew):
        Directory(path, default_domain="example.org", login_policy=FAST)


def test_directory_file_is_private(directory: Directory, tmp_path: Path) -> None:
    assert (tmp_path / "directory.sqlite3").stat().st_mode & 0o077 == 0


def test_changes_are_logged(directory: Directory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    directory.add_user("alice@example.org", PASSWORD)
    assert "user added address=alice@example.org" in caplog.text
    assert PASSWORD not in caplog.text
