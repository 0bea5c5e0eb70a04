"""IMAP: users' mail programs read and organise their mail (993 with TLS, 143 with STARTTLS).

pcloud's own server on asyncio, over the mail store (Twisted's IMAP server lacks what today's
clients use and loses track of message numbers across sessions). RFC 3501 (IMAP4rev1) and
RFC 9051 (IMAP4rev2, after ENABLE IMAP4rev2), with: IDLE (RFC 2177), NAMESPACE (RFC 2342),
ID (RFC 2971), ENABLE (RFC 5161), UNSELECT (RFC 3691), UIDPLUS (RFC 4315), MOVE (RFC 6851),
SPECIAL-USE and CREATE-SPECIAL-USE (RFC 6154), LITERAL+ (RFC 7888), SASL-IR (RFC 4959),
AUTH=PLAIN (RFC 4616, with an administrator's authorization identity), CONDSTORE and QRESYNC
(RFC 7162), ESEARCH (RFC 4731), LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), QUOTA
(RFC 9208, the STORAGE resource), APPENDLIMIT (RFC 7889), BINARY (RFC 3516), CHILDREN
(RFC 3348), STATUS=SIZE (RFC 8438), UTF8=ACCEPT (RFC 6855).

Where things are: parse.py (bytes → values.py commands, pure), server.py (connections, bounds,
STARTTLS), session.py (states, dispatch, catching up with other sessions), selected.py (a
session's message numbers), fetch.py, messages.py (STORE, COPY, MOVE, EXPUNGE, SEARCH),
mailboxes.py, search.py and message.py/mime.py (pure), wire.py (response syntax).

Implementation notes:
- Passwords only inside TLS: before it, LOGINDISABLED and no AUTH= mechanism.
- Every session keeps its own message numbers and learns of others' changes by asking the store
  what changed after its last MODSEQ (events only wake it), so a phone and a desktop open on one
  mailbox never disagree about message numbers.
- \\Recent is never set (RFC 9051 dropped it): SELECT reports 0 RECENT.

Not supported yet: SEARCHRES (RETURN (SAVE) and "$"), MULTIAPPEND, CATENATE, URLAUTH, SORT and
THREAD, NOTIFY, METADATA, COMPRESS=DEFLATE, the QUOTA MESSAGE resource, SASL mechanisms other
than PLAIN (no SCRAM yet: the directory keeps no SCRAM keys), OLDNAME, subscriptions to names
that are not mailboxes.
"""
