"""Submission (RFC 6409): users' mail programs send mail, after STARTTLS (587) or over TLS from
the first byte (465, RFC 8314), signed in through the directory.

A user may send only as an address they own: their own, or an alias (or catch-all) that
delivers to them; both the envelope sender and the From: header are checked.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import logging
import socket

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from pcloud.directory import InvalidValue, Principal
from pcloud.listeners import Stop
from pcloud.services import Services
from pcloud.smtp.delivery import Handler, peer_address
from pcloud.smtp.server import serve_smtp
from pcloud.smtp.signing import sign
from pcloud.store.index import header_block

log = logging.getLogger(__name__)


def _principal(session: Session) -> Principal:
    principal = session.auth_data
    assert isinstance(principal, Principal)  # handle_MAIL let only signed-in sessions through
    return principal


class SubmissionHandler(Handler):
    checks_senders = False  # signed-in users; their mail is DKIM-signed on the way out

    # RFC 4616 (PLAIN): [authzid] NUL authcid NUL passwd, base64.
    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            response = await server.challenge_auth("", encode_to_b64=False)
            if not isinstance(response, bytes):
                return AuthResult(success=False, handled=False)
        else:
            try:
                response = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                return AuthResult(success=False, handled=False)
        parts = response.split(b"\0")
        if len(parts) != 3:
            return AuthResult(success=False, handled=False)
        return await self._authenticate(server, parts[1], parts[2])

    # The LOGIN mechanism (draft-murchison-sasl-login): user name, then password, base64.
    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 2:
            try:
                login: object = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                return AuthResult(success=False, handled=False)
        else:
            login = await server.challenge_auth(server.AuthLoginUsernameChallenge)
        password = await server.challenge_auth(server.AuthLoginPasswordChallenge)
        if not isinstance(login, bytes) or not isinstance(password, bytes):
            return AuthResult(success=False, handled=False)
        return await self._authenticate(server, login, password)

    async def _authenticate(self, server: SMTP, login: bytes, password: bytes) -> AuthResult:
        assert server.session is not None
        principal = await self.directory.authenticate(
            login.decode("utf-8", "replace"),
            password.decode("utf-8", "replace"),
            service="submission",
            remote=peer_address(server.session),
        )
        return AuthResult(success=principal is not None, handled=False, auth_data=principal)

    def may_send_elsewhere(self, session: Session) -> bool:
        return bool(session.authenticated)

    def outgoing(self, sender: str, message: bytes) -> tuple[str, bytes]:
        """The user's own mail (sender and From: checked): it leaves as it is, DKIM-signed."""
        return sender, sign(message, self.services.dkim, self.directory.domains())

    def owns(self, principal: Principal, address: str) -> bool:
        try:
            targets = self.recipients.resolve(address)
        except InvalidValue:
            return False
        return targets is not None and principal.address in targets

    # RFC 5321 §4.1.1.2, RFC 6409 §6.1: the sender must be the user's.
    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not session.authenticated or not isinstance(session.auth_data, Principal):
            return "530 5.7.0 Authentication required"
        principal = session.auth_data
        if not await asyncio.to_thread(self.owns, principal, address):
            log.warning("submission sender refused login=%s from=%s", principal.address, address)
            return f"553 5.7.1 {principal.address} may not send as <{address}>"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Sender OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        principal = _principal(session)
        headers = email.message_from_bytes(header_block(envelope.original_content or b""))
        senders = [address for _, address in email.utils.getaddresses(headers.get_all("from", []))]
        if not senders:
            return "550 5.6.0 The message has no From: header"
        for sender in senders:
            if not await asyncio.to_thread(self.owns, principal, sender):
                log.warning("submission From: refused login=%s from=%s", principal.address, sender)
                return f"553 5.7.1 {principal.address} may not send as From: {sender}"
        return await super().handle_DATA(server, session, envelope)


async def serve_starttls(services: Services, sock: socket.socket) -> Stop:
    handler = SubmissionHandler(services)
    return await serve_smtp(services, sock, handler, implicit_tls=False, auth=True)


async def serve_implicit_tls(services: Services, sock: socket.socket) -> Stop:
    handler = SubmissionHandler(services)
    return await serve_smtp(services, sock, handler, implicit_tls=True, auth=True)
