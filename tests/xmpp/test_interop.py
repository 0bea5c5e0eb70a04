"""Interop with Debian's go-sendxmpp (a Go XMPP client): sending and receiving, with STARTTLS
and with direct TLS, its certificate check trusting the server's CA; and with the Nagios
`check_xmppng` c2s check (STARTTLS, certificate verified)."""

from __future__ import annotations

import asyncio
import os

import pytest

from pcloud.testing import RunningServer
from tests.conftest import require_tool
from tests.xmpp.conftest import PASSWORD, TIMEOUT, Connect


def environment(server: RunningServer) -> dict[str, str]:
    return {**os.environ, "SSL_CERT_FILE": str(server.ca_file), "HOME": str(server.data_dir)}


@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "xmpps"])
async def test_go_sendxmpp_sends(server: RunningServer, connect: Connect, direct_tls: bool) -> None:
    tool = require_tool("go-sendxmpp")
    bob = await connect("bob@example.org/desk")
    server.add_user("alice@example.org", PASSWORD)
    port = server.port("xmpps" if direct_tls else "xmpp")
    options = ["-t"] if direct_tls else []
    process = await asyncio.create_subprocess_exec(
        tool, "-u", "alice@example.org", "-p", PASSWORD, "-j", f"127.0.0.1:{port}", *options,
        "bob@example.org", stdin=asyncio.subprocess.PIPE, env=environment(server),
    )  # fmt: skip
    await asyncio.wait_for(process.communicate(b"hello from go\n"), TIMEOUT)
    assert process.returncode == 0
    message = await bob.message()
    assert message["body"].strip() == "hello from go"
    assert message["from"].bare == "alice@example.org"


async def test_go_sendxmpp_receives_and_is_refused_a_wrong_password(
    server: RunningServer, connect: Connect
) -> None:
    tool = require_tool("go-sendxmpp")
    server.add_user("alice@example.org", PASSWORD)
    port = server.port("xmpp")
    wrong = await asyncio.create_subprocess_exec(
        tool, "-u", "alice@example.org", "-p", "wrong password", "-j", f"127.0.0.1:{port}",
        "bob@example.org", stdin=asyncio.subprocess.PIPE, env=environment(server),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await asyncio.wait_for(wrong.communicate(b"never\n"), TIMEOUT)
    assert wrong.returncode != 0
    listener = await asyncio.create_subprocess_exec(
        tool, "-u", "alice@example.org", "-p", PASSWORD, "-j", f"127.0.0.1:{port}", "-l",
        stdout=asyncio.subprocess.PIPE, env=environment(server),
    )  # fmt: skip
    try:
        bob = await connect("bob@example.org/desk")
        # whether go-sendxmpp is online yet or not: kept messages come at its initial presence
        bob.send_message("alice@example.org", "hello go")
        assert listener.stdout is not None
        line = await asyncio.wait_for(listener.stdout.readline(), TIMEOUT)
        assert b"hello go" in line
    finally:
        listener.terminate()
        await listener.wait()


CHECK_XMPPNG = "/usr/lib/nagios/plugins/check_xmppng"


async def check_xmppng(server: RunningServer, *options: str) -> tuple[int, str]:
    """Nagios' XMPP check, on Debian's own Python (it is not installed for a venv's)."""
    tool = require_tool(CHECK_XMPPNG)
    process = await asyncio.create_subprocess_exec(
        "/usr/bin/python3", tool, "-H", "127.0.0.1", "-p", str(server.port("xmpp")), "--c2s",
        "--starttls", "-r", str(server.ca_file), *options,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_nagios_check_xmppng_c2s_with_starttls(server: RunningServer) -> None:
    status, output = await check_xmppng(server, "--servername", "example.org")
    assert status == 0 and output.startswith("XMPP OK"), output  # its certificate trusted, too
    # a domain not served here: the stream is refused (host-unknown), and the check says so
    status, output = await check_xmppng(server, "--servername", "elsewhere.test")
    assert status == 2 and output.startswith("XMPP CRITICAL"), output
