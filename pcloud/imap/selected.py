"""A session's view of its selected mailbox: the message numbers it has told the client about,
and how it catches up with changes made elsewhere.

Invariants:
- `uids` is what the client believes: message number n is `uids[n - 1]`. It changes only when
  the client is told (EXISTS, EXPUNGE/VANISHED), so numbers never shift under a client's feet.
- `modseq` is the mailbox's HIGHESTMODSEQ up to which every change has been reported (or is
  held in `pending_expunges`). Catching up asks the store what changed after it, whichever
  session, delivery or protocol made the change; the store's events only say *when* to look.
- Expunges are held back while a FETCH, STORE or SEARCH by message number runs (RFC 9051
  §7.5.1), and reported at the next moment that allows them.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

from pcloud.imap.errors import bad
from pcloud.imap.values import SequenceSet
from pcloud.store.mail_values import MailboxChanges, MailboxView, Message


@dataclass
class Update:
    """What a catch-up tells the client, in this order: expunges, then the new count, then
    flag changes (with message numbers as they are after the expunges)."""

    expunged: list[tuple[int, int]] = field(default_factory=list)  # (number, uid), descending
    exists: int | None = None
    changed: list[tuple[int, Message]] = field(default_factory=list)  # (number, message)
    uidvalidity_changed: bool = False


class Selected:
    def __init__(self, view: MailboxView, *, read_only: bool) -> None:
        self.name = view.name
        self.read_only = read_only
        self.uidvalidity = view.uidvalidity
        self.uids: array[int] = view.uids
        self.modseq = view.highestmodseq
        self.pending_expunges: set[int] = set()

    def __len__(self) -> int:
        return len(self.uids)

    @property
    def largest_uid(self) -> int:
        return self.uids[-1] if self.uids else 0

    def number_of(self, uid: int) -> int | None:
        index = bisect.bisect_left(self.uids, uid)
        if index < len(self.uids) and self.uids[index] == uid:
            return index + 1
        return None

    def resolve(self, sequence: SequenceSet, *, uid: bool) -> list[tuple[int, int]]:
        """The messages a sequence set names, as (number, uid) pairs in order.

        RFC 9051 §6.4.8: in a UID set, "*" is the largest UID and UIDs that do not exist are
        ignored; in a message-number set a number beyond the count is an error."""
        pairs: list[tuple[int, int]] = []
        if uid:
            for low, high in sequence.resolve(self.largest_uid):
                start = bisect.bisect_left(self.uids, low)
                end = bisect.bisect_right(self.uids, high)
                pairs.extend((index + 1, self.uids[index]) for index in range(start, end))
            return pairs
        count = len(self.uids)
        for low, high in sequence.resolve(count):
            if high > count:
                raise bad("Invalid message sequence number: beyond the last message")
            pairs.extend((number, self.uids[number - 1]) for number in range(low, high + 1))
        return pairs

    def apply(self, changes: MailboxChanges, *, expunges_allowed: bool) -> Update:
        """Take in what changed since `modseq`; returns what to tell the client now."""
        update = Update()
        if changes.uidvalidity != self.uidvalidity:  # deleted and created again
            update.uidvalidity_changed = True
            return update
        self.pending_expunges.update(
            uid for uid in changes.vanished if self.number_of(uid) is not None
        )
        if expunges_allowed and self.pending_expunges:
            update.expunged = self._remove(self.pending_expunges)
            self.pending_expunges = set()
        new = [m.uid for m in changes.changed if m.uid > self.largest_uid]
        if new:
            self.uids.extend(new)
        if new or update.expunged:
            update.exists = len(self.uids)
        for message in changes.changed:
            number = self.number_of(message.uid)
            if (
                number is not None
                and message.uid not in new
                and message.uid not in self.pending_expunges
            ):
                update.changed.append((number, message))
        self.modseq = max(self.modseq, changes.highestmodseq)
        return update

    def _remove(self, uids: Iterable[int]) -> list[tuple[int, int]]:
        """Drop these UIDs from the view; (number, uid) pairs from the highest number down, so
        that each number is right when the client applies the EXPUNGEs in that order."""
        doomed = set(uids)
        removed = [(index + 1, uid) for index, uid in enumerate(self.uids) if uid in doomed]
        self.uids = array("I", (uid for uid in self.uids if uid not in doomed))
        return removed[::-1]
