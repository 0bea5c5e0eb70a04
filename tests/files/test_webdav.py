"""WebDAV through the wire with http.client: each user's own tree, streaming PUT and ranged GET,
quota, sign-in, and locks and dead properties that outlive a restart."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
from base64 import b64encode
from pathlib import Path

from pcloud.testing import RunningServer, running_server
from tests.files.conftest import ALICE, BOB, dav, on_disk
from tests.https import PASSWORD, fetch

LOCK = b"""<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>
<D:locktype><D:write/></D:locktype><D:owner>alice's laptop</D:owner></D:lockinfo>"""
PROPPATCH = b"""<?xml version="1.0" encoding="utf-8"?>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:example:tags"><D:set><D:prop>
<Z:colour>bl\xc3\xa9u</Z:colour></D:prop></D:set></D:propertyupdate>"""
PROPFIND_COLOUR = b"""<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:Z="urn:example:tags"><D:prop><Z:colour/><D:lockdiscovery/>
</D:prop></D:propfind>"""


def test_put_get_ranges_and_listing(users: RunningServer) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)  # past the bridge's in-memory spool
    assert dav(users, "MKCOL", "/Documents/")[0] == 201
    status, headers, _ = dav(users, "PUT", "/Documents/big.bin", content)
    assert status == 201 and headers["ETag"]
    assert on_disk(users, ALICE, "Documents/big.bin") == content
    status, headers, body = dav(users, "GET", "/Documents/big.bin")
    assert status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(content).digest()
    status, headers, body = dav(users, "GET", "/Documents/big.bin", Range="bytes=1000-1999")
    assert status == 206 and body == content[1000:2000]
    assert headers["Content-Range"] == f"bytes 1000-1999/{len(content)}"
    status, headers, body = dav(users, "HEAD", "/Documents/big.bin")
    assert status == 200 and headers["Content-Length"] == str(len(content)) and body == b""

    assert dav(users, "PUT", "/Documents/big.bin", b"smaller")[0] == 204
    assert on_disk(users, ALICE, "Documents/big.bin") == b"smaller"
    status, _, body = dav(users, "PROPFIND", "/Documents/", Depth="1")
    assert status == 207
    assert b"<D:href>/files/Documents/big.bin</D:href>" in body
    assert b"<D:getcontentlength>7</D:getcontentlength>" in body
    # The root lists no .versions folder: sync clients would mirror the history.
    status, _, body = dav(users, "PROPFIND", "/", Depth="1")
    assert status == 207 and b".versions" not in body and b"/files/Documents/" in body


def test_copy_move_delete_and_what_is_on_disk(users: RunningServer) -> None:
    dav(users, "MKCOL", "/a/")
    dav(users, "PUT", "/a/one.txt", b"one")
    destination = users.url("/files/b/")
    assert dav(users, "COPY", "/a/", Destination=destination)[0] == 201
    assert on_disk(users, ALICE, "b/one.txt") == b"one"
    assert dav(users, "MOVE", "/b/one.txt", Destination=users.url("/files/two.txt"))[0] == 201
    tree = users.data_dir / "files" / ALICE / "tree"
    assert sorted(p.name for p in tree.iterdir()) == ["a", "b", "two.txt"]
    assert dav(users, "DELETE", "/a/")[0] == 204
    assert not (tree / "a").exists()
    assert dav(users, "GET", "/a/one.txt")[0] == 404


def test_a_second_user_sees_only_their_own_tree(users: RunningServer) -> None:
    dav(users, "PUT", "/secret.txt", b"alice only")
    assert dav(users, "GET", "/secret.txt", user=BOB)[0] == 404
    status, _, body = dav(users, "PROPFIND", "/", user=BOB, Depth="1")
    assert status == 207 and b"secret" not in body
    assert dav(users, "PUT", "/secret.txt", b"bob's", user=BOB)[0] == 201
    assert on_disk(users, ALICE, "secret.txt") == b"alice only"
    assert on_disk(users, BOB, "secret.txt") == b"bob's"
    # Bob cannot name Alice's tree through a path either.
    assert dav(users, "GET", f"/{ALICE}/secret.txt", user=BOB)[0] == 404
    assert dav(users, "GET", "/../" + ALICE + "/tree/secret.txt", user=BOB)[0] == 400


def test_sign_in_is_required_and_checked(users: RunningServer) -> None:
    status, headers, _ = fetch(users, "/files/", method="PROPFIND")
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="pcloud"'
    assert fetch(users, "/files/", method="PROPFIND", user=ALICE, password="wrong")[0] == 401
    for broken in ("Basic !!!", "Basic bm9jb2xvbg==", "Basic //79/w==", "Digest x=1"):
        assert fetch(users, "/files/", headers={"Authorization": broken})[0] == 401
    # An app password works as the password does.
    secret = users.services.directory.add_app_password(ALICE, "phone")
    found = fetch(
        users, "/files/", method="PROPFIND", headers={"Depth": "0"}, user=ALICE, password=secret
    )
    assert found[0] == 207


def test_wrong_credentials_are_refused_before_the_body_is_read(users: RunningServer) -> None:
    """An upload announced with wrong credentials gets its 401 at once: the server does not
    take (and spool to disk) a body it will refuse."""
    connection = http.client.HTTPSConnection(
        "localhost", users.port("https"), context=users.ssl_context(), timeout=10
    )
    try:
        connection.putrequest("PUT", "/files/big.bin")
        connection.putheader(
            "Authorization", "Basic " + b64encode(f"{ALICE}:wrong".encode()).decode()
        )
        connection.putheader("Content-Length", str(100 * 1024 * 1024))
        connection.endheaders()  # and no body: waiting for it would time out
        response = connection.getresponse()
        assert response.status == 401
    finally:
        connection.close()
    assert dav(users, "PROPFIND", "/big.bin", Depth="0")[0] == 404


def test_quota_exceeded_is_507_and_keeps_nothing(server: RunningServer) -> None:
    server.add_user(ALICE, PASSWORD, quota_bytes=1024 * 1024)
    assert dav(server, "PUT", "/small.bin", b"x" * 1000)[0] == 201
    assert dav(server, "PUT", "/big.bin", os.urandom(2 * 1024 * 1024))[0] == 507
    assert dav(server, "GET", "/big.bin")[0] == 404
    assert list((server.data_dir / "files" / ALICE / "tmp").iterdir()) == []
    assert on_disk(server, ALICE, "small.bin") == b"x" * 1000


def test_locks_and_dead_properties_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_server(data) as server:
        server.add_user(ALICE, PASSWORD)
        dav(server, "PUT", "/report.odt", b"draft")
        assert dav(server, "PROPPATCH", "/report.odt", PROPPATCH)[0] == 207
        status, headers, body = dav(server, "LOCK", "/report.odt", LOCK, Timeout="Second-3600")
        assert status == 200
        token = headers["Lock-Token"]
    with running_server(data) as server:
        # Still locked: a write without the token is refused, with it accepted.
        assert dav(server, "PUT", "/report.odt", b"other")[0] == 423
        assert dav(server, "PUT", "/report.odt", b"final", If=f"({token})")[0] == 204
        assert on_disk(server, ALICE, "report.odt") == b"final"
        status, _, body = dav(server, "PROPFIND", "/report.odt", PROPFIND_COLOUR, Depth="0")
        assert status == 207
        assert "bléu".encode() in body
        assert token.strip("<>").encode() in body
        assert b"alice&apos;s laptop" in body or b"alice's laptop" in body
        assert dav(server, "UNLOCK", "/report.odt", Lock_Token=token)[0] == 204
        assert dav(server, "PUT", "/report.odt", b"unlocked")[0] == 204


def test_one_users_lock_does_not_lock_anothers_file(users: RunningServer) -> None:
    dav(users, "PUT", "/same.txt", b"a")
    dav(users, "PUT", "/same.txt", b"b", user=BOB)
    assert dav(users, "LOCK", "/same.txt", LOCK)[0] == 200
    assert dav(users, "PUT", "/same.txt", b"bob again", user=BOB)[0] == 204


def test_xml_bombs_and_oversized_bodies_are_refused(users: RunningServer) -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&b;</D:displayname></D:prop>'
        b"</D:propfind>"
    )
    assert dav(users, "PROPFIND", "/", bomb, Depth="0")[0] == 400
    status, _, body = dav(users, "PROPFIND", "/")  # no Depth: infinity (RFC 4918 §9.1)
    assert status == 403 and b"<D:propfind-finite-depth/>" in body
    assert dav(users, "PROPFIND", "/", Depth="infinity")[0] == 403
    deep = b'<D:propfind xmlns:D="DAV:">' + b"<a>" * 5000 + b"</a>" * 5000 + b"</D:propfind>"
    assert dav(users, "PROPFIND", "/", deep, Depth="0")[0] == 400
    assert dav(users, "PROPFIND", "/", b" " * (2 << 20), Depth="0")[0] == 413
    status, _, body = dav(users, "PROPFIND", "/", Depth="0")
    assert status == 207 and re.search(rb"<D:href>/files/</D:href>", body)
