"""Presence subscription states (RFC 6121 §3 and Appendix A), pure: what a subscription stanza
does to one side's roster item.

A user's item for a contact holds the subscription ("none", "to": the user sees the contact's
presence, "from": the contact sees the user's, "both") and two pending flags: `ask` (pending
out: the user asked for the contact's presence) and `pending_in` (the contact asked for the
user's and awaits an answer). A request from a stranger is kept in an item that is not listed
in the user's roster until the user approves it.

`outbound` is what the sender's server does with the user's own stanza (Appendix A.2), `inbound`
what the receiver's server does with one addressed to its user (Appendix A.3); the XMPP server
applies both, one per side, since every user is local.

Not supported yet: pre-approval (RFC 6121 §3.4: an approval without a pending request is
ignored, and the stream feature is not offered).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pcloud.store.xmpp import RosterItem

KINDS = ("subscribe", "subscribed", "unsubscribe", "unsubscribed")

# subscription after gaining or losing a direction
_ADD_TO = {"none": "to", "from": "both", "to": "to", "both": "both"}
_ADD_FROM = {"none": "from", "to": "both", "from": "from", "both": "both"}
_DROP_TO = {"to": "none", "both": "from", "none": "none", "from": "from"}
_DROP_FROM = {"from": "none", "both": "to", "none": "none", "to": "to"}


@dataclass(frozen=True)
class Change:
    item: RosterItem
    changed: bool  # the item differs: store it
    forward: bool  # route the stanza on (outbound) or deliver it to the user (inbound)
    auto_reply: bool = False  # inbound subscribe already approved: answer "subscribed"
    shown: bool = False  # what the roster shows changed (not only pending_in): push it


def _change(before: RosterItem, after: RosterItem, forward: bool) -> Change:
    def seen(item: RosterItem) -> tuple[object, ...]:
        return item.listed, item.subscription, item.ask

    return Change(
        after, after != before, forward, shown=after.listed and seen(after) != seen(before)
    )


def outbound(item: RosterItem | None, contact: str, kind: str) -> Change:
    """The user sent a `kind` presence to the contact (RFC 6121 §3.1.2, §3.1.5, §3.2.2, §3.3.2)."""
    before = item or RosterItem(contact, listed=False)
    if kind == "subscribe":
        if before.subscription in ("to", "both"):
            return Change(before, False, True)
        return _change(before, dataclasses.replace(before, ask=True, listed=True), True)
    if kind == "subscribed":
        if not before.pending_in:
            return Change(before, False, False)
        after = dataclasses.replace(
            before, subscription=_ADD_FROM[before.subscription], pending_in=False, listed=True
        )
        return _change(before, after, True)
    if kind == "unsubscribe":
        after = dataclasses.replace(before, subscription=_DROP_TO[before.subscription], ask=False)
        return _change(before, after, True)
    # unsubscribed: cancel the contact's subscription, or refuse their request
    after = dataclasses.replace(
        before, subscription=_DROP_FROM[before.subscription], pending_in=False
    )
    return _change(before, after, after != before)


def inbound(item: RosterItem | None, contact: str, kind: str) -> Change:
    """The user received a `kind` presence from the contact (RFC 6121 §3.1.3, §3.1.6, §3.2.3,
    §3.3.3)."""
    before = item or RosterItem(contact, listed=False)
    if kind == "subscribe":
        if before.subscription in ("from", "both"):
            return Change(before, False, False, auto_reply=True)
        if before.pending_in:
            return Change(before, False, False)
        return _change(before, dataclasses.replace(before, pending_in=True), True)
    if kind == "subscribed":
        if not before.ask:
            return Change(before, False, False)
        after = dataclasses.replace(before, subscription=_ADD_TO[before.subscription], ask=False)
        return _change(before, after, True)
    if kind == "unsubscribe":
        after = dataclasses.replace(
            before, subscription=_DROP_FROM[before.subscription], pending_in=False
        )
        return _change(before, after, after != before)
    # unsubscribed: the contact cancelled or refused the user's subscription
    after = dataclasses.replace(before, subscription=_DROP_TO[before.subscription], ask=False)
    return _change(before, after, after != before)
