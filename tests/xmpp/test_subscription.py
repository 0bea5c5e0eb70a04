"""Subscription states (RFC 6121 Appendix A), without sockets: both sides of each exchange."""

from __future__ import annotations

from pcloud.store.xmpp import RosterItem
from pcloud.xmpp.subscription import inbound, outbound


def exchange(
    sender: RosterItem | None, receiver: RosterItem | None, kind: str
) -> tuple[RosterItem, RosterItem | None]:
    """One subscription stanza: the sender's item after, and the receiver's (None: not
    routed)."""
    out = outbound(sender, "receiver", kind)
    if not out.forward:
        return out.item, None
    return out.item, inbound(receiver, "sender", kind).item


def test_request_approval_and_cancellation() -> None:
    user, contact = exchange(None, None, "subscribe")
    assert (user.subscription, user.ask, user.listed) == ("none", True, True)
    assert contact is not None and contact.pending_in and not contact.listed
    contact, user = exchange(contact, user, "subscribed")
    assert (contact.subscription, contact.pending_in, contact.listed) == ("from", False, True)
    assert user is not None and (user.subscription, user.ask) == ("to", False)
    # the other way round: both
    contact, user = exchange(contact, user, "subscribe")
    user, contact = exchange(user, contact, "subscribed")
    assert user.subscription == "both" and contact is not None
    assert contact.subscription == "both"
    # the user stops seeing the contact; the contact stops being seen by the user
    user, contact = exchange(user, contact, "unsubscribe")
    assert user.subscription == "from" and contact is not None and contact.subscription == "to"
    user, contact = exchange(user, contact, "unsubscribed")
    assert user.subscription == "none" and contact is not None and contact.subscription == "none"


def test_refusal_and_answers_without_a_request() -> None:
    user, contact = exchange(None, None, "subscribe")
    assert contact is not None
    contact, user = exchange(contact, user, "unsubscribed")
    assert (contact.pending_in, user is not None and user.ask) == (False, False)
    # an approval nobody asked for is not routed (no pre-approval)
    stray = outbound(None, "receiver", "subscribed")
    assert not stray.forward and not stray.changed
    # an approval the user did not ask for changes nothing
    assert not inbound(RosterItem("sender"), "sender", "subscribed").changed


def test_a_request_already_approved_is_answered_by_the_server() -> None:
    change = inbound(RosterItem("sender", subscription="from"), "sender", "subscribe")
    assert change.auto_reply and not change.forward and not change.changed
    again = inbound(RosterItem("sender", pending_in=True), "sender", "subscribe")
    assert not again.forward  # not delivered twice
