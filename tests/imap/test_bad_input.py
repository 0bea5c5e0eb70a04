"""Bad IMAP input gets BAD or NO (or a clean close with BYE), never a traceback; the session
survives what it can, nothing is half-stored, and the messages already stored stay as they were."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import pcloud.imap.server
from pcloud.testing import RunningServer, running_server
from tests.imap.conftest import PASSWORD, message
from tests.transcript import Transcript

ALICE = "alice@example.org"
APPENDLIMIT = 100_000
TIMEOUT = 5.0
# What ends a reply: a continuation request, an untagged BAD or BYE, or a tagged status.
FINAL = re.compile(r"\+|\* (BAD|BYE) |[^*\s]+ (OK|NO|BAD) ")
INJECTED = b"x1 CREATE Injected\r\n"

Snapshot = list[tuple[int, tuple[str, ...], bytes]]


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[RunningServer]:
    """A server with a small APPENDLIMIT, and alice."""
    settings = {"smtp": {"max_message_bytes": APPENDLIMIT}}
    with running_server(tmp_path / "data", settings=settings) as server:
        server.add_user(ALICE, PASSWORD)
        yield server


def snapshot(server: RunningServer) -> Snapshot:
    """(UID, flags, bytes on disk) of each message in alice's INBOX."""
    account = server.services.mail.account(ALICE)
    return [
        (m.uid, m.flags, account.message_file("INBOX", m.uid).read_bytes())
        for m in account.messages("INBOX")
    ]


@pytest.fixture
def stored(limited: RunningServer) -> Snapshot:
    """Three messages in alice's INBOX, with flags, as they are before the bad input."""
    account = limited.services.mail.account(ALICE)
    account.deliver(message("First"), flags=["\\Seen"])
    account.deliver(message("Second", body="x" * 5_000 + "\r\n"), flags=["\\Flagged", "$Work"])
    account.deliver(message("Third"))
    return snapshot(limited)


def mailbox_names(server: RunningServer) -> list[str]:
    return sorted(mailbox.name for mailbox in server.services.mail.account(ALICE).mailboxes())


async def connect(server: RunningServer, listener: str = "imaps") -> Transcript:
    tls = server.ssl_context() if listener == "imaps" else None
    session = await Transcript.open("127.0.0.1", server.port(listener), tls=tls, timeout=TIMEOUT)
    await session.expect("* OK")
    return session


async def selected(server: RunningServer) -> Transcript:
    """A session signed in as alice with INBOX selected."""
    session = await connect(server)
    await session.expect("a OK", f'a LOGIN {ALICE} "{PASSWORD}"')
    await session.expect("b OK [READ-WRITE]", "b SELECT INBOX")
    return session


async def answer(session: Transcript, data: bytes) -> list[str]:
    """Send one raw line; the lines read up to the reply that ends it (FINAL), that one last."""
    session.writer.write(data + b"\r\n")
    lines: list[str] = []
    while not lines or not FINAL.match(lines[-1]):
        lines += await session.expect("")
    return lines


async def until_closed(session: Transcript) -> list[str]:
    """The lines the server sends before it closes the connection."""
    lines = []
    while True:
        try:
            raw = await asyncio.wait_for(session.reader.readline(), TIMEOUT)
        except ConnectionError:
            break
        if not raw:
            break
        lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
    await session.close()
    return lines


def status(lines: list[str]) -> str:
    """The tag and status of a reply's last line ("t1 BAD"), to compare without its text."""
    return " ".join(lines[-1].split(" ", 2)[:2])


async def noop_works(session: Transcript) -> None:
    assert (await answer(session, b"n1 NOOP"))[-1] == "n1 OK NOOP completed"


def test_unbalanced_parentheses_get_bad(limited: RunningServer, stored: Snapshot) -> None:
    commands = [
        "FETCH 1 (FLAGS UID", "FETCH 1 FLAGS)", "FETCH 1 ((FLAGS)", "FETCH 1 (FLAGS))",
        "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT])", "FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)",
        "FETCH 1 ()", "FETCH 1 )(", "UID FETCH 1:* (FLAGS", "STORE 1 FLAGS (\\Seen",
        "STORE 2 FLAGS \\Seen)", "STORE 1:* -FLAGS ((\\Seen)", "SEARCH (ALL", "SEARCH ALL)",
        "SEARCH (SEEN (OR FLAGGED DRAFT)", "SEARCH ()", "SEARCH )", "UID SEARCH (((UNSEEN))",
        "SEARCH " + "(" * 10_000 + "ALL" + ")" * 10_000, "SEARCH " + "NOT " * 10_000 + "ALL",
        "SEARCH " + "OR ALL " * 5_000 + "ALL",
    ]  # fmt: skip

    async def talk() -> None:
        session = await selected(limited)
        for n, command in enumerate(commands):
            lines = await answer(session, f"t{n} {command}".encode())
            assert (len(lines), status(lines)) == (1, f"t{n} BAD"), (command[:40], lines)
        await noop_works(session)
        await session.close()

    limited.call(talk())
    assert snapshot(limited) == stored


def test_bad_literal_counts_get_bad_without_a_continuation(
    limited: RunningServer, stored: Snapshot
) -> None:
    counts = [b"{99999999999}", b"{99999999999999999999999999}", b"{-1}", b"{abc}", b"{}",
              b"{1 2}", b"{0x10}", b"{ 5}", b"{5+1}", b"~{}"]  # fmt: skip

    async def talk() -> None:
        before = await connect(limited)  # refused before signing in too, where bounds are tighter
        for count in [b"{99999999999}", b"{300000}", b"{-1}"]:
            assert await answer(before, b"u1 LOGIN " + count) == [
                "u1 BAD " + ("malformed literal" if b"-" in count else "Literal too large")
            ]
        await noop_works(before)
        await before.close()
        session = await selected(limited)
        for n, count in enumerate(counts):
            lines = await answer(session, b"t%d CREATE " % n + count)
            assert (len(lines), status(lines)) == (1, f"t{n} BAD"), (count, lines)
        assert await answer(session, b"c1 CREATE {5}") == ["+ Ready for literal data"]
        assert (await answer(session, b"Fine1"))[-1] == "c1 OK CREATE completed"
        await noop_works(session)
        await session.close()

    names = mailbox_names(limited)
    limited.call(talk())
    assert mailbox_names(limited) == sorted([*names, "Fine1"])
    assert snapshot(limited) == stored


@pytest.mark.parametrize(
    "line",
    [
        b"t1 CREATE {999999999+}",
        b"t1 APPEND INBOX {999999999+}",
        b"t1 CREATE {99999999999999999999999999+}",
        b"t1 CREATE {-1+}",
        b"t1 CREATE {abc+}",
        b"t1 CREATE {5++}",
        b"t1 CREATE " + b"y" * 70_000 + b" {20+}",  # on a line too long to read
    ],
    ids=["huge", "huge-append", "beyond-2^63", "negative", "not-a-number", "two-plus", "overlong"],
)
def test_a_non_synchronizing_literal_that_cannot_be_read_closes_the_connection(
    limited: RunningServer, stored: Snapshot, line: bytes
) -> None:
    """It is on its way already: its bytes must not be taken for commands (RFC 7888 §4)."""

    async def talk() -> list[str]:
        session = await selected(limited)
        session.writer.write(line + b"\r\n" + INJECTED)
        return await until_closed(session)

    names = mailbox_names(limited)
    lines = limited.call(talk())
    assert status(lines[:1]) == "t1 BAD" and lines[-1].startswith("* BYE"), lines
    assert not any(line.startswith("x1 ") for line in lines)
    assert mailbox_names(limited) == names
    assert snapshot(limited) == stored


def test_a_literal_cut_off_by_a_disconnect_stores_nothing(
    limited: RunningServer, stored: Snapshot
) -> None:
    whole = message("Cut", body="z" * 400 + "\r\n")

    async def talk() -> None:
        session = await selected(limited)
        assert await answer(session, b"t1 APPEND INBOX {%d}" % len(whole)) == [
            "+ Ready for literal data"
        ]
        session.writer.write(whole[:200])
        await session.close()
        session = await selected(limited)
        session.writer.write(b"t2 APPEND INBOX (\\Seen) {%d+}\r\n" % len(whole) + whole[:-1])
        await session.close()
        session = await connect(limited)
        assert await answer(session, b"u1 LOGIN {17}") == ["+ Ready for literal data"]
        session.writer.write(b"alice@")
        await session.close()
        session = await selected(limited)
        await noop_works(session)
        await session.close()

    limited.call(talk())
    assert snapshot(limited) == stored


def test_an_append_over_the_appendlimit_gets_no_toobig_and_stores_nothing(
    limited: RunningServer, stored: Snapshot
) -> None:
    big = message("Big", body="b" * (APPENDLIMIT - 200))
    exact = big + b"b" * (APPENDLIMIT - len(big))
    assert len(exact) == APPENDLIMIT

    async def talk() -> None:
        session = await connect(limited)
        signed_in = await answer(session, f'a LOGIN {ALICE} "{PASSWORD}"'.encode())
        assert f"APPENDLIMIT={APPENDLIMIT}" in signed_in[-1]
        for n, flags in enumerate(["", "(\\Seen) ", '(\\Seen) "22-Nov-2026 10:00:00 +0000" ']):
            command = b"t%d APPEND INBOX %s{%d}" % (n, flags.encode(), APPENDLIMIT + 1)
            lines = await answer(session, command)  # refused before the client sends a byte
            assert (len(lines), status(lines)) == (1, f"t{n} NO"), lines
            assert "[TOOBIG]" in lines[0]
        assert status(await answer(session, b"t4 APPEND INBOX {5000000000}")) == "t4 NO"
        sent = b"t5 APPEND INBOX {%d+}\r\n" % (APPENDLIMIT + 1) + exact + b"b"
        lines = await answer(session, sent)
        assert status(lines) == "t5 NO" and "[TOOBIG]" in lines[-1], lines
        await noop_works(session)
        assert await answer(session, b"t6 APPEND INBOX {%d}" % APPENDLIMIT) == [
            "+ Ready for literal data"
        ]
        assert status(await answer(session, exact)) == "t6 OK"
        await session.close()

    limited.call(talk())
    after = snapshot(limited)
    assert after[:3] == stored and [data for _, _, data in after[3:]] == [exact]


def test_invalid_sequence_sets_get_bad(limited: RunningServer, stored: Snapshot) -> None:
    bad = [
        "FETCH 0 FLAGS", "FETCH 1: FLAGS", "FETCH *: FLAGS", "FETCH :1 FLAGS", "FETCH a FLAGS",
        "FETCH 1,,2 FLAGS", "FETCH 1:2:3 FLAGS", "FETCH -1 FLAGS", "FETCH 1.5 FLAGS",
        "FETCH 4294967296 FLAGS", "FETCH 1:4294967296 FLAGS", "FETCH 99999999999999999999999 FLAGS",
        "FETCH 4 FLAGS", "FETCH 2:4 FLAGS", "FETCH 4294967295 FLAGS", "FETCH 1,4 FLAGS",
        "STORE 4 +FLAGS (\\Deleted)", "STORE 0 +FLAGS (\\Deleted)", "STORE 1,0 FLAGS ()",
        "COPY 4 INBOX", "MOVE 0 INBOX", "SEARCH 0", "SEARCH 1:", "UID FETCH 0 FLAGS",
        "UID FETCH 4294967296 FLAGS", "UID STORE 0:* FLAGS ()", "UID SEARCH UID a",
    ]  # fmt: skip
    # UIDs that do not exist are not an error (RFC 9051 §6.4.8): nothing to answer
    empty = [
        "UID FETCH 99 FLAGS", "UID FETCH 4294967295 FLAGS", "UID FETCH 4:4294967295 FLAGS",
        "UID STORE 99 +FLAGS (\\Deleted)", "UID COPY 99:100 INBOX", "UID MOVE 99 INBOX",
    ]  # fmt: skip

    async def talk() -> None:
        session = await selected(limited)
        for n, command in enumerate(bad):
            lines = await answer(session, f"t{n} {command}".encode())
            assert (len(lines), status(lines)) == (1, f"t{n} BAD"), (command, lines)
        for n, command in enumerate(empty):
            lines = await answer(session, f"u{n} {command}".encode())
            assert (len(lines), status(lines)) == (1, f"u{n} OK"), (command, lines)
        lines = await answer(session, b"v1 FETCH 1:* (FLAGS)")
        assert len(lines) == 4 and status(lines) == "v1 OK"
        await session.close()

    names = mailbox_names(limited)
    limited.call(talk())
    assert snapshot(limited) == stored
    assert mailbox_names(limited) == names


GARBAGE = [
    b"", b" ", b"a1", b"a1 ", b"\xff\xfe\xfd", b"\x00", b"\x00\x00\x00\x00", b"a1 NOOP\x00",
    b"\x00a1 NOOP", b"a\x80 NOOP", b"a1 N\xc3\x96OP", b"a1 NOOP \xff", b"* NOOP", b"+ NOOP",
    b"a1 LOGIN \"alice\x00\" x", b"a1\tNOOP", b"a1  NOOP", b"\r\r\r", b"a1 NOOP\ra2 NOOP",
    b"\x1b[31m", b"a1 \xe2\x80\x8bNOOP", b"(a1) NOOP", b"a1 {5}NOOP", b"}", b"{", b"a1 UID",
    b"a1 UID NOOP", b"a1 XYZZY", b"a1 " + "ü".encode() * 50,
]  # fmt: skip


def test_8bit_and_nul_garbage_gets_bad_and_the_session_survives(
    limited: RunningServer, stored: Snapshot
) -> None:
    async def check(session: Transcript, prefix: bytes) -> None:
        for garbage in GARBAGE:
            lines = await answer(session, prefix + garbage)
            assert len(lines) == 1 and re.fullmatch(r"\S+ BAD \S.*", lines[0]), (garbage, lines)
            assert lines[0].isprintable(), lines  # nothing echoed that is not text
            if prefix:  # a tag that is not one is not echoed
                assert lines[0].startswith("* BAD "), lines
        await noop_works(session)

    async def talk() -> None:
        before = await connect(limited)
        await check(before, b"")
        await before.close()
        session = await selected(limited)
        await check(session, b"")
        await check(session, b"\xc3\xa9")  # a tag that is not one
        await session.close()

    limited.call(talk())
    assert snapshot(limited) == stored


def test_an_overlong_line_gets_bad_and_the_session_survives(
    limited: RunningServer, stored: Snapshot
) -> None:
    long = b"y" * 70_000

    async def talk() -> None:
        session = await selected(limited)
        # the next command right behind it, in the same write: it must not be lost
        session.writer.write(b"t1 NOOP " + long + b"\r\nt2 NOOP\r\n")
        assert await session.expect("t2 ") == ["t1 BAD Line too long", "t2 OK NOOP completed"]
        lines = await answer(session, b"x" * 300_000)
        assert lines == ["* BAD Line too long"]
        lines = await answer(session, b"t3 APPEND INBOX " + long + b" {5}")
        assert lines == ["t3 BAD Line too long"]  # no "+": the client sends nothing more
        lines = await answer(session, b't4 SEARCH SUBJECT "' + long + b'"')
        assert lines == ["t4 BAD Line too long"]
        lines = await answer(session, b"t5 STORE 1:* FLAGS (" + b"\\Deleted " * 8_000 + b")")
        assert lines == ["t5 BAD Line too long"]
        session.writer.write(b"t6 NOOP " + long + b"\r\n" + b"\x00" * 70_000 + b"\r\nt7 NOOP\r\n")
        assert await session.expect("t7 ") == [
            "t6 BAD Line too long",
            "* BAD Line too long",
            "t7 OK NOOP completed",
        ]
        # just within the bound: read and parsed
        lines = await answer(session, b"t8 NOOP " + b"y" * (pcloud.imap.server.MAX_LINE - 20))
        assert lines == ["t8 BAD too many arguments"]
        await noop_works(session)
        await session.close()

    limited.call(talk())
    assert snapshot(limited) == stored


def test_bad_continuation_lines_get_bad(limited: RunningServer, stored: Snapshot) -> None:
    """Lines read inside a command, after a "+": AUTHENTICATE's response and IDLE's DONE."""
    long = b"y" * 70_000

    async def talk() -> None:
        session = await connect(limited)
        for n, response in enumerate([long, b"\xff\x00", b"", b"AGFsaWNl", b"=" * 10]):
            assert await answer(session, b"t%d AUTHENTICATE PLAIN" % n) == ["+ "]
            lines = await answer(session, response)
            assert (len(lines), status(lines)) == (1, f"t{n} BAD"), (response[:20], lines)
        await session.expect("a OK", f'a LOGIN {ALICE} "{PASSWORD}"')
        await session.expect("b OK", "b SELECT INBOX")
        for n, line in enumerate([long, b"\xff\x00", b"", b"DONE DONE", b"i1 NOOP"]):
            assert await answer(session, b"i%d IDLE" % n) == ["+ idling"]
            lines = await answer(session, line)
            assert (len(lines), status(lines)) == (1, f"i{n} BAD"), (line[:20], lines)
        await noop_works(session)
        await session.close()

    limited.call(talk())
    assert snapshot(limited) == stored


def test_commands_in_the_wrong_state_get_bad(limited: RunningServer, stored: Snapshot) -> None:
    before = ["SELECT INBOX", "EXAMINE INBOX", "FETCH 1 FLAGS", "UID FETCH 1 FLAGS",
              "STORE 1 +FLAGS (\\Deleted)", "EXPUNGE", "CLOSE", 'LIST "" *', "IDLE",
              "ENABLE IMAP4rev2", "CREATE Other", "DELETE INBOX", "APPEND INBOX {0+}\r\n",
              "STATUS INBOX (MESSAGES)", "STARTTLS"]  # fmt: skip
    signed_in = ["FETCH 1 FLAGS", "STORE 1:* FLAGS ()", "EXPUNGE", "UID EXPUNGE 1:*", "CLOSE",
                 "UNSELECT", "SEARCH ALL", "COPY 1 INBOX", "MOVE 1:* Trash", "CHECK",
                 f'LOGIN {ALICE} "{PASSWORD}"', "AUTHENTICATE PLAIN", "STARTTLS",
                 "UID NOOP", "UID LOGOUT"]  # fmt: skip

    async def check(session: Transcript, commands: list[str]) -> None:
        for n, command in enumerate(commands):
            lines = await answer(session, f"w{n} {command}".encode())
            assert (len(lines), status(lines)) == (1, f"w{n} BAD"), (command, lines)

    async def talk() -> None:
        session = await connect(limited)
        await check(session, before)
        await session.expect("a OK", f'a LOGIN {ALICE} "{PASSWORD}"')
        await check(session, signed_in)
        await session.expect("b OK", "b SELECT INBOX")
        await check(session, signed_in[10:])
        await noop_works(session)
        await session.close()

    names = mailbox_names(limited)
    limited.call(talk())
    assert snapshot(limited) == stored
    assert mailbox_names(limited) == names


def test_a_command_pipelined_after_starttls_is_refused(limited: RunningServer) -> None:
    """Plaintext sent behind STARTTLS must not be taken as sent inside TLS (CVE-2011-0411)."""

    async def talk() -> None:
        session = await connect(limited, "imap")
        session.writer.write(b"t1 STARTTLS\r\nt2 CAPABILITY\r\n")
        lines = await session.expect("t2 ")
        assert lines[0] == "t1 BAD Nothing may follow STARTTLS"
        assert "LOGINDISABLED" in lines[1] and lines[2] == "t2 OK CAPABILITY completed"
        assert await answer(session, b"t3 STARTTLS") == ["t3 OK Begin TLS negotiation now"]
        await session.writer.start_tls(limited.ssl_context(), server_hostname="127.0.0.1")
        lines = await answer(session, b"t4 CAPABILITY")
        assert "AUTH=PLAIN" in lines[0] and "STARTTLS" not in lines[0]
        assert await answer(session, b"t5 STARTTLS") == ["t5 BAD Already using TLS"]
        assert status(await answer(session, f'a LOGIN {ALICE} "{PASSWORD}"'.encode())) == "a OK"
        await session.close()
        # plaintext where the TLS handshake belongs: closed, with nothing logged as an error
        session = await connect(limited, "imap")
        assert await answer(session, b"t1 STARTTLS") == ["t1 OK Begin TLS negotiation now"]
        session.writer.write(f'a LOGIN {ALICE} "{PASSWORD}"\r\n'.encode())
        assert await until_closed(session) == []

    limited.call(talk())


def test_ten_thousand_pipelined_commands_are_answered_in_order(
    limited: RunningServer, stored: Snapshot
) -> None:
    count = 10_000
    commands = b"".join(
        b"p%d FETCH 1 FLAGS\r\n" % n if n % 2 else b"p%d NOOP\r\n" % n for n in range(count)
    )

    async def talk() -> list[str]:
        session = await selected(limited)
        session.writer.write(commands)  # one write; answers are read while it is being sent
        lines = await session.expect(f"p{count - 1} ")
        await noop_works(session)
        await session.close()
        return lines

    lines = limited.call(talk())
    tagged = [line for line in lines if not line.startswith("* ")]
    assert tagged == [
        f"p{n} OK FETCH completed" if n % 2 else f"p{n} OK NOOP completed" for n in range(count)
    ]
    assert lines.count("* 1 FETCH (FLAGS (\\Seen))") == count // 2
    assert len(lines) == count + count // 2
    assert snapshot(limited) == stored


def test_random_bytes_get_bad_and_then_a_command_succeeds(
    limited: RunningServer, stored: Snapshot
) -> None:
    generator = random.Random(9051)
    garbage = [
        generator.randbytes(generator.randint(1, 400)).replace(b"\n", b"") for _ in range(500)
    ]

    async def talk(*, sign_in: bool) -> list[str]:
        session = await (selected(limited) if sign_in else connect(limited))
        session.writer.write(b"".join(line + b"\r\n" for line in garbage) + b"z1 NOOP\r\n")
        lines = await session.expect("z1 ")
        await noop_works(session)
        await session.close()
        return lines

    names = mailbox_names(limited)
    for sign_in in (False, True):
        lines = limited.call(talk(sign_in=sign_in))
        assert lines[-1] == "z1 OK NOOP completed"
        assert len(lines) == len(garbage) + 1
        assert all(re.fullmatch(r"\S+ BAD \S.*", line) for line in lines[:-1]), lines
    assert snapshot(limited) == stored
    assert mailbox_names(limited) == names


def test_an_idle_client_is_logged_out(
    limited: RunningServer, stored: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 9051 §5.4; before signing in the wait is short (here a second), also when the client
    stops in the middle of a command or of an AUTHENTICATE exchange."""
    monkeypatch.setattr(pcloud.imap.server, "UNAUTHENTICATED_TIMEOUT", 1)

    async def talk() -> None:
        session = await connect(limited)
        assert await until_closed(session) == ["* BYE Autologout: idle for too long"]
        session = await connect(limited)
        assert await answer(session, b"a1 LOGIN {17}") == ["+ Ready for literal data"]
        session.writer.write(b"alice@")
        assert await until_closed(session) == ["* BYE Autologout: idle for too long"]
        session = await connect(limited)
        assert await answer(session, b"a1 AUTHENTICATE PLAIN") == ["+ "]
        assert await until_closed(session) == ["* BYE Autologout: idle for too long"]
        session = await selected(limited)  # signed in: the 30 minutes of RFC 9051 apply
        await asyncio.sleep(1.5)
        await noop_works(session)
        await session.close()

    limited.call(talk())
    assert snapshot(limited) == stored


def test_connections_that_end_badly_are_counted_out(tmp_path: Path) -> None:
    settings = {"imap": {"max_connections_per_address": 2, "max_connections_per_user": 1}}
    with running_server(tmp_path / "data", settings=settings) as server:
        server.add_user(ALICE, PASSWORD)

        async def admitted(listener: str = "imaps") -> Transcript:
            """A new connection, once the ones that ended have been counted out."""
            for _ in range(100):
                try:
                    return await connect(server, listener)
                except AssertionError:  # greeted with BYE
                    await asyncio.sleep(0.05)
            pytest.fail("connections that ended are still counted")

        async def sign_in() -> Transcript:
            for _ in range(100):
                session = await admitted()
                lines = await answer(session, f'a LOGIN {ALICE} "{PASSWORD}"'.encode())
                if status(lines) == "a OK":
                    return session
                assert "[LIMIT]" in lines[-1]
                await session.close()
                await asyncio.sleep(0.05)
            pytest.fail("signed-in connections that ended are still counted")

        async def talk() -> None:
            for _ in range(3):
                session = await sign_in()  # signed in, then cut off in the middle of a literal
                assert await answer(session, b"t1 APPEND INBOX {500}") == [
                    "+ Ready for literal data"
                ]
                session.writer.write(b"half")
                await session.close()
                session = await sign_in()  # a literal it cannot take: closed by the server
                session.writer.write(b"t1 CREATE {999999999+}\r\nxyz")
                assert (await until_closed(session))[-1].startswith("* BYE")
                session = await admitted("imap")  # a failed TLS handshake
                await answer(session, b"t1 STARTTLS")
                session.writer.write(b"\x16\x03\x01\x00\x05hello")
                await until_closed(session)
                session = await admitted()  # an overlong line, then gone
                session.writer.write(b"t1 NOOP " + b"y" * 100_000)
                await session.close()
            first = await sign_in()
            second = await admitted()
            third = await Transcript.open(
                "127.0.0.1", server.port("imaps"), tls=server.ssl_context(), timeout=TIMEOUT
            )
            assert await until_closed(third) == ["* BYE Too many connections from your address"]
            lines = await answer(second, f'a LOGIN {ALICE} "{PASSWORD}"'.encode())
            assert status(lines) == "a NO" and "[LIMIT]" in lines[-1]
            for session in (first, second):
                await session.close()

        server.call(talk())


async def test_stopping_the_server_with_sessions_open_logs_no_error(tmp_path: Path) -> None:
    """Sessions in the middle of IDLE or of a command are ended by the server's stop (run from
    a thread: this loop, the clients', keeps running meanwhile)."""
    running = running_server(tmp_path / "data")
    server = running.__enter__()
    sessions = []
    try:
        server.add_user(ALICE, PASSWORD)
        sessions.append(await selected(server))
        assert await answer(sessions[-1], b"i1 IDLE") == ["+ idling"]
        sessions.append(await connect(server))
        assert await answer(sessions[-1], b"u1 LOGIN {17}") == ["+ Ready for literal data"]
    finally:
        await asyncio.to_thread(running.__exit__, None, None, None)
    for session in sessions:
        assert await session.closed()
        await session.close()
