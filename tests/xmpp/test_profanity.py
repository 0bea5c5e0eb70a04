"""Interop with Debian's profanity (a terminal XMPP client on libstrophe), driven in tmux: it
signs in over STARTTLS (certificate verified against the server's CA, so no trust prompt),
exchanges subscriptions, presence and messages with a slixmpp client, blocks it (XEP-0191),
and lists the server's features (XEP-0030). What it shows is read from its screen."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from slixmpp.plugins.xep_0115.stanza import Capabilities

from pcloud.testing import RunningServer
from tests.conftest import require_tool
from tests.xmpp.conftest import PASSWORD, Client, Connect

ALICE = "alice@example.org"
BOB = "bob@example.org"
WAIT = 20  # seconds to wait for something on the screen
CAPS_NODE = "http://profanity-im.github.io"


class Profanity:
    """profanity in a tmux session of its own (own socket, own HOME under tmp_path)."""

    def __init__(self, tmux: str, socket: Path, environment: dict[str, str]) -> None:
        self.command = [tmux, "-S", str(socket), "-f", "/dev/null"]
        self.environment = environment

    async def tmux(self, *arguments: str) -> str:
        process = await asyncio.create_subprocess_exec(
            *self.command, *arguments, env=self.environment,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        output, errors = await asyncio.wait_for(process.communicate(), WAIT)
        assert process.returncode == 0, f"tmux {arguments}: {errors.decode()}"
        return output.decode()

    async def close(self) -> None:
        """Ends tmux and profanity; quietly when they are gone already (profanity exited)."""
        process = await asyncio.create_subprocess_exec(
            *self.command, "kill-server", env=self.environment,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await asyncio.wait_for(process.wait(), WAIT)

    async def type(self, line: str) -> None:
        """Types a line (literally: no tmux key names) and Enter."""
        await self.tmux("send-keys", "-t", "profanity", "-l", line)
        await self.tmux("send-keys", "-t", "profanity", "Enter")

    async def screen(self) -> str:
        """What profanity's current window shows (a full-screen program: no scrollback)."""
        return await self.tmux("capture-pane", "-p", "-t", "profanity")

    async def shows(self, text: str) -> str:
        """Waits until `text` is on the screen; returns the screen."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            screen = await self.screen()
            if text in screen:
                return screen
            if loop.time() > deadline:
                raise AssertionError(f"no {text!r} on profanity's screen:\n{screen}")
            await asyncio.sleep(0.2)


@pytest.fixture
async def profanity(server: RunningServer, tmp_path: Path) -> AsyncIterator[Profanity]:
    """profanity signed in as alice over STARTTLS: its account written beforehand (server,
    port, password, TLS forced) and the server's CA trusted through SSL_CERT_FILE."""
    tmux = require_tool("tmux")
    program = require_tool("profanity")
    server.add_user(ALICE, PASSWORD)
    home = tmp_path / "home"
    data = home / ".local" / "share"
    (data / "profanity").mkdir(parents=True)
    (data / "profanity" / "accounts").write_text(
        f"[{ALICE}]\nenabled=true\njid={ALICE}\nresource=profanity\npassword={PASSWORD}\n"
        f"server=127.0.0.1\nport={server.port('xmpp')}\ntls.policy=force\n"
    )
    environment = {
        **{k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")},
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(data),
        "SSL_CERT_FILE": str(server.ca_file),
    }
    client = Profanity(tmux, tmp_path / "tmux", environment)
    await client.tmux(
        "new-session", "-d", "-s", "profanity", "-x", "200", "-y", "50",
        program, "-l", "DEBUG", "-a", ALICE,
    )  # fmt: skip
    try:
        await client.shows(f"{ALICE}/profanity logged in successfully")
        yield client
    finally:
        await client.close()


async def subscribe_both_ways(profanity: Profanity, bob: Client) -> None:
    """alice asks for bob's presence and bob approves; bob asks for alice's and she allows."""
    await profanity.type(f"/sub request {BOB}")
    await bob.presence("subscribe", ALICE)
    bob.xmpp.send_presence(pto=ALICE, ptype="subscribed")
    bob.xmpp.send_presence(pto=ALICE, ptype="subscribe")
    await profanity.shows(f"Received authorization request from {BOB}")
    await profanity.type(f"/sub allow {BOB}")


async def test_profanity_chats_with_a_slixmpp_client(
    profanity: Profanity, connect: Connect
) -> None:
    bob = await connect(f"{BOB}/desk")
    await subscribe_both_ways(profanity, bob)
    # once allowed, bob gets the presence of alice's profanity, with its entity caps
    presence = await bob.presence("available", ALICE)
    assert presence["from"] == f"{ALICE}/profanity"
    caps = presence.xml.find(f"{{{Capabilities.namespace}}}c")
    assert caps is not None and caps.get("node") == CAPS_NODE
    await profanity.shows(f"{BOB} (desk) is online")  # bob's presence, at profanity
    # alice writes from profanity (its chat window with bob opens)
    await profanity.type(f"/msg {BOB} hello from profanity")
    message = await bob.message()
    assert message["body"] == "hello from profanity"
    assert message["from"] == f"{ALICE}/profanity"
    # bob answers; it shows in that window
    bob.send_message(ALICE, "hello from slixmpp")
    await profanity.shows("hello from slixmpp")


async def test_profanity_blocks_a_contact_and_lists_server_features(
    profanity: Profanity, connect: Connect
) -> None:
    await profanity.type("/disco info example.org")
    await profanity.shows("Service discovery info for example.org")
    for shown in ("HTTP File Upload file store", "urn:xmpp:http:upload:0", "urn:xmpp:blocking"):
        await profanity.shows(shown)
    bob = await connect(f"{BOB}/desk")
    await subscribe_both_ways(profanity, bob)
    await bob.presence("available", ALICE)
    await profanity.type(f"/blocked add {BOB}")
    await profanity.shows(f"User {BOB} successfully blocked.")
    # bob stops seeing alice, and what he sends her bounces as if she did not exist
    gone = await bob.presence("unavailable", ALICE)
    assert gone["from"] == f"{ALICE}/profanity"
    bob.send_message(ALICE, "can you hear me?")
    bounce = await bob.message()
    assert bounce["type"] == "error"
    assert bounce["error"]["condition"] == "service-unavailable"
    await profanity.type("/blocked")
    await profanity.shows("Blocked users:")
    await profanity.shows(f" -   {BOB}")  # an entry of that list: indented after the time
