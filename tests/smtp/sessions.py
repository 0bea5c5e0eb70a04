"""Raw SMTP sessions with the MX listener, for the tests that speak the protocol by hand."""

from __future__ import annotations

from pcloud.testing import RunningServer
from tests.transcript import Transcript


async def reply(session: Transcript, line: str) -> str:
    """The server's one-line reply to `line`."""
    return (await session.expect("", line))[-1]


async def mx(server: RunningServer) -> Transcript:
    """A session with the MX, greeted and past EHLO."""
    session = await Transcript.open("127.0.0.1", server.port("smtp"))
    await session.expect("220 ")
    await session.expect("250 ", "EHLO sender.other.net")
    return session
