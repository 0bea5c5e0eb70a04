"""XMPP benchmark: two signed-in clients exchange chat messages through the server, one round
trip at a time and with many in flight; pcloud against Debian's Prosody when it is installed.

A round trip: alice sends bob a message (to his full JID), bob's client sends it straight back,
alice receives it. Measured per run: round trips per second, latency percentiles, and the
server's CPU time (its process and children) per routed message (two per round trip).

The clients are written here on raw asyncio streams (STARTTLS, SASL PLAIN, bind, then stanzas
as bytes) rather than with slixmpp, whose per-stanza cost in Python would be measured instead of
the servers'. They enable neither carbons nor stream management (one resource each), so those
cost only their checks. Both servers get the same clients and TLS, and neither throttles.

Prosody runs with what pcloud does by default: roster, disco, ping, version, offline storage,
carbons, stream management (mod_smacks) and the message archive (mod_mam, every chat message,
in Debian's default "internal" storage: files appended to; SQL storage would need lua-dbi
packages). Its per-user archive quota (10,000 messages, beyond which mod_mam rewrites the whole
archive every hundred messages) is raised above what a run stores, since pcloud's archive has
no quota. With --prosody-plain, a Prosody without archive and stream management runs too, for
reference. What each server advertised (account disco#info, stream features) is printed.

    python bench/xmpp.py [--sequential 5000] [--pipelined 20000] [--window 100] [--prosody-plain]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from common import (
    PASSWORD,
    PCLOUD,
    BenchError,
    cpu_seconds,
    describe_machine,
    family,
    free_port,
    pcloud_endpoints,
    prepare_pcloud,
    print_table,
    serving_pcloud,
    stopping,
    wait_until_listening,
)

from pcloud.tls import ensure_local_certificates

DOMAIN = "example.org"
USERS = ("alice", "bob")
STEP_TIMEOUT = 600.0
STREAMS_NS = "http://etherx.jabber.org/streams"
_MESSAGE_END = b"</message>"
_BODY = re.compile(rb"<body>r(\d+)</body>")
# mod_offline is loaded whatever the list says
PROSODY_PLAIN = ("roster", "saslauth", "tls", "disco", "carbons", "ping", "version", "posix")
PROSODY_MODULES = (*PROSODY_PLAIN, "smacks", "mam")
# what the report shows of the account's disco#info and the stream features
SHOWN = {"urn:xmpp:mam:2": "archive", "urn:xmpp:carbons:2": "carbons", "urn:xmpp:sm:3": "sm"}

PROSODY_CONF = """\
-- a throwaway Prosody for bench/xmpp.py
run_as_root = true
prosody_user = "root"
pidfile = "{root}/prosody.pid"
data_path = "{root}/data"
certificates = "{root}/tls"
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
log = {{ warn = "{root}/prosody.log" }}
modules_enabled = {{ {modules} }}
modules_disabled = {{ "s2s" }}
authentication = "internal_hashed"
storage = "internal"
storage_archive_item_limit = 1000000
c2s_require_encryption = true
VirtualHost "{domain}"
    ssl = {{ certificate = "{root}/tls/server.pem", key = "{root}/tls/server.key" }}
"""


@dataclass(frozen=True)
class Server:
    name: str
    port: int  # the STARTTLS port
    context: ssl.SSLContext
    pids: Callable[[], list[int]]
    full_login: bool  # the SASL login is user@domain (pcloud), else the local part (Prosody)
    modules: str = ""  # Prosody's, as configured


@dataclass(frozen=True)
class Run:
    round_trips: int
    seconds: float
    latencies: list[float]
    cpu: float  # server CPU seconds

    @property
    def rate(self) -> float:
        return self.round_trips / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def cpu_per_message(self) -> float:
        return self.cpu / (2 * self.round_trips)


# -- a minimal client ---------------------------------------------------------------------------


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = b""
        self.jid = ""
        self.features = b""  # the last stream features

    @classmethod
    async def signed_in(cls, server: Server, user: str) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        client = cls(reader, writer)
        await client.open_stream()
        client.writer.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await client.until(b"<proceed")
        await writer.start_tls(server.context, server_hostname=DOMAIN)
        client.buffer = b""
        await client.open_stream()
        login = f"{user}@{DOMAIN}" if server.full_login else user
        plain = base64.b64encode(f"\0{login}\0{PASSWORD}".encode()).decode()
        client.writer.write(
            f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>"
            .encode()
        )  # fmt: skip
        answer = await client.until(b"<success", b"</failure>")
        if b"<success" not in answer:
            raise BenchError(f"{server.name}: login refused: {answer!r}")
        client.buffer = b""
        await client.open_stream()
        client.writer.write(
            b"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            b"<resource>bench</resource></bind></iq>"
        )
        reply = await client.until(b"</iq>")
        found = re.search(rb"<jid>([^<]+)</jid>", reply)
        if found is None:
            raise BenchError(f"{server.name}: no bound JID in {reply!r}")
        client.jid = found[1].decode()
        # initial presence, then a ping: when its answer comes, the presence traffic is done
        client.writer.write(
            b"<presence/><iq type='get' id='ready'><ping xmlns='urn:xmpp:ping'/></iq>"
        )
        await client.until(b"id='ready'", b'id="ready"')
        client.buffer = client.buffer[client.buffer.rfind(b">") + 1 :]
        return client

    async def advertised(self) -> list[str]:
        """What the server says it does for this account (of SHOWN)."""
        found = self.features
        for to in (DOMAIN, self.jid.partition("/")[0]):  # the server's features, the account's
            self.writer.write(
                f"<iq type='get' id='info' to='{to}'>"
                f"<query xmlns='http://jabber.org/protocol/disco#info'/></iq>".encode()
            )
            found += await self.until(b"</iq>")
        self.buffer = b""
        return [name for namespace, name in SHOWN.items() if namespace.encode() in found]

    async def open_stream(self) -> None:
        self.writer.write(
            f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            f"xmlns:stream='{STREAMS_NS}' to='{DOMAIN}' version='1.0'>".encode()
        )
        self.features = await self.until(b"</stream:features>")

    async def until(self, *markers: bytes) -> bytes:
        """Read until one of the markers; returns what came, the buffer keeps what follows."""
        while True:
            for marker in markers:
                at = self.buffer.find(marker)
                if at >= 0:
                    end = at + len(marker)
                    found, self.buffer = self.buffer[:end], self.buffer[end:]
                    return found
            data = await asyncio.wait_for(self.reader.read(65536), STEP_TIMEOUT)
            if not data:
                raise BenchError(f"closed by the server: {self.buffer[-500:]!r}")
            self.buffer += data

    async def bodies(self) -> list[int]:
        """The numbered bodies of the next whole messages that come."""
        while (end := self.buffer.rfind(_MESSAGE_END)) < 0:
            data = await asyncio.wait_for(self.reader.read(65536), STEP_TIMEOUT)
            if not data:
                raise BenchError(f"closed by the server: {self.buffer[-500:]!r}")
            self.buffer += data
        done, self.buffer = (
            self.buffer[: end + len(_MESSAGE_END)],
            self.buffer[end + len(_MESSAGE_END) :],
        )
        return [int(number) for number in _BODY.findall(done)]

    def message(self, to: str, number: int) -> bytes:
        return f"<message to='{to}' type='chat'><body>r{number}</body></message>".encode()

    async def close(self) -> None:
        self.writer.write(b"</stream:stream>")
        self.writer.close()
        with suppress(OSError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 5)


async def exchange(server: Server, count: int, window: int) -> Run:
    """`count` round trips from alice to bob and back, at most `window` unanswered at once."""
    alice = await Client.signed_in(server, "alice")
    bob = await Client.signed_in(server, "bob")

    async def echo() -> None:
        answered = 0
        while answered < count:
            numbers = await bob.bodies()
            bob.writer.write(b"".join(bob.message(alice.jid, n) for n in numbers))
            answered += len(numbers)

    sent_at: list[float] = [0.0] * count
    latencies: list[float] = []
    echoing = asyncio.create_task(echo())
    pids = server.pids()
    cpu_before = sum(cpu_seconds(pids).values())
    start = time.perf_counter()
    sent = 0
    while sent < min(window, count):
        sent_at[sent] = time.perf_counter()
        alice.writer.write(alice.message(bob.jid, sent))
        sent += 1
    while len(latencies) < count:
        numbers = await alice.bodies()
        now = time.perf_counter()
        batch = []
        for number in numbers:
            latencies.append(now - sent_at[number])
            if sent < count:
                sent_at[sent] = now
                batch.append(alice.message(bob.jid, sent))
                sent += 1
        alice.writer.write(b"".join(batch))
    seconds = time.perf_counter() - start
    cpu = sum(cpu_seconds(pids).values()) - cpu_before
    await echoing
    await alice.close()
    await bob.close()
    return Run(count, seconds, latencies, cpu)


# -- the servers ---------------------------------------------------------------------------------


@contextmanager
def running_pcloud(root: Path) -> Iterator[Server]:
    data = root / "pcloud"
    # No read throttle, as Prosody has none by default.
    prepare_pcloud(data, f"alice@{DOMAIN}", "\n[xmpp]\nrate_bytes_per_second = 0\n")
    subprocess.run([*PCLOUD, "user", "add", f"bob@{DOMAIN}", "--password", PASSWORD,
                    "--data", str(data)], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    with serving_pcloud(data, root / "pcloud.log") as process:
        context = ssl.create_default_context(cafile=data / "tls" / "ca.pem")
        yield Server("pcloud", pcloud_endpoints(data)["xmpp"], context,
                     lambda: family(process.pid), full_login=True)  # fmt: skip


@contextmanager
def running_prosody(
    prosody: str, root: Path, name: str, modules: tuple[str, ...]
) -> Iterator[Server]:
    """A private Prosody (own config, data, certificate and port) with the two users."""
    root = root / name.replace(" ", "-")
    (root / "data").mkdir(parents=True)
    ensure_local_certificates(root / "tls", [DOMAIN])  # the same kind as pcloud's
    port, conf = free_port(), root / "prosody.cfg.lua"
    listed = ", ".join(f'"{module}"' for module in modules)
    conf.write_text(PROSODY_CONF.format(root=root, port=port, domain=DOMAIN, modules=listed))
    prosodyctl = shutil.which("prosodyctl") or "prosodyctl"
    for user in USERS:
        subprocess.run([prosodyctl, "--config", str(conf), "register", user, DOMAIN, PASSWORD],
                       check=True, capture_output=True)  # fmt: skip
    with (root / "prosody.out").open("ab") as out:
        process = subprocess.Popen([prosody, "--config", str(conf), "-F"], stdout=out, stderr=out)
    with process, stopping(process):
        wait_until_listening(process, port, "Prosody", [root / "prosody.out", root / "prosody.log"])
        context = ssl.create_default_context(cafile=root / "tls" / "ca.pem")
        yield Server(name, port, context, lambda: family(process.pid), full_login=False,
                     modules=f"modules {', '.join(modules)}, offline")  # fmt: skip


# -- reporting -----------------------------------------------------------------------------------


async def advertised(server: Server) -> str:
    client = await Client.signed_in(server, "alice")
    shown = await client.advertised()
    await client.close()
    described = ", ".join(shown) or "no archive, carbons or sm"
    return f"{server.name}: {described}" + (f" ({server.modules})" if server.modules else "")


def report(runs: dict[str, dict[str, Run]]) -> None:
    """A table per kind of run; a ratio column of pcloud (the first) to each other server."""
    names = list(runs)
    for label in next(iter(runs.values())):
        print(f"\n{label}")
        rows = [["", *names, *(f"pcloud / {other}" for other in names[1:])]]
        measures: list[tuple[str, Callable[[Run], float], Callable[[float], str], bool]] = [
            ("round trips per second", lambda r: r.rate, lambda v: f"{v:,.0f}", True),
            ("p50 latency", lambda r: r.percentile(0.5), lambda v: f"{v * 1e3:.2f} ms", False),
            ("p99 latency", lambda r: r.percentile(0.99), lambda v: f"{v * 1e3:.2f} ms", False),
            ("server CPU per message", lambda r: r.cpu_per_message,
             lambda v: f"{v * 1e6:.0f} µs", False),
        ]  # fmt: skip
        for title, value, shown, _ in measures:
            values = [value(runs[name][label]) for name in names]
            row = [title, *(shown(v) for v in values)]
            row += [f"{values[0] / other:.2f}" if other else "-" for other in values[1:]]
            rows.append(row)
        print_table(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=5000, help="round trips one at a time")
    parser.add_argument("--pipelined", type=int, default=20000, help="round trips in flight")
    parser.add_argument("--window", type=int, default=100, help="round trips in flight at most")
    parser.add_argument("--prosody-plain", action="store_true",
                        help="also a Prosody without archive and stream management")  # fmt: skip
    arguments = parser.parse_args()
    prosody = shutil.which("prosody")
    compared = "against Prosody " + prosody_version() if prosody else "Prosody not installed"
    print(describe_machine(compared))
    labels = {
        f"{arguments.sequential:,} round trips, one at a time": (arguments.sequential, 1),
        f"{arguments.pipelined:,} round trips, {arguments.window} in flight": (
            arguments.pipelined,
            arguments.window,
        ),
    }
    runs: dict[str, dict[str, Run]] = {}
    with tempfile.TemporaryDirectory(prefix="pcloud-bench-xmpp-") as folder, ExitStack() as stack:
        root = Path(folder)
        servers = [stack.enter_context(running_pcloud(root))]
        if prosody:
            servers.append(
                stack.enter_context(running_prosody(prosody, root, "Prosody", PROSODY_MODULES))
            )
        if prosody and arguments.prosody_plain:
            servers.append(
                stack.enter_context(running_prosody(prosody, root, "Prosody plain", PROSODY_PLAIN))
            )
        print("\nadvertised (server and account disco#info, stream features):")
        for server in servers:
            print("  " + asyncio.run(advertised(server)))
        for server in servers:
            results = runs.setdefault(server.name, {})
            for label, (count, window) in labels.items():
                results[label] = asyncio.run(exchange(server, count, window))
    report(runs)
    return 0


def prosody_version() -> str:
    try:
        return subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "prosody"],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "(version unknown)"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench/xmpp.py: {error}", file=sys.stderr)
        sys.exit(1)
