"""The network listeners pcloud can open (and the port each gets under each port map), and the
background workers it runs.

A listener belongs to one service and speaks one protocol on one port. Its protocol package
provides `async def serve(services, sock) -> Stop`, imported only when the listener is enabled,
so that a disabled service costs no memory.

Port maps: `standard` uses the well-known ports (needs root or CAP_NET_BIND_SERVICE), `high`
the same services on unprivileged ports, `ephemeral` lets the kernel choose (tests, scripts).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import socket
    import ssl

    from pcloud.services import Services

# Called on shutdown: stops accepting, closes connections, returns when done.
Stop = Callable[[], Awaitable[None]]
Serve = Callable[["Services", "socket.socket"], Awaitable[Stop]]

PORT_MAPS = ("standard", "high", "ephemeral")


@dataclass(frozen=True)
class ListenerSpec:
    name: str
    service: str
    description: str
    standard_port: int
    high_port: int
    tls_modes: tuple[str, ...]  # the first one is the default
    serve_path: str  # "module:function", imported lazily
    enabled: bool = True  # the default of `[listeners.NAME] enabled`

    def port_in(self, port_map: str) -> int:
        return {"standard": self.standard_port, "high": self.high_port, "ephemeral": 0}[port_map]

    def load_serve(self) -> Serve:
        serve: Serve = load(self.serve_path)
        return serve


LISTENERS: tuple[ListenerSpec, ...] = (
    ListenerSpec(
        name="https",
        service="web",
        description="HTTPS: health check now; DAV, files, avatars, autoconfig and the web panel",
        standard_port=443,
        high_port=8443,
        tls_modes=("implicit",),
        serve_path="pcloud.http.app:serve_https",
    ),
    ListenerSpec(
        name="http",
        service="web",
        description="plain HTTP: only redirects to HTTPS",
        standard_port=80,
        high_port=8080,
        tls_modes=("none",),
        serve_path="pcloud.http.app:serve_redirect",
    ),
    ListenerSpec(
        name="smtp",
        service="mail",
        description="SMTP: mail from other servers to hosted addresses (MX), STARTTLS offered",
        standard_port=25,
        high_port=2525,
        tls_modes=("starttls",),
        serve_path="pcloud.smtp.inbound:serve",
    ),
    ListenerSpec(
        name="submission",
        service="mail",
        description="mail submission by users' mail programs, STARTTLS required before AUTH",
        standard_port=587,
        high_port=2587,
        tls_modes=("starttls",),
        serve_path="pcloud.smtp.submission:serve_starttls",
    ),
    ListenerSpec(
        name="submissions",
        service="mail",
        description="mail submission over implicit TLS",
        standard_port=465,
        high_port=4465,
        tls_modes=("implicit",),
        serve_path="pcloud.smtp.submission:serve_implicit_tls",
    ),
    ListenerSpec(
        name="imap",
        service="mail",
        description="IMAP: mail programs read mail, STARTTLS required before login",
        standard_port=143,
        high_port=1143,
        tls_modes=("starttls",),
        serve_path="pcloud.imap.server:serve_starttls",
    ),
    ListenerSpec(
        name="imaps",
        service="mail",
        description="IMAP over implicit TLS",
        standard_port=993,
        high_port=1993,
        tls_modes=("implicit",),
        serve_path="pcloud.imap.server:serve_implicit_tls",
    ),
    ListenerSpec(
        name="xmpp",
        service="chat",
        description="XMPP: chat programs connect, STARTTLS required before login",
        standard_port=5222,
        high_port=5322,
        tls_modes=("starttls",),
        serve_path="pcloud.xmpp.server:serve_starttls",
    ),
    ListenerSpec(
        name="xmpps",
        service="chat",
        description="XMPP over TLS from the start (XEP-0368)",
        standard_port=5223,
        high_port=5323,
        tls_modes=("implicit",),
        serve_path="pcloud.xmpp.server:serve_direct_tls",
    ),
    ListenerSpec(
        name="ssh",
        service="shell",
        description="SSH: the pcloud command shell, signed in with SSH keys only",
        standard_port=22,
        high_port=2222,
        tls_modes=("none",),  # SSH encrypts by itself
        serve_path="pcloud.ssh.server:serve",
    ),
    ListenerSpec(
        name="ftps",
        service="files",
        description="FTPS: users' files over FTP, TLS required (AUTH TLS, then PROT P); "
        "off by default",
        standard_port=21,
        high_port=2121,
        tls_modes=("starttls",),  # explicit TLS (RFC 4217): the AUTH TLS command
        serve_path="pcloud.ftps:serve",
        enabled=False,  # needs the ftps extra, and few people still need FTP
    ),
)


# Background workers the supervisor runs beside the listeners ("module:function", each an
# `async def run(services)` that runs until cancelled).
WORKERS: tuple[str, ...] = (
    "pcloud.smtp.outbound:run",
    "pcloud.files.retention:run",
    "pcloud.xmpp.accounts:run",
    "pcloud.xmpp.liveness:run",
)


async def serve_streams(
    sock: socket.socket,
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    *,
    ssl_context: ssl.SSLContext | None,
    limit: int,
) -> Stop:
    """An asyncio stream server on a bound socket (IMAP, XMPP): `handle` serves each
    connection, and the returned stop also ends the connections still open."""
    tasks: set[asyncio.Task[None]] = set()

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        # Cancelled by stop(): Python 3.11's asyncio.streams would log a cancelled connection
        # task as an unhandled error (3.12 no longer does).
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await handle(reader, writer)
        finally:
            tasks.discard(task)

    server = await asyncio.start_server(connected, sock=sock, ssl=ssl_context, limit=limit)

    async def stop() -> None:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    return stop


def load(path: str) -> Callable[..., Any]:
    module_name, function_name = path.split(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module_name), function_name)
    return function


def render_port_table() -> str:
    """The port table in Markdown, as the README carries it."""
    rows = [
        "| listener | service | standard port | high port | TLS | what |",
        "|---|---|---|---|---|---|",
    ]
    for spec in LISTENERS:
        rows.append(
            f"| {spec.name} | {spec.service} | {spec.standard_port} | {spec.high_port} "
            f"| {spec.tls_modes[0]} | {spec.description} |"
        )
    return "\n".join(rows)


def can_bind_low_ports() -> bool:
    """True when running as root or with CAP_NET_BIND_SERVICE in the effective set."""
    if os.geteuid() == 0:
        return True
    cap_net_bind_service = 10
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> cap_net_bind_service & 1)
    except OSError:
        pass
    return False


def choose_port_map(requested: str) -> str:
    """Resolve "auto" to the map this process can use."""
    if requested != "auto":
        return requested
    return "standard" if can_bind_low_ports() else "high"
