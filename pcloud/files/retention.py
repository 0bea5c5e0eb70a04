"""The retention worker: applies the versions' retention policy (`[files]` in pcloud.toml) to
every user's files once an hour. The store also prunes a user's versions now and then as they
write; this worker is what lets the versions of users who stopped writing expire too."""

from __future__ import annotations

import asyncio
import logging
import time

from pcloud.services import Services

log = logging.getLogger(__name__)

PRUNE_EVERY_SECONDS = 3600


async def run(services: Services) -> None:
    """Runs until cancelled; the first pass comes at start-up."""
    while True:
        try:
            await asyncio.to_thread(services.files.prune, time.time())  # logs what it drops
        except Exception:
            log.exception("pruning file versions failed")
        await asyncio.sleep(PRUNE_EVERY_SECONDS)
