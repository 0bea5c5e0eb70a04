"""Earlier versions over WebDAV: the issue's check (three overwrites over WebDAV, one over SFTP,
every version listed, the first restored byte for byte) and the view's read-only rules."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pcloud.testing import RunningServer
from tests.files.conftest import ALICE, dav, on_disk
from tests.ssh.conftest import Account, connect, new_key


def time_folders(server: RunningServer) -> list[str]:
    status, _, body = dav(server, "PROPFIND", "/.versions/", Depth="1")
    assert status == 207
    return re.findall(rb"<D:href>/files/\.versions/([^/<]+)/</D:href>", body)  # type: ignore[return-value]


async def test_overwrites_over_webdav_and_sftp_are_listed_and_restored(
    users: RunningServer, tmp_path: Path
) -> None:
    key, key_file = new_key(tmp_path, "alice")
    users.services.directory.add_ssh_key(ALICE, key.export_public_key().decode())
    contents = [os.urandom(100_000 + n) for n in range(5)]
    assert dav(users, "PUT", "/report.bin", contents[0])[0] == 201
    for content in contents[1:4]:
        assert dav(users, "PUT", "/report.bin", content)[0] == 204
    async with (
        connect(users, Account(ALICE, key, key_file)) as connection,
        connection.start_sftp_client() as sftp,
        sftp.open("/report.bin", "wb") as file,
    ):
        await file.write(contents[4])
    assert on_disk(users, ALICE, "report.bin") == contents[4]

    # The store lists the four earlier contents, newest first.
    files = users.services.files.user(ALICE)
    versions = files.versions("report.bin")
    assert len(versions) == 4
    for version, content in zip(versions, reversed(contents[:4]), strict=True):
        with files.open_version("report.bin", version.id) as kept:
            assert kept.read() == content

    # Each earlier content is in a folder of the versions view.
    found: dict[bytes, str] = {}
    for folder in time_folders(users):
        status, _, body = dav(users, "GET", f"/.versions/{folder.decode()}/report.bin")
        if status == 200:
            found[body] = folder.decode()
        else:
            assert status == 404
    assert set(contents[:4]) <= set(found)

    # Copying the first one back restores it, and what it replaced becomes a version too.
    first = f"/.versions/{found[contents[0]]}/report.bin"
    status, _, _ = dav(users, "COPY", first, Destination=users.url("/files/report.bin"))
    assert status == 204
    assert on_disk(users, ALICE, "report.bin") == contents[0]
    assert dav(users, "GET", "/report.bin")[2] == contents[0]
    assert len(files.versions("report.bin")) == 5

    # A deleted folder comes back whole with a COPY of its past state.
    dav(users, "MKCOL", "/Photos/")
    dav(users, "PUT", "/Photos/cat.jpg", b"cat")
    dav(users, "PUT", "/Photos/dog.jpg", b"dog")
    dav(users, "DELETE", "/Photos/")
    folder = time_folders(users)[0].decode()  # the newest point (listed first): before the delete
    status, _, body = dav(users, "PROPFIND", f"/.versions/{folder}/Photos/", Depth="1")
    assert status == 207 and b"cat.jpg" in body and b"dog.jpg" in body
    destination = users.url("/files/Photos/")
    assert dav(users, "COPY", f"/.versions/{folder}/Photos/", Destination=destination)[0] == 201
    assert on_disk(users, ALICE, "Photos/dog.jpg") == b"dog"


def test_the_versions_view_is_read_only(users: RunningServer) -> None:
    dav(users, "PUT", "/a.txt", b"one")
    dav(users, "PUT", "/a.txt", b"two")
    folder = time_folders(users)[0].decode()
    past = f"/.versions/{folder}/a.txt"
    assert dav(users, "GET", past)[2] == b"one"
    assert dav(users, "GET", past, Range="bytes=1-")[2] == b"ne"
    for method, path, headers in (
        ("PUT", past, {}),
        ("PUT", f"/.versions/{folder}/new.txt", {}),
        ("DELETE", past, {}),
        ("DELETE", "/.versions/", {}),
        ("MKCOL", f"/.versions/{folder}/dir/", {}),
        ("MKCOL", "/.versions/", {}),
        ("MOVE", past, {"Destination": users.url("/files/b.txt")}),
        ("COPY", "/a.txt", {"Destination": users.url(f"/files/.versions/{folder}/b.txt")}),
        ("PROPPATCH", past, {}),
        ("LOCK", past, {}),
    ):
        status = dav(users, method, path, b"x" if method == "PUT" else None, **headers)[0]
        assert 400 <= status < 500, (method, path, status)
    assert dav(users, "GET", "/.versions/19700101T000000Z/a.txt")[0] == 404  # nothing then
    assert dav(users, "GET", "/.versions/not-a-time/a.txt")[0] == 404
    assert on_disk(users, ALICE, "a.txt") == b"two"
    assert not (users.data_dir / "files" / ALICE / "tree" / "b.txt").exists()
