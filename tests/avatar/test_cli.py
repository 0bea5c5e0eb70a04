"""`pcloud avatar set|del|list`: what is accepted, what is refused, and what is on disk."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from PIL import Image

from pcloud.store.avatars import MAX_UPLOAD_BYTES
from pcloud.testing import RunningServer
from tests.avatar.pictures import BLUE, GREEN, RED, encoded, fetch, md5, near, plain, png_declaring
from tests.cli.test_admin import PASSWORD, Cli

ALICE = "alice@example.org"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "data")
    assert cli("init", "--domain", "example.org") == 0
    assert cli("user", "add", ALICE, "--password", PASSWORD) == 0
    return cli


def stored(cli: Cli, name: str) -> Path:
    return cli.data / "avatars" / name


def everything_in(cli: Cli) -> list[str]:
    folder = cli.data / "avatars"
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def upload(tmp_path: Path, data: bytes, name: str = "picture") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    ("kind", "mode", "options"),
    [("PNG", "RGBA", {}), ("JPEG", "RGB", {"quality": 95}), ("GIF", "P", {}), ("WEBP", "RGB", {})],
)
def test_each_format_is_accepted_and_stored_as_a_square_png(
    cli: Cli, tmp_path: Path, kind: str, mode: str, options: dict[str, object]
) -> None:
    rgb = Image.new("RGB", (900, 600), GREEN)
    rgb.paste(Image.new("RGB", (300, 600), RED), (300, 0))  # the middle third red
    source = rgb.convert(mode, palette=Image.Palette.ADAPTIVE)
    assert cli("avatar", "set", ALICE, upload(tmp_path, encoded(source, kind, **options))) == 0
    assert f"served at /avatar/{md5(ALICE)} and /avatar/" in cli.out
    path = stored(cli, "addresses/alice@example.org.png")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (512, 512)  # the centred square, scaled down
        rgb_image = image.convert("RGB")
        centre, edge = rgb_image.getpixel((256, 256)), rgb_image.getpixel((3, 256))
    assert isinstance(centre, tuple) and isinstance(edge, tuple)
    assert near(centre, RED, 24) and near(edge, GREEN, 24)
    assert everything_in(cli) == ["addresses/alice@example.org.png"]


def test_transparency_is_kept_and_small_pictures_are_not_enlarged(cli: Cli, tmp_path: Path) -> None:
    assert cli("avatar", "set", ALICE, upload(tmp_path, encoded(Image.new("LA", (40, 30))))) == 0
    with Image.open(stored(cli, "addresses/alice@example.org.png")) as image:
        assert image.size == (30, 30)
        assert image.mode == "RGBA"


def test_a_photo_is_turned_upright(cli: Cli, tmp_path: Path) -> None:
    photo = Image.new("RGB", (200, 100), RED)
    photo.paste(Image.new("RGB", (200, 50), BLUE), (0, 50))  # red above blue, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: show it turned a quarter clockwise
    data = encoded(photo, "JPEG", quality=95, exif=exif.tobytes())
    assert cli("avatar", "set", ALICE, upload(tmp_path, data)) == 0
    with Image.open(stored(cli, "addresses/alice@example.org.png")) as image:
        upright = image.convert("RGB")
        left, right = upright.getpixel((10, 50)), upright.getpixel((90, 50))
    assert isinstance(left, tuple) and isinstance(right, tuple)
    assert near(left, BLUE, 30) and near(right, RED, 30)  # the top went right


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello, this is text\n", "is not a picture in one of PNG, JPEG, GIF, WEBP"),
        (b"", "is not a picture"),
        (b"%PDF-1.7\n" + b"0" * 100, "is not a picture"),
        (encoded(Image.new("RGB", (8, 8)), "BMP"), "is not a picture"),  # a format not taken
        (plain(RED)[:60], "cannot be read"),  # a truncated PNG
        (encoded(Image.new("RGB", (64, 64)), "JPEG")[:200], "cannot be read"),
    ],
)
def test_what_is_not_an_accepted_picture_is_refused(
    cli: Cli, tmp_path: Path, data: bytes, message: str
) -> None:
    assert cli("avatar", "set", ALICE, upload(tmp_path, data)) == 2
    assert message in cli.err
    assert cli.out == ""
    assert not (cli.data / "avatars").exists() or everything_in(cli) == []


def test_decompression_bombs_are_refused(cli: Cli, tmp_path: Path) -> None:
    # Pillow made, 1 bit per pixel: 12 KB on disk, 100 M pixels decoded (Pillow's warning).
    made = encoded(Image.new("1", (10_000, 10_000)))
    assert len(made) < 100_000
    bombs = [
        made,
        png_declaring(100_000, 100_000),  # past twice Pillow's bound: its error
        png_declaring(7_000, 7_000),  # 49 M: under Pillow's bound, over ours
        png_declaring(1, 2**31 - 1),
    ]
    for bomb in bombs:
        assert cli("avatar", "set", ALICE, upload(tmp_path, bomb)) == 2
        assert "pixels" in cli.err and "an avatar may have at most" in cli.err, cli.err
    assert not (cli.data / "avatars").exists() or everything_in(cli) == []


def test_a_file_over_the_byte_bound_is_refused(cli: Cli, tmp_path: Path) -> None:
    big = plain(RED) + b"\0" * MAX_UPLOAD_BYTES  # a valid PNG, then padding
    assert cli("avatar", "set", ALICE, upload(tmp_path, big)) == 2
    assert "larger than 10 MiB" in cli.err
    assert cli("avatar", "set", ALICE, upload(tmp_path, plain(RED) + b"\0" * 1000)) == 0


def test_who_may_have_a_picture(cli: Cli, tmp_path: Path) -> None:
    picture = upload(tmp_path, plain(RED))
    assert cli("avatar", "set", "nobody@example.org", picture) == 1
    assert "nobody@example.org is neither a user nor an alias here" in cli.err
    assert cli("avatar", "set", "someone@elsewhere.test", picture) == 1
    assert "domain elsewhere.test is not hosted here" in cli.err
    assert cli("avatar", "set", "@elsewhere.test", picture) == 1
    assert cli("avatar", "set", "not an address", picture) == 2
    assert "is not a valid mail address" in cli.err
    assert cli("avatar", "set", "@bad_domain!", picture) == 2
    assert cli("avatar", "set", ALICE, str(tmp_path / "missing.png")) == 1
    assert "cannot read" in cli.err and "No such file" in cli.err
    assert cli("avatar", "set", ALICE) == 2  # no file named
    assert not (cli.data / "avatars").exists()
    assert cli("alias", "add", "team@example.org", ALICE) == 0
    assert cli("avatar", "set", "Team@Example.ORG", picture) == 0
    assert cli("avatar", "set", "@Example.org", picture) == 0
    assert "avatar of example.org set" in cli.out
    assert everything_in(cli) == ["addresses/team@example.org.png", "domains/example.org.png"]


def test_delete_and_list(cli: Cli, tmp_path: Path) -> None:
    picture = upload(tmp_path, plain(RED))
    assert cli("avatar", "set", ALICE, picture) == 0
    assert cli("avatar", "set", "@example.org", picture) == 0
    assert cli("avatar", "list") == 0
    assert cli.out == "alice@example.org\n@example.org\n"
    assert cli("avatar", "del", "ALICE@example.org") == 0
    assert cli.out == "avatar of alice@example.org deleted\n"
    assert cli("avatar", "del", ALICE) == 1
    assert "alice@example.org has no avatar" in cli.err
    assert cli("avatar", "del", "@example.org") == 0
    assert everything_in(cli) == []
    assert cli("avatar", "list") == 0 and cli.out == ""


def test_set_while_the_server_runs_is_served_at_once(server: RunningServer, tmp_path: Path) -> None:
    server.add_user(ALICE)
    cli = Cli(server.data_dir)
    assert fetch(server, f"/avatar/{md5(ALICE)}?d=404").status == 404
    for colour in (RED, BLUE):
        assert cli("avatar", "set", ALICE, upload(tmp_path, plain(colour))) == 0
        assert near(fetch(server, f"/avatar/{md5(ALICE)}").colour(), colour)
    # A refused upload leaves the picture served as it was.
    assert cli("avatar", "set", ALICE, upload(tmp_path, b"not a picture")) == 2
    assert near(fetch(server, f"/avatar/{md5(ALICE)}").colour(), BLUE)
    assert cli("avatar", "del", ALICE) == 0
    assert fetch(server, f"/avatar/{md5(ALICE)}?d=404").status == 404
    assert os.listdir(server.data_dir / "avatars" / "addresses") == []


def test_signed_in_users_set_nothing_and_delete_only_their_own(cli: Cli, tmp_path: Path) -> None:
    from pcloud.cli import Context, run
    from pcloud.directory import Principal

    picture = upload(tmp_path, plain(RED))
    assert cli("user", "add", "bob@example.org", "--password", PASSWORD) == 0
    for owner in (ALICE, "bob@example.org", "@example.org"):
        assert cli("avatar", "set", owner, picture) == 0

    def remote(principal: Principal, *argv: str) -> tuple[int, str]:
        err = io.StringIO()
        context = Context(io.StringIO(), err, principal=principal, data_dir=cli.data)
        return run(list(argv), context), err.getvalue()

    admin = Principal("admin@example.org", True, "password")
    alice = Principal(ALICE, False, "password")
    # FILE names a file of the server's machine: not for the SSH shell, even an administrator's.
    status, err = remote(admin, "avatar", "set", "@example.org", "/etc/hostname")
    assert status == 1 and "is run only on the server's own command line" in err
    status, err = remote(alice, "avatar", "del", "bob@example.org")
    assert status == 1 and "you may manage only your own account" in err
    assert remote(alice, "avatar", "del", "@example.org")[0] == 1
    assert remote(alice, "avatar", "del", ALICE)[0] == 0
    assert remote(admin, "avatar", "del", "bob@example.org")[0] == 0
    assert everything_in(cli) == ["domains/example.org.png"]
