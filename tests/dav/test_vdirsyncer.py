"""vdirsyncer, an independent CalDAV and CardDAV client, syncs a calendar and an address book
with the server both ways: what is made, changed or deleted on one side reaches the other."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest

from pcloud.testing import RunningServer

USER = "alice@example.org"
PASSWORD = "correct horse battery"
CALENDAR = f"/dav/{USER}/calendar/"
CONTACTS = f"/dav/{USER}/contacts/"
EVENT = """\
BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//pcloud tests//EN\r
BEGIN:VEVENT\r
UID:{uid}\r
DTSTAMP:20261120T090000Z\r
DTSTART:20261201T100000Z\r
DTEND:20261201T110000Z\r
SEQUENCE:{sequence}\r
SUMMARY:{summary}\r
END:VEVENT\r
END:VCALENDAR\r
"""
VCARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nEND:VCARD\r\n"
PAIRS = {  # pair name: (storage type, local file extension)
    "calendars": ("caldav", ".ics"),
    "contacts": ("carddav", ".vcf"),
}


def event(uid: str, summary: str, sequence: int = 0) -> bytes:
    return EVENT.format(uid=uid, summary=summary, sequence=sequence).encode()


def vcard(uid: str, name: str) -> bytes:
    return VCARD.format(uid=uid, name=name).encode()


def has_uid(path: Path, uid: str) -> bool:
    return f"UID:{uid}".encode() in path.read_bytes().splitlines()  # CRLF or LF


def request(server: RunningServer, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    credentials = b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    kind = "text/vcard" if path.endswith(".vcf") else "text/calendar"
    call = urllib.request.Request(
        server.url(path), data=body or None, method=method,
        headers={"Authorization": f"Basic {credentials}", "Content-Type": kind},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(call, context=server.ssl_context(), timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Vdirsyncer:
    """A vdirsyncer configuration pairing local folders with the server's calendars and
    address books, found from the server's name alone (RFC 6764 discovery). It signs in with an
    app password, as a device would."""

    def __init__(self, server: RunningServer, root: Path, secret: str) -> None:
        self.root = root
        root.mkdir()
        self.config = root / "config"
        sections = [f'[general]\nstatus_path = "{root / "status"}/"\n']
        for pair, (kind, extension) in PAIRS.items():
            sections.append(
                f'[pair {pair}]\na = "{pair}_local"\nb = "{pair}_server"\n'
                'collections = ["from b"]\n'
                f'[storage {pair}_local]\ntype = "filesystem"\npath = "{root / pair}/"\n'
                f'fileext = "{extension}"\n'
                f'[storage {pair}_server]\ntype = "{kind}"\nurl = "{server.url("/")}"\n'
                f'username = "{USER}"\npassword = "{secret}"\nverify = "{server.ca_file}"\n'
            )
        self.config.write_text("\n".join(sections))

    def run(self, *arguments: str) -> None:
        # discover asks before it creates a local folder for each collection it finds.
        done = subprocess.run(
            [sys.executable, "-m", "vdirsyncer", "-c", str(self.config), *arguments],
            input="y\n" * 10, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, f"vdirsyncer {arguments}:\n{done.stdout}{done.stderr}"

    def local_files(self, pair: str, collection: str, uid: str) -> list[Path]:
        """The local files holding the item with this UID."""
        return [path for path in (self.root / pair / collection).iterdir() if has_uid(path, uid)]

    def local(self, pair: str, collection: str, uid: str) -> Path:
        [found] = self.local_files(pair, collection, uid)
        return found


def on_server(server: RunningServer, collection: str, uid: str) -> list[Path]:
    """The files in Radicale's storage holding the item with this UID."""
    folder = server.data_dir / "dav" / "collection-root" / USER / collection
    return [path for path in folder.iterdir() if path.is_file() and has_uid(path, uid)]


@pytest.fixture
def synced(server: RunningServer, tmp_path: Path) -> Vdirsyncer:
    """alice has two events and two vCards on the server, and her vdirsyncer has found both
    collections (and made their local folders). vdirsyncer refuses to empty a collection on
    its own: the second items stay whatever happens to the first."""
    server.add_user(USER, PASSWORD)
    for uid, summary, name in (("from-server", "Dentist", "Bob"), ("stays", "Gym", "Dave")):
        assert request(server, "PUT", f"{CALENDAR}{uid}.ics", event(uid, summary))[0] == 201
        assert request(server, "PUT", f"{CONTACTS}{uid}.vcf", vcard(uid, name))[0] == 201
    secret = server.services.directory.add_app_password(USER, "vdirsyncer")
    sync = Vdirsyncer(server, tmp_path / "vdirsyncer", secret)
    sync.run("discover")
    return sync


def test_items_and_changes_travel_both_ways(server: RunningServer, synced: Vdirsyncer) -> None:
    (synced.root / "calendars" / "calendar" / "from-local.ics").write_bytes(
        event("from-local", "Tax office")
    )
    (synced.root / "contacts" / "contacts" / "from-local.vcf").write_bytes(
        vcard("from-local", "Carol")
    )
    synced.run("sync")

    assert b"SUMMARY:Dentist" in synced.local("calendars", "calendar", "from-server").read_bytes()
    assert b"FN:Bob" in synced.local("contacts", "contacts", "from-server").read_bytes()
    for collection, uid, text in (("calendar", "from-local", b"SUMMARY:Tax office"),
                                  ("contacts", "from-local", b"FN:Carol")):  # fmt: skip
        [stored] = on_server(server, collection, uid)
        assert text in stored.read_bytes()
        status, body = request(server, "GET", f"/dav/{USER}/{collection}/{stored.name}")
        assert status == 200 and text in body

    # A change on each side.
    status, _ = request(server, "PUT", CALENDAR + "from-server.ics",
                        event("from-server", "Dentist on Friday", 1))  # fmt: skip
    assert status in (200, 204)
    synced.local("contacts", "contacts", "from-local").write_bytes(vcard("from-local", "Carol Ann"))
    synced.run("sync")

    local = synced.local("calendars", "calendar", "from-server").read_bytes()
    assert b"SUMMARY:Dentist on Friday" in local
    [stored] = on_server(server, "contacts", "from-local")
    assert b"FN:Carol Ann" in stored.read_bytes()
    status, body = request(server, "GET", f"{CONTACTS}{stored.name}")
    assert status == 200 and b"FN:Carol Ann" in body


def test_deletions_travel_both_ways(server: RunningServer, synced: Vdirsyncer) -> None:
    synced.run("sync")
    synced.local("calendars", "calendar", "from-server").unlink()
    assert request(server, "DELETE", CONTACTS + "from-server.vcf")[0] in (200, 204)
    synced.run("sync")

    assert on_server(server, "calendar", "from-server") == []
    assert request(server, "GET", CALENDAR + "from-server.ics")[0] == 404
    assert synced.local_files("contacts", "contacts", "from-server") == []
    synced.local("contacts", "contacts", "stays")
    assert request(server, "GET", CALENDAR + "stays.ics")[0] == 200
