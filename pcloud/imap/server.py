"""IMAP connections: reading commands (with their literals) within bounds, STARTTLS, connection
limits, and handing each parsed command to the session.

Bounds on what a client controls: a command line is at most MAX_LINE bytes; literals together
at most MAX_COMMAND bytes, except APPEND's message once signed in, which may reach the APPENDLIMIT
(the SMTP message size limit: one limit for a message however it arrives); connections per
address and signed-in connections per user come from the [imap] config section; a session is
closed after AUTOLOGOUT seconds without a command (RFC 9051 §5.4), UNAUTHENTICATED_TIMEOUT before
signing in.

A line or literal that cannot be read is answered BAD (or NO [TOOBIG]) with the session intact,
except a non-synchronizing literal that cannot be taken: its bytes are already on their way and
would be read as commands, so the connection is closed with BYE (RFC 7888 §4).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import socket
import ssl
import weakref
from typing import NoReturn

from pcloud.connection_counts import ConnectionCounts
from pcloud.imap.parse import literal_at_end, parse_command
from pcloud.imap.session import Logout, Session
from pcloud.imap.values import ParseError, UnknownCharset
from pcloud.listeners import Stop, serve_streams
from pcloud.services import Services
from pcloud.store.mail import MailStore

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024
MAX_COMMAND = 256 * 1024  # literals of commands other than APPEND
UNAUTHENTICATED_TIMEOUT = 60
AUTOLOGOUT = 30 * 60
FLUSH_AT = 256 * 1024  # bytes written before waiting for the client to take them
_TAG = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+')  # RFC 9051 §9 tag, as parse.py reads it

_ids = itertools.count(1)


class CommandError(Exception):
    """A command too large or malformed to read: answered BAD or NO (or closed), never parsed."""

    def __init__(
        self, text: str, tag: bytes | None, *, fatal: bool = False, status: str = "BAD"
    ) -> None:
        super().__init__(text)
        self.tag = tag
        self.fatal = fatal
        self.status = status


class Limits:
    """Connections counted per address and per signed-in user, across both IMAP listeners."""

    def __init__(self) -> None:
        self.per_address = ConnectionCounts()
        self.per_user = ConnectionCounts()


# One Limits per server instance (tests run several in one process); keyed by its mail store.
_limits: weakref.WeakKeyDictionary[MailStore, Limits] = weakref.WeakKeyDictionary()


class Connection:
    def __init__(
        self,
        services: Services,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: Limits,
        *,
        tls: bool,
    ) -> None:
        self.services = services
        self.reader = reader
        self.writer = writer
        self.limits = limits
        self.tls = tls
        self.id = f"i{next(_ids)}"
        self.remote: str = writer.get_extra_info("peername")[0]
        self.address_key: str | None = None  # counted in limits.per_address under this key
        self.user: str | None = None
        self.output = bytearray()

    # -- output -------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue output; it leaves at the next flush. Gathering a response's lines saves a TLS
        record (and a system call) per line: a FETCH 1:* is one line per message."""
        self.output += data

    async def flush(self) -> None:
        if self.output:
            self.writer.write(self.output)
            self.output = bytearray()
        await self.writer.drain()

    async def flush_if_full(self) -> None:
        """Called while writing a long response: send once enough is queued, waiting for the
        client to take it, so that a slow client cannot make the server buffer a mailbox."""
        if len(self.output) >= FLUSH_AT:
            await self.flush()

    # -- input --------------------------------------------------------------------------------

    async def read_line(self) -> bytes:
        """One line without its line end; an overlong line is skipped and refused. Before
        signing in, each line must come within UNAUTHENTICATED_TIMEOUT (AUTHENTICATE reads its
        continuation lines here too, outside the command loop's timer)."""
        try:
            timeout = None if self.user else UNAUTHENTICATED_TIMEOUT
            line = await asyncio.wait_for(self.reader.readuntil(b"\n"), timeout)
        except asyncio.LimitOverrunError as error:
            await self._skip_line(error.consumed)
        except asyncio.IncompleteReadError:
            raise ConnectionResetError("closed by the client") from None
        return line.rstrip(b"\r\n")

    async def _skip_line(self, consumed: int) -> NoReturn:
        """Discard an overlong line up to its line end, and nothing after it (the next command
        may be right behind), then refuse it by its tag. A non-synchronizing literal it
        announces is already on its way and would be read as commands: that is fatal."""
        try:
            skipped = await self.reader.readexactly(consumed)  # what the reader holds of it
            tag = skipped.split(b" ", 1)[0] if b" " in skipped[:100] else None
            end = skipped[-64:]
            while True:
                try:
                    end = (end + await self.reader.readuntil(b"\n"))[-64:]
                    break
                except asyncio.LimitOverrunError as error:
                    end = (await self.reader.readexactly(error.consumed))[-64:]
        except asyncio.IncompleteReadError:
            raise ConnectionResetError("closed by the client") from None
        raise CommandError("Line too long", tag, fatal=end.rstrip(b"\r\n").endswith(b"+}"))

    async def read_command(self, appendlimit: int) -> bytes:
        """A whole command: its lines with each literal in place (RFC 9051 §4.3, RFC 7888)."""
        data = bytearray()
        while True:
            line = await self.read_line()
            data += line
            tag = bytes(data).split(b" ", 1)[0]
            try:
                literal = literal_at_end(line)
            except ParseError as error:
                # "{-1+}" and the like: whatever the client meant to send may be on its way
                raise CommandError(str(error), tag, fatal=line.endswith(b"+}")) from None
            if literal is None:
                return bytes(data)
            size, non_synchronizing = literal
            words = bytes(data[:64]).split(b" ")
            is_append = len(words) > 1 and words[1].upper() == b"APPEND"
            if is_append and 0 < appendlimit < size and not non_synchronizing:
                # RFC 7889 §3: refused before the client sends it (a larger non-synchronizing
                # one is read, within the bound below, and refused by APPEND alike)
                text = f"[TOOBIG] The message is larger than the limit of {appendlimit} bytes"
                raise CommandError(text, tag, status="NO")
            limit = appendlimit + MAX_COMMAND if is_append else MAX_COMMAND
            if len(data) + size > limit:
                if non_synchronizing:  # already on its way: cannot be refused politely
                    raise CommandError("Literal too large", tag, fatal=True)
                code = "[TOOBIG] " if is_append else ""
                raise CommandError(f"{code}Literal too large", tag)
            if not non_synchronizing:
                self.write(b"+ Ready for literal data\r\n")
                await self.flush()
            try:
                data += b"\r\n" + await self.reader.readexactly(size)
            except asyncio.IncompleteReadError:
                raise ConnectionResetError("closed by the client") from None

    # -- limits -------------------------------------------------------------------------------

    def admit_user(self, address: str) -> bool:
        limit = self.services.config.imap.max_connections_per_user
        if not self.limits.per_user.admit(address, limit):
            log.warning("imap login refused: too many connections user=%s conn=%s",
                        address, self.id)  # fmt: skip
            return False
        self.user = address
        return True

    def release(self) -> None:
        if self.user is not None:
            self.limits.per_user.release(self.user)
        if self.address_key is not None:
            self.limits.per_address.release(self.address_key)
        self.user = self.address_key = None


async def _serve_connection(
    services: Services,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    limits: Limits,
    *,
    tls: bool,
) -> None:
    connection = Connection(services, reader, writer, limits, tls=tls)
    limit = services.config.imap.max_connections_per_address
    connection.address_key = limits.per_address.admit_address(connection.remote, limit)
    if connection.address_key is None:
        log.warning("imap connection refused: too many remote=%s", connection.remote)
        writer.write(b"* BYE Too many connections from your address\r\n")
        writer.close()
        return
    session = Session(services, connection)
    log.info("imap connected conn=%s remote=%s tls=%s", connection.id, connection.remote, tls)
    try:
        connection.write(
            b"* OK [CAPABILITY " + session.capabilities().encode() + b"] pcloud ready\r\n"
        )
        await connection.flush()
        await _command_loop(services, connection, session)
    except (ConnectionError, TimeoutError, ssl.SSLError) as error:
        log.info(
            "imap disconnected conn=%s reason=%s", connection.id, error or type(error).__name__
        )
    finally:
        session.close()
        connection.release()
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 5)
    log.info("imap closed conn=%s", connection.id)


async def _command_loop(services: Services, connection: Connection, session: Session) -> None:
    while True:
        signed_in = session.account is not None
        timeout = AUTOLOGOUT if signed_in else UNAUTHENTICATED_TIMEOUT
        # APPEND's message may be large only once signed in; before, every command is small.
        appendlimit = services.config.smtp.max_message_bytes if signed_in else 0
        try:
            data = await asyncio.wait_for(connection.read_command(appendlimit), timeout)
        except TimeoutError:
            await _autologout(connection)
            return
        except CommandError as error:
            if not await _refuse(connection, error, error.tag):
                return
            continue
        try:
            command = parse_command(data, utf8=session.utf8)
        except UnknownCharset as error:  # RFC 9051 §6.4.4: NO, naming the charsets known
            connection.write(
                f"{error.tag or '*'} NO [BADCHARSET (UTF-8 US-ASCII)] {error}\r\n".encode()
            )
            await connection.flush()
            continue
        except ParseError as error:
            connection.write(f"{error.tag or '*'} BAD {error}\r\n".encode())
            await connection.flush()
            continue
        if command.name == "STARTTLS":
            await _starttls(services, connection, session, command.tag)
            await connection.flush()
            continue
        try:
            await session.run(command)
        except Logout:
            await connection.flush()
            return
        except TimeoutError:  # an AUTHENTICATE continuation line not sent in time
            await _autologout(connection)
            return
        except CommandError as error:  # an unreadable continuation line (AUTHENTICATE, IDLE)
            if not await _refuse(connection, error, command.tag.encode()):
                return
        await connection.flush()


async def _autologout(connection: Connection) -> None:
    connection.write(b"* BYE Autologout: idle for too long\r\n")
    await connection.flush()


async def _refuse(connection: Connection, error: CommandError, tag: bytes | None) -> bool:
    """Answer a command that could not be read; False when the connection must close. A tag
    that is not one (garbage, 8-bit bytes) is not echoed."""
    name = tag.decode() if tag and _TAG.fullmatch(tag) else "*"
    connection.write(f"{name} {error.status} {error}\r\n".encode())
    if error.fatal:
        connection.write(b"* BYE The rest of that command cannot be read\r\n")
    await connection.flush()
    return not error.fatal


# RFC 9051 §6.2.1
async def _starttls(services: Services, connection: Connection, session: Session, tag: str) -> None:
    if connection.tls:
        connection.write(f"{tag} BAD Already using TLS\r\n".encode())
        return
    # Plaintext pipelined after STARTTLS would be read as if it came over TLS (a command
    # injection, CVE-2011-0411 in Postfix): refuse. StreamReader has no public way to ask.
    if connection.reader._buffer:  # type: ignore[attr-defined]
        connection.write(f"{tag} BAD Nothing may follow STARTTLS\r\n".encode())
        return
    connection.write(f"{tag} OK Begin TLS negotiation now\r\n".encode())
    await connection.flush()
    await connection.writer.start_tls(services.tls.server_context)
    connection.tls = True


async def _serve(services: Services, sock: socket.socket, *, implicit_tls: bool) -> Stop:
    limits = _limits.setdefault(services.mail, Limits())

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_connection(services, reader, writer, limits, tls=implicit_tls)

    tls = services.tls.server_context if implicit_tls else None
    return await serve_streams(sock, handle, ssl_context=tls, limit=MAX_LINE)


async def serve_starttls(services: Services, sock: socket.socket) -> Stop:
    return await _serve(services, sock, implicit_tls=False)


async def serve_implicit_tls(services: Services, sock: socket.socket) -> Stop:
    return await _serve(services, sock, implicit_tls=True)
