"""The supervisor: binds every enabled listener first, then serves them all on one event loop.

On-disk layout (`<data>/run/`):
    lock            held (flock) by the running server, holds its pid; a second server on the
                    same data folder finds it held and refuses to start
    endpoints.json  what the running server listens on, for `pcloud status`; removed at stop

Binding all sockets before serving any means that a port already in use stops start-up with a
line naming the listener and the port, and nothing has been served half-way.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import IO

from pcloud.listeners import LISTENERS, WORKERS, Stop, choose_port_map, load
from pcloud.services import Endpoint, Services
from pcloud.store.durable import write_atomically

log = logging.getLogger(__name__)

STOP_TIMEOUT = 4.0  # seconds; SIGTERM must end the process within 5
WORKER_THREADS = 8  # blocking work (password hashing, WSGI apps) runs on these


class StartError(Exception):
    """Start-up cannot go on; the message is the one line to show."""


# -- the data folder lock ---------------------------------------------------------------------


def _run_dir(data_dir: Path) -> Path:
    return data_dir / "run"


class DataFolderLock:
    """Held by the one server that serves a data folder. The lock file holds its pid, and
    "embedded" when it runs inside another program (pcloud.testing), which SIGHUP would stop."""

    def __init__(self, data_dir: Path, *, embedded: bool = False) -> None:
        run_dir = _run_dir(data_dir)
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.file: IO[str] = open(run_dir / "lock", "a+")  # noqa: SIM115 (held while serving)
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            fields = self.file.read().split()
            pid = fields[0] if fields else "unknown"
            self.file.close()
            raise StartError(
                f"another pcloud server is already running on {data_dir} (pid {pid}); stop it first"
            ) from None
        self.file.truncate(0)
        self.file.write(f"{os.getpid()}{' embedded' if embedded else ''}\n")
        self.file.flush()

    def release(self) -> None:
        self.file.close()


def _lock_holder(data_dir: Path) -> list[str]:
    """What the running server wrote into the lock ([pid] or [pid, "embedded"]), or []."""
    lock_file = _run_dir(data_dir) / "lock"
    if not lock_file.exists():
        return []
    with open(lock_file) as file:
        try:
            fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            fields = file.read().split()
            return fields if fields and fields[0].isdigit() else []
    return []


def running_pid(data_dir: Path) -> int | None:
    """The pid of the server serving this data folder, or None when none is."""
    holder = _lock_holder(data_dir)
    return int(holder[0]) if holder else None


def running_endpoints(data_dir: Path) -> list[Endpoint]:
    try:
        items = json.loads((_run_dir(data_dir) / "endpoints.json").read_text())
    except FileNotFoundError:
        return []
    return [Endpoint(**item) for item in items]


def notify_running_server(data_dir: Path) -> bool:
    """Ask a running server to reload (SIGHUP); False when none runs, or it runs embedded."""
    holder = _lock_holder(data_dir)
    if len(holder) != 1:
        return False
    try:
        os.kill(int(holder[0]), signal.SIGHUP)
    except OSError:  # it stopped meanwhile, or runs as a user we may not signal
        return False
    return True


# -- binding and serving ----------------------------------------------------------------------


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket; host "" means every address, IPv6 and IPv4 where the host has both."""
    if not host:
        try:
            return _listen(socket.AF_INET6, "::", port, dual_stack=True)
        except OSError as error:
            if error.errno != errno.EAFNOSUPPORT:
                raise
            host = "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return _listen(family, host, port, dual_stack=False)


def _listen(
    family: socket.AddressFamily, host: str, port: int, *, dual_stack: bool
) -> socket.socket:
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on accepted connections only when the
    # socket says it is TCP, and without it every reply written in pieces waits 40 ms for the
    # client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual_stack else 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class Supervisor:
    def __init__(self, services: Services, port_map: str) -> None:
        self.services = services
        self.port_map = choose_port_map(port_map)
        self._stops: list[Stop] = []
        self._endpoints_file = _run_dir(services.data_dir) / "endpoints.json"

    async def start(self) -> list[Endpoint]:
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="pcloud-worker")
        )
        settings = self.services.config
        bound: list[tuple[socket.socket, Endpoint]] = []
        try:
            for spec in LISTENERS:
                listener = settings.listeners[spec.name]
                if not listener.enabled:
                    continue
                host = listener.address or settings.server.address
                port = spec.port_in(self.port_map) if listener.port is None else listener.port
                try:
                    sock = _bind(host, port)
                except OSError as error:
                    raise StartError(
                        f"cannot listen for {spec.name} ({spec.service}) on "
                        f"{host or '*'} port {port}: {error.strerror}"
                    ) from None
                endpoint = Endpoint(
                    spec.service, spec.name, host or "*", sock.getsockname()[1], listener.tls
                )
                bound.append((sock, endpoint))
            self.services.endpoints[:] = [endpoint for _, endpoint in bound]
            endpoints = json.dumps([asdict(e) for e in self.services.endpoints])
            write_atomically(self._endpoints_file, endpoints.encode(), mode=0o644)
            for sock, endpoint in bound:
                spec = next(s for s in LISTENERS if s.name == endpoint.listener)
                self._stops.append(await spec.load_serve()(self.services, sock))
                log.info(
                    "listening listener=%s port=%d tls=%s",
                    endpoint.listener,
                    endpoint.port,
                    endpoint.tls,
                )
            for worker in WORKERS:
                self._stops.append(_start_worker(worker, self.services))
        except BaseException:
            await self.stop()  # the listeners already serving close their own sockets
            for sock, _ in bound:
                sock.close()
            raise
        return self.services.endpoints

    async def stop(self) -> None:
        """Stop listeners in reverse order of starting."""
        while self._stops:
            stop = self._stops.pop()
            try:
                await stop()
            except Exception:
                log.exception("listener failed to stop cleanly")
        self._endpoints_file.unlink(missing_ok=True)


# -- `pcloud serve` ---------------------------------------------------------------------------


def _start_worker(path: str, services: Services) -> Stop:
    task = asyncio.create_task(load(path)(services), name=path)

    def finished(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("worker stopped worker=%s", path, exc_info=task.exception())

    task.add_done_callback(finished)

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return stop


def endpoint_table(endpoints: list[Endpoint]) -> str:
    rows = [("service", "listener", "address", "port", "tls")]
    rows += [(e.service, e.listener, e.host, str(e.port), e.tls) for e in endpoints]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


async def serve_until_stopped(
    services: Services, port_map: str, *, on_ready: Callable[[list[Endpoint]], None]
) -> None:
    """Serve until SIGTERM or SIGINT; SIGHUP reloads. Used by `pcloud serve`."""
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    supervisor = Supervisor(services, port_map)
    endpoints = await supervisor.start()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    # Reloading may issue a certificate or make a DKIM key: a worker thread, not the loop.
    loop.add_signal_handler(signal.SIGHUP, loop.run_in_executor, None, _reload, services)
    log.info("ready seconds=%.3f", time.monotonic() - started)
    on_ready(endpoints)
    try:
        await stopping.wait()
        log.info("stopping")
        await asyncio.wait_for(supervisor.stop(), STOP_TIMEOUT)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
    log.info("stopped")


def _reload(services: Services) -> None:
    log.info("reload requested")
    try:
        services.reload()
    except Exception:
        # A bad certificate file must not take the running server down.
        log.exception("reload failed; still serving with the previous certificate")
