"""The generated pictures answered for a hash with no avatar (`d=`/`default=`), each the same
every time for the same hash and size.

- robohash: the `robohash` package, as robohash.org and Libravatar draw them (robots, set1);
  monsterid: its monster set (set2), the nearest maintained kind of Gravatar's monsters.
- mp (mm), identicon, retro, wavatar and blank are drawn here with Pillow, a few lines each: the
  identicon packages on PyPI are unmaintained (pydenticon's last release is from 2017) and none
  draws the others.
- pagan: the `pagan` package no longer installs (its setup uses 2to3), so pagan is answered
  with the retro picture.
"""

from __future__ import annotations

import colorsys
import hashlib
from collections.abc import Callable

from PIL import Image, ImageDraw

DRAW_SIZE = 512  # drawn at this size, then scaled (smooth edges at every size)


def _seed(digest: str, mode: str) -> bytes:
    """64 bytes drawn from the hash, different per mode."""
    return hashlib.sha512(f"{mode}:{digest}".encode()).digest()


def _colour(byte: int, saturation: float = 0.55, lightness: float = 0.5) -> tuple[int, int, int]:
    red, green, blue = colorsys.hls_to_rgb(byte / 256, lightness, saturation)
    return round(red * 255), round(green * 255), round(blue * 255)


def _grid(seed: bytes, cells: int, palette: list[tuple[int, int, int]]) -> Image.Image:
    """A left-right mirrored grid of cells coloured from the palette by the seed, with a margin
    of one cell, at one pixel per cell (scaled up later with NEAREST, so it stays crisp)."""
    image = Image.new("RGB", (cells + 2, cells + 2), palette[0])
    half = (cells + 1) // 2
    for row in range(cells):
        for column in range(half):
            colour = palette[seed[row * half + column] % len(palette)]
            image.putpixel((1 + column, 1 + row), colour)
            image.putpixel((cells - column, 1 + row), colour)
    return image


def identicon(digest: str) -> Image.Image:
    seed = _seed(digest, "identicon")
    return _grid(seed[8:], 5, [(240, 240, 240), _colour(seed[0])])


def retro(digest: str) -> Image.Image:
    seed = _seed(digest, "retro")
    palette = [(20, 20, 28), _colour(seed[0], 0.8, 0.55), _colour(seed[1], 0.8, 0.7)]
    return _grid(seed[2:], 8, [*palette, palette[0]])


def mystery_person(digest: str) -> Image.Image:
    """Libravatar's and Gravatar's `mp`: a grey silhouette, the same for every hash."""
    image = Image.new("RGB", (DRAW_SIZE, DRAW_SIZE), (189, 189, 189))
    draw = ImageDraw.Draw(image)
    draw.ellipse((156, 90, 356, 290), fill=(245, 245, 245))
    draw.ellipse((76, 320, 436, 700), fill=(245, 245, 245))
    return image


def wavatar(digest: str) -> Image.Image:
    """A round face on a coloured ground: hue, eyes and mouth from the hash."""
    seed = _seed(digest, "wavatar")
    image = Image.new("RGB", (DRAW_SIZE, DRAW_SIZE), _colour(seed[0], 0.45, 0.8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((56, 56, 456, 456), fill=_colour(seed[1], 0.6, 0.6))
    eye = 24 + seed[2] % 28
    for x in (190, 322):
        draw.ellipse((x - eye, 200 - eye, x + eye, 200 + eye), fill="white")
        pupil = eye // 2
        draw.ellipse((x - pupil, 205 - pupil, x + pupil, 205 + pupil), fill=(30, 30, 30))
    width = 80 + seed[3] % 70
    if seed[4] % 3 == 0:  # open mouth
        draw.ellipse((256 - width // 2, 300, 256 + width // 2, 360), fill=(90, 20, 30))
    else:  # a smile, wide or narrow
        draw.arc((256 - width, 230, 256 + width, 350), 20, 160, fill=(60, 20, 20), width=12)
    return image


def _robohash(digest: str, robot_set: str) -> Image.Image:
    # Imported on first use: it and natsort add to every start what few requests need.
    from robohash import Robohash  # type: ignore[import-untyped]  # ships no type hints

    robot = Robohash(digest)
    robot.assemble(roboset=robot_set, sizex=DRAW_SIZE, sizey=DRAW_SIZE)
    image: Image.Image = robot.img
    return image


def blank(digest: str) -> Image.Image:
    return Image.new("RGBA", (1, 1), (0, 0, 0, 0))


DRAWERS: dict[str, Callable[[str], Image.Image]] = {
    "mp": mystery_person,
    "mm": mystery_person,
    "identicon": identicon,
    "retro": retro,
    "pagan": retro,
    "wavatar": wavatar,
    "robohash": lambda digest: _robohash(digest, "set1"),
    "monsterid": lambda digest: _robohash(digest, "set2"),
    "blank": blank,
}
PIXEL_ART = {identicon, retro, blank}  # scaled up without smoothing


def draw(mode: str, digest: str, size: int) -> Image.Image:
    """The default picture `mode` (a key of DRAWERS) for a hash, `size` pixels square."""
    drawer = DRAWERS[mode]
    image = drawer(digest)
    smooth = drawer not in PIXEL_ART
    resample = Image.Resampling.LANCZOS if smooth else Image.Resampling.NEAREST
    return image.resize((size, size), resample)
