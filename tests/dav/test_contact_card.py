"""The public contact card: the directory's flag, `pcloud user card`, and
`GET /contact/<address>.vcf` through the wire."""

from __future__ import annotations

import io
import ssl
import urllib.error
import urllib.request

import pytest
import vobject  # type: ignore[import-untyped]

from pcloud.cli import Context, run
from pcloud.directory import DirectoryError
from pcloud.testing import RunningServer

ALICE = "alice@example.org"


def get(server: RunningServer, path: str) -> tuple[int, str, bytes]:
    """An unauthenticated GET: (status, content type, body)."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    try:
        with urllib.request.urlopen(server.url(path), context=context, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def card_command(server: RunningServer, address: str, state: str) -> tuple[int, str]:
    out = io.StringIO()
    context = Context(out, io.StringIO(), io.StringIO())
    status = run(["user", "card", address, state, "--data", str(server.data_dir)], context)
    return status, out.getvalue()


def test_the_card_is_public_only_once_published(server: RunningServer) -> None:
    server.add_user(ALICE, display_name="Liddell, Alice")
    server.add_user("bob@example.org")
    not_found = get(server, f"/contact/{ALICE}.vcf")
    assert not_found[0] == 404
    assert card_command(server, ALICE, "on") == (
        0,
        f"contact card of {ALICE}: public at /contact/{ALICE}.vcf\n",
    )
    status, content_type, body = get(server, "/contact/Alice@Example.org.vcf")
    assert (status, content_type) == (200, "text/vcard; charset=utf-8")
    card = vobject.readOne(body.decode())
    assert card.version.value == "4.0"
    assert card.fn.value == "Liddell, Alice"
    assert card.email.value == ALICE
    assert card.kind.value == "individual"
    assert card.uid.value.startswith("urn:uuid:")
    # Nothing tells a user who has not published from no user at all.
    for address in ("bob@example.org", "nobody@example.org", "not%20an%20address", "x"):
        assert get(server, f"/contact/{address}.vcf") == not_found
    assert card_command(server, ALICE, "off") == (0, f"contact card of {ALICE}: not public\n")
    assert get(server, f"/contact/{ALICE}.vcf") == not_found


def test_the_local_part_when_there_is_no_display_name(server: RunningServer) -> None:
    server.add_user("carol@example.org")
    server.services.directory.publish_contact_card("carol@example.org", True)
    _, _, body = get(server, "/contact/carol@example.org.vcf")
    assert vobject.readOne(body.decode()).fn.value == "carol"


def test_the_directory_flag(server: RunningServer) -> None:
    directory = server.services.directory
    server.add_user(ALICE)
    assert not directory.publishes_contact_card(ALICE)
    directory.publish_contact_card(ALICE, True)
    assert directory.publishes_contact_card(ALICE)
    assert not directory.publishes_contact_card("nobody@example.org")
    with pytest.raises(DirectoryError):
        directory.publish_contact_card("nobody@example.org", True)
    assert card_command(server, "nobody@example.org", "on")[0] == 1
