"""Pictures for the avatar tests, made with Pillow, and a way to look at what came back."""

from __future__ import annotations

import hashlib
import http.client
import io
import struct
import zlib
from pathlib import Path

from PIL import Image

from pcloud.testing import RunningServer
from tests.cli.test_admin import Cli

RED, BLUE, GREEN = (220, 20, 20), (20, 20, 220), (20, 200, 20)


def encoded(image: Image.Image, kind: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def plain(colour: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    return encoded(Image.new("RGB", size, colour))


def png_declaring(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes whose header claims width x height pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def md5(address: str) -> str:
    return hashlib.md5(address.encode()).hexdigest()


def sha256(address: str) -> str:
    return hashlib.sha256(address.encode()).hexdigest()


def set_avatar(server: RunningServer, owner: str, data: bytes, tmp_path: Path) -> None:
    picture = tmp_path / f"upload-{owner.replace('@', '_')}"
    picture.write_bytes(data)
    cli = Cli(server.data_dir)
    assert cli("avatar", "set", owner, str(picture)) == 0, cli.err


class Reply:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()

    def image(self) -> Image.Image:
        assert self.status == 200, (self.status, self.body)
        assert self.headers["Content-Type"] == "image/png"
        image = Image.open(io.BytesIO(self.body))
        assert image.format == "PNG"
        image.load()
        return image

    def colour(self) -> tuple[int, ...]:
        """The colour at the centre of the picture."""
        image = self.image().convert("RGB")
        pixel = image.getpixel((image.width // 2, image.height // 2))
        assert isinstance(pixel, tuple)
        return pixel


def fetch(
    server: RunningServer, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> Reply:
    connection = http.client.HTTPSConnection(
        "localhost", server.port("https"), context=server.ssl_context(), timeout=30
    )
    try:
        connection.request(method, path, headers=headers or {})
        return Reply(connection.getresponse())
    finally:
        connection.close()


def near(colour: tuple[int, ...], expected: tuple[int, int, int], slack: int = 12) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(colour, expected, strict=False))
