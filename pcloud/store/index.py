"""The mail index of one account (`<data>/mail/<address>/index.sqlite3`).

It holds what listing a mailbox needs without opening message files: per mailbox UIDVALIDITY,
UIDNEXT and HIGHESTMODSEQ; per message its UID, file, flags, MODSEQ, internal date, size and the
envelope header fields. Expunged UIDs are kept with their MODSEQ for QRESYNC (VANISHED). The
bytes used, for the quota, are kept by triggers so that they cannot drift from the messages.
"""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32

MIGRATIONS: tuple[str, ...] = (
    # 1: mailboxes, messages, vanished UIDs, the account's usage.
    """
    CREATE TABLE mailboxes (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,          -- "INBOX", "Sent", "Archive/2024"
        folder TEXT NOT NULL UNIQUE,        -- Maildir++ folder: "", ".Sent", ".Archive.2024"
        special_use TEXT,                   -- \\Sent, \\Drafts, \\Trash, \\Junk, \\Archive
        uidvalidity INTEGER NOT NULL,
        uidnext INTEGER NOT NULL,
        highestmodseq INTEGER NOT NULL,
        subscribed INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE messages (
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        file TEXT NOT NULL,                 -- its name in the folder's cur/
        flags TEXT NOT NULL DEFAULT '',     -- system flags and keywords, space-separated
        modseq INTEGER NOT NULL,
        internal_date INTEGER NOT NULL,     -- unix seconds
        size INTEGER NOT NULL,
        headers TEXT NOT NULL,              -- JSON object of the envelope header fields
        PRIMARY KEY (mailbox_id, uid)
    ) WITHOUT ROWID;
    CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);
    CREATE TABLE vanished (
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        modseq INTEGER NOT NULL,
        PRIMARY KEY (mailbox_id, uid)
    ) WITHOUT ROWID;
    CREATE TABLE account (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        bytes INTEGER NOT NULL,             -- kept by the triggers below
        messages INTEGER NOT NULL,
        last_uidvalidity INTEGER NOT NULL   -- a re-created mailbox must get a new one
    );
    INSERT INTO account VALUES (1, 0, 0, 0);
    CREATE TRIGGER usage_add AFTER INSERT ON messages BEGIN
        UPDATE account SET bytes = bytes + NEW.size, messages = messages + 1;
    END;
    CREATE TRIGGER usage_remove AFTER DELETE ON messages BEGIN
        UPDATE account SET bytes = bytes - OLD.size, messages = messages - 1;
    END;
    """,
)

# The header fields an IMAP ENVELOPE (RFC 9051 §7.5.2) and a message list are built from.
ENVELOPE_FIELDS = (
    "date",
    "subject",
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "in-reply-to",
    "message-id",
)


def header_block(message: bytes) -> bytes:
    """The header part of a message, up to the first empty line."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = message.find(separator)
        if end != -1:
            return message[: end + len(separator)]
    return message


def envelope_headers(message: bytes) -> dict[str, str]:
    """The first value of each envelope field, as written (folding kept, 8-bit bytes kept as
    surrogates: str() of a compat32 header would turn them into U+FFFD)."""
    parsed = BytesHeaderParser(policy=compat32).parsebytes(header_block(message))
    found: dict[str, str] = {}
    for name, value in parsed.raw_items():
        if name.lower() in ENVELOPE_FIELDS:
            found.setdefault(name.lower(), value)
    return found
