"""A raw protocol conversation that reads like the session it tests:

session = await Transcript.open("127.0.0.1", port)
await session.expect("* OK")
await session.expect("a1 NO", "a1 LOGIN alice wrong")
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl


class Transcript:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout
        self.received: list[str] = []

    @classmethod
    async def open(
        cls, host: str, port: int, *, tls: ssl.SSLContext | None = None, timeout: float = 10.0
    ) -> Transcript:
        reader, writer = await asyncio.open_connection(host, port, ssl=tls)
        return cls(reader, writer, timeout)

    async def send(self, line: str) -> None:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()

    async def expect(self, reply_prefix: str, line: str | None = None) -> list[str]:
        """Send `line` (if any), then read lines until one starts with `reply_prefix`.
        Returns the lines read; fails, quoting them, on timeout or when the peer closes."""
        if line is not None:
            await self.send(line)
        lines: list[str] = []
        while True:
            try:
                raw = await asyncio.wait_for(self.reader.readline(), self.timeout)
            except TimeoutError:
                raise AssertionError(
                    f"no {reply_prefix!r} within {self.timeout}s: {lines}"
                ) from None
            if not raw:
                raise AssertionError(f"closed while waiting for {reply_prefix!r}: {lines}")
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(text)
            self.received.append(text)
            if text.startswith(reply_prefix):
                return lines

    async def closed(self) -> bool:
        """True when the peer has closed the connection (reads end of stream)."""
        try:
            return await asyncio.wait_for(self.reader.read(1), self.timeout) == b""
        except ConnectionError:
            return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()
