"""SASL authentication of a client stream (RFC 6120 §6): PLAIN (RFC 4616) and SCRAM-SHA-1 and
SCRAM-SHA-256 (RFC 5802, RFC 7677) with their -PLUS variants, offered only inside TLS.

PLAIN goes through `directory.authenticate`, so app passwords work with it. SCRAM checks the
client's proof against the keys the directory keeps for the password (scramp runs the SCRAM
messages: GS2 header, nonces, proofs); app passwords have no SCRAM keys, and a password set
before the directory kept them works with SCRAM only after one PLAIN login (or a login to any
other service). Both are throttled by the directory like every login.

A login without a domain ("alice") means that name at the domain the stream was opened to.
PLAIN refuses an authorization identity other than the login's own address
(`invalid-authzid`); SCRAM takes none (scramp refuses a GS2 header naming one).

Channel binding (-PLUS) ties the login to this TLS connection, so that a man in the middle
holding another certificate cannot relay it. Python's ssl module gives no `tls-exporter`
(RFC 9266, the default on TLS 1.3), so the types offered are `tls-server-end-point` (RFC 5929:
the hash of the server's certificate), and `tls-unique` on TLS 1.2 only; they are announced
with XEP-0440 so that clients choose one of them. A client asking for another type fails. A
client that says it could bind but believes the server cannot (GS2 flag "y") fails too: the
-PLUS mechanisms were stripped on the way (RFC 5802 §6).

Not supported yet: `tls-exporter`, SASL2 (XEP-0388), EXTERNAL.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from dataclasses import dataclass, field

import scramp
from scramp.core import ServerError

from pcloud.directory import Directory, Principal

SCRAM = ("SCRAM-SHA-256", "SCRAM-SHA-1")
PLUS = "-PLUS"
CHANNEL_BINDING_NS = "urn:xsf:sasl-cb:0"


def mechanisms(bindings: dict[str, bytes]) -> list[str]:
    """The mechanisms offered, strongest first: -PLUS ones when the channel can be bound."""
    plus = [name + PLUS for name in SCRAM] if bindings else []
    return [*plus, *SCRAM, "PLAIN"]


def channel_bindings(tls: ssl.SSLObject, server_end_point: bytes) -> dict[str, bytes]:
    """The channel binding data of a TLS connection, by type (RFC 5929, RFC 9266)."""
    bindings = {"tls-server-end-point": server_end_point}
    if tls.version() != "TLSv1.3":  # tls-unique is unsafe there (RFC 9266 §3)
        unique = tls.get_channel_binding("tls-unique")
        if unique:
            bindings["tls-unique"] = unique
    return bindings


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
    """One SCRAM exchange: client-first → server-first, client-final → server-final.
    `bindings` are the connection's channel binding data by type (empty: none offered)."""

    directory: Directory
    mechanism: str
    domain: str
    remote: str
    bindings: dict[str, bytes] = field(default_factory=dict)
    login: str = ""

    def _keys(self, name: str) -> tuple[bytes, bytes, bytes, int]:
        self.login = login_address(name, self.domain)
        keys = self.directory.scram_keys(self.login, self.mechanism.removesuffix(PLUS))
        return keys.salt, keys.stored_key, keys.server_key, keys.iterations

    def first(self, client_first: bytes) -> bytes:
        try:
            text = client_first.decode()
        except UnicodeDecodeError:
            raise SaslFailure("malformed-request") from None
        binding = None
        if self.bindings:  # scramp checks the GS2 flag against it, and the client's data
            flag = text.split(",", 1)[0]
            kind = flag.removeprefix("p=") if flag.startswith("p=") else "tls-server-end-point"
            if kind not in self.bindings:
                raise SaslFailure("not-authorized")  # a type this connection cannot give
            binding = (kind, self.bindings[kind])
        mechanism = scramp.ScramMechanism(self.mechanism)
        try:
            self._server = mechanism.make_server(self._keys, channel_binding=binding)
            self._server.set_client_first(text)
            return str(self._server.get_server_first()).encode()
        except scramp.ScramException as error:
            downgraded = error.server_error == ServerError.SERVER_DOES_SUPPORT_CHANNEL_BINDING
            raise SaslFailure("not-authorized" if downgraded else "malformed-request") from None

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
