"""SMTP benchmark: durable 10 KB messages accepted per second, and latency, pcloud vs Postfix.

Each case runs N clients, each one connection sending messages in sequence (MAIL, RCPT, DATA,
each waiting for its reply), for a fixed time; the servers take turns on the same machine and
the same disk, under one temporary folder. A 250 after DATA is a durable acknowledgement from
both, though not the same one: pcloud's means the message is in the mailbox (its index row and
content flushed in one transaction; its Maildir file is written within a second, outside the
clock), Postfix's that it is in the queue (its queue file flushed); Postfix then delivers to a
Maildir (virtual(8)) outside the clock. The bench waits for both servers' Maildir files before
the next case, and server CPU counts every process and thread of a server until then, those
later writes included. pcloud checks each sender (SPF, DKIM, DMARC); this Postfix checks none.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import pwd
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    BenchError,
    cpu_seconds,
    describe_machine,
    family,
    free_port,
    pcloud_endpoints,
    prepare_pcloud,
    processes,
    serving_pcloud,
)

from pcloud.testing import DnsServer

DRAIN_TIMEOUT = 120.0  # Postfix delivers after its 250: how long to wait for its queue to empty
SENDER, RECIPIENT = "bench@example.net", "alice@example.org"
MESSAGE_BYTES = 10 * 1024
# A private instance: no chroot (so no copies of /etc), only the services this bench needs.
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
error unix - - n - - error
retry unix - - n - - error
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
postlog unix-dgram n - n - 1 postlogd
"""


@dataclass
class Result:
    server: str
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # MAIL FROM to the 250 after DATA
    client_cpu: float = 0.0  # our CPU seconds: near `seconds` would mean the client was the limit
    server_cpu: float = 0.0  # the server's CPU seconds, until it has delivered what it accepted

    def ms(self, percent: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[percent - 1] * 1e3

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def cpu_ms(self) -> float:
        """Server CPU per message."""
        return self.server_cpu / len(self.latencies) * 1e3


@dataclass(frozen=True)
class Server:
    port: int
    maildir: Path  # alice's
    pid: int  # its process; Postfix's master, whose daemons are its children


def message_body() -> bytes:
    """The message after its Message-ID: MESSAGE_BYTES in all, lines of at most 76 characters
    and CRLF. No line starts with "." so DATA needs no dot-stuffing."""
    headers = f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: bench\r\n\r\n".encode()
    line = (b"abcdefghijklmnopqrstuvwxyz0123456789" * 3)[:76] + b"\r\n"
    lines, rest = divmod(MESSAGE_BYTES - len(message_id(0, 0)) - len(headers), len(line))
    return headers + line * lines + b"x" * (rest - 2) + b"\r\n"


def message_id(sent: int, client: int) -> bytes:
    return f"Message-ID: <{sent:08}.{client:04}@bench.example.net>\r\n".encode()  # fixed size


async def expect(reader: asyncio.StreamReader, code: bytes) -> None:
    lines = [await reader.readline()]
    while lines[-1][3:4] == b"-":  # a multi-line reply (RFC 5321 §4.2.1)
        lines.append(await reader.readline())
    if not lines[-1].startswith(code):
        raise BenchError(f"expected {code.decode()}, got {b''.join(lines)!r}")


async def client(port: int, number: int, start: asyncio.Event, result: Result) -> None:
    """One connection sending messages in sequence, each command waiting for its reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await expect(reader, b"220")
        writer.write(b"EHLO bench.example.net\r\n")
        await expect(reader, b"250")
        body, sent = message_body(), 0
        await start.wait()
        deadline = time.perf_counter() + result.seconds
        while (begin := time.perf_counter()) < deadline:
            for command in (f"MAIL FROM:<{SENDER}>", f"RCPT TO:<{RECIPIENT}>"):
                writer.write(command.encode() + b"\r\n")
                await expect(reader, b"250")
            writer.write(b"DATA\r\n")
            await expect(reader, b"354")
            sent += 1
            writer.write(message_id(sent, number) + body + b".\r\n")
            await expect(reader, b"250")
            result.latencies.append(time.perf_counter() - begin)
        writer.write(b"QUIT\r\n")
        await expect(reader, b"221")
    finally:
        writer.close()


async def run_case(server: str, port: int, clients: int, seconds: float) -> Result:
    result, start = Result(server, clients, seconds), asyncio.Event()
    try:
        async with asyncio.timeout(seconds + 60), asyncio.TaskGroup() as group:
            for number in range(clients):
                group.create_task(client(port, number, start, result))
            await asyncio.sleep(0.5)  # connecting and EHLO stay outside the timed window
            before, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            start.set()
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None  # the first client's failure says enough
    result.seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_SELF)
    result.client_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return result


@contextmanager
def running_pcloud(root: Path, clients: int, dns: str) -> Iterator[Server]:
    """A pcloud server with alice."""
    data = root / "pcloud"
    # More clients than the default 20 would get 421.
    prepare_pcloud(
        data, RECIPIENT,
        f'[smtp]\nmax_connections_per_address = {max(clients, 20)}\ndns_server = "{dns}"\n',
    )  # fmt: skip
    with serving_pcloud(data, root / "pcloud.log") as process:
        yield Server(pcloud_endpoints(data)["smtp"], data / "mail" / RECIPIENT, process.pid)


@contextmanager
def running_postfix(postfix: str, root: Path) -> Iterator[Server]:
    """A private Postfix (own config, queue and log) delivering example.org into virtual
    Maildirs."""
    etc, queue, data, maildirs = (root / name for name in ("etc", "queue", "data", "maildirs"))
    for folder in (root, etc, queue, data, maildirs):
        folder.mkdir(mode=0o711)  # Postfix's daemons run as `postfix` and must reach the queue
    nobody = pwd.getpwnam("nobody")
    os.chown(data, pwd.getpwnam("postfix").pw_uid, -1)
    os.chown(maildirs, nobody.pw_uid, nobody.pw_gid)
    port = free_port()
    (etc / "vmailbox").write_text(f"{RECIPIENT} alice/\n")
    (etc / "master.cf").write_text(MASTER_CF.format(port=port))
    (etc / "main.cf").write_text(
        f"compatibility_level = 3.6\nmyhostname = postfix.example.net\nmydestination =\n"
        f"alias_maps =\nalias_database =\nlocal_recipient_maps =\ninet_protocols = ipv4\n"
        f"inet_interfaces = 127.0.0.1\nqueue_directory = {queue}\ndata_directory = {data}\n"
        f"maillog_file = {root}/maillog\nmaillog_file_prefixes = {root}\n"
        f"virtual_mailbox_domains = example.org\nvirtual_mailbox_base = {maildirs}\n"
        f"virtual_mailbox_maps = texthash:{etc}/vmailbox\n"
        f"virtual_uid_maps = static:{nobody.pw_uid}\nvirtual_gid_maps = static:{nobody.pw_gid}\n"
    )
    command = [postfix, "-c", str(etc)]
    # Without syslog, errors before Postfix reads maillog_file go nowhere: say where to look.
    if subprocess.run([*command, "start"], capture_output=True).returncode != 0:
        raise BenchError(f"`{' '.join(command)} start` failed; `{' '.join(command)} check`?")
    master = int((queue / "pid" / "master.pid").read_text())
    try:
        yield Server(port, maildirs / "alice", master)
    finally:
        # The master detaches, so it is no child of ours: wait for it and its daemons by pid.
        daemons = set(family(master))
        subprocess.run([*command, "stop"], capture_output=True)
        deadline = time.monotonic() + 10
        while daemons & processes().keys() and time.monotonic() < deadline:
            time.sleep(0.1)
        if master in processes():
            os.kill(master, signal.SIGKILL)  # its daemons leave when they lose the master


def server_cpu(pid: int) -> float:
    """CPU time of a server: all its processes and threads, Postfix's daemons that came and
    went included."""
    return sum(cpu_seconds(family(pid), reaped=True).values())


def count_files(maildir: Path) -> int:
    """Message files in new/ and cur/ (pcloud writes into cur/ only)."""
    return sum(len(list((maildir / sub).iterdir())) for sub in ("new", "cur"))


def measure(postfix: str | None, counts: list[int], seconds: float) -> tuple[list[Result], str]:
    """Every case, the servers taking turns; returns the results and what each one stored."""
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="pcloud-bench-") as temp, ExitStack() as stack:
        root = Path(temp)
        root.chmod(0o711)  # Postfix's daemons must reach their queue below
        # pcloud checks each sender (SPF, DMARC): a DNS server on this machine that knows no
        # domain keeps those queries here and measures the checks' own cost, not a network's.
        dns = f"127.0.0.1:{stack.enter_context(DnsServer({})).port}"
        servers = {"pcloud": stack.enter_context(running_pcloud(root, max(counts), dns))}
        if postfix:
            servers["Postfix"] = stack.enter_context(running_postfix(postfix, root / "postfix"))
        accepted = dict.fromkeys(servers, 0)
        for clients in counts:
            for name, server in servers.items():
                before = server_cpu(server.pid)
                result = asyncio.run(run_case(name, server.port, clients, seconds))
                accepted[name] += len(result.latencies)
                # Postfix delivers after its 250: its backlog must not slow the next case.
                deadline = time.monotonic() + DRAIN_TIMEOUT
                while count_files(server.maildir) < accepted[name] and time.monotonic() < deadline:
                    time.sleep(0.2)
                result.server_cpu = server_cpu(server.pid) - before
                results.append(result)
        stored = ""
        for name, server in servers.items():
            files, where = count_files(server.maildir), server.maildir.relative_to(root)
            verdict = "ok" if files == accepted[name] else "LOST"
            stored += (
                f"stored: {name} {files} files in {where}/, {accepted[name]} accepted: {verdict}\n"
            )
    return results, stored


def report(results: list[Result], stored: str) -> None:
    print(f"{'server':<8} {'clients':>7} {'messages':>8} {'msg/s':>7} {'p50 ms':>7} {'p99 ms':>7}"
          f" {'CPU ms/msg':>10} {'client CPU':>10}")  # fmt: skip
    for r in results:
        print(f"{r.server:<8} {r.clients:>7} {len(r.latencies):>8} {r.rate:>7.1f} {r.ms(50):>7.2f}"
              f" {r.ms(99):>7.2f} {r.cpu_ms:>10.2f} {r.client_cpu / r.seconds:>10.0%}")  # fmt: skip
    print()
    case = {(r.server, r.clients): r for r in results}
    counts = sorted({r.clients for r in results})
    rates = " / ".join(f"{case['pcloud', n].rate:.0f}" for n in counts)
    summary = f"smtp: pcloud {rates} msg/s durable with {'/'.join(map(str, counts))} clients"
    if ("Postfix", counts[0]) in case:
        for n in counts:
            ours, theirs = case["pcloud", n], case["Postfix", n]
            print(f"pcloud/Postfix, {n:>2} clients: throughput {ours.rate / theirs.rate:.2f}x,"
                  f" latency p50 {ours.ms(50) / theirs.ms(50):.2f}x,"
                  f" p99 {ours.ms(99) / theirs.ms(99):.2f}x,"
                  f" CPU per message {ours.cpu_ms / theirs.cpu_ms:.2f}x")  # fmt: skip
        ratios = (f"{case['pcloud', n].rate / case['Postfix', n].rate:.2f}x" for n in counts)
        summary += f", {' / '.join(ratios)} Postfix's"
    print(f"{stored}\n{summary}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per case (default 10)")
    parser.add_argument("--clients", default="1,20", help='concurrent clients (default "1,20")')
    parser.add_argument("--no-postfix", action="store_true", help="measure pcloud only")
    arguments = parser.parse_args()
    try:
        counts = [int(n) for n in arguments.clients.split(",")]
    except ValueError:
        parser.error("--clients takes numbers separated by commas")
    if arguments.seconds <= 0 or min(counts) < 1:
        parser.error("--seconds and --clients must be positive")
    # A SIGTERM unwinds like Ctrl-C, so that the servers are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    postfix = shutil.which("postfix") or shutil.which("postfix", path="/usr/sbin")
    if arguments.no_postfix:
        postfix, about = None, "Postfix skipped (--no-postfix)"
    elif postfix is None:
        about = "Postfix not installed (apt-get install postfix): pcloud only"
    elif os.geteuid() != 0:
        postfix, about = None, "Postfix skipped: a private instance must be started as root"
    else:
        postconf = [str(Path(postfix).with_name("postconf")), "-h", "-d", "mail_version"]
        about = "Postfix " + subprocess.run(postconf, capture_output=True, text=True).stdout.strip()
    print(describe_machine(about))
    now = datetime.datetime.now().astimezone()
    print(f"date: {now:%Y-%m-%d %H:%M %Z}, {arguments.seconds:g} s per case, {MESSAGE_BYTES} B"
          " messages, plain SMTP on 127.0.0.1, one connection per client")  # fmt: skip
    print(f"both servers' data under {tempfile.gettempdir()} (TMPDIR)")
    print("pcloud checks each sender (SPF, DKIM, DMARC), asking a local DNS server that knows no")
    print("domain; this Postfix checks none")
    print("a 250 means durable: pcloud flushes the message and its index row in one transaction")
    print("  first and writes the Maildir file after (in batches, within a second), unclocked;")
    if postfix:
        print("  Postfix fsyncs its queue file first and delivers to the Maildir after, unclocked,")
        print("  though its in_flow_delay (1 s) slows clients down while that delivery lags behind")
    print("CPU ms/msg: all of a server's processes and threads, Postfix's later delivery included")
    print()
    try:
        results, stored = measure(postfix, counts, arguments.seconds)
    except (BenchError, OSError, subprocess.CalledProcessError, TimeoutError) as error:
        print(f"smtp: error: {error}", file=sys.stderr)
        return 1
    report(results, stored)
    return 1 if "LOST" in stored else 0


if __name__ == "__main__":
    sys.exit(main())
