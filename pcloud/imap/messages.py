"""Commands on the messages of the selected mailbox: STORE, COPY, MOVE, EXPUNGE and SEARCH.

What they change is reported back through the session's catch-up (session.catch_up), the same
way as changes made by other sessions, so that one path keeps message numbers right.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pcloud.imap.errors import ImapError, bad, from_store
from pcloud.imap.fetch import uid_ranges
from pcloud.imap.search import (
    Candidate,
    compress_sequence,
    header_fields_read,
    highest_modseq,
    mentions_modseq,
    text_needle,
)
from pcloud.imap.search import search as run_search
from pcloud.imap.values import Command, Copy, Search, Store, UidExpunge
from pcloud.store.mail_values import MailStoreError

if TYPE_CHECKING:
    from pcloud.imap.selected import Selected
    from pcloud.imap.session import Session


def _writable(session: Session) -> Selected:
    selected = session.require_selected()
    if selected.read_only:
        raise ImapError("The mailbox is open read-only (EXAMINE)", code="READ-ONLY")
    return selected


# RFC 9051 §6.4.6, RFC 7162 §3.1.3 (UNCHANGEDSINCE)
async def store(session: Session, command: Command) -> str:
    arguments = command.arguments
    assert isinstance(arguments, Store)
    selected = _writable(session)
    account = session.require_account()
    if arguments.unchanged_since is not None:
        session.enabled.add("CONDSTORE")
    pairs = selected.resolve(arguments.sequence, uid=command.uid)
    change = await session.store_call(
        account.set_flags, selected.name, [uid for _, uid in pairs], arguments.flags,
        arguments.mode, unchanged_since=arguments.unchanged_since,
    )  # fmt: skip
    if change.changed and change.modseq == selected.modseq + 1:
        selected.modseq = change.modseq  # only ours changed: reported below, not again
    failed = set(change.failed)
    # Without .SILENT every message gets its flags back; with it, under CONDSTORE, the changed
    # ones still get their new MODSEQ (RFC 7162 §3.1.3).
    report = (
        [pair for pair in pairs if pair[1] not in failed]
        if not arguments.silent
        else [pair for pair in pairs if pair[1] in set(change.changed)] if session.condstore
        else []
    )  # fmt: skip
    if report:
        current = await session.store_call(
            account.messages, selected.name, uid_ranges([uid for _, uid in report]),
            headers=False,
        )  # fmt: skip
        for message in current:
            number = selected.number_of(message.uid)
            if number is not None:
                session.untagged(session.fetch_flags_line(number, message))
    if failed:
        ids = [uid if command.uid else number for number, uid in pairs if uid in failed]
        return f"[MODIFIED {compress_sequence(ids)}] Conditional STORE failed"
    return "STORE completed"


# RFC 9051 §6.4.7 (COPY), RFC 6851 (MOVE), RFC 4315 §3 (COPYUID)
async def copy(session: Session, command: Command) -> str:
    arguments = command.arguments
    assert isinstance(arguments, Copy)
    selected = session.require_selected() if command.name == "COPY" else _writable(session)
    account = session.require_account()
    uids = [uid for _, uid in selected.resolve(arguments.sequence, uid=command.uid)]
    operation = account.copy if command.name == "COPY" else account.move
    try:
        pairs = await asyncio.to_thread(operation, selected.name, uids, arguments.mailbox)
        target = await asyncio.to_thread(account.mailboxes, arguments.mailbox)
    except MailStoreError as error:
        raise from_store(error, trycreate=True) from None
    if not pairs:
        return f"{command.name} completed: no messages"
    old_uids = compress_sequence(old for old, _ in pairs)
    new_uids = compress_sequence(new for _, new in pairs)
    code = f"COPYUID {target[0].uidvalidity} {old_uids} {new_uids}"
    if command.name == "MOVE":  # RFC 6851 §4.3: COPYUID untagged, before the expunges
        session.untagged(f"OK [{code}] Moved".encode())
        return "MOVE completed"
    return f"[{code}] COPY completed"


# RFC 9051 §6.4.3 (EXPUNGE), RFC 4315 §2.1 (UID EXPUNGE)
async def expunge(session: Session, command: Command) -> str:
    selected = _writable(session)
    account = session.require_account()
    uids = None
    if command.uid:
        arguments = command.arguments
        if not isinstance(arguments, UidExpunge):
            raise bad("UID EXPUNGE needs a UID set")
        uids = [uid for _, uid in selected.resolve(arguments.sequence, uid=True)]
    await session.store_call(account.expunge, selected.name, uids)
    return "EXPUNGE completed"


# RFC 9051 §6.4.4, RFC 4731 (ESEARCH), RFC 7162 §3.1.5 (MODSEQ)
async def search(session: Session, command: Command) -> str:
    arguments = command.arguments
    assert isinstance(arguments, Search)
    selected = session.require_selected()
    account = session.require_account()
    if arguments.returns is not None and "SAVE" in arguments.returns:
        raise bad("SEARCH RETURN (SAVE) is not supported")
    with_modseq = mentions_modseq(arguments.key)
    if with_modseq:
        session.enabled.add("CONDSTORE")
    messages = await session.store_call(
        account.messages, selected.name, headers=header_fields_read(arguments.key),
        containing=text_needle(arguments.key),
    )  # fmt: skip
    candidates = []
    for message in messages:
        number = selected.number_of(message.uid)
        if number is not None:  # not yet announced with EXISTS: not in the client's view
            candidates.append(Candidate(number, message, False))

    def read_message(uid: int) -> bytes:
        return account.message_file(selected.name, uid).read_bytes()

    try:
        matches = await asyncio.to_thread(
            run_search, arguments.key, candidates, largest_number=len(selected),
            largest_uid=selected.largest_uid, read_message=read_message,
        )  # fmt: skip
    except (MailStoreError, FileNotFoundError):  # expunged while being read
        raise ImapError(
            "Messages were expunged meanwhile; search again", code="EXPUNGEISSUED"
        ) from None
    ids = [c.message.uid if command.uid else c.number for c in matches]
    modseq = highest_modseq(matches) if with_modseq else 0
    if arguments.returns is None and not session.rev2:
        line = b"SEARCH" + b"".join(b" %d" % n for n in ids)
        if modseq:
            line += b" (MODSEQ %d)" % modseq
        session.untagged(line)
        return "SEARCH completed"
    returns = arguments.returns or ("ALL",)
    parts = [b'(TAG "' + command.tag.encode() + b'")']
    if command.uid:
        parts.append(b"UID")
    if ids:
        if "MIN" in returns:
            parts.append(b"MIN %d" % min(ids))
        if "MAX" in returns:
            parts.append(b"MAX %d" % max(ids))
        if "ALL" in returns:
            parts.append(b"ALL " + compress_sequence(sorted(ids)).encode())
    if "COUNT" in returns:
        parts.append(b"COUNT %d" % len(ids))
    if modseq:
        parts.append(b"MODSEQ %d" % modseq)
    session.untagged(b"ESEARCH " + b" ".join(parts))
    return "SEARCH completed"
