"""Random secrets kept in the data folder, made on first use (e.g. `<data>/srs.secret`, the key
that signs rewritten sender addresses)."""

from __future__ import annotations

import secrets
from pathlib import Path

from pcloud.store.durable import write_atomically


def load_or_create(path: Path) -> str:
    if not path.exists():
        write_atomically(path, secrets.token_urlsafe(32).encode(), mode=0o600)
    return path.read_text().strip()
