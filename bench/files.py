"""Files benchmark: upload and download throughput of one large file and of many small files,
over pcloud's WebDAV (/files/) and SFTP, beside Debian's OpenSSH sftp-server in the same run.

    python bench/files.py [--big-mb 1024] [--small 10000] [--rounds 3]

WebDAV is driven by http.client (one keep-alive connection, a PUT or GET per file, bodies
streamed from and to disk, an app password as a sync client would use); SFTP by OpenSSH's
`sftp -b` (put/get of the file, or of the folder of small files with -r). The baseline is
`sftp -D /usr/lib/openssh/sftp-server`: OpenSSH's server run directly on a pipe, so it pays no
SSH encryption (pcloud's SFTP does): an upper bound for it. Every transfer is checked
byte for byte. Printed: median MB/s (files/s for small files) per case, the ratio to
sftp-server, and the peak RSS of the serving processes.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from base64 import b64encode
from pathlib import Path

from common import (
    PCLOUD,
    BenchError,
    describe_machine,
    family,
    median,
    pcloud_endpoints,
    prepare_pcloud,
    print_table,
    serving_pcloud,
)

USER = "alice@example.org"
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")
CHUNK = 1 << 20
SMALL_BYTES = 4096


class PeakRss:
    """Samples the summed RSS of a process and its descendants (those called `name`, if
    given), keeping the highest."""

    def __init__(self, pid: int, name: str = "") -> None:
        self.pid = pid
        self.name = name
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            total = 0
            for pid in family(self.pid):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                if self.name and status.splitlines()[0].split()[1] != self.name:
                    continue
                total += next(
                    (
                        int(line.split()[1])
                        for line in status.splitlines()
                        if line.startswith("VmRSS:")
                    ),
                    0,
                )
            self.peak_kib = max(self.peak_kib, total)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kib


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def make_data(root: Path, big_mb: int, small: int) -> tuple[Path, Path]:
    big = root / "big.bin"
    with big.open("wb") as file:
        for _ in range(big_mb):
            file.write(os.urandom(CHUNK))
    folder = root / "small"
    folder.mkdir()
    for number in range(small):
        (folder / f"f{number:05}.txt").write_bytes(os.urandom(SMALL_BYTES))
    return big, folder


# -- WebDAV ------------------------------------------------------------------------------------


class Dav:
    def __init__(self, port: int, context: ssl.SSLContext, password: str) -> None:
        self.port, self.context = port, context
        self.auth = "Basic " + b64encode(f"{USER}:{password}".encode()).decode()
        self.connection = http.client.HTTPSConnection("localhost", port, context=context)

    def request(self, method: str, path: str, body: object = None, length: int = 0) -> bytes:
        headers = {"Authorization": self.auth, "Content-Length": str(length)}
        self.connection.request(method, path, body=body, headers=headers)  # type: ignore[arg-type]
        response = self.connection.getresponse()
        data = response.read()
        if response.status >= 300:
            raise BenchError(f"WebDAV {method} {path}: {response.status} {data[:200]!r}")
        return data

    def put_file(self, path: str, source: Path) -> None:
        with source.open("rb") as file:
            self.request("PUT", path, file, source.stat().st_size)

    def get_file(self, path: str, target: Path) -> None:
        self.connection.request("GET", path, headers={"Authorization": self.auth})
        response = self.connection.getresponse()
        if response.status != 200:
            raise BenchError(f"WebDAV GET {path}: {response.status}")
        with target.open("wb") as file:
            while chunk := response.read(CHUNK):
                file.write(chunk)


# -- SFTP --------------------------------------------------------------------------------------


def sftp(command: list[str], batch: str, cwd: Path) -> None:
    (cwd / "batch").write_text(batch)
    result = subprocess.run(
        [command[0], "-b", str(cwd / "batch"), *command[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if result.returncode != 0:
        raise BenchError(f"sftp failed: {result.stderr[-500:]}")


def timed(run: object) -> float:
    start = time.perf_counter()
    run()  # type: ignore[operator]
    return time.perf_counter() - start


def check_same(a: Path, b: Path) -> None:
    if a.is_dir():
        names = sorted(p.name for p in a.iterdir())
        if names != sorted(p.name for p in b.iterdir()):
            raise BenchError(f"{b}: not the same files as {a}")
        for name in names[:: max(1, len(names) // 50)]:  # a sample of the small files
            check_same(a / name, b / name)
    elif digest(a) != digest(b):
        raise BenchError(f"{b} differs from {a}")


def bench_case(
    name: str,
    upload: object,
    download: object,
    source: Path,
    fetched: Path,
    rounds: int,
    results: dict[tuple[str, str], list[float]],
) -> None:
    for _ in range(rounds):
        if fetched.is_dir():
            shutil.rmtree(fetched)
        else:
            fetched.unlink(missing_ok=True)
        results.setdefault((name, "up"), []).append(timed(upload))
        results.setdefault((name, "down"), []).append(timed(download))
        check_same(source, fetched)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mb", type=int, default=1024, help="size of the large file (MiB)")
    parser.add_argument("--small", type=int, default=10_000, help="how many 4 kB files")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    if not SFTP_SERVER.exists() or not shutil.which("sftp"):
        raise SystemExit(
            "needs OpenSSH's sftp and sftp-server (openssh-client, openssh-sftp-server)"
        )
    print(describe_machine("compared with Debian's OpenSSH sftp-server (sftp -D, no encryption)"))
    results: dict[tuple[str, str], list[float]] = {}
    peaks: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="pcloud-bench-files-") as temp:
        root = Path(temp)
        big, small = make_data(root, options.big_mb, options.small)
        work = root / "work"
        work.mkdir()

        # OpenSSH's sftp-server on a folder of its own.
        served = root / "sftp-server"
        served.mkdir()
        direct = ["sftp", "-D", f"{SFTP_SERVER} -d {served}"]
        peak = PeakRss(os.getpid(), "sftp-server")
        for label, source, fetched, what in (
            ("1 file", big, work / "big.out", ""),
            (f"{options.small} files", small, work / "small.out", "-r "),
        ):
            bench_case(
                f"sftp-server {label}",
                lambda s=source, w=what: sftp(direct, f"put {w}{s} {s.name}\n", work),
                lambda s=source, f=fetched, w=what: sftp(direct, f"get {w}{s.name} {f}\n", work),
                source,
                fetched,
                options.rounds,
                results,
            )
        peaks["sftp-server"] = peak.stop()

        data = root / "data"
        prepare_pcloud(data, USER)
        app = subprocess.run(
            [*PCLOUD, "user", "app-password", "add", USER, "bench", "--data", str(data)],
            check=True,
            capture_output=True,
            text=True,
        )
        secret = next(line.split()[0] for line in app.stdout.splitlines() if "only" in line)
        key = root / "key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        subprocess.run(
            [*PCLOUD, "user", "ssh-key", "add", USER, f"{key}.pub", "--data", str(data)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with serving_pcloud(data, root / "pcloud.log") as process:
            endpoints = pcloud_endpoints(data)
            peak = PeakRss(process.pid)
            context = ssl.create_default_context(cafile=data / "tls" / "ca.pem")
            dav = Dav(endpoints["https"], context, secret)
            dav.request("MKCOL", "/files/small/")

            def dav_up_small() -> None:
                for path in sorted(small.iterdir()):
                    dav.put_file(f"/files/small/{path.name}", path)

            def dav_down_small() -> None:
                target = work / "small.out"
                target.mkdir()
                for path in sorted(small.iterdir()):
                    dav.get_file(f"/files/small/{path.name}", target / path.name)

            bench_case(
                "pcloud WebDAV 1 file",
                lambda: dav.put_file("/files/big.bin", big),
                lambda: dav.get_file("/files/big.bin", work / "big.out"),
                big,
                work / "big.out",
                options.rounds,
                results,
            )
            bench_case(
                f"pcloud WebDAV {options.small} files",
                dav_up_small,
                dav_down_small,
                small,
                work / "small.out",
                options.rounds,
                results,
            )
            ssh = [
                "sftp",
                "-P",
                str(endpoints["ssh"]),
                "-i",
                str(key),
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                f"UserKnownHostsFile={root / 'known_hosts'}",
                f"{USER}@127.0.0.1",
            ]
            for label, source, fetched, what in (
                ("1 file", big, work / "big.out", ""),
                (f"{options.small} files", small, work / "small.out", "-r "),
            ):
                bench_case(
                    f"pcloud SFTP {label}",
                    lambda s=source, w=what: sftp(ssh, f"put {w}{s} /sftp-{s.name}\n", work),
                    lambda s=source, f=fetched, w=what: sftp(
                        ssh, f"get {w}/sftp-{s.name} {f}\n", work
                    ),
                    source,
                    fetched,
                    options.rounds,
                    results,
                )
            peaks["pcloud (whole server)"] = peak.stop()

    big_mb = options.big_mb * CHUNK / 1e6
    rows = [["case", "upload", "download", "up vs sftp-server", "down vs sftp-server"]]
    for label, unit, amount in (
        ("1 file", "MB/s", big_mb),
        (f"{options.small} files", "files/s", options.small),
    ):
        base = {
            d: amount / (median(results[(f"sftp-server {label}", d)]) or 1) for d in ("up", "down")
        }
        for server in ("sftp-server", "pcloud WebDAV", "pcloud SFTP"):
            rates = {
                d: amount / (median(results[(f"{server} {label}", d)]) or 1) for d in ("up", "down")
            }
            rows.append(
                [
                    f"{server}, {label} ({options.big_mb} MiB)"
                    if label == "1 file"
                    else f"{server}, {label} of 4 kB",
                    f"{rates['up']:.1f} {unit}",
                    f"{rates['down']:.1f} {unit}",
                    f"{rates['up'] / base['up']:.2f}",
                    f"{rates['down'] / base['down']:.2f}",
                ]
            )
    print(f"medians of {options.rounds} rounds")
    print_table(rows)
    for name, kib in peaks.items():
        print(f"peak RSS {name}: {kib / 1024:.0f} MB")


if __name__ == "__main__":
    main()
