"""The whole-server fixture, and the rule that no test may log an unhandled exception."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcloud.testing import RunningServer, running_server


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def logged_errors() -> Iterator[list[logging.LogRecord]]:
    """Fails the test when anything logged an error (an unhandled exception in a handler, a task
    that died). A test that provokes an error on purpose removes it from this list."""
    collector = _ErrorCollector()
    root = logging.getLogger()
    root.addHandler(collector)
    previous_level = root.level
    root.setLevel(min(previous_level, logging.INFO) or logging.INFO)
    try:
        yield collector.records
    finally:
        root.removeHandler(collector)
        root.setLevel(previous_level)
    if collector.records:
        lines = [collector.format(record) for record in collector.records]
        pytest.fail("errors were logged during the test:\n" + "\n".join(lines))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    """The whole server, in-process on 127.0.0.1 ports chosen by the kernel."""
    with running_server(tmp_path / "data") as running:
        yield running


def require_tool(name: str) -> str:
    """The path of an external program; a test that needs a missing one fails under CI."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed (.ci/run must install it)")
        pytest.skip(f"{name} is not installed")
    return path
