"""The IMAP errors a command handler raises; the session turns each into one tagged reply."""

from __future__ import annotations

from typing import Literal

from pcloud.store.mail_values import (
    MailboxExists,
    MailboxNotFound,
    MailStoreError,
    QuotaExceeded,
)


class ImapError(Exception):
    """`<tag> NO|BAD [code] text` (RFC 9051 §7.1)."""

    def __init__(self, text: str, *, code: str | None = None, status: Literal["NO", "BAD"] = "NO"):
        super().__init__(text)
        self.text = text
        self.code = code
        self.status = status


def bad(text: str) -> ImapError:
    return ImapError(text, status="BAD")


def from_store(error: MailStoreError, *, trycreate: bool = False) -> ImapError:
    """A store refusal as the client should see it (RFC 5530 response codes); `trycreate` for
    commands whose target mailbox the client may create (APPEND, COPY, MOVE: RFC 9051 §7.1)."""
    if isinstance(error, MailboxNotFound):
        return ImapError(str(error), code="TRYCREATE" if trycreate else "NONEXISTENT")
    if isinstance(error, MailboxExists):
        return ImapError(str(error), code="ALREADYEXISTS")
    if isinstance(error, QuotaExceeded):
        return ImapError(str(error), code="OVERQUOTA")
    return ImapError(str(error), code="CANNOT")
