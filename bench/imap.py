"""IMAP benchmark: listing, header and body fetches, search and memory, pcloud vs Dovecot."""

from __future__ import annotations

import argparse
import datetime
import grp
import imaplib
import os
import pwd
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import corpus
from common import (
    PASSWORD,
    BenchError,
    cpu_seconds,
    describe_machine,
    duration,
    family,
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

T = TypeVar("T")

FIRST_TIMEOUT = 3600.0  # the first SELECT indexes the whole mailbox (pcloud reads every file)
COMMAND_TIMEOUT = 600.0
CPU_FLOOR = 0.05  # seconds: /proc counts CPU time in clock ticks, usually 10 ms
BODY_CHUNK = 2000  # messages per FETCH BODY.PEEK[]: imaplib holds a whole response in memory
BYTES_PER_MESSAGE = 9000  # disk per message: the file once (hard links), both servers' indexes
USER = corpus.RECIPIENT
HEADER_FIELDS = "(BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])"
STEPS = (
    "connect + TLS",
    "LOGIN + SELECT INBOX",
    "FETCH 1:* (UID FLAGS)",
    "FETCH 1:* header fields",
    "SEARCH SUBJECT word",
    "FETCH 1:* BODY.PEEK[]",
)
BODIES = STEPS[-1]
IMAP_MISSING = (
    "pcloud opened no `imaps` listener (a checkout without the IMAP server, or the listener "
    "disabled in pcloud.toml); --no-pcloud measures Dovecot alone"
)
# A private instance: its own folders and log, one user, IMAP over TLS on one port, no chroot
# (which needs root); otherwise Dovecot's defaults, as a packaged server runs.
DOVECOT_CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = required
ssl_cert = <{tls}/server.pem
ssl_key = <{tls}/server.key
auth_mechanisms = plain
default_internal_user = {internal.pw_name}
default_internal_group = {internal_group}
default_login_user = {login.pw_name}
first_valid_uid = {mail.pw_uid}
default_process_limit = {processes}
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = {root}/users
}}
userdb {{
  driver = static
  args = uid={mail.pw_uid} gid={mail.pw_gid} home={root}/home/%u
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
protocol imap {{
  mail_max_userip_connections = {processes}
}}
"""


@dataclass
class Server:
    name: str
    port: int
    context: ssl.SSLContext  # trusts the server's certificate
    pids: Callable[[], list[int]]  # the processes whose CPU time and memory count
    log: Path
    error_marks: tuple[str, ...]  # what its log lines of errors hold
    tls: str = ""  # the protocol and cipher negotiated, once known


@dataclass(frozen=True)
class Sample:
    wall: float
    server_cpu: float
    client_cpu: float


@dataclass
class Round:
    """One session's steps: each one's sample, or why it failed, and what it returned."""

    samples: dict[str, Sample] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    values: dict[str, int] = field(default_factory=dict)


@dataclass
class SizeResult:
    corpus: corpus.Corpus
    rounds: dict[str, list[Round]]  # by server, warm-up round first
    memory: dict[str, tuple[float, float]]  # by server: KiB of RSS, of PSS, per idle connection
    idle_mib: dict[str, float]  # by server: RSS before the idle connections
    tls: dict[str, str]  # by server: the protocol and cipher negotiated
    errors: dict[str, list[str]]  # by server: the errors it logged


# -- the client: the same for both servers ---------------------------------------------------


def check(response: tuple[str, Sequence[object]], command: str) -> Sequence[object]:
    typ, data = response
    if typ != "OK":  # imaplib raises on BAD only
        raise imaplib.IMAP4.error(f"{command}: {typ} {data!r}")
    return data


def connect(server: Server, timeout: float) -> imaplib.IMAP4_SSL:
    try:
        return imaplib.IMAP4_SSL(
            "127.0.0.1", server.port, ssl_context=server.context, timeout=timeout
        )
    except (OSError, imaplib.IMAP4.error) as error:
        raise BenchError(f"{server.name}: cannot connect to port {server.port}: {error}") from None


def login_select(imap: imaplib.IMAP4_SSL) -> int:
    """Returns the number of messages in INBOX."""
    check(imap.login(USER, PASSWORD), "LOGIN")
    (exists,) = check(imap.select("INBOX"), "SELECT INBOX")
    assert isinstance(exists, bytes)
    return int(exists)


def fetch_flags(imap: imaplib.IMAP4_SSL) -> tuple[int, int]:
    """Returns the number of FETCH responses and of \\Seen messages among them."""
    lines = check(imap.fetch("1:*", "(UID FLAGS)"), "FETCH (UID FLAGS)")
    return len(lines), sum(isinstance(line, bytes) and b"\\Seen" in line for line in lines)


def fetch_headers(imap: imaplib.IMAP4_SSL) -> int:
    """Returns the number of header literals received."""
    return sum(isinstance(item, tuple) for item in check(imap.fetch("1:*", HEADER_FIELDS), "FETCH"))


def search_subject(imap: imaplib.IMAP4_SSL) -> int:
    """Returns the number of hits."""
    (hits,) = check(imap.uid("SEARCH", "SUBJECT", corpus.SEARCH_WORD), "UID SEARCH")
    assert isinstance(hits, bytes)
    return len(hits.split())


def fetch_bodies(imap: imaplib.IMAP4_SSL, count: int) -> int:
    """Returns the bytes of all messages received."""
    received = 0
    for first in range(1, count + 1, BODY_CHUNK):
        last = min(first + BODY_CHUNK - 1, count)
        for item in check(imap.fetch(f"{first}:{last}", "(BODY.PEEK[])"), "FETCH BODY.PEEK[]"):
            if isinstance(item, tuple):
                received += len(item[1])
    return received


def timed(server: Server, result: Round, step: str, action: Callable[[], T]) -> T | None:
    """Run one step, noting its wall time and the server's and our CPU time; a NO or BAD
    answer is noted as the step's failure (None), a lost connection ends the session."""
    before = cpu_seconds(server.pids())
    client, start = time.process_time(), time.perf_counter()
    try:
        value = action()
    except (OSError, imaplib.IMAP4.abort) as error:
        raise BenchError(f"{server.name}: {step}: connection lost: {error}") from None
    except imaplib.IMAP4.error as error:
        result.failures[step] = str(error)
        return None
    wall, client = time.perf_counter() - start, time.process_time() - client
    # Processes started meanwhile count whole; those that ended are left out (none should:
    # each session's processes end after its LOGOUT, outside any step).
    after = cpu_seconds(server.pids())
    server_cpu = sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
    result.samples[step] = Sample(wall, server_cpu, client)
    return value


def session(server: Server, timeout: float) -> Round:
    """One connection through every step, in the order a mail program opens a mailbox."""
    result = Round()
    imap = timed(server, result, STEPS[0], lambda: connect(server, timeout))
    assert imap is not None  # connecting raises BenchError rather than failing
    try:
        tls = imap.sock
        assert isinstance(tls, ssl.SSLSocket)
        server.tls = f"{tls.version()} {(tls.cipher() or ('?',))[0]}"
        exists = timed(server, result, STEPS[1], lambda: login_select(imap))
        if exists is None:
            return result  # nothing further can work
        result.values[STEPS[1]] = exists
        flags = timed(server, result, STEPS[2], lambda: fetch_flags(imap))
        if flags is not None:
            result.values[STEPS[2]], result.values["seen"] = flags
        steps: list[tuple[str, Callable[[], int]]] = [
            (STEPS[3], lambda: fetch_headers(imap)),
            (STEPS[4], lambda: search_subject(imap)),
            (STEPS[5], lambda: fetch_bodies(imap, exists)),
        ]
        for step, action in steps:
            value = timed(server, result, step, action)
            if value is not None:
                result.values[step] = value
    finally:
        # The failure that matters is already noted, or raised.
        with suppress(OSError, imaplib.IMAP4.error):
            imap.logout()
    return result


def idle_memory(server: Server, count: int) -> tuple[tuple[float, float], float]:
    """KiB of RSS and of PSS that each idle connection (logged in, INBOX selected) adds, and
    the server's RSS in MiB before them."""
    before = memory_kib(server.pids())
    connections: list[imaplib.IMAP4_SSL] = []
    try:
        for _ in range(count):
            connections.append(connect(server, COMMAND_TIMEOUT))
            login_select(connections[-1])
        time.sleep(1)  # let processes forked for the last one settle
        after = memory_kib(server.pids())
    except imaplib.IMAP4.error as error:
        raise BenchError(f"{server.name}: idle connection {len(connections)}: {error}") from None
    finally:
        for imap in connections:
            with suppress(OSError, imaplib.IMAP4.error):  # measured already
                imap.logout()
    per = ((after[0] - before[0]) / count, (after[1] - before[1]) / count)
    return per, before[0] / 1024


# -- the servers ------------------------------------------------------------------------------


def link_corpus(messages: corpus.Corpus, maildir: Path) -> None:
    """The message files into a Maildir's cur/, as hard links: one copy on disk for both."""
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in messages.names:
        os.link(messages.folder / name, maildir / "cur" / name)


@contextmanager
def running_pcloud(root: Path, messages: corpus.Corpus, connections: int) -> Iterator[Server]:
    """A pcloud server whose user has the corpus in INBOX, as files its index does not know
    yet: the first SELECT indexes them (the mail store reconciles an account as it opens)."""
    data, log_file = root / "data", root / "pcloud.log"
    root.mkdir()
    limit = connections + 10  # the idle connections, and one more being measured
    prepare_pcloud(
        data, USER,
        f"[imap]\nmax_connections_per_address = {limit}\nmax_connections_per_user = {limit}\n",
    )  # fmt: skip
    link_corpus(messages, data / "mail" / USER)
    with serving_pcloud(data, log_file) as process:
        endpoints = pcloud_endpoints(data)
        if "imaps" not in endpoints:
            raise BenchError(IMAP_MISSING)
        context = ssl.create_default_context(cafile=data / "tls" / "ca.pem")
        yield Server(
            "pcloud", endpoints["imaps"], context, lambda: [process.pid], log_file,
            (" ERROR ", " CRITICAL "),
        )  # fmt: skip


def dovecot_users() -> tuple[pwd.struct_passwd, pwd.struct_passwd, pwd.struct_passwd]:
    """Its internal user, login user and mail user. Started as root it refuses to run its
    login processes as root: Debian's users dovecot and dovenull then, and mail as nobody."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return me, me, me
    try:
        return pwd.getpwnam("dovecot"), pwd.getpwnam("dovenull"), pwd.getpwnam("nobody")
    except KeyError as error:
        raise BenchError(f"Dovecot's system users are missing ({error})") from None


@contextmanager
def running_dovecot(
    dovecot: str, root: Path, messages: corpus.Corpus, connections: int
) -> Iterator[Server]:
    """A private Dovecot (own config, folders and log) serving the corpus over TLS."""
    internal, login, mail = dovecot_users()
    for folder in (root, root / "run", root / "state", root / "mail", root / "home"):
        folder.mkdir(mode=0o755)
    tls = root / "tls"
    ensure_local_certificates(tls, ["localhost", "127.0.0.1"])  # the same kind as pcloud's
    port, conf = free_port(), root / "dovecot.conf"
    conf.write_text(
        DOVECOT_CONF.format(
            root=root, tls=tls, port=port, internal=internal, login=login, mail=mail,
            internal_group=grp.getgrgid(internal.pw_gid).gr_name, processes=2 * connections + 50,
        )
    )  # fmt: skip
    hashed = subprocess.run(
        [shutil.which("doveadm") or "doveadm", "-c", str(conf),
         "pw", "-s", "ARGON2ID", "-p", PASSWORD],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (root / "users").write_text(f"{USER}:{hashed}\n")
    maildir = root / "mail" / USER
    link_corpus(messages, maildir)
    for path in (
        root / "mail",
        root / "home",
        maildir,
        *(maildir / s for s in ("cur", "new", "tmp")),
    ):
        os.chown(path, mail.pw_uid, mail.pw_gid)  # the files stay ours, readable by all
    log_file = root / "dovecot.log"
    with (root / "dovecot.out").open("ab") as out:
        process = subprocess.Popen([dovecot, "-F", "-c", str(conf)], stdout=out, stderr=out)
    with process, stopping(process):
        wait_until_listening(process, port, "Dovecot", [root / "dovecot.out", log_file])
        context = ssl.create_default_context(cafile=tls / "ca.pem")
        yield Server(
            "Dovecot", port, context, lambda: family(process.pid), log_file,
            (": Error: ", ": Fatal: ", ": Panic: "),
        )  # fmt: skip


# -- running and reporting --------------------------------------------------------------------


def measure(
    root: Path, count: int, dovecot: str | None, with_pcloud: bool, rounds: int, connections: int
) -> SizeResult:
    started = time.perf_counter()
    root.mkdir(mode=0o711)
    messages = corpus.write(root / "corpus", count)
    print(f"  {count} messages written ({messages.total_bytes / 1e6:.0f} MB)"
          f" in {time.perf_counter() - started:.0f} s", file=sys.stderr)  # fmt: skip
    with ExitStack() as stack:
        servers = []
        if with_pcloud:
            servers.append(
                stack.enter_context(running_pcloud(root / "pcloud", messages, connections))
            )
        if dovecot:
            servers.append(
                stack.enter_context(
                    running_dovecot(dovecot, root / "dovecot", messages, connections)
                )
            )
        result = SizeResult(messages, {s.name: [] for s in servers}, {}, {}, {}, {})
        for server in servers:  # untimed: indexing, the page cache, Dovecot's header cache
            started = time.perf_counter()
            result.rounds[server.name].append(session(server, FIRST_TIMEOUT))
            print(f"  {server.name}: warm-up round in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)  # fmt: skip
        for number in range(rounds):
            # Alternate who goes first, so that a drift in the machine's load hits both alike.
            for server in servers if number % 2 == 0 else servers[::-1]:
                result.rounds[server.name].append(session(server, COMMAND_TIMEOUT))
        for server in servers:
            result.memory[server.name], result.idle_mib[server.name] = idle_memory(
                server, connections
            )
            result.tls[server.name] = server.tls
            lines = server.log.read_text(errors="replace").splitlines()
            result.errors[server.name] = [
                line for line in lines if any(mark in line for mark in server.error_marks)
            ]
    return result


def checks(result: SizeResult) -> list[str]:
    """Where a server's answers differ from what the corpus holds."""
    messages = result.corpus
    expected = {
        STEPS[1]: len(messages.names),
        STEPS[2]: len(messages.names),
        "seen": sum("S" in name.partition(":2,")[2] for name in messages.names),
        STEPS[3]: len(messages.names),
        STEPS[4]: messages.search_hits,
        BODIES: messages.total_bytes,
    }
    problems = [
        f"{name} logged: {line}" for name, lines in result.errors.items() for line in lines[:5]
    ]
    for name, rounds in result.rounds.items():
        for number, one in enumerate(rounds):
            for step, reason in one.failures.items():
                problems.append(f"{name} round {number}: {step} failed: {reason}")
            for what, value in expected.items():
                if what in one.values and one.values[what] != value:
                    problems.append(
                        f"{name} round {number}: {what}: got {one.values[what]}, expected {value}"
                    )
    return problems


def cpu_time(seconds: float) -> str:
    """Server CPU time, counted in the kernel's clock ticks (usually 10 ms)."""
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def ratio_cell(values: list[float | None], floor: float = 0.0) -> list[str]:
    """The pcloud/Dovecot column, when both were measured; "-" when either is missing or below
    `floor` (CPU time below a few clock ticks is noise)."""
    if len(values) != 2:
        return []
    ours, theirs = values
    if ours is None or theirs is None or min(ours, theirs) <= floor:
        return ["-"]
    return [f"{ours / theirs:.2f}x"]


def report(result: SizeResult) -> list[str]:
    """Print one size's table; returns the lines that miss the goal."""
    messages = result.corpus
    names = list(result.rounds)
    timed_rounds = {name: rounds[1:] for name, rounds in result.rounds.items()}
    print(f"\n{len(messages.names)} messages, {messages.total_bytes / 1e6:.1f} MB;"
          f" medians of {len(timed_rounds[names[0]])} rounds")  # fmt: skip
    first = ", ".join(
        f"{name} {duration(rounds[0].samples[STEPS[1]].wall)}"
        for name, rounds in result.rounds.items()
        if STEPS[1] in rounds[0].samples
    )
    print(f"first LOGIN + SELECT INBOX, indexing the messages: {first}")
    print("TLS: " + ", ".join(f"{name} {tls}" for name, tls in result.tls.items()))
    two = len(names) == 2
    rows = [
        ["step", *names, *(["ratio"] if two else []), *(f"{name} CPU" for name in names),
         *(["ratio"] if two else []), "client CPU"]
    ]  # fmt: skip
    missed = []
    for step in STEPS:
        walls: list[float | None] = []
        cpus: list[float | None] = []
        clients = []
        for name in names:
            samples = [one.samples[step] for one in timed_rounds[name] if step in one.samples]
            walls.append(median(s.wall for s in samples))
            cpus.append(median(s.server_cpu for s in samples))
            share = median(s.client_cpu / s.wall for s in samples)
            clients.append(f"{share:.0%}" if share is not None else "-")
        if step == BODIES:
            cells = [f"{messages.total_bytes / 1e6 / w:.0f} MB/s" if w else "failed" for w in walls]
        else:
            cells = [duration(w) if w else "failed" for w in walls]
        ratio = ratio_cell(walls)
        rows.append([step, *cells, *ratio, *(cpu_time(c) if c is not None else "-" for c in cpus),
                     *ratio_cell(cpus, CPU_FLOOR), " / ".join(clients)])  # fmt: skip
        if two:
            ours, theirs = walls
            if ours is None or theirs is None:
                missed.append(f"{step} (failed)")
            elif ours > 2 * theirs:
                missed.append(f"{step} {ratio[0]}")
    for index, what in enumerate(("RSS", "PSS")):
        label = f"idle connection, {what}"
        values = [result.memory[name][index] for name in names]
        ratio = ratio_cell(list[float | None](values))
        rows.append([label, *(f"{value:.0f} KiB" for value in values), *ratio])
        rows[-1] += [""] * (len(rows[0]) - len(rows[-1]))
        if two and values[0] > 2 * values[1]:
            missed.append(f"{label} {ratio[0]}")
    print_table(rows)
    print("server RSS before the idle connections: " + ", ".join(
        f"{name} {mib:.0f} MiB" for name, mib in result.idle_mib.items()))  # fmt: skip
    problems = checks(result)
    for problem in problems:
        print(f"check: {problem}")
    if not problems:
        seen = sum("S" in name.partition(":2,")[2] for name in messages.names)
        print(f"check: ok, every round of {' and '.join(names)}: {len(messages.names)} messages,"
              f" {seen} \\Seen, {messages.search_hits} SEARCH hits,"
              f" {messages.total_bytes} body bytes")  # fmt: skip
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", help='messages in INBOX (default "10000,100000")')
    parser.add_argument("--rounds", type=int, help="timed rounds per size (default 5)")
    parser.add_argument("--connections", type=int, help="idle connections (default 100)")
    parser.add_argument(
        "--quick", action="store_true", help="10000 messages, 3 rounds, 20 idle connections"
    )
    parser.add_argument("--no-dovecot", action="store_true", help="measure pcloud only")
    parser.add_argument("--no-pcloud", action="store_true", help="measure Dovecot only")
    parser.add_argument("--dir", type=Path, help="where the messages go (default: temp folder)")
    arguments = parser.parse_args()
    quick = arguments.quick
    sizes_text = arguments.sizes or ("10000" if quick else "10000,100000")
    try:
        sizes = [int(n) for n in sizes_text.split(",")]
    except ValueError:
        parser.error("--sizes takes numbers separated by commas")
    rounds = arguments.rounds or (3 if quick else 5)
    connections = arguments.connections or (20 if quick else 100)
    if min(sizes) < 1 or rounds < 1 or connections < 1:
        parser.error("--sizes, --rounds and --connections must be positive")
    # A SIGTERM unwinds like Ctrl-C, so that the servers are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    dovecot = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin")
    if arguments.no_dovecot:
        dovecot, about = None, "Dovecot skipped (--no-dovecot)"
    elif dovecot is None:
        about = "Dovecot not installed (apt-get install dovecot-imapd): pcloud only"
    else:
        version = subprocess.run([dovecot, "--version"], capture_output=True, text=True)
        about = f"Dovecot {version.stdout.split()[0]}"
    if arguments.no_pcloud and not dovecot:
        parser.error("--no-pcloud leaves nothing to measure without Dovecot")
    print(describe_machine(about))
    now = datetime.datetime.now().astimezone()
    print(f"date: {now:%Y-%m-%d %H:%M %Z}; IMAP over TLS on 127.0.0.1, imaplib as the client,"
          " one connection per round, the message files in the page cache")  # fmt: skip
    print("LOGIN checks a memory-hard hash: pcloud scrypt (32 MiB), Dovecot ARGON2ID (64 MiB, t=3)")
    print(
        f"header fields: FETCH 1:* {HEADER_FIELDS}; search: UID SEARCH SUBJECT"
        f' "{corpus.SEARCH_WORD}"; bodies: FETCH n:m (BODY.PEEK[]), {BODY_CHUNK} at a time'
    )
    print(
        f"idle connection: logged in, INBOX selected; {connections} of them, memory"
        " before and after divided by their number (Dovecot: all its processes summed)"
    )
    print("ratio: pcloud/Dovecot time (or memory): the goal is below 2 on every line;"
          " client CPU: our share of the time, pcloud / Dovecot")  # fmt: skip
    sys.stdout.flush()
    missed: list[str] = []
    problems = False
    try:
        with tempfile.TemporaryDirectory(prefix="pcloud-bench-imap-", dir=arguments.dir) as temp:
            root = Path(temp)
            root.chmod(0o711)  # Dovecot's users must reach their folders below
            free = shutil.disk_usage(root).free
            if free < max(sizes) * BYTES_PER_MESSAGE:
                raise BenchError(f"{max(sizes)} messages need about"
                                 f" {max(sizes) * BYTES_PER_MESSAGE / 1e9:.1f} GB in {root.parent},"
                                 f" {free / 1e9:.1f} GB free: --dir elsewhere?")  # fmt: skip
            for count in sizes:
                folder = root / str(count)
                result = measure(
                    folder, count, dovecot, not arguments.no_pcloud, rounds, connections
                )
                missed += [f"{count}: {line}" for line in report(result)]
                problems = problems or bool(checks(result))
                sys.stdout.flush()
                shutil.rmtree(folder)
    except (BenchError, OSError, subprocess.CalledProcessError) as error:
        print(f"imap: error: {error}", file=sys.stderr)
        return 1
    if dovecot and not arguments.no_pcloud:
        verdict = "met" if not missed else "missed on " + "; ".join(missed)
        print(f"\nimap: within 2x of Dovecot on every line: {verdict}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
