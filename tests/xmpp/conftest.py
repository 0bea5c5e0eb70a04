"""XMPP test helpers: slixmpp clients signed in to the whole server, and a raw stream."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import slixmpp
from slixmpp.stanza import Message, Presence

from pcloud.testing import RunningServer

PASSWORD = "correct horse battery"
TIMEOUT = 10


class Client:
    """A slixmpp client, with what it received in queues."""

    def __init__(self, xmpp: slixmpp.ClientXMPP) -> None:
        self.xmpp = xmpp
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.presences: asyncio.Queue[Presence] = asyncio.Queue()
        self.roster_pushes: asyncio.Queue[Any] = asyncio.Queue()
        self.stream_errors: asyncio.Queue[Any] = asyncio.Queue()
        self.carbons: asyncio.Queue[Message] = asyncio.Queue()  # XEP-0280 copies
        self.disconnected = asyncio.Event()
        xmpp.add_event_handler("message", self.messages.put_nowait)
        xmpp.add_event_handler("presence", self.presences.put_nowait)
        xmpp.add_event_handler("roster_update", self.roster_pushes.put_nowait)
        xmpp.add_event_handler("stream_error", self.stream_errors.put_nowait)
        xmpp.add_event_handler("carbon_received", self.carbons.put_nowait)
        xmpp.add_event_handler("carbon_sent", self.carbons.put_nowait)
        xmpp.add_event_handler("disconnected", lambda _: self.disconnected.set())

    @property
    def jid(self) -> str:
        return str(self.xmpp.boundjid)

    async def message(self) -> Message:
        return await asyncio.wait_for(self.messages.get(), TIMEOUT)

    async def presence(self, kind: str | None = None, sender: str | None = None) -> Presence:
        """The next presence of that type (and from that bare JID), skipping others."""
        while True:
            presence = await asyncio.wait_for(self.presences.get(), TIMEOUT)
            if kind is not None and presence.xml.get("type", "available") != kind:
                continue
            if sender is not None and presence["from"].bare != sender:
                continue
            return presence

    async def carbon(self) -> Message:
        return await asyncio.wait_for(self.carbons.get(), TIMEOUT)

    async def roster_push(self) -> Any:
        return await asyncio.wait_for(self.roster_pushes.get(), TIMEOUT)

    def send_message(self, to: str, body: str, kind: str = "chat") -> None:
        self.xmpp.send_message(mto=to, mbody=body, mtype=kind)


Connect = Callable[..., Awaitable[Client]]


def forget_client_errors(logged_errors: list[logging.LogRecord]) -> None:
    """slixmpp logs a refused login as an error: expected where a test provokes one."""
    logged_errors[:] = [r for r in logged_errors if not r.name.startswith("slixmpp")]


def new_client(
    server: RunningServer,
    jid: str,
    password: str = PASSWORD,
    *,
    direct_tls: bool = True,
    mechanism: str | None = None,
) -> slixmpp.ClientXMPP:
    xmpp = slixmpp.ClientXMPP(jid, password, sasl_mech=mechanism)
    xmpp.ca_certs = server.ca_file
    xmpp.enable_direct_tls = direct_tls
    xmpp.enable_starttls = not direct_tls
    xmpp.enable_plaintext = False
    xmpp.roster.auto_authorize = None  # the test answers requests itself
    xmpp.roster.auto_subscribe = False
    for plugin in ("xep_0030", "xep_0092", "xep_0199", "xep_0280", "xep_0313"):
        xmpp.register_plugin(plugin)
    return xmpp


@pytest.fixture
async def connect(server: RunningServer) -> AsyncIterator[Connect]:
    """Opens slixmpp clients signed in (SCRAM-SHA-256 unless told) with a bound resource and
    the roster fetched; `presence=True` also sends initial presence; `stream_management=True`
    enables XEP-0198 with resumption. All are disconnected at
    the end of the test."""
    clients: list[Client] = []

    async def open_client(
        jid: str = "alice@example.org",
        *,
        presence: bool = True,
        direct_tls: bool = True,
        mechanism: str | None = "SCRAM-SHA-256",
        password: str = PASSWORD,
        stream_management: bool = False,
    ) -> Client:
        bare = jid.split("/")[0]
        if server.services.directory.user(bare) is None:
            server.add_user(bare, PASSWORD)
        xmpp = new_client(server, jid, password, direct_tls=direct_tls, mechanism=mechanism)
        enabled = asyncio.Event()
        if stream_management:
            xmpp.register_plugin("xep_0198")
            xmpp.add_event_handler("sm_enabled", lambda _: enabled.set())
        client = Client(xmpp)
        clients.append(client)
        started = asyncio.get_running_loop().create_future()
        xmpp.add_event_handler("session_start", lambda _: started.done() or started.set_result(1))
        xmpp.add_event_handler(
            "failed_all_auth",
            lambda _: started.done() or started.set_exception(AssertionError("login failed")),
        )
        port = server.port("xmpps" if direct_tls else "xmpp")
        xmpp.connect("127.0.0.1", port)
        await asyncio.wait_for(started, TIMEOUT)
        if stream_management:
            await asyncio.wait_for(enabled.wait(), TIMEOUT)
        await xmpp.get_roster(timeout=TIMEOUT)
        while not client.roster_pushes.empty():  # the roster itself, not a push
            client.roster_pushes.get_nowait()
        if presence:
            xmpp.send_presence()
        return client

    yield open_client
    for client in clients:
        if not client.disconnected.is_set():
            client.xmpp.disconnect(wait=1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.disconnected.wait(), TIMEOUT)


class RawStream:
    """A stream written by hand, for what no client library would send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.received = b""

    @classmethod
    async def open(cls, server: RunningServer, *, direct_tls: bool = True) -> RawStream:
        context = server.ssl_context() if direct_tls else None
        port = server.port("xmpps" if direct_tls else "xmpp")
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="example.org" if context else None
        )
        return cls(reader, writer)

    async def send(self, data: str | bytes) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)
        await self.writer.drain()

    async def expect(self, text: str, send: str | bytes | None = None) -> str:
        """Send (if given), then read until `text` comes; returns what came since the call."""
        start = len(self.received)
        if send is not None:
            await self.send(send)
        while text.encode() not in self.received[start:]:
            try:
                data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
            except TimeoutError:
                raise AssertionError(f"no {text!r} in {self.received!r}") from None
            if not data:
                raise AssertionError(f"closed before {text!r}: {self.received!r}")
            self.received += data
        return self.received[start:].decode()

    async def closed(self) -> bool:
        """Reads to the end: True when the server closed the connection."""
        while True:
            try:
                data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
            except (ConnectionError, ssl.SSLError):
                return True
            except TimeoutError:
                return False
            if not data:
                return True
            self.received += data

    async def open_stream(self, domain: str = "example.org") -> str:
        return await self.expect(
            "</stream:features>",
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            f"xmlns:stream='http://etherx.jabber.org/streams' to='{domain}' version='1.0'>",
        )

    async def sign_in(self, login: str, password: str = PASSWORD, resource: str = "raw") -> str:
        """SASL PLAIN and a bound resource; returns the full JID."""
        await self.open_stream()
        credentials = base64.b64encode(f"\0{login}\0{password}".encode()).decode()
        sasl = "urn:ietf:params:xml:ns:xmpp-sasl"
        await self.expect(
            "<success", f"<auth xmlns='{sasl}' mechanism='PLAIN'>{credentials}</auth>"
        )
        await self.open_stream()
        reply = await self.expect(
            "</iq>",
            "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            f"<resource>{resource}</resource></bind></iq>",
        )
        assert "<jid>" in reply, reply
        return f"{login}/{resource}"

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()
