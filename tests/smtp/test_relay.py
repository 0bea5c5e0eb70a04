"""The MX listener is never an open relay: classic relay tricks are refused, nothing is stored."""

from __future__ import annotations

import pytest

from pcloud.testing import RunningServer
from tests.smtp.sessions import mx, reply

PASSWORD = "correct horse battery"
STRANGER = "<bob@other.net>"

# (sender, recipient): each must be refused, unauthenticated, on the port-25 listener.
RELAY_TRICKS = [
    pytest.param(STRANGER, "<user@other.net>", id="external-domain"),
    pytest.param(STRANGER, "user@other.net", id="no-angle-brackets"),
    pytest.param(STRANGER, "<USER@OTHER.NET>", id="upper-case-external"),
    pytest.param(STRANGER, "<user%other.net@example.org>", id="percent-hack"),
    pytest.param(STRANGER, '<"user%other.net"@example.org>', id="quoted-percent-hack"),
    pytest.param(STRANGER, '<"user@other.net"@example.org>', id="quoted-at"),
    pytest.param(STRANGER, "<@example.org:user@other.net>", id="source-route"),
    pytest.param(STRANGER, "<@example.org,@other.net:user@third.net>", id="source-route-2-hops"),
    pytest.param(STRANGER, "<other.net!user@example.org>", id="bang-path"),
    pytest.param(STRANGER, "<user!other.net@example.org>", id="bang-path-reversed"),
    pytest.param(STRANGER, "<user@other.net.>", id="trailing-dot"),
    pytest.param(STRANGER, "<user@[127.0.0.1]>", id="ip-literal-loopback"),
    pytest.param(STRANGER, "<user@[192.0.2.1]>", id="ip-literal-elsewhere"),
    pytest.param(STRANGER, "<user@example.org.other.net>", id="hosted-looking-suffix"),
    pytest.param(STRANGER, "<user@otherexample.org>", id="hosted-looking-prefix"),
    pytest.param(STRANGER, "<postmaster@other.net>", id="postmaster-elsewhere"),
    pytest.param("<>", "<user@other.net>", id="null-sender"),
    pytest.param("<alice@example.org>", "<user@other.net>", id="spoofed-hosted-sender"),
    pytest.param(f"{STRANGER} SMTPUTF8", "<user@exämple.org>", id="idn-domain"),
    pytest.param(STRANGER, "<user@other.net@example.org>", id="double-at"),
    pytest.param(STRANGER, "<user>", id="bare-local-name"),
]


@pytest.fixture
def hosted(server: RunningServer) -> RunningServer:
    server.add_user("alice@example.org", PASSWORD)
    return server


def stored(server: RunningServer) -> dict[str, int]:
    """Messages per account, over all of its mailboxes."""
    counts = {}
    for user in server.services.directory.users():
        account = server.services.mail.account(user.address)
        counts[user.address] = sum(len(account.messages(box.name)) for box in account.mailboxes())
    return counts


@pytest.mark.parametrize(("sender", "recipient"), RELAY_TRICKS)
async def test_relay_trick_is_refused(hosted: RunningServer, sender: str, recipient: str) -> None:
    session = await mx(hosted)
    mail = await reply(session, f"MAIL FROM:{sender}")
    if mail.startswith("250"):
        rcpt = await reply(session, f"RCPT TO:{recipient}")
        assert rcpt.startswith("5"), rcpt
        data = await reply(session, "DATA")
        assert data.startswith("5"), data
    else:
        assert mail[:1] in ("4", "5"), mail
    assert (await reply(session, "NOOP")).startswith("250")
    await session.expect("221", "QUIT")
    await session.close()
    assert stored(hosted) == {"admin@example.org": 0, "alice@example.org": 0}


@pytest.mark.parametrize(
    ("recipient", "account"),
    [
        ("<alice@example.org>", "alice@example.org"),
        ("<Alice@EXAMPLE.org>", "alice@example.org"),
        ("<postmaster@example.org>", "admin@example.org"),  # no such user or alias
    ],
)
async def test_hosted_recipient_is_accepted_and_stored(
    hosted: RunningServer, recipient: str, account: str
) -> None:
    session = await mx(hosted)
    assert (await reply(session, f"MAIL FROM:{STRANGER}")).startswith("250")
    assert (await reply(session, f"RCPT TO:{recipient}")).startswith("250")
    assert (await reply(session, "DATA")).startswith("354")
    await session.send("Subject: control\r\n\r\nHello.")
    assert (await reply(session, ".")).startswith("250")
    await session.expect("221", "QUIT")
    await session.close()
    assert stored(hosted)[account] == 1
    assert sum(stored(hosted).values()) == 1


async def test_a_hosted_recipient_does_not_carry_a_refused_one(hosted: RunningServer) -> None:
    session = await mx(hosted)
    assert (await reply(session, f"MAIL FROM:{STRANGER}")).startswith("250")
    assert (await reply(session, "RCPT TO:<alice@example.org>")).startswith("250")
    assert (await reply(session, "RCPT TO:<user@other.net>")).startswith("5")
    assert (await reply(session, "DATA")).startswith("354")
    await session.send("Subject: piggyback\r\n\r\nHello.")
    assert (await reply(session, ".")).startswith("250")
    await session.close()
    assert stored(hosted) == {"admin@example.org": 0, "alice@example.org": 1}
