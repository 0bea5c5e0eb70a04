"""Public links at /s/<token> through the wire: downloads of files and folders, passwords,
expiry, drop boxes that never replace anything, and the URL `pcloud files link add` prints."""

from __future__ import annotations

import io
import time
from pathlib import Path

from pcloud.cli import Context, run
from pcloud.testing import RunningServer
from tests.files.conftest import ALICE, dav, on_disk
from tests.https import fetch


def test_a_file_link_downloads_with_ranges(users: RunningServer) -> None:
    dav(users, "PUT", "/page.html", b"<script>alert(1)</script>")
    token = users.services.files.add_link(ALICE, "page.html").token
    status, headers, body = fetch(users, f"/s/{token}")
    assert status == 200 and body == b"<script>alert(1)</script>"
    assert headers["Content-Disposition"] == "attachment; filename*=UTF-8''page.html"
    assert headers["Content-Security-Policy"] == "sandbox"
    status, headers, body = fetch(users, f"/s/{token}", headers={"Range": "bytes=8-12"})
    assert status == 206 and body == b"alert" and headers["Content-Range"] == "bytes 8-12/25"
    assert fetch(users, f"/s/{token}", headers={"Range": "bytes=99-"})[0] == 416
    assert fetch(users, f"/s/{token}", method="HEAD")[1]["Content-Length"] == "25"
    assert fetch(users, f"/s/{token}/anything")[0] == 404
    assert fetch(users, f"/s/{token}", method="PUT", body=b"x")[0] == 405
    assert fetch(users, "/s/no-such-token")[0] == 404
    assert on_disk(users, ALICE, "page.html") == b"<script>alert(1)</script>"


def test_a_folder_link_lists_and_stays_inside(users: RunningServer) -> None:
    dav(users, "MKCOL", "/Trip/")
    dav(users, "MKCOL", "/Trip/day%201/")
    dav(users, "PUT", "/Trip/day%201/beach.jpg", b"sand")
    dav(users, "PUT", "/private.txt", b"not shared")
    token = users.services.files.add_link(ALICE, "Trip").token
    status, headers, _ = fetch(users, f"/s/{token}")
    assert status == 301 and headers["Location"] == f"/s/{token}/"
    status, _, body = fetch(users, f"/s/{token}/")
    assert status == 200 and b'href="day%201/"' in body
    assert fetch(users, f"/s/{token}/day%201/beach.jpg")[2] == b"sand"
    for escape in ("/../private.txt", "/%2e%2e/private.txt", "/day%201/..%2f..%2fprivate.txt"):
        status, _, body = fetch(users, f"/s/{token}{escape}")
        assert 400 <= status < 500 and b"not shared" not in body


def test_passwords_and_expiry(users: RunningServer) -> None:
    dav(users, "PUT", "/f.txt", b"content")
    files = users.services.files
    token = files.add_link(ALICE, "f.txt", password="link secret").token
    status, headers, _ = fetch(users, f"/s/{token}")
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="pcloud link"'
    assert fetch(users, f"/s/{token}", user="anyone", password="wrong")[0] == 401
    assert fetch(users, f"/s/{token}", user="anyone", password="link secret")[2] == b"content"
    expired = files.add_link(ALICE, "f.txt", expires=time.time() - 1).token
    assert fetch(users, f"/s/{expired}")[0] == 404
    removed = files.add_link(ALICE, "f.txt").token
    files.remove_link(ALICE, removed)
    assert fetch(users, f"/s/{removed}")[0] == 404


def test_wrong_link_passwords_are_throttled(users: RunningServer) -> None:
    """Guessing a link's password locks the guesser out, as failed logins do: after the
    lock-out count even the right password gets 429, unchecked."""
    dav(users, "PUT", "/f.txt", b"content")
    token = users.services.files.add_link(ALICE, "f.txt", password="link secret").token
    for _ in range(users.services.config.login.address_lockout_failures):
        assert fetch(users, f"/s/{token}", user="x", password="guess")[0] == 401
    status, _, body = fetch(users, f"/s/{token}", user="x", password="link secret")
    assert status == 429 and b"content" not in body
    # asking without a password is not a guess: still the password prompt
    assert fetch(users, f"/s/{token}")[0] == 401


def test_a_drop_box_takes_files_and_never_replaces(users: RunningServer) -> None:
    dav(users, "MKCOL", "/Inbox/")
    dav(users, "PUT", "/Inbox/report.pdf", b"already there")
    token = users.services.files.add_link(ALICE, "Inbox", upload_only=True).token
    status, _, body = fetch(users, f"/s/{token}")
    assert status == 200 and b'enctype="multipart/form-data"' in body
    status, _, body = fetch(users, f"/s/{token}/report.pdf", method="PUT", body=b"first")
    assert status == 201 and body == b"stored as report (2).pdf\n"
    boundary = "----pcloudtest"
    form = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=file; filename=report.pdf\r\n"
        f"Content-Type: application/pdf\r\n\r\nsecond\r\n--{boundary}--\r\n"
    ).encode()
    status, _, body = fetch(
        users, f"/s/{token}", method="POST", body=form,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    assert status == 200 and b"report (3).pdf" in body
    assert on_disk(users, ALICE, "Inbox/report.pdf") == b"already there"
    assert on_disk(users, ALICE, "Inbox/report (2).pdf") == b"first"
    assert on_disk(users, ALICE, "Inbox/report (3).pdf") == b"second"
    # What a drop box holds is not shown, and names cannot leave it.
    assert fetch(users, f"/s/{token}/report.pdf")[0] == 405
    assert fetch(users, f"/s/{token}/..%2fescaped", method="PUT", body=b"x")[0] == 400
    assert fetch(users, f"/s/{token}", method="POST", body=b"x")[0] == 400
    assert not list((users.data_dir / "files" / ALICE / "tree").glob("escaped*"))


def test_the_link_command_prints_the_url(users: RunningServer, tmp_path: Path) -> None:
    dav(users, "MKCOL", "/Share/")
    out = io.StringIO()
    argv = ["files", "link", "add", ALICE, "Share", "--data", str(users.data_dir)]
    assert run(argv, Context(out, io.StringIO(), io.StringIO())) == 0
    url = out.getvalue().splitlines()[1].strip()
    assert url.startswith(f"https://example.org:{users.port('https')}/s/")
    token = url.rpartition("/")[2]
    assert fetch(users, f"/s/{token}/")[0] == 200
