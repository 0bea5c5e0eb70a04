"""Bad SMTP input gets the right reply or a clean close, and never leaves a partial message."""

from __future__ import annotations

import asyncio
import random
import smtplib
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcloud.testing import RunningServer, running_server
from tests.conftest import require_tool
from tests.smtp.sessions import mx, reply
from tests.transcript import Transcript

PASSWORD = "correct horse battery"
MAX_MESSAGE = 100_000


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[RunningServer]:
    """A server with small limits, and alice."""
    smtp = {"max_message_bytes": MAX_MESSAGE, "max_connections_per_address": 3}
    with running_server(tmp_path / "data", settings={"smtp": smtp}) as server:
        server.add_user("alice@example.org", PASSWORD)
        yield server


async def to_alice(server: RunningServer) -> Transcript:
    """A session that has just been told 354 for a message to alice."""
    session = await mx(server)
    assert (await reply(session, "MAIL FROM:<bob@other.net>")).startswith("250")
    assert (await reply(session, "RCPT TO:<alice@example.org>")).startswith("250")
    assert (await reply(session, "DATA")).startswith("354")
    return session


@pytest.mark.parametrize("command", ["NOOP ", "EHLO ", "MAIL FROM:<", "RCPT TO:<"])
async def test_an_overlong_command_line_gets_500(limited: RunningServer, command: str) -> None:
    session = await mx(limited)
    assert (await reply(session, command + "x" * 5_000)).startswith("500")
    assert (await reply(session, "NOOP")).startswith("250")
    await session.close()


async def test_binary_garbage_gets_an_error_reply(limited: RunningServer) -> None:
    garbage = random.Random(25).randbytes(300).replace(b"\r", b"").replace(b"\n", b"")
    for line in (b"\x00" + garbage, b"NOOP" + garbage, b"\x00\x01\x02 \xff\xfe"):
        session = await mx(limited)
        session.writer.write(line + b"\r\n")
        assert (await session.expect(""))[-1].startswith("5")
        assert (await reply(session, "NOOP")).startswith("250")
        await session.close()


async def test_many_unknown_commands_close_the_connection(limited: RunningServer) -> None:
    session = await mx(limited)
    replies = [await reply(session, f"XBOGUS{n}") for n in range(4)]
    assert all(line.startswith("500") for line in replies)
    assert (await reply(session, "XBOGUS5")).startswith("502")
    assert await session.closed()
    session = await mx(limited)
    assert (await reply(session, "NOOP")).startswith("250")
    await session.close()


async def test_a_message_twice_the_maximum_gets_552(limited: RunningServer) -> None:
    session = await to_alice(limited)
    line = "y" * 78
    for _ in range(2 * MAX_MESSAGE // 80):
        session.writer.write(line.encode() + b"\r\n")
    assert (await reply(session, ".")).startswith("552")
    assert (await reply(session, "NOOP")).startswith("250")
    assert (await reply(session, "MAIL FROM:<bob@other.net> SIZE=200000")).startswith("552")
    await session.close()
    assert len(limited.messages("alice@example.org")) == 0


async def test_recipients_beyond_the_limit_get_452_and_one_copy_is_stored(
    server: RunningServer,
) -> None:
    server.add_user("alice@example.org", PASSWORD)
    session = await mx(server)
    assert (await reply(session, "MAIL FROM:<bob@other.net>")).startswith("250")
    replies = [await reply(session, "RCPT TO:<alice@example.org>") for _ in range(1_000)]
    assert {line[:3] for line in replies[:100]} == {"250"}
    assert set(replies[100:]) == {"452 4.5.3 Too many recipients"}
    assert (await reply(session, "DATA")).startswith("354")
    await session.send("Subject: many\r\n\r\nHello.")
    assert (await reply(session, ".")).startswith("250")
    await session.close()
    assert len(server.messages("alice@example.org")) == 1


@pytest.mark.parametrize("cut", ["Subject: half\r\n\r\nhalf a mess", "Subject: half\r\n\r\n"])
async def test_a_disconnect_during_data_stores_nothing(limited: RunningServer, cut: str) -> None:
    session = await to_alice(limited)
    session.writer.write(cut.encode())
    await session.close()
    session = await to_alice(limited)
    await session.send("Subject: whole\r\n\r\nHello.")
    assert (await reply(session, ".")).startswith("250")
    await session.close()
    messages = limited.services.mail.account("alice@example.org").messages("INBOX")
    assert [m.headers.get("subject") for m in messages] == ["whole"]


async def test_connections_above_the_limit_get_421(limited: RunningServer) -> None:
    port = limited.port("smtp")
    sessions = [await Transcript.open("127.0.0.1", port) for _ in range(3)]
    for session in sessions:
        await session.expect("220 ")
    extra = await Transcript.open("127.0.0.1", port)
    assert await extra.expect("421 ") == ["421 4.7.0 Too many connections from your address"]
    assert await extra.closed()
    await sessions.pop().close()
    for _ in range(50):  # the server counts the closed one out soon after
        again = await Transcript.open("127.0.0.1", port)
        if (await again.expect(""))[-1].startswith("220"):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("no new connection accepted after one closed")
    for session in [*sessions, again]:
        await session.close()


def test_a_client_that_does_not_trust_the_certificate_logs_no_error(
    limited: RunningServer,
) -> None:
    for _ in range(4):  # more than max_connections_per_address: none may stay counted
        client = smtplib.SMTP("127.0.0.1", limited.port("smtp"), timeout=10)
        with pytest.raises(ssl.SSLCertVerificationError):
            client.starttls(context=ssl.create_default_context())
        client.close()
    with smtplib.SMTP("127.0.0.1", limited.port("smtp"), timeout=10) as client:
        assert client.noop()[0] == 250


def swaks(server: RunningServer, *options: str) -> subprocess.CompletedProcess[str]:
    command = [require_tool("swaks"), "-s", "127.0.0.1", "-t", "alice@example.org", *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_swaks_delivers_to_the_mx(limited: RunningServer) -> None:
    result = swaks(limited, "-p", str(limited.port("smtp")), "-f", "bob@other.net")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(limited.messages("alice@example.org")) == 1


@pytest.mark.parametrize(("password", "exit_code", "stored"), [(PASSWORD, 0, 1), ("wrong", 28, 0)])
def test_swaks_submits_after_starttls(
    limited: RunningServer, password: str, exit_code: int, stored: int
) -> None:
    result = swaks(
        limited, "-p", str(limited.port("submission")), "-f", "alice@example.org",
        "--tls", "--tls-verify", "--tls-ca-path", str(limited.ca_file),
        "-a", "PLAIN", "-au", "alice@example.org", "-ap", password,
    )  # fmt: skip
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert len(limited.messages("alice@example.org")) == stored
