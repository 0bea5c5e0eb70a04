"""`pcloud service install`: a systemd unit with a dedicated user and sandboxing, safe twice."""

from __future__ import annotations

import configparser
import io
import os
import pwd
import subprocess
from pathlib import Path

from pcloud.cli import Context, run
from tests.conftest import require_tool


def install(tmp_path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    user = pwd.getpwuid(os.geteuid()).pw_name  # an existing user: the test creates none
    status = run(
        ["service", "install", "--user", user, "--data", str(tmp_path / "srv"),
         "--unit-dir", str(tmp_path / "units"), "--domain", "example.org"],
        Context(out, err),
    )  # fmt: skip
    return status, out.getvalue(), err.getvalue()


def test_install_writes_a_sandboxed_unit_and_initialises_the_data(tmp_path: Path) -> None:
    status, out, err = install(tmp_path)
    assert status == 0, err
    assert "unit " in out and ": written" in out
    assert "Administrator: admin@example.org" in out  # shown to the installer, once
    assert (tmp_path / "srv" / "pcloud.toml").exists()

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(tmp_path / "units" / "pcloud.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith(f"-m pcloud serve --data {tmp_path / 'srv'}")
    assert service["User"] == pwd.getpwuid(os.geteuid()).pw_name
    assert service["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == str(tmp_path / "srv")
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    systemd_analyze = require_tool("systemd-analyze")
    assert install(tmp_path)[0] == 0
    unit_file = tmp_path / "units" / "pcloud.service"
    verify = subprocess.run(
        [systemd_analyze, "verify", str(unit_file)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0, verify.stderr
    assert "pcloud.service" not in verify.stderr  # no warning about our unit


def test_install_twice_changes_nothing(tmp_path: Path) -> None:
    assert install(tmp_path)[0] == 0
    unit_file = tmp_path / "units" / "pcloud.service"
    written = unit_file.read_text()
    directory = (tmp_path / "srv" / "directory.sqlite3").read_bytes()
    status, out, _ = install(tmp_path)
    assert status == 0
    assert ": unchanged" in out and "data folder" in out and "exists" in out
    assert "Password" not in out
    assert unit_file.read_text() == written
    assert (tmp_path / "srv" / "directory.sqlite3").read_bytes() == directory
