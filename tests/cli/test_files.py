"""`pcloud files …`: versions, restore, shares, links and usage, as the person typing sees them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcloud.services import file_store, load_config, open_directory
from pcloud.store.files import FileStore
from tests.cli.test_admin import PASSWORD, Cli

ALICE = "alice@example.org"
BOB = "bob@example.org"


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    cli = Cli(tmp_path / "data")
    assert cli("init", "--domain", "example.org") == 0
    for address in (ALICE, BOB):
        assert cli("user", "add", address, "--password", PASSWORD) == 0
    yield cli


def with_store(cli: Cli) -> FileStore:
    """The store as the server opens it, to put files in as a client would."""
    directory = open_directory(cli.data, load_config(cli.data))
    return file_store(cli.data, directory, load_config(cli.data))


def test_versions_and_restore(cli: Cli) -> None:
    store = with_store(cli)
    files = store.user(ALICE)
    files.mkdir("Docs")
    files.write("Docs/a.txt", b"first")
    before = time.time()
    files.write("Docs/a.txt", b"second")
    files.write("Docs/a.txt", b"third")
    store.close()

    assert cli("files", "versions", ALICE, "/Docs/a.txt") == 0
    lines = cli.out.splitlines()
    assert lines[0].startswith("current ") and "5 bytes" in lines[0]
    assert [line.split()[3] for line in lines[1:]] == ["overwritten", "overwritten"]
    oldest = lines[-1].split()[0]

    assert cli("files", "restore", ALICE, "Docs/a.txt", "--version", oldest) == 0
    assert cli.out == "restored /Docs/a.txt\n1 files restored\n"
    tree = cli.data / "files" / ALICE / "tree"
    assert (tree / "Docs" / "a.txt").read_bytes() == b"first"

    assert cli("files", "restore", ALICE, "Docs", "--at", str(before), "--to", "Old") == 0
    assert (tree / "Old" / "a.txt").read_bytes() == b"first"

    assert cli("files", "restore", ALICE, "Docs/a.txt", "--version", "999") == 1
    assert "no version 999" in cli.err
    assert cli("files", "restore", ALICE, "Docs/a.txt", "--at", "yesterday") == 2
    assert cli("files", "restore", ALICE, "Docs/a.txt") == 2  # --at or --version


def test_share_unshare_and_shares(cli: Cli) -> None:
    store = with_store(cli)
    store.user(ALICE).mkdir("Photos")
    store.close()
    assert cli("files", "share", ALICE, "/Photos", BOB, "--read-only") == 0
    assert f"in their files: Shared/{ALICE}/Photos" in cli.out
    assert cli("files", "shares", BOB) == 0
    assert cli.out == f"{ALICE}:/Photos -> {BOB} (read-only)\n"
    store = with_store(cli)
    assert [e.path for e in store.user(BOB).listdir(f"Shared/{ALICE}")] == [
        f"Shared/{ALICE}/Photos"
    ]
    store.close()
    assert cli("files", "unshare", ALICE, "Photos", BOB) == 0
    assert cli("files", "shares") == 0
    assert cli.out == ""
    assert cli("files", "share", ALICE, "Nothing", BOB) == 1
    assert "no file or folder /Nothing" in cli.err
    assert cli("files", "share", ALICE, "../etc", BOB) == 2
    assert cli("files", "share", ALICE, "Photos", "nobody@example.org") == 1


def test_links_and_usage(cli: Cli) -> None:
    store = with_store(cli)
    store.user(ALICE).mkdir("Drop")
    store.user(ALICE).write("Drop/f", b"12345")
    store.close()
    argv = ["files", "link", "add", ALICE, "Drop", "--password-stdin", "--expires", "7"]
    assert cli(*argv, stdin="link password\n") == 0
    token = cli.out.split()[1]
    assert "download, password, expires " in cli.out
    assert cli("files", "link", "add", ALICE, "Drop", "--upload-only") == 0
    assert "upload only (drop box), no expiry" in cli.out
    assert cli("files", "link", "list", ALICE) == 0
    assert len(cli.out.splitlines()) == 2 and token in cli.out
    store = with_store(cli)
    assert [e.name for e in store.open_link(token, "link password").listdir()] == ["f"]
    store.close()
    assert cli("files", "link", "del", BOB, token) == 1  # only its owner's
    assert cli("files", "link", "del", ALICE, token) == 0
    assert cli("files", "link", "del", ALICE, token) == 1
    assert cli("files", "link", "add", ALICE) == 2

    assert cli("files", "usage", ALICE) == 0
    assert cli.out.splitlines()[0] == "files: 5 bytes"
    assert cli("files", "usage", "nobody@example.org") == 1
