"""Avatar benchmark: requests per second for a cached avatar over HTTPS, 1 and 50 clients.

A pcloud server (a subprocess, as `pcloud serve` runs) holds one user with a 512-pixel picture;
every request asks for its 80-pixel rendition by MD5 hash, which the first request puts in the
server's cache. Each client is one keep-alive HTTPS connection (aiohttp) sending GETs one after
another for a fixed time; each round counts the answers, all checked (200, the same bytes).
The clients run in one process on the same machine, and take CPU from the server: the server's
own CPU time per request is printed beside the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import io
import os
import platform
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from common import log_tail, pcloud_endpoints, stopping
from PIL import Image

import pcloud

READY_TIMEOUT = 60.0  # a server that never gets ready is killed so the benchmark cannot hang
PCLOUD = [sys.executable, "-m", "pcloud"]
USER = "alice@example.org"
SIZE = 80
CLIENTS = (1, 50)


class BenchError(Exception):
    """The server misbehaved; the message says how."""


@dataclass
class Server:
    port: int
    context: ssl.SSLContext
    pid: int
    log: Path
    path: str  # what every request asks for


@dataclass
class Round:
    requests: int
    seconds: float
    server_cpu: float
    latencies: list[float]


# -- the server process -------------------------------------------------------------------------


def cpu_model() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.partition(":")[2].strip() for line in lines if line.startswith("model name")]
    return models[0] if models else "unknown CPU"


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def picture() -> bytes:
    """A 512-pixel picture with detail in it (a gradient), as a PNG upload."""
    image = Image.linear_gradient("L").convert("RGB").resize((512, 512))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@contextmanager
def running_pcloud(root: Path) -> Iterator[Server]:
    data, log_file = root / "data", root / "pcloud.log"
    data.mkdir(mode=0o700)
    (data / "pcloud.toml").write_text(
        '[server]\ndomain = "example.org"\naddress = "127.0.0.1"\nports = "ephemeral"\n'
    )
    at = ["--data", str(data)]
    upload = root / "alice.png"
    upload.write_bytes(picture())
    for command in (
        ["init", "--domain", "example.org"],
        ["user", "add", USER, "--password", "correct horse battery"],
        ["avatar", "set", USER, str(upload)],
    ):
        subprocess.run([*PCLOUD, *command, *at], check=True, stdout=subprocess.DEVNULL)
    with log_file.open("ab") as log:  # a file, not a pipe, so logging never blocks the server
        process = subprocess.Popen(
            [*PCLOUD, "serve", *at, "--ports", "ephemeral"], stdout=subprocess.PIPE, stderr=log
        )
    watchdog = threading.Timer(READY_TIMEOUT, process.kill)
    watchdog.start()
    with process, stopping(process):
        assert process.stdout is not None
        # EOF means the server died, or the watchdog killed it.
        while (line := process.stdout.readline()) and line.strip() != b"ready":
            pass
        watchdog.cancel()
        if not line:
            raise BenchError(
                f"pcloud did not get ready (code {process.poll()}){log_tail(log_file)}"
            )
        context = ssl.create_default_context(cafile=data / "tls" / "ca.pem")
        digest = hashlib.md5(USER.encode()).hexdigest()
        yield Server(
            pcloud_endpoints(data)["https"], context, process.pid, log_file,
            f"/avatar/{digest}?s={SIZE}&d=404",
        )  # fmt: skip


async def one_round(server: Server, clients: int, seconds: float, expected: bytes) -> Round:
    url = f"https://localhost:{server.port}{server.path}"
    connector = aiohttp.TCPConnector(limit=clients, ssl=server.context)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def get() -> None:
            async with session.get(url) as response:
                body = await response.read()
            if response.status != 200 or body != expected:
                raise BenchError(f"GET {server.path}: {response.status}, {len(body)} bytes")

        # Every connection opened (TLS handshake done) before the clock starts.
        await asyncio.gather(*(get() for _ in range(clients)))
        latencies: list[float] = []
        count = 0
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal count
            while (start := time.perf_counter()) < deadline:
                await get()
                latencies.append(time.perf_counter() - start)
                count += 1

        cpu, began = cpu_seconds(server.pid), time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - began
        used = cpu_seconds(server.pid) - cpu
    return Round(count, elapsed, used, latencies)


async def measure(server: Server, rounds: int, seconds: float) -> dict[int, list[Round]]:
    url = f"https://localhost:{server.port}{server.path}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, ssl=server.context) as response,
    ):
        expected = await response.read()  # and the rendition is now in the server's cache
        if response.status != 200 or Image.open(io.BytesIO(expected)).size != (SIZE, SIZE):
            raise BenchError(f"GET {server.path}: {response.status}")
    results: dict[int, list[Round]] = {clients: [] for clients in CLIENTS}
    for _ in range(rounds):
        for clients in CLIENTS:  # interleaved, so that a drift in load hits both alike
            results[clients].append(await one_round(server, clients, seconds, expected))
    return results


def report(results: dict[int, list[Round]], server: Server) -> bool:
    """Print the figures; False when the server logged errors."""
    for clients, rounds in results.items():
        rate = statistics.median(r.requests / r.seconds for r in rounds)
        cpu = statistics.median(r.server_cpu / r.requests for r in rounds)
        latencies = sorted(x for r in rounds for x in r.latencies)
        p50, p99 = (latencies[int(len(latencies) * q)] * 1e3 for q in (0.5, 0.99))
        spread = ", ".join(f"{r.requests / r.seconds:.0f}" for r in rounds)
        who = f"{clients:>2} client{'s' * (clients > 1)}"
        print(f"{who}: {rate:6.0f} requests/s (rounds: {spread});"
              f" latency p50 {p50:.2f} ms, p99 {p99:.2f} ms;"
              f" server CPU {cpu * 1e6:.0f} us/request")  # fmt: skip
    print(f"server RSS at the end: {rss_mib(server.pid):.0f} MiB")
    errors = [line for line in server.log.read_text(errors="replace").splitlines()
              if " ERROR " in line or " CRITICAL " in line]  # fmt: skip
    print("check: " + ("; ".join(errors[:5]) if errors else "ok, every answer 200 with the"
                       " same picture, no errors logged"))  # fmt: skip
    summary = ", ".join(
        f"{clients} client{'s' * (clients > 1)} "
        f"{statistics.median(r.requests / r.seconds for r in rounds):.0f}/s"
        for clients, rounds in results.items()
    )
    print(f"\navatar: cached {SIZE}px avatar over HTTPS, {summary}")
    return not errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--seconds", type=float, default=3.0, help="per round (default 3)")
    arguments = parser.parse_args()
    if arguments.rounds < 1 or arguments.seconds <= 0:
        parser.error("--rounds and --seconds must be positive")
    # A SIGTERM unwinds like Ctrl-C, so that the server is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"machine: {platform.node()} {platform.machine()}, {cpu_model()}, {os.cpu_count()} CPUs,"
          f" {platform.system()} {platform.release()}")  # fmt: skip
    print(f"python {platform.python_version()}, pcloud {pcloud.__version__}, aiohttp"
          f" {aiohttp.__version__} (server and client)")  # fmt: skip
    print(f"load average at start: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    now = datetime.datetime.now().astimezone()
    print(
        f"date: {now:%Y-%m-%d %H:%M %Z}; HTTPS on 127.0.0.1, GET of a cached {SIZE}px avatar,"
        f" medians of {arguments.rounds} rounds of {arguments.seconds:g} s after a warm-up"
    )
    sys.stdout.flush()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="pcloud-bench-avatar-") as temp,
            running_pcloud(Path(temp)) as server,
        ):
            results = asyncio.run(measure(server, arguments.rounds, arguments.seconds))
            clean = report(results, server)
    except (BenchError, OSError, subprocess.CalledProcessError, aiohttp.ClientError) as error:
        print(f"avatar: error: {error!r}", file=sys.stderr)
        return 1
    print(f"load average at the end: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
