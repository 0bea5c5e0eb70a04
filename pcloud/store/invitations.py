"""Calendar invitations in mail (iMIP, RFC 6047): what delivery does with a message that carries
an iTIP scheduling message (RFC 5546) in a `text/calendar` part.

Delivery calls two things:
- `parse_invitation(message)` (pure, never raises): the first `text/calendar` part, its METHOD
  and the UIDs of its components, or None. `Invitation.header` is the value of the
  `X-Calendar-Invitation` header that delivery adds at the top of the stored message, so that
  mail clients and filters can tell an invitation without parsing MIME:
      X-Calendar-Invitation: REQUEST; uid="040000008200E001@example.net"
  (the method, then one `uid` parameter per UID, quoted as in MIME parameters).
- `apply_invitation(storage, recipient, invitation)` (blocking, for a worker thread): the
  recipient's calendars follow the invitation, through Radicale's storage API under its write
  lock, as a CalDAV PUT would (items checked by Radicale's own `check_and_sanitize_items`):
  - REQUEST: each VEVENT (with the message's VTIMEZONEs, without METHOD, which RFC 4791 §4.1
    forbids in a calendar) goes to the recipient's default calendar "calendar" (created if
    missing), or replaces the copy with that UID in any of their calendars when the SEQUENCE
    is not lower and the ORGANIZER is the same. The entry is tentative: the recipient's
    ATTENDEE line says PARTSTAT=NEEDS-ACTION (unless it is an update with the same SEQUENCE,
    which keeps their answer: RFC 5546 §2.1.4), and STATUS is TENTATIVE unless the organizer
    set one. A REQUEST with only overridden instances (RECURRENCE-ID) replaces those instances.
  - REPLY: when the recipient is the ORGANIZER of the event with that UID, the replying
    ATTENDEE's PARTSTAT is copied from the reply, on that attendee's line only, when the
    reply's SEQUENCE is not older and the mail's From is that attendee (or their SENT-BY).
  - CANCEL: the recipient's copy (same ORGANIZER, SEQUENCE not lower) gets STATUS:CANCELLED;
    a cancelled instance that has no override of its own becomes an EXDATE of the series.
  - Anything else (PUBLISH, COUNTER, REFRESH, ADD, DECLINECOUNTER): the header only.

Implementation notes:
- Bounds: a calendar part larger than 1 MiB, or with more than 50 components, is not an
  invitation at all. The METHOD may be given by the part's `method` parameter, the VCALENDAR's
  METHOD property, or both; when both are given and differ (RFC 6047 §2.4 says they MUST
  agree) the message is treated as malformed.
- Items are named `<uid>.ics` when the UID is made of letters, digits and `@._+-`, else after
  the UID's SHA-256 (so that any UID makes a safe file name and URL); an existing copy keeps
  its name.
- The iCalendar identities are trusted as most iMIP implementations trust them: the mail's
  From is compared only for REPLY (an attendee's own mail client sends it), since invitations
  and cancellations are often sent by a calendar service's notification address; instead, a
  REQUEST or CANCEL changes an existing copy only when it names the same ORGANIZER.
- Not supported yet: VTODO and VJOURNAL invitations (header only), replies about an instance
  that has no override in the organizer's copy, delegation (DELEGATED-TO/FROM), COUNTER, the
  recipient's aliases (the ATTENDEE must be their account address), and a per-user setting to
  refuse invitations from strangers.
"""

from __future__ import annotations

import email
import email.utils
import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from typing import Any

import radicale.item as radicale_item
import radicale.storage
from icalendar import Calendar, Component
from icalendar.prop import vCalAddress, vDDDTypes
from radicale import pathutils

from pcloud.store.calendars import create_default_collections

log = logging.getLogger(__name__)

HEADER_NAME = "X-Calendar-Invitation"
MAX_CALENDAR_BYTES = 1024 * 1024
MAX_COMPONENTS = 50
MAX_HEADER_LINE = 998  # RFC 5322 §2.1.1, name and colon included
DEFAULT_CALENDAR = "calendar"
PRODID = "-//pcloud//iMIP//EN"

SCHEDULED = ("VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY")  # the components that carry a UID
TOKEN = re.compile(r"[A-Z][A-Z0-9-]{0,31}")  # iana-token / x-name (RFC 5545 §3.1)
PRINTABLE = re.compile(r"[\x20-\x7e]+")
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._+-]{0,127}")
MAILTO = re.compile(r"mailto:", re.IGNORECASE)


@dataclass(frozen=True)
class Invitation:
    method: str  # upper case: REQUEST, REPLY, CANCEL, …
    uids: tuple[str, ...]  # of the scheduling components, in order, without repeats
    sender: str  # the mail's From address, lower case ("" when missing)
    text: str  # the iCalendar object, decoded

    @property
    def header(self) -> str:
        """The X-Calendar-Invitation value: the method and the UIDs that fit on one line
        (printable ASCII ones: a header must not carry control characters)."""
        value = self.method
        room = MAX_HEADER_LINE - len(HEADER_NAME) - 2
        for uid in self.uids:
            if not PRINTABLE.fullmatch(uid):
                continue
            quoted = uid.replace("\\", "\\\\").replace('"', '\\"')
            longer = f'{value}; uid="{quoted}"'
            if len(longer) <= room:
                value = longer
        return value


# RFC 6047 §2.4
def parse_invitation(message: bytes) -> Invitation | None:
    """The iTIP message in the first text/calendar part of `message`, or None when there is
    none, or it is too large, malformed, or without a method or UID."""
    parsed = email.message_from_bytes(message)  # compat32: lenient, records defects instead
    part = next((p for p in parsed.walk() if p.get_content_type() == "text/calendar"), None)
    if part is None:
        return None
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes) or len(payload) > MAX_CALENDAR_BYTES:
        return None
    text = _decoded(payload, part.get_content_charset() or "utf-8")
    calendar = _calendar(text)
    if calendar is None or len(calendar.walk()) - 1 > MAX_COMPONENTS:
        return None
    method = _method(part, calendar)
    uids = _uids(calendar)
    if method is None or not uids:
        return None
    _, sender = email.utils.parseaddr(str(parsed.get("From", "")))
    return Invitation(method, uids, sender.lower(), text)


def _decoded(payload: bytes, charset: str) -> str:
    try:
        return payload.decode(charset, errors="replace")
    except (LookupError, ValueError):  # a charset Python does not know: iCalendar's default
        return payload.decode("utf-8", errors="replace")


def _calendar(text: str) -> Calendar | None:
    """One VCALENDAR, or None. icalendar's parser raises more than ValueError on some malformed
    input (AttributeError for a misspelled END:VTIMEZONE, for one), hence the broad except."""
    try:
        calendar = Calendar.from_ical(text)
    except Exception:
        return None
    return calendar if isinstance(calendar, Calendar) else None


def _method(part: Message, calendar: Calendar) -> str | None:
    declared = part.get_param("method")
    given = [email.utils.collapse_rfc2231_value(declared) if declared else None]
    given.append(calendar.get("METHOD"))
    values = {str(value).strip().upper() for value in given if value}
    if len(values) != 1:
        return None
    (method,) = values
    return method if TOKEN.fullmatch(method) else None


def _uids(calendar: Calendar) -> tuple[str, ...]:
    uids: dict[str, None] = {}  # a dict keeps the order
    for component in calendar.subcomponents:
        uid = component.get("UID")
        if component.name in SCHEDULED and isinstance(uid, str) and uid:
            uids[str(uid)] = None
    return tuple(uids)


# RFC 5546 §3.2 (VEVENT), as an attendee's and an organizer's calendar user agent would act.
def apply_invitation(
    storage: radicale.storage.BaseStorage, recipient: str, invitation: Invitation
) -> None:
    """Update `recipient`'s calendars after `invitation` was delivered to them. Blocking.
    Anything wrong with the invitation is logged and ignored; storage failures (a full disk,
    an unreadable stored item) are raised."""
    if invitation.method not in ("REQUEST", "REPLY", "CANCEL"):
        return
    if not pathutils.is_safe_path_component(recipient):
        return
    calendar = _calendar(invitation.text)
    if calendar is None:
        return
    events: dict[str, list[Component]] = {}
    for component in calendar.subcomponents:
        uid = component.get("UID")
        if component.name == "VEVENT" and isinstance(uid, str) and uid:
            events.setdefault(str(uid), []).append(component)
    if not events:
        return
    if invitation.method == "REQUEST":
        create_default_collections(storage, recipient)
    with storage.acquire_lock("w", recipient):
        home = _Home(storage, recipient)
        for uid, components in events.items():
            if invitation.method == "REQUEST":
                outcome = home.request(uid, calendar, components)
            elif invitation.method == "REPLY":
                outcome = home.reply(uid, components, invitation.sender)
            else:
                outcome = home.cancel(uid, components)
            log.info("imip applied to=%s method=%s uid=%r outcome=%s",
                     recipient, invitation.method, uid[:200], outcome)  # fmt: skip


@dataclass(frozen=True)
class _Copy:
    """A stored item with the UID of an invitation: where it is, its content, its VEVENTs by
    occurrence (empty when that UID belongs to a to-do or a journal entry)."""

    collection: radicale.storage.BaseCollection
    href: str
    content: Calendar
    instances: dict[Any, Component]

    @property
    def organizer(self) -> str:
        return next((_address(c.get("ORGANIZER")) for c in self.instances.values()), "")


class _Home:
    """The recipient's calendars, read and written under the storage's write lock."""

    def __init__(self, storage: radicale.storage.BaseStorage, owner: str) -> None:
        self.owner = owner
        self.calendars = [
            collection
            for collection in storage.discover(f"/{owner}/", "1")
            if isinstance(collection, radicale.storage.BaseCollection)
            and collection.tag == "VCALENDAR"
        ]
        self.max_occurrences: int = storage.configuration.get(
            "server", "max_vevent_rrule_occurrence"
        )

    def find(self, uid: str) -> _Copy | None:
        """The recipient's item with this UID, if any. A copy icalendar cannot read has no
        instances, hence no organizer: like someone else's event, it is left alone."""
        for collection in self.calendars:
            for item in collection.get_all():
                if item.uid == uid and item.href:
                    content = _calendar(item.serialize()) or Calendar()
                    return _Copy(collection, item.href, content, _instances(content, uid))
        return None

    def request(self, uid: str, message: Calendar, incoming: list[Component]) -> str:
        organizer = _address(incoming[0].get("ORGANIZER"))
        if not organizer:
            return "ignored: no organizer"
        if organizer == self.owner:
            return "ignored: the recipient organizes it"
        timezones = [c for c in message.subcomponents if c.name == "VTIMEZONE"]
        found = self.find(uid)
        if found is None:
            for component in incoming:
                self._tentative(component, None)
            target = self._default_calendar()
            if target is None:
                return "ignored: no default calendar"
            href = self._free_name(target, uid)
            if href is None:
                return "ignored: no free item name"
            return self._store(target, href, _object(message, timezones, incoming), "stored")
        copies = found.instances
        if found.organizer != organizer:
            return "ignored: another organizer's event"
        updates = _instances_of(incoming)
        if None in updates:  # the whole series, as the organizer has it now
            if _sequence(updates[None]) < _sequence(copies.get(None)):
                return "ignored: older sequence"
            for key, component in updates.items():
                self._tentative(component, copies.get(key))
            replacement = _object(message, timezones, incoming)
            return self._store(found.collection, found.href, replacement, "updated")
        changed = False
        for key, component in updates.items():
            if _sequence(component) < _sequence(copies.get(key, copies.get(None))):
                continue
            self._tentative(component, copies.get(key))
            _replace_instance(found.content, uid, key, component)
            changed = True
        if not changed:
            return "ignored: older sequence"
        stored = found.content
        known = {str(c.get("TZID")) for c in stored.subcomponents if c.name == "VTIMEZONE"}
        for timezone in timezones:
            if str(timezone.get("TZID")) not in known:
                stored.subcomponents.insert(0, timezone)
        return self._store(found.collection, found.href, stored, "updated instances")

    def reply(self, uid: str, incoming: list[Component], sender: str) -> str:
        found = self.find(uid)
        if found is None:
            return "ignored: no such event"
        copies = found.instances
        if found.organizer != self.owner:
            return "ignored: the recipient does not organize it"
        changed = False
        for component in incoming:
            attendees = _attendees(component)
            copy = copies.get(_instance(component))
            if len(attendees) != 1 or copy is None:
                continue
            (answer,) = attendees
            replier = _address(answer)
            if not sender or sender not in (replier, _address(answer.params.get("SENT-BY"))):
                continue
            partstat = str(answer.params.get("PARTSTAT", "")).upper()
            if not TOKEN.fullmatch(partstat) or _sequence(component) < _sequence(copy):
                continue
            for line in _attendees(copy):
                if _address(line) == replier:
                    line.params["PARTSTAT"] = partstat
                    changed = True
        if not changed:
            return "ignored: no attendee of this event answered"
        return self._store(found.collection, found.href, found.content, "attendee status updated")

    def cancel(self, uid: str, incoming: list[Component]) -> str:
        found = self.find(uid)
        if found is None:
            return "ignored: no such event"
        copies, organizer = found.instances, found.organizer
        if organizer in ("", self.owner) or organizer != _address(incoming[0].get("ORGANIZER")):
            return "ignored: not from the event's organizer"
        changed = False
        for component in incoming:
            key = _instance(component)
            previous = copies.get(key, copies.get(None))
            if _sequence(component) < _sequence(previous):
                continue
            if key is None:
                cancelled = list(copies.values())
            elif key in copies:
                cancelled = [copies[key]]
            elif None in copies and isinstance(component.get("RECURRENCE-ID"), vDDDTypes):
                # an instance of the series without an override of its own
                copies[None].add("EXDATE", key)
                cancelled = []
                changed = True
            else:
                continue
            for copy in cancelled:
                copy["STATUS"] = "CANCELLED"
                changed = True
        if not changed:
            return "ignored: older sequence"
        return self._store(found.collection, found.href, found.content, "cancelled")

    def _tentative(self, component: Component, previous: Component | None) -> None:
        """The recipient has not answered yet, unless they answered this very version."""
        answered = {
            _address(line): line.params.get("PARTSTAT")
            for line in (_attendees(previous) if previous is not None else [])
        }
        same_version = previous is not None and _sequence(previous) == _sequence(component)
        for line in _attendees(component):
            if _address(line) == self.owner:
                kept = answered.get(self.owner) if same_version else None
                line.params["PARTSTAT"] = kept or "NEEDS-ACTION"
        if "STATUS" not in component:
            component["STATUS"] = "TENTATIVE"

    def _default_calendar(self) -> radicale.storage.BaseCollection | None:
        path = f"{self.owner}/{DEFAULT_CALENDAR}"
        return next((c for c in self.calendars if c.path == path), None)

    def _free_name(self, collection: radicale.storage.BaseCollection, uid: str) -> str | None:
        taken = {item.href for item in collection.get_all()}
        readable = f"{uid}.ics" if SAFE_NAME.fullmatch(uid) else None
        hashed = hashlib.sha256(uid.encode()).hexdigest() + ".ics"
        return next((name for name in (readable, hashed) if name and name not in taken), None)

    def _store(
        self, collection: radicale.storage.BaseCollection, href: str, content: Calendar, done: str
    ) -> str:
        """Write as Radicale's PUT does, with its checks; the outcome to log. Like its PUT
        (radicale/app/put.py, prepare()), any exception from them means the object is refused:
        vobject and dateutil raise many kinds on malformed recurrence rules and dates."""
        try:
            components = radicale_item.read_components(content.to_ical().decode())
            radicale_item.check_and_sanitize_items(
                components, max_vevent_rrule_occurrence=self.max_occurrences, tag="VCALENDAR"
            )
            item = radicale_item.Item(collection_path=collection.path, vobject_item=components[0])
            item.prepare()
        except Exception as error:
            return f"ignored: not storable ({str(error)[:200]})"
        collection.upload(href, item)
        return done


def _object(message: Calendar, timezones: list[Component], events: list[Component]) -> Calendar:
    """A calendar object resource: the message's calendar properties but METHOD, its time
    zones, these events."""
    result = Calendar()
    for name, value in message.items():
        if name != "METHOD":
            result[name] = value
    if "VERSION" not in result:
        result["VERSION"] = "2.0"
    if "PRODID" not in result:
        result["PRODID"] = PRODID
    for component in (*timezones, *events):
        result.add_component(component)
    return result


def _instances(calendar: Calendar, uid: str) -> dict[Any, Component]:
    """The VEVENTs with this UID by RECURRENCE-ID (None for the series)."""
    return _instances_of(
        c for c in calendar.subcomponents if c.name == "VEVENT" and str(c.get("UID")) == uid
    )


def _instances_of(components: Iterable[Component]) -> dict[Any, Component]:
    return {_instance(component): component for component in components}


def _replace_instance(calendar: Calendar, uid: str, key: Any, component: Component) -> None:
    kept = [
        c
        for c in calendar.subcomponents
        if not (c.name == "VEVENT" and str(c.get("UID")) == uid and _instance(c) == key)
    ]
    calendar.subcomponents[:] = [*kept, component]


def _instance(component: Component) -> Any:
    """Which occurrence a component is about: None for the series (or a single event), else
    its RECURRENCE-ID as a value that compares equal across time zones."""
    value = component.get("RECURRENCE-ID")
    if value is None:
        return None
    return value.dt if isinstance(value, vDDDTypes) else repr(value)


def _sequence(component: Component | None) -> int:
    value = None if component is None else component.get("SEQUENCE")
    return int(value) if isinstance(value, int) else 0


def _attendees(component: Component) -> list[vCalAddress]:
    value = component.get("ATTENDEE")
    values = value if isinstance(value, list) else [value]
    return [line for line in values if isinstance(line, vCalAddress)]


def _address(value: object) -> str:
    """The mail address of a cal-address (`mailto:Bob@Example.org` → `bob@example.org`)."""
    if not isinstance(value, str):
        return ""
    return MAILTO.sub("", value.strip(), count=1).strip().lower()
