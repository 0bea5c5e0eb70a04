"""The FTPS listener: off unless enabled, TLS before the login and on every data connection,
logins checked by the directory, passive ports from the configured range, a clean stop."""

from __future__ import annotations

import ftplib
import io
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import pcloud.ftps
from pcloud import config
from pcloud.supervisor import StartError
from pcloud.testing import RunningServer, running_server
from tests.conftest import require_tool
from tests.ftps.conftest import ALICE, FTPS_ON, PASSWORD, connect, sign_in, tree


def test_off_by_default(server: RunningServer, tmp_path: Path) -> None:
    assert "ftps" not in [endpoint.listener for endpoint in server.endpoints]
    settings = config.from_mapping(tmp_path / "pcloud.toml", {})
    assert not settings.listeners["ftps"].enabled
    assert settings.listeners["imap"].enabled
    commented = config.render_default_file("example.org").split("[listeners.ftps]\n")[1]
    assert "# enabled = false\n" in commented


def test_without_the_extra_the_listener_refuses_to_start(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(pcloud.ftps, "server", raising=False)
    monkeypatch.setitem(sys.modules, "pcloud.ftps.server", None)  # as if pyftpdlib were missing
    with socket.socket() as sock, pytest.raises(StartError, match=r"^the ftps .*ftps extra"):
        server.call(pcloud.ftps.serve(server.services, sock))


def test_config_checks_the_passive_range(tmp_path: Path) -> None:
    path = tmp_path / "pcloud.toml"
    settings = config.from_mapping(path, {"ftps": {"passive_ports": "40000-40009"}})
    assert config.port_range(settings.ftps.passive_ports) == range(40000, 40010)
    for wrong in ("40009-40000", "80-90", "40000", "40000-70000", "a-b"):
        with pytest.raises(config.ConfigError, match=r"ftps.passive_ports: expected"):
            config.from_mapping(path, {"ftps": {"passive_ports": wrong}})


def test_login_before_auth_tls_is_refused(ftps: RunningServer) -> None:
    client = ftplib.FTP(timeout=30)
    client.connect("127.0.0.1", ftps.port("ftps"))
    with pytest.raises(ftplib.error_perm, match=r"^550 SSL/TLS required"):
        client.sendcmd(f"USER {ALICE}")
    with pytest.raises(ftplib.error_perm, match=r"^550 SSL/TLS required"):
        client.sendcmd(f"PASS {PASSWORD}")
    with pytest.raises(ftplib.error_perm, match=r"^530"):  # nothing else either
        client.sendcmd("LIST")
    client.close()


def test_wrong_password_and_unknown_user_are_refused(ftps: RunningServer) -> None:
    client = connect(ftps)
    with pytest.raises(ftplib.error_perm, match=r"^530"):
        client.login(ALICE, "not the password")
    with pytest.raises(ftplib.error_perm, match=r"^530"):
        client.login("nobody@example.org", PASSWORD)
    with pytest.raises(ftplib.error_perm, match=r"^530"):
        client.sendcmd("PWD")
    client.login(ALICE, PASSWORD)  # the right one still works on the same connection
    assert client.pwd() == "/"
    client.quit()


def test_data_connections_need_prot_p(ftps: RunningServer) -> None:
    client = connect(ftps)
    client.login(ALICE, PASSWORD)
    with pytest.raises(ftplib.error_perm, match=r"^550 SSL/TLS required on the data"):
        client.nlst()
    client.prot_p()
    assert client.nlst() == []
    with pytest.raises(ftplib.error_perm, match=r"^534"):
        client.prot_c()
    assert client.nlst() == []  # still protected: ftplib wraps the data connection in TLS
    client.quit()


def free_port_below_the_ephemeral_range() -> int:
    """A port free right now that the kernel will not hand to the server's own listeners
    (they bind port 0, which Linux takes from 32768 up)."""
    for port in range(20000, 32768):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below 32768")


def test_passive_ports_come_from_the_configured_range(tmp_path: Path) -> None:
    port = free_port_below_the_ephemeral_range()
    settings = {**FTPS_ON, "ftps": {"passive_ports": f"{port}-{port}"}}
    with running_server(tmp_path / "data", settings=settings) as server:
        server.add_user(ALICE)
        client = sign_in(server)
        assert client.makepasv() == ("127.0.0.1", port)
        client.storlines("STOR a.txt", io.BytesIO(b"one\r\ntwo\r\n"))
        assert client.nlst() == ["a.txt"]
        client.quit()


def test_stop_closes_signed_in_connections(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", settings=FTPS_ON) as server:
        server.add_user(ALICE)
        client = sign_in(server)
        assert client.nlst() == []
    assert not [t for t in threading.enumerate() if t.name == "pcloud-ftps"]
    with pytest.raises((EOFError, OSError)):
        client.voidcmd("NOOP")


def test_curl(ftps: RunningServer, tmp_path: Path) -> None:
    curl = require_tool("curl")
    url = f"ftp://127.0.0.1:{ftps.port('ftps')}"
    tls = ["--ssl-reqd", "--cacert", str(ftps.ca_file)]
    login = ["--user", f"{ALICE}:{PASSWORD}"]
    sent = tmp_path / "sent.bin"
    sent.write_bytes(bytes(range(256)) * 8192)

    def run(*arguments: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([curl, "-sS", *arguments], capture_output=True, timeout=60)

    assert (
        run(*tls, *login, "--ftp-create-dirs", "-T", str(sent), f"{url}/in/sent.bin").returncode
        == 0
    )
    assert (tree(ftps) / "in" / "sent.bin").read_bytes() == sent.read_bytes()
    listing = run(*tls, *login, f"{url}/in/")
    assert listing.returncode == 0 and b" sent.bin" in listing.stdout
    received = tmp_path / "received.bin"
    assert run(*tls, *login, "-o", str(received), f"{url}/in/sent.bin").returncode == 0
    assert received.read_bytes() == sent.read_bytes()
    # curl's exit status 67: the server refused the login.
    assert run(*tls, "--user", f"{ALICE}:wrong", f"{url}/").returncode == 67
    assert run("--user", f"{ALICE}:{PASSWORD}", f"{url}/").returncode == 67  # without TLS
