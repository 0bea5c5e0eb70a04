"""Startup benchmark: seconds from process start to `ready`, idle RSS, seconds to stop."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pcloud

READY_TIMEOUT = 60.0  # a server that never says `ready` is killed so the benchmark cannot hang
STOP_TIMEOUT = 10.0
# The interpreter running the benchmark, so the installed checkout is the one measured.
PCLOUD = [sys.executable, "-m", "pcloud"]
DOMAIN = ["--domain", "example.org"]
METRICS = (
    ("ready_s", "to ready (s)", "{:.3f}"),
    ("rss_mib", "idle RSS (MiB)", "{:.1f}"),
    ("hwm_mib", "peak RSS (MiB)", "{:.1f}"),
    ("stop_s", "to stop (s)", "{:.3f}"),
)


class BenchError(Exception):
    """The server misbehaved; the message says how."""


@dataclass
class Sample:
    ready_s: float
    rss_mib: float
    hwm_mib: float
    stop_s: float


def memory_mib(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM of a process in MiB (/proc reports them in kB)."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def log_tail(log: Path, lines: int = 5) -> str:
    # The temporary folder is deleted on error, so the server's last words go in the message.
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return "".join(f"\n  {line}" for line in tail)


def measure(data: Path, log: Path, idle: float) -> Sample:
    command = [*PCLOUD, "serve", "--data", str(data), "--ports", "ephemeral", *DOMAIN]
    with log.open("ab") as stderr:
        start = time.perf_counter()
        # stderr goes to a file, not a pipe, so logging can never block the server.
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
    watchdog = threading.Timer(READY_TIMEOUT, process.kill)
    watchdog.start()
    with process:  # closes stdout and reaps the child however we leave
        try:
            assert process.stdout is not None
            # EOF (empty string) means the server died, or the watchdog killed it.
            while (line := process.stdout.readline()) and line.rstrip("\n") != "ready":
                pass
            ready_s = time.perf_counter() - start
            watchdog.cancel()
            if not line:
                code = process.wait()
                raise BenchError(f"server exited before `ready` (code {code}){log_tail(log)}")
            time.sleep(idle)
            if process.poll() is not None:
                raise BenchError(f"server died while idle (code {process.returncode})")
            rss_mib, hwm_mib = memory_mib(process.pid)
            stop_start = time.perf_counter()
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise BenchError(f"no exit {STOP_TIMEOUT:.0f} s after SIGTERM") from None
            stop_s = time.perf_counter() - stop_start
            if code != 0:
                raise BenchError(f"server exited with code {code} after SIGTERM{log_tail(log)}")
            return Sample(ready_s, rss_mib, hwm_mib, stop_s)
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    models = [line.partition(":")[2].strip() for line in lines if line.startswith("model name")]
    return models[0] if models else "unknown CPU"


def print_header(runs: int, idle: float) -> None:
    print(f"machine: {platform.node()} {platform.machine()}, {cpu_model()}, {os.cpu_count()} CPUs")
    print(f"python {platform.python_version()}, pcloud {pcloud.__version__}")
    now = datetime.datetime.now().astimezone()
    print(f"date: {now:%Y-%m-%d %H:%M %Z}, {runs} runs, RSS read after {idle:.1f} s idle")
    print()


def print_table(cases: dict[str, list[Sample]]) -> None:
    print(f"{'case':<12} {'metric':<15} {'median':>8} {'min':>8} {'max':>8}")
    for case, samples in cases.items():
        for attribute, label, fmt in METRICS:
            values = [getattr(sample, attribute) for sample in samples]
            cells = (statistics.median(values), min(values), max(values))
            print(f"{case:<12} {label:<15} " + " ".join(f"{fmt.format(v):>8}" for v in cells))
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="number of runs (default 7)")
    parser.add_argument(
        "--idle", type=float, default=2.0, help="seconds to wait before reading RSS (default 2.0)"
    )
    arguments = parser.parse_args()
    if arguments.runs < 1:
        parser.error("--runs must be at least 1")
    runs, idle = arguments.runs, arguments.idle
    print_header(runs, idle)
    cases: dict[str, list[Sample]] = {"first start": [], "warm start": []}
    try:
        for _ in range(runs):
            with tempfile.TemporaryDirectory(prefix="pcloud-bench-") as temp:
                root = Path(temp)
                cases["first start"].append(measure(root / "first", root / "first.log", idle))
                # Created outside the timed region: a warm start restarts an existing folder.
                init = [*PCLOUD, "init", "--data", str(root / "warm"), *DOMAIN]
                subprocess.run(init, check=True, stdout=subprocess.DEVNULL)
                cases["warm start"].append(measure(root / "warm", root / "warm.log", idle))
    except (BenchError, subprocess.CalledProcessError) as error:
        print(f"startup: error: {error}", file=sys.stderr)
        return 1
    print_table(cases)
    warm = cases["warm start"]
    print(
        f"startup: warm start median {statistics.median(s.ready_s for s in warm):.2f} s to ready, "
        f"idle RSS median {statistics.median(s.rss_mib for s in warm):.1f} MiB "
        f"({runs} runs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
