"""The calendar store: calendars and address books under `<data>/dav/`, in Radicale's storage.

Layout (Radicale's multifilesystem): `collection-root/<address>/<collection>/<item>.ics|.vcf`,
each collection's properties in `.Radicale.props`, and `.Radicale.lock`, a lock file that
serialises writers across threads and processes. Everything that writes there goes through
Radicale's storage API under that lock: the DAV server (pcloud/dav/), and mail delivery placing
invitations (invitations.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import radicale.config
import radicale.storage

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024  # a calendar upload larger than this is refused with 413
DEFAULT_COLLECTIONS = {
    "calendar": {
        "tag": "VCALENDAR",
        "D:displayname": "Calendar",
        "C:supported-calendar-component-set": "VEVENT,VTODO,VJOURNAL",
    },
    "contacts": {"tag": "VADDRESSBOOK", "D:displayname": "Contacts"},
}


def configuration_for(storage_folder: Path) -> radicale.config.Configuration:
    """Radicale's configuration over pcloud's DAV folder (plugins added by make_application)."""
    configuration = radicale.config.load()
    configuration.update(
        {
            "server": {"max_content_length": str(MAX_BODY_BYTES)},
            "storage": {"filesystem_folder": str(storage_folder)},
            "web": {"type": "none"},
            "logging": {"mask_passwords": "True"},
        },
        "pcloud",
        privileged=True,
    )
    return configuration


def open_storage(storage_folder: Path) -> radicale.storage.BaseStorage:
    """Radicale's storage over the DAV folder, to read or write beside the DAV server: its lock
    is a lock on a file, so the two exclude each other as two processes would."""
    return radicale.storage.load(configuration_for(storage_folder))


def create_default_collections(storage: Any, address: str) -> None:
    """The home of a user, with a calendar and an address book, unless they exist."""
    with storage.acquire_lock("w", address):
        existing = {collection.path for collection in storage.discover(f"/{address}/", "1")}
        if address not in existing:
            storage.create_collection(f"/{address}/")
        for name, props in DEFAULT_COLLECTIONS.items():
            if f"{address}/{name}" not in existing:
                storage.create_collection(f"/{address}/{name}/", props=dict(props))
                log.info("dav collection created user=%s collection=%s", address, name)
