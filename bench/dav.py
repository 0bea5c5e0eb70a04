"""DAV benchmark: PUT 1,000 events, then query them three ways; pcloud vs standalone Radicale.

Both servers get the same 1,000 events, PUT one after another on one connection, then in each
round a time-range calendar-query REPORT, a Depth:1 PROPFIND, an initial sync-collection REPORT
and a Depth:0 PROPFIND. Radicale is Debian's package (apt-get install radicale) run as a private
instance; `--radicale PATH` names another, e.g. the `radicale` script pip installed beside
pcloud, to compare with the very Radicale version pcloud embeds.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import http.client
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import radicale as embedded_radicale
from common import (
    PASSWORD,
    PCLOUD,
    BenchError,
    cpu_seconds,
    describe_machine,
    duration,
    free_port,
    median,
    memory_kib,
    pcloud_endpoints,
    prepare_pcloud,
    print_table,
    serving_pcloud,
    stopping,
    wait_until_listening,
)

from pcloud.tls import ensure_local_certificates

REQUEST_TIMEOUT = 300.0
DEBIAN_RADICALE = Path("/usr/bin/radicale")  # not the one pip put first on PATH: pcloud embeds it
USER = "alice@example.org"
EVENTS = 1000
FIRST_START = datetime.datetime(2027, 1, 1, 9, tzinfo=datetime.UTC)
SPACING = datetime.timedelta(hours=8)  # 1,000 events fill 333 days
DURATION = datetime.timedelta(hours=1)
RANGE = (datetime.datetime(2027, 3, 1, tzinfo=datetime.UTC),
         datetime.datetime(2027, 4, 1, tzinfo=datetime.UTC))  # fmt: skip
DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
EVENT = """\
BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//pcloud bench//EN\r
BEGIN:VEVENT\r
UID:bench-{number:04}@example.org\r
DTSTAMP:20261201T090000Z\r
DTSTART:{start:%Y%m%dT%H%M%SZ}\r
DTEND:{end:%Y%m%dT%H%M%SZ}\r
SUMMARY:Meeting {number}\r
LOCATION:Room {room}\r
DESCRIPTION:Agenda: the figures of week {week}\\, and what comes next.\r
END:VEVENT\r
END:VCALENDAR\r
"""
CALENDAR_QUERY = f"""\
<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="{RANGE[0]:%Y%m%dT%H%M%SZ}" end="{RANGE[1]:%Y%m%dT%H%M%SZ}"/>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>
""".encode()
PROPFIND = b"""\
<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop>
  <D:resourcetype/><D:getetag/><D:getcontenttype/><D:displayname/>
</D:prop></D:propfind>
"""
SYNC_COLLECTION = b"""\
<?xml version="1.0" encoding="utf-8"?>
<D:sync-collection xmlns:D="DAV:">
  <D:sync-token/><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop>
</D:sync-collection>
"""
# A private instance: its own config, storage, users and certificate, as Debian packages it
# otherwise (its own threaded wsgiref server, fsync on, the item cache on).
RADICALE_CONF = """\
[server]
hosts = 127.0.0.1:{port}
ssl = True
certificate = {tls}/server.pem
key = {tls}/server.key
[auth]
type = htpasswd
htpasswd_filename = {root}/users
htpasswd_encryption = plain
[rights]
type = owner_only
[storage]
filesystem_folder = {root}/collections
[web]
type = none
[logging]
level = warning
"""


@dataclass
class Server:
    name: str
    port: int
    context: ssl.SSLContext  # trusts the server's certificate
    calendar: str  # the path of alice's calendar
    secret: str  # what the timed requests authenticate with
    pid: int  # its one process: its threads' CPU time counts
    log: Path
    error_marks: tuple[str, ...]  # what its log lines of errors hold
    time_password: bool = False  # also time a request signed with the account password


class Sample(NamedTuple):
    wall: float
    server_cpu: float


class Step(NamedTuple):
    label: str
    short: str  # in the summary line
    method: str
    depth: str
    body: bytes
    expected: Callable[[ET.Element], str | None]  # why a multistatus is wrong, or None


@dataclass
class Results:
    put_latencies: dict[str, list[float]] = field(default_factory=dict)
    put_total: dict[str, Sample] = field(default_factory=dict)
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)  # (server, step)
    connections: dict[str, int] = field(default_factory=dict)  # TLS connections opened
    requests: dict[str, int] = field(default_factory=dict)
    tls: dict[str, str] = field(default_factory=dict)
    rss_mib: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


# -- what the servers are asked ---------------------------------------------------------------


def event(number: int) -> bytes:
    start = FIRST_START + number * SPACING
    return EVENT.format(
        number=number, start=start, end=start + DURATION, room=number % 40, week=number // 21
    ).encode()


def in_range() -> int:
    """How many events overlap RANGE (RFC 4791 §9.9)."""
    starts = (FIRST_START + n * SPACING for n in range(EVENTS))
    return sum(start < RANGE[1] and start + DURATION > RANGE[0] for start in starts)


def responses(multistatus: ET.Element) -> list[ET.Element]:
    return multistatus.findall(f"{{{DAV}}}response")


def expect_events(multistatus: ET.Element) -> str | None:
    found = responses(multistatus)
    data = [r for r in found if r.find(f".//{{{CALDAV}}}calendar-data") is not None]
    if len(found) != in_range() or len(data) != len(found):
        return f"{len(found)} responses, {len(data)} with calendar-data; expected {in_range()}"
    return None


def expect_members(multistatus: ET.Element) -> str | None:
    found = len(responses(multistatus))
    return None if found == EVENTS + 1 else f"{found} responses; expected {EVENTS + 1}"


def expect_changes(multistatus: ET.Element) -> str | None:
    found = len(responses(multistatus))
    if multistatus.find(f"{{{DAV}}}sync-token") is None:
        return "no sync-token"
    return None if found == EVENTS else f"{found} responses; expected {EVENTS}"


def expect_calendar(multistatus: ET.Element) -> str | None:
    found = len(responses(multistatus))
    return None if found == 1 else f"{found} responses; expected 1"


STEPS = (
    Step(f"calendar-query, 1 month ({in_range()} events)", "calendar-query", "REPORT", "1",
         CALENDAR_QUERY, expect_events),
    Step(f"PROPFIND Depth:1 ({EVENTS + 1} responses)", "PROPFIND Depth:1", "PROPFIND", "1",
         PROPFIND, expect_members),
    Step(f"sync-collection, initial ({EVENTS})", "sync-collection", "REPORT", "1",
         SYNC_COLLECTION, expect_changes),
    Step("PROPFIND Depth:0 (1 response)", "PROPFIND Depth:0", "PROPFIND", "0", PROPFIND,
         expect_calendar),
)  # fmt: skip
PASSWORD_STEP = STEPS[-1]._replace(label="PROPFIND Depth:0, account password")


# -- the client: the same for both servers ----------------------------------------------------


class Client:
    """One keep-alive HTTPS connection, opened again whenever the server closes it."""

    def __init__(self, server: Server, secret: str) -> None:
        self.server = server
        self.http = http.client.HTTPSConnection(
            "127.0.0.1", server.port, context=server.context, timeout=REQUEST_TIMEOUT
        )
        token = f"{USER}:{secret}".encode()
        self.authorization = "Basic " + base64.b64encode(token).decode()
        self.opened = self.requests = 0
        self.tls = ""

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        try:
            if self.http.sock is None:
                self.http.connect()
                self.opened += 1
                sock = self.http.sock
                assert isinstance(sock, ssl.SSLSocket)
                self.tls = f"{sock.version()} {(sock.cipher() or ('?',))[0]}"
            self.http.request(
                method, path, body, {"Authorization": self.authorization, **(headers or {})}
            )
            # http.client closes the connection here when the server said it would.
            response = self.http.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.http.close()
            raise BenchError(f"{self.server.name}: {method} {path}: {error!r}") from None
        self.requests += 1
        return response.status, data

    def close(self) -> None:
        self.http.close()


def server_cpu(server: Server) -> float:
    return cpu_seconds([server.pid]).get(server.pid, 0.0)


def put_events(server: Server, results: Results) -> None:
    client = Client(server, server.secret)
    latencies: list[float] = []
    try:
        cpu, began = server_cpu(server), time.perf_counter()
        for number in range(EVENTS):
            start = time.perf_counter()
            status, body = client.request(
                "PUT", f"{server.calendar}event-{number:04}.ics", event(number),
                {"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"},
            )  # fmt: skip
            latencies.append(time.perf_counter() - start)
            if status != 201:
                raise BenchError(f"{server.name}: PUT event {number}: {status} {body[:200]!r}")
        total = Sample(time.perf_counter() - began, server_cpu(server) - cpu)
    finally:
        client.close()
    results.put_latencies[server.name], results.put_total[server.name] = latencies, total
    results.connections[server.name] = client.opened
    results.requests[server.name] = client.requests
    results.tls[server.name] = client.tls


def run_step(server: Server, client: Client, step: Step, results: Results) -> Sample:
    cpu, began = server_cpu(server), time.perf_counter()
    status, body = client.request(
        step.method, server.calendar, step.body,
        {"Depth": step.depth, "Content-Type": "application/xml; charset=utf-8"},
    )  # fmt: skip
    sample = Sample(time.perf_counter() - began, server_cpu(server) - cpu)
    # Parsing is ours, outside the clock.
    why = f"status {status}" if status != 207 else step.expected(ET.fromstring(body))
    if why:
        results.problems.append(f"{server.name}: {step.label}: {why}")
    return sample


def one_round(server: Server, results: Results, timed: bool) -> None:
    """Every step once, on one connection; a warm-up round only checks the answers."""
    plan: list[tuple[str, tuple[Step, ...]]] = [(server.secret, STEPS)]
    if server.time_password:
        plan.append((PASSWORD, (PASSWORD_STEP,)))
    for secret, steps in plan:
        client = Client(server, secret)
        try:
            for step in steps:
                sample = run_step(server, client, step, results)
                if timed:
                    results.samples.setdefault((server.name, step.label), []).append(sample)
        finally:
            client.close()
            results.connections[server.name] += client.opened
            results.requests[server.name] += client.requests


# -- the servers ------------------------------------------------------------------------------


@contextmanager
def running_pcloud(root: Path) -> Iterator[Server]:
    """A pcloud server whose user has signed in to DAV once (which makes the calendar)."""
    data, log_file = root / "data", root / "pcloud.log"
    root.mkdir()
    prepare_pcloud(data, USER)
    added = subprocess.run(
        [*PCLOUD, "user", "app-password", "add", USER, "bench", "--data", str(data)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    # The secret is the first word of the line that says it is shown only once.
    secret = next(line.split()[0] for line in added.stdout.splitlines() if "only" in line)
    with serving_pcloud(data, log_file) as process:
        endpoints = pcloud_endpoints(data)
        if "https" not in endpoints:
            raise BenchError("pcloud opened no `https` listener")
        calendar = f"/dav/{USER}/calendar/"
        context = ssl.create_default_context(cafile=data / "tls" / "ca.pem")
        server = Server(
            "pcloud", endpoints["https"], context, calendar, secret, process.pid, log_file,
            (" ERROR ", " CRITICAL "), time_password=True,
        )  # fmt: skip
        client = Client(server, secret)
        try:
            status, body = client.request("PROPFIND", calendar, PROPFIND, {"Depth": "0"})
        finally:
            client.close()
        if status != 207:
            raise BenchError(
                f"pcloud: PROPFIND {calendar}: {status} {body[:200]!r} (DAV not mounted?)"
            )
        yield server


@contextmanager
def running_radicale(radicale: Path, root: Path) -> Iterator[Server]:
    """A private Radicale on 127.0.0.1 over TLS, with alice's calendar made."""
    root.mkdir(mode=0o700)
    tls = root / "tls"
    ensure_local_certificates(tls, ["localhost", "127.0.0.1"])  # the same kind as pcloud's
    port, conf = free_port(), root / "radicale.conf"
    conf.write_text(RADICALE_CONF.format(port=port, tls=tls, root=root))
    # Plain passwords: the timed requests then cost what pcloud's app password costs (a lookup).
    (root / "users").write_text(f"{USER}:{PASSWORD}\n")
    log_file = root / "radicale.log"
    with log_file.open("ab") as log:
        process = subprocess.Popen([str(radicale), "--config", str(conf)], stdout=log, stderr=log)
    context = ssl.create_default_context(cafile=tls / "ca.pem")
    with process, stopping(process):
        # Radicale logs an error for a connection that closes before the TLS handshake, as a
        # bare port probe would
        wait_until_listening(
            process, port, "Radicale", [log_file],
            lambda sock: context.wrap_socket(sock, server_hostname="127.0.0.1").close(),
        )  # fmt: skip
        calendar = f"/{USER}/calendar/"
        server = Server(
            "Radicale", port, context, calendar, PASSWORD, process.pid, log_file,
            ("[ERROR]", "[CRITICAL]"),
        )  # fmt: skip
        client = Client(server, PASSWORD)
        try:
            status, body = client.request("MKCALENDAR", calendar)
        finally:
            client.close()
        if status != 201:
            raise BenchError(f"Radicale: MKCALENDAR {calendar}: {status} {body[:200]!r}")
        yield server


# -- running and reporting --------------------------------------------------------------------


def measure(root: Path, radicale: Path | None, with_pcloud: bool, rounds: int) -> Results:
    results = Results()
    with ExitStack() as stack:
        servers = []
        if with_pcloud:
            servers.append(stack.enter_context(running_pcloud(root / "pcloud")))
        if radicale:
            servers.append(stack.enter_context(running_radicale(radicale, root / "radicale")))
        for server in servers:
            put_events(server, results)
            one_round(server, results, timed=False)  # the page cache, Radicale's item cache
        for number in range(rounds):
            # Alternate who goes first, so that a drift in the machine's load hits both alike.
            for server in servers if number % 2 == 0 else servers[::-1]:
                one_round(server, results, timed=True)
        for server in servers:
            results.rss_mib[server.name] = memory_kib([server.pid])[0] / 1024
            lines = server.log.read_text(errors="replace").splitlines()
            results.problems += [
                f"{server.name} logged: {line}"
                for line in lines
                if any(mark in line for mark in server.error_marks)
            ][:5]
    return results


def ratio(values: list[float | None]) -> list[str]:
    """pcloud/Radicale, when both were measured."""
    if len(values) != 2:
        return []
    ours, theirs = values
    return ["-" if ours is None or theirs is None or theirs <= 0 else f"{ours / theirs:.2f}x"]


def report(results: Results) -> None:
    names = list(results.put_total)
    two = len(names) == 2
    rows = [["step", *names, *(["ratio"] if two else []),
             *(f"{name} CPU" for name in names), *(["ratio"] if two else [])]]  # fmt: skip
    totals = [results.put_total[name] for name in names]
    rows.append([f"PUT {EVENTS} events, one after another",
                 *(f"{duration(t.wall)} ({EVENTS / t.wall:.0f}/s)" for t in totals),
                 *ratio([t.wall for t in totals]), *(duration(t.server_cpu) for t in totals),
                 *ratio([t.server_cpu for t in totals])])  # fmt: skip
    for percent in (50, 99):
        cuts = [statistics.quantiles(results.put_latencies[name], n=100, method="inclusive")
                [percent - 1] for name in names]  # fmt: skip
        rows.append([f"PUT latency p{percent}", *map(duration, cuts), *ratio(list(cuts))])
    for label in (step.label for step in (*STEPS, PASSWORD_STEP)):
        samples = [results.samples.get((name, label)) for name in names]
        if not any(samples):
            continue
        walls = [median(s.wall for s in one or ()) for one in samples]
        cpus = [median(s.server_cpu for s in one or ()) for one in samples]
        rows.append([label, *(duration(w) if w is not None else "-" for w in walls),
                     *ratio(walls), *(duration(c) if c is not None else "-" for c in cpus),
                     *ratio(cpus)])  # fmt: skip
    width = len(rows[0])
    print_table([row + [""] * (width - len(row)) for row in rows])
    print("TLS: " + ", ".join(f"{name} {tls}" for name, tls in results.tls.items()))
    print("TLS connections opened: " + ", ".join(
        f"{name} {results.connections[name]} for {results.requests[name]} requests"
        for name in names))  # fmt: skip
    # Both servers share this machine's CPUs and disk with whatever else runs.
    print(f"load average at the end: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    print("server RSS at the end: " + ", ".join(
        f"{name} {mib:.0f} MiB" for name, mib in results.rss_mib.items()))  # fmt: skip
    for problem in results.problems:
        print(f"check: {problem}")
    if not results.problems:
        print(f"check: ok, every answer of {' and '.join(names)}: {in_range()} events in"
              f" the month, {EVENTS + 1} PROPFIND responses, {EVENTS} changes,"
              " no errors logged")  # fmt: skip
    summary = ", ".join(
        f"{name} {EVENTS / results.put_total[name].wall:.0f} PUT/s" for name in names
    )
    if two:
        cells = []
        for step in STEPS[:3]:
            ours, theirs = (statistics.median(s.wall for s in results.samples[name, step.label])
                            for name in names)  # fmt: skip
            cells.append(f"{step.short} {ours / theirs:.2f}x")
        put = results.put_total["pcloud"].wall / results.put_total["Radicale"].wall
        summary += f"; pcloud/Radicale time: PUT {put:.2f}x, " + ", ".join(cells)
    print(f"\ndav: {summary}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--radicale", type=Path, default=DEBIAN_RADICALE,
                        help=f"Radicale's program (default {DEBIAN_RADICALE})")  # fmt: skip
    parser.add_argument("--no-radicale", action="store_true", help="measure pcloud only")
    parser.add_argument("--no-pcloud", action="store_true", help="measure Radicale only")
    arguments = parser.parse_args()
    if arguments.rounds < 1:
        parser.error("--rounds must be positive")
    # A SIGTERM unwinds like Ctrl-C, so that the servers are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    radicale: Path | None = arguments.radicale
    if arguments.no_radicale:
        radicale, about = None, "Radicale skipped (--no-radicale)"
    elif radicale is None or not radicale.exists():
        radicale, about = None, "Radicale not installed (apt-get install radicale): pcloud only"
    else:
        version = subprocess.run([str(radicale), "--version"], capture_output=True, text=True)
        about = f"standalone Radicale {version.stdout.strip()} ({radicale})"
    if arguments.no_pcloud and not radicale:
        parser.error("--no-pcloud leaves nothing to measure without Radicale")
    print(describe_machine(f"Radicale {embedded_radicale.VERSION} embedded, {about}"))
    now = datetime.datetime.now().astimezone()
    print(f"date: {now:%Y-%m-%d %H:%M %Z}; HTTPS on 127.0.0.1, http.client as the client, one"
          f" keep-alive connection per round, medians of {arguments.rounds} rounds after a"
          " warm-up")  # fmt: skip
    print(f"{EVENTS} events, 8 hours apart from {FIRST_START:%Y-%m-%d}, PUT with If-None-Match: *;"
          " both servers fsync each one")  # fmt: skip
    print("credentials: pcloud an app password (a SHA-256 lookup), Radicale htpasswd in plain;"
          f" '{PASSWORD_STEP.label}' is pcloud's scrypt check, paid by every request of a client"
          " that signs in with it")  # fmt: skip
    print("Radicale's own server answers HTTP/1.0 and closes the connection after each request:"
          " its times include a new TLS handshake each")  # fmt: skip
    print("ratio: pcloud/Radicale time, below 1 is pcloud faster; CPU: the server process's")
    sys.stdout.flush()
    try:
        with tempfile.TemporaryDirectory(prefix="pcloud-bench-dav-") as temp:
            results = measure(Path(temp), radicale, not arguments.no_pcloud, arguments.rounds)
    except (BenchError, OSError, subprocess.CalledProcessError) as error:
        print(f"dav: error: {error}", file=sys.stderr)
        return 1
    report(results)
    return 1 if results.problems else 0


if __name__ == "__main__":
    sys.exit(main())
