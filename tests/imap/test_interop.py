"""Interop with IMAP clients others wrote: mbsync (isync) syncing both ways, fetchmail and getmail6
fetching, and aioimaplib as one more independent parser; each checked on the client's side and
in the mail store.

mbsync and fetchmail check the certificate's DNS names only (not its IP addresses), so they are
pointed at `localhost`, which the server certificate names.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import re
import subprocess
from pathlib import Path

import aioimaplib  # type: ignore[import-untyped]  # it ships no type information
import pytest

from pcloud.testing import RunningServer, running_server
from tests.conftest import require_tool
from tests.imap.conftest import PASSWORD, message

ALICE = "alice@example.org"


def alice(server: RunningServer) -> RunningServer:
    if server.services.directory.user(ALICE) is None:
        server.add_user(ALICE, PASSWORD)
    return server


def deliver(server: RunningServer, *subjects: str, mailbox: str = "INBOX") -> None:
    account = alice(server).services.mail.account(ALICE)
    for subject in subjects:
        account.deliver(message(subject), mailbox=mailbox)


def stored(server: RunningServer, mailbox: str = "INBOX") -> dict[bytes, tuple[str, ...]]:
    """What the store holds in a mailbox: each message's bytes on disk, with its flags."""
    account = server.services.mail.account(ALICE)
    return {
        account.message_file(mailbox, m.uid).read_bytes(): m.flags
        for m in account.messages(mailbox)
    }


def run(*command: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=30,
        env=None if env is None else {**os.environ, **env},
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{command[0]} exited with {done.returncode}:\n{output}"
    return output


def lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


# -- mbsync -----------------------------------------------------------------------------------


def mbsyncrc(server: RunningServer, tmp_path: Path, *, starttls: bool = False) -> Path:
    rc = tmp_path / "mbsyncrc"
    (tmp_path / "mail").mkdir()
    port, ssl_type = server.port("imaps"), "IMAPS"
    if starttls:
        port, ssl_type = server.port("imap"), "STARTTLS"
    rc.write_text(
        f'IMAPAccount pcloud\nHost localhost\nPort {port}\nUser {ALICE}\nPass "{PASSWORD}"\n'
        f"SSLType {ssl_type}\nCertificateFile {server.ca_file}\n\n"
        "IMAPStore remote\nAccount pcloud\n\n"
        f"MaildirStore local\nPath {tmp_path}/mail/\nInbox {tmp_path}/mail/INBOX\n"
        "SubFolders Verbatim\n\n"
        "Channel pcloud\nFar :remote:\nNear :local:\nPatterns INBOX Archive\n"
        "Create Both\nExpunge Both\nSyncState *\n"
    )
    return rc


def without_tuid(data: bytes) -> bytes:
    """A message less the X-TUID header field mbsync adds to every copy it makes (it finds the
    copy by it after an interrupted run)."""
    return re.sub(rb"(?m)^X-TUID: [A-Za-z0-9+/]{12}\r?\n", b"", data, count=1)


def local(folder: Path) -> dict[bytes, Path]:
    """A client-side Maildir folder: each message's bytes (less X-TUID), with its file (whose
    name ends in its flags, `:2,FS`)."""
    paths = [path for sub in ("new", "cur") for path in (folder / sub).iterdir()]
    messages = {without_tuid(path.read_bytes()): path for path in paths}
    assert len(messages) == len(paths), f"a message was copied twice: {paths}"
    return messages


def synced(server: RunningServer, mailbox: str = "INBOX") -> dict[bytes, tuple[str, ...]]:
    """What the store holds (less X-TUID)."""
    return {without_tuid(data): flags for data, flags in stored(server, mailbox).items()}


def maildir_flags(path: Path) -> str:
    return path.name.rpartition(":2,")[2] if ":2," in path.name else ""


def set_maildir_flags(path: Path, flags: str) -> None:
    path.rename(path.parent.parent / "cur" / f"{path.name.partition(':2,')[0]}:2,{flags}")


def test_mbsync_syncs_both_ways(server: RunningServer, tmp_path: Path) -> None:
    mbsync = require_tool("mbsync")
    rc = mbsyncrc(server, tmp_path)
    deliver(server, "one", "two")
    deliver(server, "three", mailbox="Archive")
    account = server.services.mail.account(ALICE)
    account.set_flags("INBOX", [2], ["\\Flagged"], "add")

    run(mbsync, "-c", rc, "-a")
    inbox, archive = tmp_path / "mail/INBOX", tmp_path / "mail/Archive"
    pulled = local(inbox)
    assert set(pulled) == {lf(message("one")), lf(message("two"))}
    assert maildir_flags(pulled[lf(message("one"))]) == ""
    assert maildir_flags(pulled[lf(message("two"))]) == "F"
    assert set(local(archive)) == {lf(message("three"))}

    # Changes on both sides between two runs.
    set_maildir_flags(pulled[lf(message("one"))], "S")
    written = lf(message("written here", body="Drafted offline.\r\n"))
    (inbox / "new/1795000000.P1Q1.laptop").write_bytes(written)
    pulled_archive = local(archive)
    pulled_archive[lf(message("three"))].unlink()
    deliver(server, "four")
    run(mbsync, "-c", rc, "-a")
    assert synced(server) == {
        message("one"): ("\\Seen",),
        message("two"): ("\\Flagged",),
        message("four"): (),
        message("written here", body="Drafted offline.\r\n"): (),
    }
    assert synced(server, "Archive") == {}
    assert set(local(inbox)) == {lf(message(s)) for s in ("one", "two", "four")} | {written}

    # A message marked deleted here is expunged there; a flag set there shows here.
    pulled = local(inbox)
    set_maildir_flags(pulled[lf(message("two"))], "FT")
    four = next(m.uid for m in account.messages("INBOX") if m.headers.get("subject") == "four")
    account.set_flags("INBOX", [four], ["\\Answered"], "add")
    run(mbsync, "-c", rc, "-a")
    assert message("two") not in synced(server)
    assert synced(server)[message("four")] == ("\\Answered",)
    pulled = local(inbox)
    assert lf(message("two")) not in pulled
    assert maildir_flags(pulled[lf(message("four"))]) == "R"


def test_mbsync_over_starttls(server: RunningServer, tmp_path: Path) -> None:
    mbsync = require_tool("mbsync")
    rc = mbsyncrc(server, tmp_path, starttls=True)
    deliver(server, "one")
    output = run(mbsync, "-V", "-c", rc, "-a")
    assert "Connection is now encrypted" in output
    inbox = tmp_path / "mail/INBOX"
    assert set(local(inbox)) == {lf(message("one"))}
    (inbox / "cur/1795000000.P1Q2.laptop:2,S").write_bytes(lf(message("sent from here")))
    run(mbsync, "-c", rc, "-a")
    assert synced(server) == {message("one"): (), message("sent from here"): ("\\Seen",)}


# -- fetchmail and getmail6 -------------------------------------------------------------------


def fetched(folder: Path, *added_headers: bytes) -> list[bytes]:
    """The messages a fetcher wrote, less the header fields it adds (named in added_headers)."""
    messages = []
    for path in folder.iterdir():
        head, _, body = path.read_bytes().partition(b"\n\n")
        unfolded = re.sub(rb"\n[ \t]", b" ", head).split(b"\n")
        kept = [line for line in unfolded if not line.lower().startswith(added_headers)]
        original_head = b"\n".join(kept)
        messages.append(original_head + b"\n\n" + body)
    return sorted(messages)


def test_fetchmail_fetches_and_expunges(server: RunningServer, tmp_path: Path) -> None:
    fetchmail = require_tool("fetchmail")
    deliver(server, "one", "two", "three")
    server.services.mail.account(ALICE).set_flags("INBOX", [2], ["\\Seen"], "add")
    deliver(server, "elsewhere", mailbox="Archive")
    out = tmp_path / "fetched"
    out.mkdir()
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no syslog\nset no bouncemail\n"
        f"poll localhost service {server.port('imaps')} protocol IMAP\n"
        f'    user "{ALICE}" there with password "{PASSWORD}" is "{getpass.getuser()}" here\n'
        f'    ssl sslcertck sslcertfile "{server.ca_file}"\n'
        "    folder INBOX\n    fetchall\n    no keep\n"
        f'    mda "cat > $(mktemp {out}/message.XXXXXX)"\n'
    )
    rc.chmod(0o600)
    run(
        fetchmail,
        "--nodetach",
        "-f",
        rc,
        env={"FETCHMAILHOME": str(tmp_path), "HOME": str(tmp_path)},
    )
    assert fetched(out, b"received:") == sorted(lf(message(s)) for s in ("one", "two", "three"))
    assert stored(server) == {}
    assert set(stored(server, "Archive")) == {message("elsewhere")}


def test_getmail_fetches_every_mailbox_and_keeps_them(
    server: RunningServer, tmp_path: Path
) -> None:
    getmail = require_tool("getmail")
    deliver(server, "one", "two")
    server.services.mail.account(ALICE).set_flags("INBOX", [2], ["\\Seen"], "add")
    deliver(server, "archived", mailbox="Archive")
    before = {name: stored(server, name) for name in ("INBOX", "Archive")}
    out = tmp_path / "fetched"
    out.mkdir()
    rc = tmp_path / "getmailrc"
    rc.write_text(
        "[retriever]\ntype = SimpleIMAPSSLRetriever\nserver = localhost\n"
        f"port = {server.port('imaps')}\nusername = {ALICE}\npassword = {PASSWORD}\n"
        f'mailboxes = ("INBOX", "Archive")\nca_certs = {server.ca_file}\n\n'
        # An external command, as getmail refuses Maildir delivery as root without a user.
        "[destination]\ntype = MDA_external\npath = /bin/sh\n"
        f'arguments = ("-c", "cat > $(mktemp {out}/message.XXXXXX)")\n'
        "allow_root_commands = true\n\n"
        "[options]\nread_all = true\ndelete = false\ndelivered_to = false\nreceived = false\n"
    )
    output = run(getmail, "--getmaildir", tmp_path, "--rcfile", rc)
    assert "3 messages" in output
    added = (b"return-path:", b"x-getmail-retrieved-from-mailbox:")
    assert fetched(out, *added) == sorted(lf(message(s)) for s in ("one", "two", "archived"))
    assert {name: stored(server, name) for name in ("INBOX", "Archive")} == before


# -- aioimaplib -------------------------------------------------------------------------------


async def test_aioimaplib_fetch_store_search_append_and_idle(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    deliver(server, "one", "two")
    account = server.services.mail.account(ALICE)
    client = aioimaplib.IMAP4_SSL(
        "localhost", server.port("imaps"), ssl_context=server.ssl_context(), timeout=10
    )
    await client.wait_hello_from_server()
    assert (await client.login(ALICE, PASSWORD)).result == "OK"
    assert client.has_capability("IDLE") and client.has_capability("UIDPLUS")
    response = await client.select("INBOX")
    assert response.result == "OK" and b"2 EXISTS" in response.lines
    assert response.lines[-1].startswith(b"[READ-WRITE]")

    response = await client.fetch("1:2", "(UID FLAGS ENVELOPE BODY.PEEK[])")
    assert response.result == "OK"
    first, body, close, second, *_ = response.lines
    assert first.startswith(b"1 FETCH (UID 1 FLAGS () ENVELOPE (")
    assert b' "one" (("Bob" NIL "bob" "example.net"))' in first
    assert b'((NIL NIL "alice" "example.org")) NIL NIL NIL "<one@example.net>")' in first
    assert first.endswith(b"BODY[] {%d}" % len(message("one")))
    assert (bytes(body), close) == (account.message_file("INBOX", 1).read_bytes(), b")")
    assert second.startswith(b"2 FETCH (UID 2 FLAGS () ")
    assert bytes(response.lines[4]) == message("two")

    response = await client.store("1", "+FLAGS", "(\\Flagged)")
    assert response.result == "OK" and b"FLAGS (\\Flagged)" in response.lines[0]
    assert account.messages("INBOX")[0].flags == ("\\Flagged",)
    assert (await client.search("FLAGGED")).lines[0] == b"1"
    assert (await client.search("UNFLAGGED", "SUBJECT", "two")).lines[0] == b"2"
    response = await client.uid("fetch", "2", "(BODY[HEADER.FIELDS (SUBJECT)])")
    assert response.lines[0] == b"2 FETCH (UID 2 BODY[HEADER.FIELDS (SUBJECT)] {16}"
    assert bytes(response.lines[1]) == b"Subject: two\r\n\r\n"
    assert response.lines[2] == b" FLAGS (\\Seen))"  # the \Seen it set, told at once
    assert account.messages("INBOX")[1].flags == ("\\Seen",)  # not PEEK: now read

    appended = message("appended", body="Written on the train.\r\n")
    response = await client.append(appended, mailbox="INBOX", flags="(\\Seen $Work)")
    uidvalidity = account.mailbox("INBOX").uidvalidity
    assert response.result == "OK"
    assert response.lines[-1].startswith(b"[APPENDUID %d 3]" % uidvalidity)
    assert account.message_file("INBOX", 3).read_bytes() == appended
    assert account.messages("INBOX")[2].flags == ("$Work", "\\Seen")

    idle = await client.idle_start(timeout=10)
    await asyncio.to_thread(account.deliver, message("pushed"))
    assert b"4 EXISTS" in await client.wait_server_push(timeout=10)
    client.idle_done()
    assert (await asyncio.wait_for(idle, 10)).result == "OK"
    response = await client.fetch("4", "(ENVELOPE)")
    assert b' "pushed" ' in response.lines[0]
    assert (await client.logout()).result == "OK"
    # The server closes the connection after LOGOUT (RFC 9051 §6.1.3), and is done with it.
    for _ in range(500):
        if any(r.getMessage().startswith("imap closed") for r in caplog.records):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the server did not close the connection after LOGOUT")


async def test_a_client_idling_while_the_server_stops(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(running_server(tmp_path / "data"))
        deliver(server, "one")
        client = aioimaplib.IMAP4_SSL(
            "localhost", server.port("imaps"), ssl_context=server.ssl_context(), timeout=10
        )
        await client.wait_hello_from_server()
        assert (await client.login(ALICE, PASSWORD)).result == "OK"
        assert (await client.select("INBOX")).result == "OK"
        await client.idle_start(timeout=10)
        # Stopped from a worker thread: this loop runs the client meanwhile.
        await asyncio.to_thread(stack.close)
    # The connection is closed, and nothing was logged as an error (tests/conftest.py).
    for _ in range(500):
        if client.protocol.transport.is_closing():
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the connection is still open")
