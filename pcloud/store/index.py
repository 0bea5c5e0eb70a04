"""The mail index of one account (`<data>/mail/<address>/index.sqlite3`).

It holds what listing a mailbox needs without opening message files: per mailbox UIDVALIDITY,
UIDNEXT and HIGHESTMODSEQ; per message its UID, file, flags, MODSEQ, internal date, size and the
header fields that mail programs list messages by (CACHED_FIELDS). Expunged UIDs are kept with
their MODSEQ for QRESYNC (VANISHED). The bytes used, for the quota, are kept by triggers so that
they cannot drift from the messages. A message delivered but whose file is not written yet has
its content in `unwritten` (see mail.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping

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
        headers TEXT NOT NULL,              -- JSON object: cached_header_lines() of the message
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
    # 2: what listing a mailbox reads (SELECT, FETCH of flags, STATUS), in an index of its own:
    # a third quicker to scan than the rows, which hold the header fields.
    """
    CREATE INDEX messages_listing ON messages (mailbox_id, uid, flags, modseq, internal_date, size);
    """,
    # 3: a delivery is one transaction (one flush) holding the message's row and content; its
    # file is written afterwards and the content dropped (mail.py, Account.deliver).
    """
    CREATE TABLE unwritten (
        mailbox_id INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        content BLOB NOT NULL,
        PRIMARY KEY (mailbox_id, uid),
        FOREIGN KEY (mailbox_id, uid) REFERENCES messages (mailbox_id, uid) ON DELETE CASCADE
    );
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
# What the index keeps: the envelope's fields and the others that mail programs ask for when
# they list a mailbox (Thunderbird's, mutt's and Roundcube's BODY.PEEK[HEADER.FIELDS (...)]), so
# that listing opens no message file. Each is short and, but for broken mail, occurs once.
CACHED_FIELDS = frozenset(
    (
        *ENVELOPE_FIELDS,
        "references",
        "content-type",
        "content-description",
        "priority",
        "x-priority",
        "importance",
        "newsgroups",
        "lines",
        "list-post",
        "list-subscribe",
        "list-unsubscribe",
        "disposition-notification-to",
        "x-label",
        "x-original-to",
    )
)
_CACHED_NAMES = frozenset(name.encode() for name in CACHED_FIELDS)
_NEXT_FIELD = re.compile(r"\r\n(?![ \t])")  # a line end after which another field starts
_BLANKS = re.compile(r"[ \t]+")


def header_block(message: bytes) -> bytes:
    """The header part of a message, up to the first empty line."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = message.find(separator)
        if end != -1:
            return message[: end + len(separator)]
    return message


def cached_header_lines(message: bytes) -> dict[str, str]:
    """The CACHED_FIELDS of a message, by lower-case name, in the order they first appear: each
    field's lines as written (every occurrence, folded lines kept), each line ending in CRLF,
    8-bit bytes kept as surrogates (UTF-8 surrogateescape), so that the lines go back out as
    they came. Fields are read as IMAP's HEADER.FIELDS reads them (imap/message.py)."""
    found: dict[bytes, bytes] = {}
    name = b""
    for line in header_block(message).split(b"\n"):
        line = line.removesuffix(b"\r")
        if not line:
            break
        if line[:1] not in (b" ", b"\t"):  # else a folded line of the field above
            field, colon, _ = line.partition(b":")
            name = field.strip().lower() if colon else b""
        if name in _CACHED_NAMES:
            found[name] = found.get(name, b"") + line + b"\r\n"
    return {
        name.decode(): lines.decode("utf-8", "surrogateescape") for name, lines in found.items()
    }


def kept_fields(stored: str) -> dict[str, str]:
    """cached_header_lines() of a message, from the `headers` column (JSON: 8-bit bytes, kept as
    surrogates, cannot go in a TEXT column as they are)."""
    fields: dict[str, str] = json.loads(stored)
    return fields


def first_values(cached: Mapping[str, str], names: Collection[str] | None = None) -> dict[str, str]:
    """The value of each field's first occurrence (RFC 5322 §3.6 allows one of most), by
    lower-case name, from cached_header_lines(): after the colon and the blanks that follow it,
    folding kept, without the last line end (as the email package's compat32 reads it). Only
    the fields `names`, when given."""
    values = {}
    for name, lines in cached.items():
        if names is not None and name not in names:
            continue
        end = lines.find("\r\n")
        if end != len(lines) - 2:  # more lines than one (the pattern is slow: seldom needed)
            found = _NEXT_FIELD.search(lines, end)
            end = found.start() if found is not None else len(lines)
        values[name] = lines[:end].partition(":")[2].lstrip(" \t")
    return values


def occurs_once(lines: str) -> bool:
    """Whether a field's lines (as cached_header_lines keeps them) are of one occurrence."""
    return _NEXT_FIELD.search(lines, 0, len(lines) - 2) is None


def text_filter(needle: str) -> tuple[str, list[str]]:
    """An SQL condition on the `headers` column that every message meets whose kept fields
    hold `needle` as IMAP SEARCH reads them (RFC 2047 decoded, 8-bit text as UTF-8, unfolded,
    casefolded); other messages may meet it too. The column's JSON is ASCII, 8-bit and control
    characters written as \\u escapes: a row without those nor an encoded word holds its text as
    written, where each piece of the needle between blanks (where a fold may be) must appear, in
    any ASCII case (LIKE's)."""
    conditions = []
    for piece in _BLANKS.split(needle):
        if piece:
            escaped = json.dumps(piece)[1:-1]
            for special in "!%_":
                escaped = escaped.replace(special, "!" + special)
            conditions.append(f"%{escaped}%")
    if not conditions:
        return "1", []
    words = " AND ".join("headers LIKE ? ESCAPE '!'" for _ in conditions)
    # LIKE, not instr(), which counts characters as it goes: three times slower.
    return f"(headers LIKE '%\\u%' OR headers LIKE '%=?%' OR ({words}))", conditions
