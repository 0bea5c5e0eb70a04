"""aiosmtpd's SMTP protocol on a pcloud listener: TLS, limits, connection counting, shutdown."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections import Counter
from typing import Any

from aiosmtpd.smtp import SMTP, syntax

from pcloud import __version__
from pcloud.directory.throttle import address_key
from pcloud.listeners import Stop
from pcloud.services import Services
from pcloud.smtp.data import DataRefused, read_data

log = logging.getLogger(__name__)


class _QuietAiosmtpd(logging.Filter):
    """aiosmtpd warns at every AUTH that a field it sets itself is deprecated."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


# aiosmtpd logs every connection at INFO; pcloud's own lines say what matters.
logging.getLogger("mail.log").setLevel(logging.WARNING)
logging.getLogger("mail.log").addFilter(_QuietAiosmtpd())

COMMAND_TIMEOUT = 300  # seconds without a command before the connection is closed (RFC 5321)
# The path almost every MAIL and RCPT carries: <dot-atom@domain>, then parameters. Its address is
# what aiosmtpd's general parser (the email package's, a tenth of a delivery's CPU) would find.
_PLAIN_PATH = re.compile(
    r"<(?P<address>[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>"
    r"(?:[ \t]+(?P<rest>[^ \t(].*))?"
)


class Connections:
    """The open connections of one listener, counted per remote address."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.per_address: Counter[str] = Counter()
        self.open: set[PcloudSMTP] = set()


class PcloudSMTP(SMTP):
    def __init__(self, handler: Any, connections: Connections, **options: Any) -> None:
        super().__init__(handler, **options)
        self.connections = connections
        self.address_key: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # the TCP connection, not the switch to TLS after STARTTLS
            peer = transport.get_extra_info("peername")
            key = address_key(peer[0])
            if self.connections.per_address[key] >= self.connections.limit:
                log.warning("smtp connection refused: too many remote=%s", peer[0])
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(b"421 4.7.0 Too many connections from your address\r\n")
                transport.close()
                return
            self.connections.per_address[key] += 1
            self.connections.open.add(self)
            self.address_key = key
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self.address_key is None:  # refused above: aiosmtpd never saw it
            return
        self.connections.per_address[self.address_key] -= 1
        if not self.connections.per_address[self.address_key]:
            del self.connections.per_address[self.address_key]
        self.connections.open.discard(self)
        self.address_key = None
        super().connection_lost(error)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        plain = _PLAIN_PATH.fullmatch(arg)
        if plain is None or self.local_part_limit:
            return super()._getaddr(arg)
        return plain["address"], plain["rest"] or ""

    # RFC 5321 §4.1.1.4, as aiosmtpd's, but reading the message in chunks (see data.py): its
    # line-by-line reading took a third of the CPU of a delivery.
    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content = await read_data(
                self._reader, max_bytes=self.data_size_limit, max_line=self.line_length_limit
            )
        except DataRefused as refusal:
            status = str(refusal)
        else:
            self.envelope.content = self.envelope.original_content = content
            status = await self._call_handler_hook("DATA")  # every handler here has handle_DATA
        self.envelope = self._create_envelope()
        await self.push(status)


async def serve_smtp(
    services: Services, sock: socket.socket, handler: Any, *, implicit_tls: bool, auth: bool
) -> Stop:
    """Serve SMTP on `sock`: STARTTLS offered (or TLS from the start), AUTH when `auth`."""
    settings = services.config.smtp
    connections = Connections(settings.max_connections_per_address)
    loop = asyncio.get_running_loop()
    context = services.tls.server_context

    def protocol() -> PcloudSMTP:
        return PcloudSMTP(
            handler,
            connections,
            hostname=f"mail.{services.config.server.domain}",
            ident=f"pcloud {__version__}",
            data_size_limit=settings.max_message_bytes,
            enable_SMTPUTF8=True,
            tls_context=None if implicit_tls else context,
            # Submission: nothing but EHLO, STARTTLS and QUIT before TLS.
            require_starttls=auth and not implicit_tls,
            # Implicit TLS is TLS from the first byte, which aiosmtpd does not see itself (and
            # then warns about AUTH without TLS); there the handler itself requires AUTH.
            auth_required=auth and not implicit_tls,
            auth_require_tls=not implicit_tls,
            auth_exclude_mechanism=() if auth else ("PLAIN", "LOGIN"),
            timeout=COMMAND_TIMEOUT,
            loop=loop,
        )

    server = await loop.create_server(protocol, sock=sock, ssl=context if implicit_tls else None)

    async def stop() -> None:
        server.close()
        for connection in list(connections.open):
            if connection.transport is not None:
                connection.transport.close()
        await server.wait_closed()

    return stop
