"""In-process publish/subscribe of typed changes, so that protocols learn what others did.

The store publishes an event after the change is committed; a session (IMAP IDLE, later JMAP push
or an XMPP notice) subscribes to one account. Publishing is safe from any thread: each event is
handed to the subscriber's own event loop. A subscriber that falls more than `QUEUE_LIMIT`
events behind gets `Overflowed` once and nothing more until it re-reads the state it watches.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class MessageAdded:
    account: str
    mailbox: str
    uid: int
    modseq: int


@dataclass(frozen=True)
class FlagsChanged:
    account: str
    mailbox: str
    uids: tuple[int, ...]
    modseq: int


@dataclass(frozen=True)
class Expunged:
    account: str
    mailbox: str
    uids: tuple[int, ...]
    modseq: int


@dataclass(frozen=True)
class MailboxChanged:
    """A mailbox was created, renamed (new_name set) or deleted (new_name None, created False)."""

    account: str
    mailbox: str
    new_name: str | None
    created: bool = False


@dataclass(frozen=True)
class Overflowed:
    account: str


Event = MessageAdded | FlagsChanged | Expunged | MailboxChanged | Overflowed

QUEUE_LIMIT = 10_000


class Subscription:
    def __init__(self, events: Events, account: str) -> None:
        self.events = events
        self.account = account
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.overflowed = False

    def _deliver(self, event: Event) -> None:
        """Runs on the subscriber's loop."""
        if self.overflowed:
            return
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.overflowed = True
            event = Overflowed(self.account)
        self.queue.put_nowait(event)

    async def next(self) -> Event:
        event = await self.queue.get()
        if isinstance(event, Overflowed):
            self.overflowed = False
        return event

    def close(self) -> None:
        self.events._unsubscribe(self)


class Events:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: dict[str, set[Subscription]] = {}

    def subscribe(self, account: str) -> Subscription:
        """Call on the loop that will read the events."""
        subscription = Subscription(self, account)
        with self._lock:
            self._subscriptions.setdefault(account, set()).add(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            subscribers = self._subscriptions.get(subscription.account, set())
            subscribers.discard(subscription)
            if not subscribers:
                self._subscriptions.pop(subscription.account, None)

    def publish(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscriptions.get(event.account, ()))
        for subscription in subscribers:
            if not subscription.loop.is_closed():
                subscription.loop.call_soon_threadsafe(subscription._deliver, event)
