"""Log lines: one event per line, `time level logger event key=value …`, on standard error."""

from __future__ import annotations

import logging
import sys
import time


def _escape(text: str) -> str:
    if text.isprintable():  # nearly every line: no need to look at each character
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        """One line per event, whatever a client managed to put in it: control characters,
        line breaks and terminal escapes in the message are written as escapes. A traceback
        keeps its lines, each escaped the same way."""
        record.message = _escape(record.getMessage())
        record.asctime = self.formatTime(record)
        text = self.formatMessage(record)
        if record.exc_info:
            trace = self.formatException(record.exc_info)
            text += "\n" + "\n".join(_escape(line) for line in trace.splitlines())
        return text

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (test runners replace it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure(level: str) -> None:
    """Send log lines to standard error; other handlers (a test's, say) are left in place."""
    root = logging.getLogger()
    if not any(isinstance(handler, _StderrHandler) for handler in root.handlers):
        root.addHandler(_StderrHandler())
    root.setLevel(level.upper())
