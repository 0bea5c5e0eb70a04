"""The user directory: domains, users, app passwords, SSH keys, aliases and quotas.

On-disk layout: `<data>/directory.sqlite3` (WAL mode), schema in `schema.py`.

Every protocol authenticates through the one call `Directory.authenticate`, which applies the
throttling of failed logins. The directory is read on every request and never cached, so changes
made by `pcloud` commands while the server runs take effect at once, with no reload.

Errors: `InvalidValue` for input that is malformed or too weak (an address, a password), and
`DirectoryError` for a well-formed request that cannot be done (a duplicate, an unknown user).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from pcloud.config import LoginSection
from pcloud.directory import passwords
from pcloud.directory.addresses import AddressError, domain_of, normalize_address, normalize_domain
from pcloud.directory.schema import MIGRATIONS
from pcloud.directory.throttle import Throttle
from pcloud.store.sqlite import open_database

log = logging.getLogger(__name__)

DIRECTORY_FILE = "directory.sqlite3"
# How stale an app password's "last used" time may be (`pcloud user app-password list`).
LAST_USED_PRECISION_SECONDS = 600


class DirectoryError(Exception):
    """A request that cannot be done; the message is for the person who asked."""


class InvalidValue(DirectoryError):
    """The value given is malformed or too weak."""


@dataclass(frozen=True)
class User:
    address: str
    display_name: str
    is_admin: bool
    quota_bytes: int  # 0: no limit
    created: int


@dataclass(frozen=True)
class Principal:
    """Who a successful login is, and with which credential (for the logs and for revocation)."""

    address: str
    is_admin: bool
    credential: str  # "password" or "app-password:<label>"


@dataclass(frozen=True)
class Share:
    owner: str
    collection: str
    grantee: str
    writable: bool


# A calendar's or address book's name in its owner's DAV home (one path segment).
COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class AppPassword:
    label: str
    created: int
    last_used: int | None


@dataclass(frozen=True)
class SshKey:
    fingerprint: str
    comment: str
    public_key: str
    created: int


def _address(text: str) -> str:
    try:
        return normalize_address(text)
    except AddressError as error:
        raise InvalidValue(str(error)) from None


def ssh_fingerprint(public_key_line: str) -> str:
    """OpenSSH's SHA256 fingerprint of an `ssh-ed25519 AAAA… comment` line."""
    blob = base64.b64decode(public_key_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class Directory:
    def __init__(self, path: Path, *, default_domain: str, login_policy: LoginSection) -> None:
        self.path = path
        self.default_domain = default_domain
        self.throttle = Throttle(login_policy)
        self.recently_verified = passwords.RecentlyVerified()
        # One connection shared by the event loop and its worker threads; every use is short
        # and holds the lock. Password hashing happens outside it.
        self._lock = threading.Lock()
        self._db = open_database(path, MIGRATIONS)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, *args: object) -> list[sqlite3.Row]:
        with self._lock:
            cursor = self._db.execute(sql, args)
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()

    # -- domains ------------------------------------------------------------------------------

    def add_domain(self, name: str) -> str:
        try:
            domain = normalize_domain(name)
        except AddressError as error:
            raise InvalidValue(str(error)) from None
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM domains WHERE name = ?", (domain,)).fetchone():
                raise DirectoryError(f"domain {domain} is already hosted")
            db.execute("INSERT INTO domains VALUES (?, ?)", (domain, int(time.time())))
        log.info("domain added domain=%s", domain)
        return domain

    def domains(self) -> list[str]:
        return [row["name"] for row in self._query("SELECT name FROM domains ORDER BY name")]

    def _require_hosted(self, db: sqlite3.Connection, domain: str) -> None:
        if not db.execute("SELECT 1 FROM domains WHERE name = ?", (domain,)).fetchone():
            raise DirectoryError(
                f"domain {domain} is not hosted here (add it with `pcloud domain add {domain}`)"
            )

    # -- users --------------------------------------------------------------------------------

    def add_user(
        self,
        address: str,
        password: str,
        *,
        display_name: str = "",
        is_admin: bool = False,
        quota_bytes: int = 0,
    ) -> User:
        address = _address(address)
        self._check_password(password, address)
        password_hash = passwords.hash_password(password)
        scram_keys = passwords.scram_keys(password)
        with self._transaction() as db:
            self._require_hosted(db, domain_of(address))
            if db.execute("SELECT 1 FROM users WHERE address = ?", (address,)).fetchone():
                raise DirectoryError(f"user {address} already exists")
            if db.execute("SELECT 1 FROM aliases WHERE address = ?", (address,)).fetchone():
                raise DirectoryError(f"{address} is an alias; delete the alias first")
            db.execute(
                "INSERT INTO users (address, domain, display_name, password_hash, is_admin,"
                " quota_bytes, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    address,
                    domain_of(address),
                    display_name,
                    password_hash,
                    int(is_admin),
                    quota_bytes,
                    int(time.time()),
                ),
            )
            _store_scram_keys(db, self._user_id(db, address), scram_keys)
        log.info("user added address=%s admin=%s", address, is_admin)
        user = self.user(address)
        assert user is not None
        return user

    def user(self, address: str) -> User | None:
        rows = self._query(
            "SELECT address, display_name, is_admin, quota_bytes, created FROM users"
            " WHERE address = ?",
            _address(address),
        )
        return _user(rows[0]) if rows else None

    def users(self) -> list[User]:
        rows = self._query(
            "SELECT address, display_name, is_admin, quota_bytes, created FROM users"
            " ORDER BY domain, address"
        )
        return [_user(row) for row in rows]

    def _user_id(self, db: sqlite3.Connection, address: str) -> int:
        row = db.execute("SELECT id FROM users WHERE address = ?", (address,)).fetchone()
        if row is None:
            raise DirectoryError(f"no user {address}")
        user_id: int = row[0]
        return user_id

    def _check_password(self, password: str, address: str) -> None:
        problem = passwords.password_problem(password, address)
        if problem:
            raise InvalidValue(problem)

    def set_password(self, address: str, password: str) -> None:
        address = _address(address)
        self._check_password(password, address)
        password_hash = passwords.hash_password(password)
        scram_keys = passwords.scram_keys(password)
        with self._transaction() as db:
            user_id = self._user_id(db, address)
            db.execute(
                "UPDATE users SET password_hash = ? WHERE address = ?", (password_hash, address)
            )
            _store_scram_keys(db, user_id, scram_keys)
        log.info("password changed address=%s", address)

    def set_quota(self, address: str, quota_bytes: int) -> None:
        address = _address(address)
        if quota_bytes < 0:
            raise InvalidValue("a quota cannot be negative")
        with self._transaction() as db:
            self._user_id(db, address)
            db.execute("UPDATE users SET quota_bytes = ? WHERE address = ?", (quota_bytes, address))
        log.info("quota set address=%s bytes=%d", address, quota_bytes)

    def delete_user(self, address: str) -> list[str]:
        """Delete a user and drop them from aliases; returns the aliases that lost a target."""
        address = _address(address)
        with self._transaction() as db:
            row = db.execute("SELECT is_admin FROM users WHERE address = ?", (address,)).fetchone()
            if row is None:
                raise DirectoryError(f"no user {address}")
            if (
                row[0]
                and db.execute("SELECT count(*) FROM users WHERE is_admin").fetchone()[0] == 1
            ):
                raise DirectoryError(f"{address} is the last administrator; make another first")
            aliases = [
                r[0] for r in db.execute("SELECT address FROM aliases WHERE target = ?", (address,))
            ]
            db.execute("DELETE FROM aliases WHERE target = ?", (address,))
            db.execute("DELETE FROM users WHERE address = ?", (address,))
        log.info("user deleted address=%s aliases_changed=%s", address, ",".join(aliases))
        return aliases

    # -- app passwords ------------------------------------------------------------------------

    def add_app_password(self, address: str, label: str) -> str:
        """Create a per-device password; the secret is returned once and stored only hashed."""
        address = _address(address)
        label = label.strip()
        if not label or len(label) > 100:
            raise InvalidValue("an app password needs a label of 1 to 100 characters")
        secret = passwords.generate_app_password()
        with self._transaction() as db:
            user_id = self._user_id(db, address)
            if db.execute(
                "SELECT 1 FROM app_passwords WHERE user_id = ? AND label = ?", (user_id, label)
            ).fetchone():
                raise DirectoryError(f"{address} already has an app password labelled {label!r}")
            db.execute(
                "INSERT INTO app_passwords (user_id, label, secret_hash, created)"
                " VALUES (?, ?, ?, ?)",
                (user_id, label, passwords.hash_app_password(secret), int(time.time())),
            )
        log.info("app password added address=%s label=%s", address, label)
        return secret

    def app_passwords(self, address: str) -> list[AppPassword]:
        rows = self._query(
            "SELECT label, a.created, last_used FROM app_passwords a JOIN users u"
            " ON u.id = a.user_id WHERE u.address = ? ORDER BY label",
            _address(address),
        )
        return [AppPassword(row["label"], row["created"], row["last_used"]) for row in rows]

    def revoke_app_password(self, address: str, label: str) -> None:
        address = _address(address)
        with self._transaction() as db:
            user_id = self._user_id(db, address)
            deleted = db.execute(
                "DELETE FROM app_passwords WHERE user_id = ? AND label = ?", (user_id, label)
            ).rowcount
            if not deleted:
                raise DirectoryError(f"{address} has no app password labelled {label!r}")
        log.info("app password revoked address=%s label=%s", address, label)

    # -- SSH keys -----------------------------------------------------------------------------

    def add_ssh_key(self, address: str, public_key_line: str) -> SshKey:
        address = _address(address)
        line = public_key_line.strip()
        try:
            serialization.load_ssh_public_key(line.encode())
        except (ValueError, IndexError, TypeError, UnsupportedAlgorithm):
            raise InvalidValue(
                "not an OpenSSH public key line (ssh-ed25519 AAAA… comment)"
            ) from None
        fields = line.split(maxsplit=2)
        key = SshKey(
            ssh_fingerprint(line), fields[2] if len(fields) > 2 else "", line, int(time.time())
        )
        with self._transaction() as db:
            user_id = self._user_id(db, address)
            try:
                db.execute(
                    "INSERT INTO ssh_keys (user_id, public_key, fingerprint, comment, created)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (user_id, key.public_key, key.fingerprint, key.comment, key.created),
                )
            except sqlite3.IntegrityError:
                raise DirectoryError(f"{address} already has the key {key.fingerprint}") from None
        log.info("ssh key added address=%s fingerprint=%s", address, key.fingerprint)
        return key

    def ssh_keys(self, address: str) -> list[SshKey]:
        rows = self._query(
            "SELECT fingerprint, comment, public_key, k.created FROM ssh_keys k JOIN users u"
            " ON u.id = k.user_id WHERE u.address = ? ORDER BY k.created",
            _address(address),
        )
        return [SshKey(r["fingerprint"], r["comment"], r["public_key"], r["created"]) for r in rows]

    def remove_ssh_key(self, address: str, fingerprint: str) -> None:
        address = _address(address)
        with self._transaction() as db:
            user_id = self._user_id(db, address)
            deleted = db.execute(
                "DELETE FROM ssh_keys WHERE user_id = ? AND fingerprint = ?", (user_id, fingerprint)
            ).rowcount
            if not deleted:
                raise DirectoryError(f"{address} has no key {fingerprint}")
        log.info("ssh key removed address=%s fingerprint=%s", address, fingerprint)

    # -- aliases ------------------------------------------------------------------------------

    def add_alias(self, alias: str, targets: list[str]) -> str:
        """Add targets to an alias (creating it); "@domain" is the domain's catch-all."""
        if not targets:
            raise InvalidValue("an alias needs at least one target address")
        if alias.strip().startswith("@"):
            try:
                domain = normalize_domain(alias.strip()[1:])
            except AddressError as error:
                raise InvalidValue(str(error)) from None
            alias = "@" + domain
        else:
            alias = _address(alias)
            domain = domain_of(alias)
        normalized = [_address(target) for target in targets]
        with self._transaction() as db:
            self._require_hosted(db, domain)
            if db.execute("SELECT 1 FROM users WHERE address = ?", (alias,)).fetchone():
                raise DirectoryError(f"{alias} is a user; an alias cannot have the same address")
            for target in normalized:
                if target == alias:
                    raise InvalidValue(f"{alias} cannot deliver to itself")
                local = db.execute(
                    "SELECT 1 FROM domains WHERE name = ?", (domain_of(target),)
                ).fetchone()
                if (
                    local
                    and not db.execute(
                        "SELECT 1 FROM users WHERE address = ?", (target,)
                    ).fetchone()
                ):
                    raise DirectoryError(
                        f"{target} is in a hosted domain but is not a user (aliases deliver to "
                        "users or to external addresses)"
                    )
                db.execute(
                    "INSERT OR IGNORE INTO aliases VALUES (?, ?, ?, ?)",
                    (alias, domain, target, int(time.time())),
                )
        log.info("alias added alias=%s targets=%s", alias, ",".join(normalized))
        return alias

    def aliases(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for row in self._query(
            "SELECT address, target FROM aliases ORDER BY domain, address, target"
        ):
            result.setdefault(row["address"], []).append(row["target"])
        return result

    def delete_alias(self, alias: str) -> None:
        alias = alias.strip().lower()
        with self._transaction() as db:
            if not db.execute("DELETE FROM aliases WHERE address = ?", (alias,)).rowcount:
                raise DirectoryError(f"no alias {alias}")
        log.info("alias deleted alias=%s", alias)

    def resolve(self, address: str) -> list[str] | None:
        """Where mail to a hosted address goes: the user, an alias's targets, the catch-all's,
        or None when nothing here takes it."""
        address = _address(address)
        if self._query("SELECT 1 FROM users WHERE address = ?", address):
            return [address]
        for key in (address, "@" + domain_of(address)):
            rows = self._query("SELECT target FROM aliases WHERE address = ? ORDER BY target", key)
            if rows:
                return [row["target"] for row in rows]
        return None

    def counts(self) -> dict[str, int]:
        return {
            table: self._query(f"SELECT count(DISTINCT {column}) FROM {table}")[0][0]
            for table, column in (("domains", "name"), ("users", "id"), ("aliases", "address"))
        }

    # -- shared calendars and address books ---------------------------------------------------

    def share_collection(
        self, owner: str, collection: str, grantee: str, *, writable: bool
    ) -> Share:
        """Let `grantee` read (or also write) `owner`'s calendar or address book `collection`
        (its name in the owner's DAV home); sharing again changes the access."""
        owner, grantee = _address(owner), _address(grantee)
        if not COLLECTION_NAME.match(collection):
            raise InvalidValue(f"{collection!r} is not a collection name (letters, digits, -_.)")
        if owner == grantee:
            raise InvalidValue("a collection is always shared with its owner")
        with self._transaction() as db:
            owner_id, grantee_id = self._user_id(db, owner), self._user_id(db, grantee)
            db.execute(
                "INSERT OR REPLACE INTO dav_shares VALUES (?, ?, ?, ?, ?)",
                (owner_id, collection, grantee_id, int(writable), int(time.time())),
            )
        log.info("collection shared owner=%s collection=%s with=%s writable=%s",
                 owner, collection, grantee, writable)  # fmt: skip
        return Share(owner, collection, grantee, writable)

    def unshare_collection(self, owner: str, collection: str, grantee: str) -> None:
        owner, grantee = _address(owner), _address(grantee)
        with self._transaction() as db:
            deleted = db.execute(
                "DELETE FROM dav_shares WHERE owner_id = ? AND collection = ? AND grantee_id = ?",
                (self._user_id(db, owner), collection, self._user_id(db, grantee)),
            ).rowcount
        if not deleted:
            raise DirectoryError(f"{owner}'s {collection} is not shared with {grantee}")
        log.info("collection unshared owner=%s collection=%s with=%s", owner, collection, grantee)

    def shares(self, address: str | None = None) -> list[Share]:
        """Every share, or those a user gave or received."""
        where, args = (
            ("WHERE o.address = ? OR g.address = ?", [address] * 2) if address else ("", [])
        )
        rows = self._query(
            "SELECT o.address AS owner, s.collection, g.address AS grantee, s.writable"
            " FROM dav_shares s JOIN users o ON o.id = s.owner_id"
            f" JOIN users g ON g.id = s.grantee_id {where}"
            " ORDER BY o.address, s.collection, g.address",
            *[_address(a) for a in args],
        )
        return [Share(r["owner"], r["collection"], r["grantee"], bool(r["writable"])) for r in rows]

    def share_access(self, owner: str, collection: str, grantee: str) -> str:
        """ "rw", "r", or "" (not shared)."""
        rows = self._query(
            "SELECT s.writable FROM dav_shares s JOIN users o ON o.id = s.owner_id"
            " JOIN users g ON g.id = s.grantee_id"
            " WHERE o.address = ? AND s.collection = ? AND g.address = ?",
            owner, collection, grantee,
        )  # fmt: skip
        if not rows:
            return ""
        return "rw" if rows[0]["writable"] else "r"

    # -- contact card -------------------------------------------------------------------------

    def publish_contact_card(self, address: str, publish: bool) -> None:
        """Publish the user's contact card (name and address) to anyone, or stop; off until
        they choose."""
        address = _address(address)
        with self._transaction() as db:
            self._user_id(db, address)
            db.execute(
                "UPDATE users SET publish_card = ? WHERE address = ?", (int(publish), address)
            )
        log.info("contact card address=%s published=%s", address, publish)

    def publishes_contact_card(self, address: str) -> bool:
        rows = self._query("SELECT publish_card FROM users WHERE address = ?", _address(address))
        return bool(rows and rows[0]["publish_card"])

    # -- authentication -----------------------------------------------------------------------

    def login_name(self, login: str) -> str:
        """Logins are addresses; a bare name means that name in the main domain."""
        login = login.strip().lower()
        return login if "@" in login else f"{login}@{self.default_domain}"

    async def authenticate(
        self, login: str, secret: str, *, service: str, remote: str
    ) -> Principal | None:
        """The one authentication call of every protocol: the user's password or one of their
        app passwords, with failed attempts throttled per remote address and per login."""
        login = self.login_name(login)
        if self.throttle.locked(remote, login):
            log.warning(
                "login refused: locked out login=%s service=%s remote=%s", login, service, remote
            )
            return None
        self.throttle.attempt(remote, login)
        principal = await asyncio.to_thread(self._check_secret, login, secret)
        return await self._login_result(principal, login, service=service, remote=remote)

    async def _login_result(
        self, principal: Principal | None, login: str, *, service: str, remote: str
    ) -> Principal | None:
        if principal:
            self.throttle.succeeded(remote, login)
            log.info(
                "login login=%s service=%s remote=%s credential=%s",
                login,
                service,
                remote,
                principal.credential,
            )
            return principal
        delay = self.throttle.failure_delay(remote, login)
        log.warning(
            "login failed login=%s service=%s remote=%s delay=%.1fs", login, service, remote, delay
        )
        await asyncio.sleep(delay)
        return None

    def scram_keys(self, login: str, mechanism: str) -> passwords.ScramKeys:
        """The SCRAM keys of a login's password for a mechanism (RFC 5802 §5). An unknown login,
        or a password set before pcloud kept SCRAM keys, gets keys that no proof matches, the
        same at every attempt, so that the exchange does not tell which logins exist."""
        rows = self._query(
            "SELECT salt, iterations, stored_key, server_key FROM scram_keys k JOIN users u"
            " ON u.id = k.user_id WHERE u.address = ? AND k.mechanism = ?",
            self.login_name(login),
            mechanism,
        )
        if rows:
            return passwords.ScramKeys(*rows[0])
        return passwords.decoy_scram_keys(self.login_name(login), mechanism)

    async def authenticate_scram(
        self, login: str, proof_is_valid: Callable[[], bool], *, service: str, remote: str
    ) -> Principal | None:
        """SCRAM's end (RFC 5802 §5.1): `proof_is_valid` checks the client's proof against the
        keys `scram_keys` gave. Throttled and logged as `authenticate` is. App passwords have
        no SCRAM keys: they log in with PLAIN."""
        login = self.login_name(login)
        if self.throttle.locked(remote, login):
            log.warning(
                "login refused: locked out login=%s service=%s remote=%s", login, service, remote
            )
            return None
        self.throttle.attempt(remote, login)
        rows = self._query("SELECT address, is_admin FROM users WHERE address = ?", login)
        principal = None
        if rows and proof_is_valid():
            principal = Principal(rows[0]["address"], bool(rows[0]["is_admin"]), "password")
        return await self._login_result(principal, login, service=service, remote=remote)

    def _check_secret(self, login: str, secret: str) -> Principal | None:
        rows = self._query(
            "SELECT id, address, is_admin, password_hash FROM users WHERE address = ?", login
        )
        if not rows:
            passwords.verify_password(secret, passwords.unknown_user_hash())  # same time taken
            return None
        user = rows[0]
        app_rows = self._query(
            "SELECT id, label, last_used FROM app_passwords WHERE user_id = ? AND secret_hash = ?",
            user["id"],
            passwords.hash_app_password(secret),
        )
        if app_rows:
            now = int(time.time())
            # A write (and its sync) per HTTP request would be the most expensive part of it.
            if (app_rows[0]["last_used"] or 0) < now - LAST_USED_PRECISION_SECONDS:
                with self._transaction() as db:
                    db.execute(
                        "UPDATE app_passwords SET last_used = ? WHERE id = ?",
                        (now, app_rows[0]["id"]),
                    )
            credential = f"app-password:{app_rows[0]['label']}"
        elif self.recently_verified.verify(secret, user["password_hash"]):
            credential = "password"
            self._add_missing_scram_keys(user["id"], secret)
        else:
            return None
        return Principal(user["address"], bool(user["is_admin"]), credential)

    def _add_missing_scram_keys(self, user_id: int, password: str) -> None:
        """A password set before pcloud kept SCRAM keys gets them at its first login."""
        if self._query("SELECT 1 FROM scram_keys WHERE user_id = ?", user_id):
            return
        keys = passwords.scram_keys(password)
        with self._transaction() as db:
            _store_scram_keys(db, user_id, keys)
        log.info("scram keys added user_id=%d", user_id)


def _store_scram_keys(
    db: sqlite3.Connection, user_id: int, keys: dict[str, passwords.ScramKeys]
) -> None:
    db.execute("DELETE FROM scram_keys WHERE user_id = ?", (user_id,))
    db.executemany(
        "INSERT INTO scram_keys VALUES (?, ?, ?, ?, ?, ?)",
        [
            (user_id, mechanism, k.salt, k.iterations, k.stored_key, k.server_key)
            for mechanism, k in keys.items()
        ],
    )


def _user(row: sqlite3.Row) -> User:
    return User(
        row["address"],
        row["display_name"],
        bool(row["is_admin"]),
        row["quota_bytes"],
        row["created"],
    )
