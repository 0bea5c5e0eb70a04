"""Debian's `litmus` WebDAV suite against /files/: every group must pass (the `http` group's
Expect: 100-continue test only runs over plain HTTP, which pcloud never serves)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from pcloud.testing import RunningServer
from tests.conftest import require_tool
from tests.files.conftest import ALICE
from tests.https import PASSWORD

GROUPS = ("basic", "copymove", "props", "locks", "http")


def test_litmus_passes_every_group(users: RunningServer, tmp_path: Path) -> None:
    litmus = require_tool("litmus")
    result = subprocess.run(
        [litmus, users.url("/files/"), ALICE, PASSWORD],
        capture_output=True,
        timeout=300,
        cwd=tmp_path,  # litmus writes its debug.log and child.log there
        env={**os.environ, "TESTS": " ".join(GROUPS)},
    )
    output = result.stdout.decode("utf-8", "replace")
    summaries = re.findall(r"summary for `(\w+)': of (\d+) tests run: (\d+) passed", output)
    assert [group for group, _, _ in summaries] == list(GROUPS), output
    for group, run, passed in summaries:
        assert run == passed, f"{group}: {output}"
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    # What litmus left behind is in alice's tree on disk: its collection, now empty.
    assert list((users.data_dir / "files" / ALICE / "tree" / "litmus").iterdir()) == []
