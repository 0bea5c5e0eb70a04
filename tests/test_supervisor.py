"""`pcloud serve` as a real process: first start, the endpoint table, one server per data folder,
a port in use, reload on SIGHUP, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import pcloud.ftps
from pcloud import supervisor
from pcloud.cli import Context, run
from pcloud.listeners import LISTENERS, choose_port_map
from pcloud.services import load_config, open_directory
from pcloud.supervisor import StartError
from pcloud.testing import running_server, write_config
from tests.conftest import require_tool

PCLOUD = [sys.executable, "-m", "pcloud"]


class ServerProcess:
    def __init__(self, data: Path, *extra: str) -> None:
        self.data = data
        self.process = subprocess.Popen(
            [*PCLOUD, "serve", "--data", str(data), "--ports", "ephemeral", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.output: list[str] = []
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip("\n"))
            if line == "ready\n":
                break
        else:
            raise AssertionError(f"server did not start: {self.output} {self.process.stderr}")

    def port(self, listener: str) -> int:
        for line in self.output:
            fields = line.split()
            if len(fields) == 5 and fields[1] == listener:
                return int(fields[3])
        raise KeyError(listener)

    def stop(self) -> tuple[int, float, str]:
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout=10)
        assert self.process.stderr is not None
        return status, time.monotonic() - started, self.process.stderr.read()


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "data", "--domain", "example.org")
    yield process
    if process.process.poll() is None:
        process.process.kill()
        process.process.wait()


def test_first_start_with_no_configuration(server_process: ServerProcess, tmp_path: Path) -> None:
    data = tmp_path / "data"
    output = "\n".join(server_process.output)
    assert "Administrator: admin@example.org" in output
    assert re.search(r"^service +listener +address +port +tls$", output, re.MULTILINE)
    assert server_process.port("https") > 0 and server_process.port("http") > 0
    for name in (
        "pcloud.toml",
        "directory.sqlite3",
        "tls/ca.pem",
        "tls/server.pem",
        "tls/server.key",
    ):
        assert (data / name).exists(), name
    assert data.stat().st_mode & 0o077 == 0
    assert (data / "tls" / "server.key").stat().st_mode & 0o077 == 0
    assert 'domain = "example.org"' in (data / "pcloud.toml").read_text()

    curl = require_tool("curl")
    result = subprocess.run(
        [curl, "-sS", "--cacert", str(data / "tls" / "ca.pem"),
         f"https://localhost:{server_process.port('https')}/healthz"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert json.loads(result.stdout)["status"] == "ok", result.stderr

    # The printed administrator password is the one that works.
    password = output.split("Password:")[1].split()[0]
    settings = load_config(data)
    directory = open_directory(data, settings)
    principal = asyncio.run(
        directory.authenticate("admin@example.org", password, service="test", remote="192.0.2.1")
    )
    directory.close()
    assert principal is not None and principal.is_admin


def test_a_second_server_on_the_same_data_folder_refuses(server_process: ServerProcess) -> None:
    second = subprocess.run(
        [*PCLOUD, "serve", "--data", str(server_process.data), "--ports", "ephemeral"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert second.returncode == 1
    pid = server_process.process.pid
    assert f"another pcloud server is already running on {server_process.data} (pid {pid})" in (
        second.stderr
    )


def test_sigterm_stops_cleanly_within_5_seconds(server_process: ServerProcess) -> None:
    port = server_process.port("https")
    status_file = server_process.data / "run" / "endpoints.json"
    assert status_file.exists()
    status, seconds, log = server_process.stop()
    assert status == 0
    assert seconds < 5
    assert "stopped" in log and "Traceback" not in log
    assert not status_file.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    # A restart on the same folder keeps the administrator and prints no new password.
    again = ServerProcess(server_process.data)
    assert not any("Password" in line for line in again.output)
    assert again.stop()[0] == 0


def test_status_while_running_and_after(server_process: ServerProcess) -> None:
    result = subprocess.run(
        [*PCLOUD, "status", "--json", "--data", str(server_process.data)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert report["running"] is True
    assert report["pid"] == server_process.process.pid
    endpoints = {e["listener"]: e for e in report["endpoints"]}
    assert endpoints["https"] == {
        "service": "web",
        "listener": "https",
        "host": "*",
        "port": server_process.port("https"),
        "tls": "implicit",
    }
    assert report["certificate"]["days_left"] > 300
    assert "mail.example.org" in report["certificate"]["names"]
    assert report["counts"] == {"domains": 1, "users": 1, "aliases": 0}
    human = subprocess.run(
        [*PCLOUD, "status", "--data", str(server_process.data)], capture_output=True, text=True
    )
    assert f"pcloud is running (pid {server_process.process.pid})" in human.stdout
    server_process.stop()
    after = subprocess.run(
        [*PCLOUD, "status", "--json", "--data", str(server_process.data)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(after.stdout)["running"] is False


def _handshake(port: int, ca_file: Path, name: str) -> None:
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        context.wrap_socket(raw, server_hostname=name).close()


def test_a_new_domain_is_added_to_the_certificate_by_sighup(server_process: ServerProcess) -> None:
    data, port = server_process.data, server_process.port("https")
    ca_file = data / "tls" / "ca.pem"
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(port, ca_file, "mail.family.example")
    out, err = io.StringIO(), io.StringIO()
    assert run(["domain", "add", "family.example", "--data", str(data)], Context(out, err)) == 0
    assert "reloads its certificate" in out.getvalue()
    deadline = time.monotonic() + 10
    while True:
        try:
            _handshake(port, ca_file, "mail.family.example")
            break
        except ssl.SSLCertVerificationError:
            assert time.monotonic() < deadline, "certificate was not reloaded"
            time.sleep(0.1)
    _handshake(port, ca_file, "mail.example.org")
    assert server_process.process.poll() is None
    assert server_process.stop()[0] == 0


def test_a_port_in_use_stops_start_up_naming_listener_and_port(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        write_config(
            data,
            "example.org",
            {"server": {"address": "127.0.0.1"}, "listeners.http": {"port": port}},
        )
        result = subprocess.run(
            [*PCLOUD, "serve", "--data", str(data), "--ports", "ephemeral"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"pcloud: cannot listen for http (web) on 127.0.0.1 port {port}: Address already in use"
    )
    assert not (data / "run" / "endpoints.json").exists()


def test_a_listener_that_cannot_start_stops_the_others_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FTPS starts last; without its extra it refuses, after every other listener is serving.
    monkeypatch.delattr(pcloud.ftps, "server", raising=False)
    monkeypatch.setitem(sys.modules, "pcloud.ftps.server", None)
    settings = {"listeners.ftps": {"enabled": True}}
    with (
        pytest.raises(StartError, match="ftps extra"),
        running_server(tmp_path / "data", settings=settings),
    ):
        pass  # never reached
    # The other listeners were stopped before their sockets closed (no errors logged), and
    # their ports are free again.
    with running_server(tmp_path / "data") as server:
        assert "https" in [e.listener for e in server.endpoints]


def test_disabled_listeners_are_not_opened(tmp_path: Path) -> None:
    with running_server(
        tmp_path / "data", settings={"listeners.http": {"enabled": False}}
    ) as server:
        assert "http" not in [e.listener for e in server.endpoints]
        assert "https" in [e.listener for e in server.endpoints]


def test_port_maps() -> None:
    https = next(spec for spec in LISTENERS if spec.name == "https")
    assert (https.port_in("standard"), https.port_in("high"), https.port_in("ephemeral")) == (
        443,
        8443,
        0,
    )
    expected = "standard" if os.geteuid() == 0 else choose_port_map("auto")
    assert choose_port_map("auto") == expected
    assert choose_port_map("high") == "high"


def test_a_failed_reload_keeps_serving_and_is_logged(
    tmp_path: Path, logged_errors: list[logging.LogRecord]
) -> None:
    # A certificate issued elsewhere (here: a copy of one from pcloud's own CA).
    with running_server(tmp_path / "first") as first:
        own = tmp_path / "own"
        own.mkdir()
        for name in ("server.pem", "server.key"):
            shutil.copy(first.data_dir / "tls" / name, own / name)
        ca_file = first.ca_file
    settings = {
        "tls": {"certificate": str(own / "server.pem"), "private_key": str(own / "server.key")}
    }
    with running_server(tmp_path / "data", settings=settings) as server:
        assert not (server.data_dir / "tls" / "server.pem").exists()  # nothing generated
        (own / "server.pem").write_text("not a certificate")
        server.loop.call_soon_threadsafe(supervisor._reload, server.services)
        deadline = time.monotonic() + 10
        while not logged_errors:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert logged_errors[0].getMessage().startswith("reload failed")
        logged_errors.clear()
        _handshake(server.port("https"), ca_file, "mail.example.org")
