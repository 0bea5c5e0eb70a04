"""jCal export (RFC 7265): `GET /api/calendars/<collection>.json` gives one of the signed-in
user's calendars as JSON (`["vcalendar", [properties], [components]]`), for programs and web
pages that would rather not parse iCalendar.

HTTP Basic credentials as for the People API (people.py); a name that is not one of the
user's own calendars (someone else's, an address book, nothing) is 404.

Implementation notes:
- The calendar is read through Radicale's storage API under its read lock, in a worker thread,
  as Radicale itself serialises a calendar for a GET: its items' components in one VCALENDAR,
  each VTIMEZONE once, the display name as X-WR-CALNAME.
- The icalendar library turns that into jCal: values typed per RFC 7265 §3 (date and date-time
  in ISO 8601 form, durations, integers, floats, recurrence rules as objects, text unescaped,
  multi-valued properties as several values) and properties whose type it does not know given
  the type "unknown" (§5).
- Not yet: calendars shared with the user, conditional requests (ETag), time-range filters.
"""

from __future__ import annotations

import asyncio
from typing import Any

import radicale.storage
from aiohttp import web
from icalendar import Calendar

from pcloud.directory import COLLECTION_NAME
from pcloud.http.basic_auth import signed_in
from pcloud.services import Services
from pcloud.store.calendars import open_storage

MEDIA_TYPE = "application/calendar+json"  # RFC 7265 §8


def add_routes(app: web.Application, services: Services) -> None:
    storage = open_storage(services.data_dir / "dav")

    async def export(request: web.Request) -> web.Response:
        principal = await signed_in(request, services.directory, "jcal")
        name = request.match_info["collection"]
        jcal = None
        if COLLECTION_NAME.match(name):
            jcal = await asyncio.to_thread(calendar_jcal, storage, principal.address, name)
        if jcal is None:
            raise web.HTTPNotFound(text="no such calendar\n")
        return web.json_response(jcal, content_type=MEDIA_TYPE)

    app.router.add_get("/api/calendars/{collection}.json", export)


def calendar_jcal(storage: radicale.storage.BaseStorage, owner: str, name: str) -> list[Any] | None:
    """`owner`'s calendar `name` as jCal, or None when they have no calendar of that name."""
    text = None
    with storage.acquire_lock("r", owner):
        for collection in storage.discover(f"/{owner}/{name}/", "0"):
            if isinstance(collection, radicale.storage.BaseCollection) and (
                collection.tag == "VCALENDAR"
            ):
                text = collection.serialize()
    return None if text is None else Calendar.from_ical(text).to_jcal()
