"""A server killed with SIGKILL while clients deliver loses no acknowledged message and stores
none twice: after restart every message that got 250 is in the mailbox, exactly once."""

from __future__ import annotations

import re
import signal
import smtplib
import subprocess
import sys
import threading
import time
from pathlib import Path

from pcloud.events import Events
from pcloud.services import load_config, open_directory
from pcloud.store.mail import MailStore
from pcloud.testing import DnsServer, write_config

PCLOUD = [sys.executable, "-m", "pcloud"]


def start(data: Path) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [*PCLOUD, "serve", "--data", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    port = 0
    for line in process.stdout:
        fields = line.split()
        if len(fields) == 5 and fields[1] == "smtp":
            port = int(fields[3])
        if line == "ready\n":
            return process, port
    raise AssertionError("server did not start")


def stored_message_ids(data: Path) -> list[str]:
    settings = load_config(data)
    directory = open_directory(data, settings)
    store = MailStore(data / "mail", directory.user, Events())
    try:
        account = store.account("alice@example.org")
        return [m.headers.get("message-id", "") for m in account.messages("INBOX")]
    finally:
        store.close()
        directory.close()


def test_sigkill_during_deliveries_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    dns_server = DnsServer({})  # the server's SPF and DMARC questions stay on this machine
    settings = {
        "server": {"address": "127.0.0.1", "ports": "ephemeral"},
        "smtp": {"dns_server": f"127.0.0.1:{dns_server.port}"},
    }
    write_config(data, "example.org", settings)
    subprocess.run([*PCLOUD, "init", "--data", str(data)], check=True, capture_output=True)
    subprocess.run(
        [*PCLOUD, "user", "add", "alice@example.org", "--password", "correct horse battery",
         "--data", str(data)],
        check=True, capture_output=True,
    )  # fmt: skip
    process, port = start(data)
    acknowledged: list[str] = []
    lock = threading.Lock()

    def sender(number: int) -> None:
        for n in range(1000):
            message_id = f"<{number}.{n}@example.net>"
            body = (
                f"From: bob@example.net\r\nMessage-ID: {message_id}\r\n\r\n"
                + ("x" * 78 + "\r\n") * 25
            )
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
                    client.sendmail("bob@example.net", ["alice@example.org"], body)
            except (OSError, smtplib.SMTPException):
                return  # the server is gone
            with lock:
                acknowledged.append(message_id)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    for thread in threads:
        thread.join()
    assert len(acknowledged) >= 40

    restarted, _ = start(data)  # reconciles the index with the files
    restarted.send_signal(signal.SIGTERM)
    assert restarted.wait(timeout=10) == 0
    stored = stored_message_ids(data)
    assert len(stored) == len(set(stored)), "a message was stored twice"
    missing = set(acknowledged) - set(stored)
    assert not missing, f"acknowledged but lost: {sorted(missing)}"
    assert all(re.fullmatch(r"<\d\.\d+@example\.net>", m) for m in stored)
    dns_server.close()
