"""vCards (XEP-0054) through the wire with slixmpp's xep_0054: one's own set and got, another's
got, the photo kept in (and read from) pcloud's avatar store."""

from __future__ import annotations

from pcloud.testing import RunningServer
from tests.avatar.pictures import GREEN, near, plain
from tests.xmpp.conftest import Connect
from tests.xmpp.test_avatars import colour, http_colour
from tests.xmpp.test_pep import ALICE, BOB, refused


async def test_vcards_with_photos_from_the_avatar_store(
    server: RunningServer, connect: Connect
) -> None:
    alice = await connect(ALICE)
    bob = await connect(BOB)
    for client in (alice, bob):
        client.xmpp.register_plugin("xep_0054")
    vcards = alice.xmpp.plugin["xep_0054"]
    card = vcards.make_vcard()
    card["FN"] = "Alice Liddell"
    card["NICKNAME"] = "alice"
    card["PHOTO"]["TYPE"] = "image/png"
    card["PHOTO"]["BINVAL"] = plain(GREEN)
    await vcards.publish_vcard(card)
    for reader in (alice, bob):
        got = (await reader.xmpp.plugin["xep_0054"].get_vcard(ALICE, cached=False))["vcard_temp"]
        assert got["FN"] == "Alice Liddell" and got["NICKNAME"] == ["alice"]
        assert near(colour(got["PHOTO"]["BINVAL"]), GREEN)
    assert near(await http_colour(server, ALICE), GREEN)  # type: ignore[arg-type]
    # kept on disk without the photo, which the avatar store keeps
    stored = server.services.xmpp.vcard(ALICE)
    assert stored is not None and "Alice Liddell" in stored and "PHOTO" not in stored
    # another's vCard cannot be set; one too large is refused
    refusal = await refused(bob.xmpp.plugin["xep_0054"].publish_vcard(card, jid=ALICE))
    assert refusal[0] == "forbidden"
    card["FN"] = "x" * 40_000
    assert (await refused(vcards.publish_vcard(card)))[0] == "not-acceptable"
    # an empty PHOTO removes the picture
    card = vcards.make_vcard()
    card["FN"] = "Alice"
    card.xml.append(card["PHOTO"].xml)
    card["PHOTO"].xml.clear()
    await vcards.publish_vcard(card)
    assert await http_colour(server, ALICE) == 404
