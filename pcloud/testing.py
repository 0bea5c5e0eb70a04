"""Run a whole pcloud server inside another program: for tests, and for projects that embed it.

    with running_server(tmp_path / "data") as server:
        server.add_user("alice@example.org", "a long password")
        urllib.request.urlopen(server.url("/healthz"), context=server.ssl_context())

The server runs on its own event loop in a background thread, so that the caller may use
blocking clients (smtplib, imaplib, subprocesses) as well as asyncio ones. It listens on
127.0.0.1 on ports chosen by the kernel, with failed-login delays shortened to milliseconds, and
asks its DNS questions of a small DNS server of its own (records given by the caller; any other
name does not exist), so that nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Coroutine, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from pcloud import config
from pcloud.directory import User
from pcloud.services import Endpoint, Services, open_services
from pcloud.store.durable import write_atomically
from pcloud.supervisor import DataFolderLock, Supervisor

T = TypeVar("T")

TEST_SETTINGS: dict[str, dict[str, Any]] = {
    "server": {"address": "127.0.0.1", "ports": "ephemeral"},
    "login": {"first_delay_ms": 1, "max_delay_ms": 10},
}


def write_config(data_dir: Path, domain: str, settings: Mapping[str, Mapping[str, Any]]) -> None:
    """Write pcloud.toml with these sections, e.g. {"login": {"lockout_minutes": 1}}."""
    sections: dict[str, dict[str, Any]] = {"server": {"domain": domain}}
    for name, values in settings.items():
        sections.setdefault(name, {}).update(values)
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {config.toml_value(value)}" for key, value in values.items()]
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomically(data_dir / config.CONFIG_FILE, "\n".join(lines).encode() + b"\n")


class RunningServer:
    def __init__(self, services: Services, loop: asyncio.AbstractEventLoop) -> None:
        self.services = services
        self.loop = loop
        self.data_dir = services.data_dir
        self.ca_file = services.tls.ca_file
        self.domain = services.config.server.domain
        self.dns_records: dict[tuple[str, str], list[str]] = {}

    @property
    def endpoints(self) -> list[Endpoint]:
        return list(self.services.endpoints)

    def port(self, listener: str) -> int:
        endpoint = self.services.endpoint(listener)
        if endpoint is None:
            raise KeyError(f"listener {listener} is not running")
        return endpoint.port

    def url(self, path: str = "/") -> str:
        return f"https://localhost:{self.port('https')}{path}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's CA."""
        return ssl.create_default_context(cafile=self.ca_file)

    def add_user(
        self, address: str, password: str = "correct horse battery", **options: Any
    ) -> User:
        return self.services.directory.add_user(address, password, **options)

    def messages(self, address: str, mailbox: str = "INBOX") -> list[bytes]:
        """The messages stored in one of an account's mailboxes, oldest first, as on disk."""
        account = self.services.mail.account(address)
        return [
            account.message_file(mailbox, m.uid).read_bytes() for m in account.messages(mailbox)
        ]

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's own loop (e.g. directory.authenticate) and wait."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=60)


@contextmanager
def running_server(
    data_dir: Path,
    *,
    domain: str = "example.org",
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    dns_records: Mapping[tuple[str, str], list[str]] | None = None,
) -> Iterator[RunningServer]:
    """Start a whole server on a new data folder; stop it, closing everything, on exit.
    `dns_records` is what its DNS server answers, e.g. {("b.test", "MX"): ["10 mx.b.test."]}."""
    answers = dict(dns_records or {})
    with DnsServer(answers) as dns_server:
        merged = {name: dict(values) for name, values in TEST_SETTINGS.items()}
        merged["smtp"] = {"dns_server": f"127.0.0.1:{dns_server.port}"}
        for name, values in (settings or {}).items():
            merged.setdefault(name, {}).update(values)
        write_config(data_dir, domain, merged)
        with _serve(data_dir) as server:
            server.dns_records = answers  # what its DNS server answers; tests may add to it
            yield server


@contextmanager
def _serve(data_dir: Path) -> Iterator[RunningServer]:
    lock = DataFolderLock(data_dir, embedded=True)
    services, _ = open_services(data_dir)
    started: Future[RunningServer] = Future()
    stopping: asyncio.Event | None = None

    async def serve() -> None:
        nonlocal stopping
        stopping = asyncio.Event()
        supervisor = Supervisor(services, services.config.server.ports)
        try:
            await supervisor.start()
        except BaseException as error:
            started.set_exception(error)
            return
        started.set_result(RunningServer(services, asyncio.get_running_loop()))
        await stopping.wait()
        await supervisor.stop()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="pcloud-server")
    thread.start()
    try:
        server = started.result(timeout=60)
        try:
            yield server
        finally:
            assert stopping is not None
            server.loop.call_soon_threadsafe(stopping.set)
    finally:
        thread.join(timeout=30)
        services.close()
        lock.release()


class DnsServer:
    """A DNS server on 127.0.0.1 answering from a table {(name, type): [values]}; names under
    `broken.test` get SERVFAIL (a temporary failure); any other name does not exist."""

    def __init__(self, records: Mapping[tuple[str, str], list[str]]) -> None:
        self.records = records
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while self.running:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(wire)
            response = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text().rstrip(".")
            kind = dns.rdatatype.to_text(question.rdtype)
            answers = self.records.get((name, kind))
            if name.endswith("broken.test"):
                response.set_rcode(dns.rcode.SERVFAIL)
            elif answers is not None:
                response.answer.append(
                    dns.rrset.from_text_list(question.name, 60, "IN", kind, answers)
                )
            elif not any(key[0] == name for key in self.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()

    def __enter__(self) -> DnsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
