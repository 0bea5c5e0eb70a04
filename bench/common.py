"""What the benchmarks share: a pcloud server in a subprocess, the machine they ran on, the CPU
time and memory of server processes, medians and tables.

bench/ is on sys.path when a benchmark runs as a script (`python bench/smtp.py`), so the
benchmarks import this module as `common`.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pcloud

READY_TIMEOUT = 60.0  # a server that never says `ready` is killed so the benchmark cannot hang
PCLOUD = [sys.executable, "-m", "pcloud"]
PASSWORD = "correct horse battery"


class BenchError(Exception):
    """A server misbehaved, or cannot be run here; the message says how."""


# -- a pcloud server ---------------------------------------------------------------------------


def prepare_pcloud(data: Path, user: str, settings: str = "") -> None:
    """A data folder for domain example.org, serving on ephemeral ports of 127.0.0.1, with
    `settings` added to pcloud.toml and `user` (password PASSWORD)."""
    data.mkdir(mode=0o700)
    (data / "pcloud.toml").write_text(
        '[server]\ndomain = "example.org"\naddress = "127.0.0.1"\nports = "ephemeral"\n' + settings
    )
    at = ["--data", str(data)]
    subprocess.run([*PCLOUD, "init", "--domain", "example.org", *at], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    subprocess.run([*PCLOUD, "user", "add", user, "--password", PASSWORD, *at], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


@contextmanager
def serving_pcloud(data: Path, log_file: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`pcloud serve` on a prepared data folder, once it says `ready`; stopped on the way out."""
    with log_file.open("ab") as log:  # a file, not a pipe, so logging never blocks the server
        process = subprocess.Popen(
            [*PCLOUD, "serve", "--data", str(data), "--ports", "ephemeral"],
            stdout=subprocess.PIPE, stderr=log,
        )  # fmt: skip
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
        yield process


def pcloud_endpoints(data: Path) -> dict[str, int]:
    """Port by listener, from the file the running server writes for `pcloud status`."""
    items = json.loads((data / "run" / "endpoints.json").read_text())
    return {item["listener"]: item["port"] for item in items}


@contextmanager
def stopping(process: subprocess.Popen[bytes]) -> Iterator[None]:
    """Stop a server we started, however we leave."""
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_listening(
    process: subprocess.Popen[bytes],
    port: int,
    name: str,
    logs: Iterable[Path],
    probe: Callable[[socket.socket], None] | None = None,
) -> None:
    """Until a server just started accepts a connection on 127.0.0.1:`port` (and `probe` passes
    on it, when given); BenchError with the tails of its logs if it exits or takes longer than
    READY_TIMEOUT."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if probe is not None:
                    probe(sock)
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                tails = "".join(log_tail(log) for log in logs)
                raise BenchError(f"{name} did not start (code {process.poll()}){tails}") from None
            time.sleep(0.1)


def log_tail(log: Path, lines: int = 5) -> str:
    # The temporary folder is deleted on error, so the server's last words go in the message.
    tail = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
    return "".join(f"\n  {line}" for line in tail)


def free_port() -> int:
    """A free port on 127.0.0.1, for servers that cannot be told "any port" and report it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- what the servers' processes use -----------------------------------------------------------


def processes() -> dict[int, int]:
    """Parent pid by pid of every live process; zombies are left out."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            state, parent = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[:2]
        except OSError:  # gone meanwhile
            continue
        if state != "Z":
            found[int(pid)] = int(parent)
    return found


def family(root: int) -> list[int]:
    """A process and all its descendants (Postfix's and Dovecot's daemons)."""
    children: dict[int, list[int]] = {}
    for pid, parent in processes().items():
        children.setdefault(parent, []).append(pid)
    found, waiting = [], [root]
    while waiting:
        pid = waiting.pop()
        found.append(pid)
        waiting += children.get(pid, [])
    return found


def cpu_seconds(pids: Iterable[int], *, reaped: bool = False) -> dict[int, float]:
    """User and system CPU time of each process (all its threads); with `reaped`, plus that of
    its children which ended and which it waited for (daemons that come and go)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile: its parent has (or will have) its time
            continue
        # utime stime, then cutime cstime
        found[pid] = sum(int(value) for value in fields[11 : 15 if reaped else 13]) / tick
    return found


def memory_kib(pids: Iterable[int]) -> tuple[int, int]:
    """Summed RSS and PSS: RSS counts a page shared by forked processes in each of them, PSS
    shares it out, so PSS is the fair sum for Dovecot's process per connection."""
    rss = pss = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        rss += next(int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:")
        pss += next(int(line.split()[1]) for line in rollup.splitlines() if line[:4] == "Pss:")
    return rss, pss


# -- reporting ---------------------------------------------------------------------------------


def describe_machine(about: str) -> str:
    """The lines every benchmark opens with: the machine, the code that ran and what it was
    compared with (`about`), and how busy the machine was."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    models = [line.partition(":")[2].strip() for line in lines if line.startswith("model name")]
    model = models[0] if models else "unknown CPU"
    return (
        f"machine: {platform.node()} {platform.machine()}, {model}, {os.cpu_count()} CPUs,"
        f" {platform.system()} {platform.release()}\n"
        f"python {platform.python_version()}, pcloud {pcloud.__version__} ({checkout()}), {about}\n"
        # Both servers share this machine's CPUs and disk: a busy machine shows here first.
        f"load average at start: {' '.join(f'{load:.2f}' for load in os.getloadavg())}"
    )


def checkout() -> str:
    """Which pcloud code ran: benchmarks run on a work tree that may be mid-change."""
    git = ["git", "-C", str(Path(pcloud.__file__).parent.parent)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()  # fmt: skip
        changes = subprocess.run([*git, "status", "--porcelain", "--", "pcloud"],
                                 capture_output=True, text=True, check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "not from a git checkout"
    return commit + (" + uncommitted changes" if changes else "")


def median(values: Iterable[float]) -> float | None:
    """The median, None when nothing was measured."""
    measured = list(values)
    return statistics.median(measured) if measured else None


def duration(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def print_table(rows: list[list[str]]) -> None:
    """The first column left-aligned, the others right-aligned, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        rest = zip(row[1:], widths[1:], strict=True)
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in rest]
        print("  ".join(cells).rstrip())
