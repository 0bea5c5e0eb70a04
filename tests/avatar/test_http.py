"""`GET|HEAD /avatar/<hash>` through the wire: lookups, sizes, defaults, fallback and caching."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from pcloud.testing import RunningServer
from tests.avatar.pictures import BLUE, GREEN, RED, fetch, md5, near, plain, set_avatar, sha256
from tests.cli.test_admin import Cli

ALICE = "alice@example.org"
STRANGER = "stranger@elsewhere.test"


@pytest.fixture
def alice(server: RunningServer, tmp_path: Path) -> RunningServer:
    """A server where alice has a red picture."""
    server.add_user(ALICE)
    set_avatar(server, ALICE, plain(RED), tmp_path)
    return server


@pytest.mark.parametrize(
    "name",
    [md5(ALICE), sha256(ALICE), md5(ALICE).upper(), sha256(ALICE) + ".png", md5(ALICE) + ".jpg"],
)
def test_md5_and_sha256_lookups(alice: RunningServer, name: str) -> None:
    reply = fetch(alice, f"/avatar/{name}")
    assert reply.image().size == (80, 80)  # the default size
    assert near(reply.colour(), RED)


def test_the_hash_of_the_address_as_typed_is_lower_cased_first(alice: RunningServer) -> None:
    assert near(fetch(alice, f"/avatar/{md5(ALICE)}").colour(), RED)
    # A client that forgets to lower-case hashes another string: that is another address.
    assert fetch(alice, f"/avatar/{md5('Alice@Example.org')}?d=404").status == 404


@pytest.mark.parametrize(
    ("query", "size"), [("s=1", 1), ("s=512", 512), ("size=37", 37), ("", 80), ("s=080", 80)]
)
def test_sizes_within_bounds(alice: RunningServer, query: str, size: int) -> None:
    for name in (md5(ALICE), "0" * 32):  # a stored picture, and a generated default
        assert fetch(alice, f"/avatar/{name}?{query}").image().size == (size, size)


@pytest.mark.parametrize("value", ["0", "513", "abc", "", "-1", "1.5", "1e2", "%D9%A3", "99999999"])
def test_sizes_out_of_bounds_are_400(alice: RunningServer, value: str) -> None:
    for parameter in ("s", "size"):
        reply = fetch(alice, f"/avatar/{md5(ALICE)}?{parameter}={value}")
        assert reply.status == 400, (parameter, value)
        assert b"size must be a number from 1 to 512" in reply.body


@pytest.mark.parametrize(
    "name",
    [
        "0" * 31,
        "0" * 33,
        "0" * 63,
        "0" * 65,
        "g" * 32,
        "0" * 32 + ".exe",
        "0" * 32 + ".",
        "%2e%2e%2f" + "0" * 32,
        "alice@example.org",
        "0" * 32 + "%00",
    ],
)
def test_bad_hashes_are_400(server: RunningServer, name: str) -> None:
    reply = fetch(server, f"/avatar/{name}")
    assert reply.status == 400
    assert b"32 (MD5) or 64 (SHA-256) hex digits" in reply.body


GENERATED = ["mp", "mm", "identicon", "monsterid", "wavatar", "retro", "robohash", "pagan"]


@pytest.mark.parametrize("mode", [*GENERATED, "blank", "IDENTICON"])
def test_each_generated_default_is_a_picture_of_the_size_asked(
    server: RunningServer, mode: str
) -> None:
    unknown = sha256(STRANGER)
    reply = fetch(server, f"/avatar/{unknown}?d={mode}&s=48")
    assert reply.image().size == (48, 48)
    again = fetch(server, f"/avatar/{unknown}?default={mode}&size=48")
    assert again.body == reply.body  # the same for the same hash


@pytest.mark.parametrize("mode", ["identicon", "monsterid", "wavatar", "retro", "robohash"])
def test_generated_defaults_differ_between_hashes(server: RunningServer, mode: str) -> None:
    pictures = {fetch(server, f"/avatar/{md5(f'u{n}@x.test')}?d={mode}").body for n in range(3)}
    assert len(pictures) == 3


def test_mp_is_the_default_and_is_a_grey_silhouette(server: RunningServer) -> None:
    implicit = fetch(server, f"/avatar/{md5(STRANGER)}")
    assert implicit.body == fetch(server, f"/avatar/{md5(STRANGER)}?d=mp").body
    image = implicit.image().convert("RGB")
    corner, centre = image.getpixel((2, 2)), image.getpixel((40, 25))
    assert isinstance(corner, tuple) and isinstance(centre, tuple)
    assert len(set(corner)) == 1 and len(set(centre)) == 1  # greys
    assert centre[0] > corner[0]  # a light head on a darker ground
    # The same for everybody.
    assert fetch(server, f"/avatar/{md5('someone@else.test')}").body == implicit.body


def test_blank_is_transparent(server: RunningServer) -> None:
    image = fetch(server, f"/avatar/{md5(STRANGER)}?d=blank&s=10").image().convert("RGBA")
    assert image.getchannel("A").getextrema() == (0, 0)


def test_default_404_and_redirect(server: RunningServer) -> None:
    reply = fetch(server, f"/avatar/{md5(STRANGER)}?d=404")
    assert reply.status == 404
    target = "https://pictures.example.net/who.png?x=1&y=2"
    reply = fetch(server, f"/avatar/{md5(STRANGER)}?d=https%3A%2F%2Fpictures.example.net"
                          "%2Fwho.png%3Fx%3D1%26y%3D2")  # fmt: skip
    assert reply.status == 302
    assert reply.headers["Location"] == target
    assert fetch(server, f"/avatar/{md5(STRANGER)}?d=http://h.test/a").status == 302


@pytest.mark.parametrize(
    "value", ["javascript:alert(1)", "ftp://h.test/a.png", "//h.test/a.png", "https://", "nope"]
)
def test_other_defaults_are_400(server: RunningServer, value: str) -> None:
    reply = fetch(server, f"/avatar/{md5(STRANGER)}?d={value}")
    assert reply.status == 400
    assert b"default must be 404" in reply.body


def test_a_hosted_picture_wins_over_the_default(alice: RunningServer) -> None:
    assert near(fetch(alice, f"/avatar/{md5(ALICE)}?d=404").colour(), RED)
    assert near(fetch(alice, f"/avatar/{md5(ALICE)}?d=https://h.test/x").colour(), RED)


def test_forcedefault(alice: RunningServer) -> None:
    identicon = fetch(alice, f"/avatar/{md5(ALICE)}?d=identicon&f=y")
    assert not near(identicon.colour(), RED)
    assert identicon.body == fetch(alice, f"/avatar/{md5(ALICE)}?d=identicon&forcedefault=y").body
    assert fetch(alice, f"/avatar/{md5(ALICE)}?d=404&f=y").status == 404
    assert fetch(alice, f"/avatar/{md5(ALICE)}?d=http://h.test/a&f=y").status == 302
    assert near(fetch(alice, f"/avatar/{md5(ALICE)}?d=identicon&f=n").colour(), RED)


def test_per_domain_fallback(alice: RunningServer, tmp_path: Path) -> None:
    server = alice
    server.add_user("bob@example.org")
    cli = Cli(server.data_dir)
    assert cli("alias", "add", "team@example.org", "bob@example.org") == 0
    assert fetch(server, f"/avatar/{md5('bob@example.org')}?d=404").status == 404
    set_avatar(server, "@example.org", plain(BLUE), tmp_path)
    for address in ("bob@example.org", "team@example.org"):  # a user, an alias
        assert near(fetch(server, f"/avatar/{md5(address)}").colour(), BLUE)
        assert near(fetch(server, f"/avatar/{sha256(address)}?d=404").colour(), BLUE)
    assert near(fetch(server, f"/avatar/{md5(ALICE)}").colour(), RED)  # her own wins
    # A user added while the server runs finds the fallback at once.
    server.add_user("carol@example.org")
    assert near(fetch(server, f"/avatar/{md5('carol@example.org')}").colour(), BLUE)
    # Without her own, alice gets the domain's; strangers never do.
    assert cli("avatar", "del", ALICE) == 0
    assert near(fetch(server, f"/avatar/{md5(ALICE)}").colour(), BLUE)
    assert fetch(server, f"/avatar/{md5('nobody@example.org')}?d=404").status == 404
    assert fetch(server, f"/avatar/{md5(STRANGER)}?d=404").status == 404
    assert cli("avatar", "del", "@example.org") == 0
    assert fetch(server, f"/avatar/{md5('bob@example.org')}?d=404").status == 404


def test_a_second_hosted_domain_has_its_own_fallback(server: RunningServer, tmp_path: Path) -> None:
    cli = Cli(server.data_dir)
    assert cli("domain", "add", "example.net") == 0
    server.add_user("dan@example.net")
    server.add_user("erin@example.org")
    set_avatar(server, "@example.net", plain(GREEN), tmp_path)
    assert near(fetch(server, f"/avatar/{md5('dan@example.net')}").colour(), GREEN)
    assert fetch(server, f"/avatar/{md5('erin@example.org')}?d=404").status == 404


def test_caching_headers_and_conditional_requests(alice: RunningServer, tmp_path: Path) -> None:
    path = f"/avatar/{md5(ALICE)}?s=64"
    first = fetch(alice, path)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 10
    assert first.headers["Cache-Control"] == "public, max-age=300"
    assert fetch(alice, path).headers["ETag"] == etag  # stable
    assert fetch(alice, f"/avatar/{md5(ALICE)}?s=65").headers["ETag"] != etag  # per size
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        unchanged = fetch(alice, path, headers={"If-None-Match": header})
        assert unchanged.status == 304, header
        assert unchanged.body == b""
        assert unchanged.headers["ETag"] == etag
    assert fetch(alice, path, headers={"If-None-Match": '"other"'}).status == 200
    # A new picture: a new tag, and the old one no longer matches.
    set_avatar(alice, ALICE, plain(BLUE), tmp_path)
    changed = fetch(alice, path, headers={"If-None-Match": etag})
    assert changed.status == 200
    assert near(changed.colour(), BLUE)
    assert changed.headers["ETag"] != etag
    # Generated defaults carry tags too.
    default = fetch(alice, f"/avatar/{md5(STRANGER)}?d=retro")
    tag = default.headers["ETag"]
    assert (
        fetch(alice, f"/avatar/{md5(STRANGER)}?d=retro", headers={"If-None-Match": tag}).status
        == 304
    )


def test_head(alice: RunningServer) -> None:
    for name in (md5(ALICE), md5(STRANGER)):
        get = fetch(alice, f"/avatar/{name}?s=100")
        head = fetch(alice, f"/avatar/{name}?s=100", method="HEAD")
        assert head.status == 200
        assert head.body == b""
        assert head.headers["Content-Length"] == str(len(get.body))
        assert head.headers["ETag"] == get.headers["ETag"]
        assert head.headers["Content-Type"] == "image/png"
    assert fetch(alice, f"/avatar/{md5(STRANGER)}?d=404", method="HEAD").status == 404
    assert fetch(alice, "/avatar/nothex", method="HEAD").status == 400


def test_other_methods_are_not_allowed(alice: RunningServer) -> None:
    assert fetch(alice, f"/avatar/{md5(ALICE)}", method="POST").status == 405
    assert fetch(alice, f"/avatar/{md5(ALICE)}", method="DELETE").status == 405
    assert fetch(alice, f"/avatar/{md5(ALICE)}").status == 200


async def test_concurrent_clients_get_the_same_picture(alice: RunningServer) -> None:
    url = alice.url(f"/avatar/{sha256(ALICE)}?s=200&d=robohash")
    async with aiohttp.ClientSession() as session:

        async def one() -> bytes:
            async with session.get(url, ssl=alice.ssl_context()) as response:
                assert response.status == 200
                return await response.read()

        bodies = await asyncio.gather(*(one() for _ in range(20)))
    assert len(set(bodies)) == 1
