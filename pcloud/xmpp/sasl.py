"""SASL authentication of a client stream (RFC 6120 §6): PLAIN (RFC 4616) and SCRAM-SHA-1 and
SCRAM-SHA-256 (RFC 5802, RFC 7677), offered only inside TLS.

PLAIN goes through `directory.authenticate`, so app passwords work with it. SCRAM checks the
client's proof against the keys the directory keeps for the password (scramp runs the SCRAM
messages: GS2 header, nonces, proofs); app passwords have no SCRAM keys, and a password set
before the directory kept them works with SCRAM only after one PLAIN login (or a login to any
other service). Both are throttled by the directory like every login.

A login without a domain ("alice") means that name at the domain the stream was opened to.
PLAIN refuses an authorization identity other than the login's own address
(`invalid-authzid`); SCRAM takes none (scramp refuses a GS2 header naming one).

Not supported yet: the -PLUS variants (channel binding), SASL2 (XEP-0388), EXTERNAL.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import scramp

from pcloud.directory import Directory, Principal

MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN")


class SaslFailure(Exception):
    """Ends the exchange with <failure> and this condition (RFC 6120 §6.5)."""

    def __init__(self, condition: str) -> None:
        super().__init__(condition)
        self.condition = condition


def decode(text: str | None) -> bytes:
    """A SASL payload (RFC 6120 §6.4.2: "=" is an empty one)."""
    text = (text or "").strip()
    if text in ("", "="):
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SaslFailure("incorrect-encoding") from None


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode() if data else "="


def login_address(name: str, domain: str) -> str:
    return name if "@" in name else f"{name}@{domain}"


async def plain(directory: Directory, response: bytes, *, domain: str, remote: str) -> Principal:
    """RFC 4616: authzid NUL authcid NUL passwd."""
    try:
        authzid, authcid, password = response.decode().split("\0")
    except (UnicodeDecodeError, ValueError):
        raise SaslFailure("malformed-request") from None
    login = login_address(authcid, domain)
    principal = await directory.authenticate(login, password, service="xmpp", remote=remote)
    if principal is None:
        raise SaslFailure("not-authorized")
    if authzid and authzid.lower() != principal.address:
        raise SaslFailure("invalid-authzid")
    return principal


@dataclass
class Scram:
    """One SCRAM exchange: client-first → server-first, client-final → server-final."""

    directory: Directory
    mechanism: str
    domain: str
    remote: str
    login: str = ""

    def __post_init__(self) -> None:
        self._server = scramp.ScramMechanism(self.mechanism).make_server(self._keys)

    def _keys(self, name: str) -> tuple[bytes, bytes, bytes, int]:
        self.login = login_address(name, self.domain)
        keys = self.directory.scram_keys(self.login, self.mechanism)
        return keys.salt, keys.stored_key, keys.server_key, keys.iterations

    def first(self, client_first: bytes) -> bytes:
        try:
            self._server.set_client_first(client_first.decode())
            return str(self._server.get_server_first()).encode()
        except (UnicodeDecodeError, scramp.ScramException):
            raise SaslFailure("malformed-request") from None

    async def final(self, client_final: bytes) -> tuple[Principal, bytes]:
        """The principal and the server's final message (its own proof) on success."""

        def proof_is_valid() -> bool:
            try:
                self._server.set_client_final(client_final.decode())
            except (UnicodeDecodeError, scramp.ScramException):
                return False
            return True

        principal = await self.directory.authenticate_scram(
            self.login, proof_is_valid, service="xmpp", remote=self.remote
        )
        if principal is None:
            raise SaslFailure("not-authorized")
        return principal, str(self._server.get_server_final()).encode()
