"""The IMAP command parser: every command's grammar, literals, sequence sets, FETCH attributes
and SEARCH keys, malformed input of every kind (BAD with the right tag), and random bytes, which
must give nothing but ParseError."""

from __future__ import annotations

import contextlib
import datetime
import random

import pytest

from pcloud.imap.parse import literal_at_end, parse_command
from pcloud.imap.values import (
    STAR,
    All,
    And,
    Append,
    Arguments,
    Authenticate,
    Command,
    Copy,
    Create,
    DateKey,
    Enable,
    Fetch,
    FetchAttribute,
    FlagKey,
    HeaderKey,
    Id,
    ListCommand,
    Login,
    MailboxName,
    ModSeqKey,
    Not,
    Or,
    ParseError,
    Qresync,
    QuotaRoot,
    Rename,
    Search,
    SearchKey,
    SearchReturn,
    Section,
    Select,
    SequenceKey,
    SequenceSet,
    SetQuota,
    SizeKey,
    Status,
    Store,
    TextKey,
    UidExpunge,
    UnknownCharset,
)


def sequence(*ranges: tuple[int, int] | int) -> SequenceSet:
    return SequenceSet(tuple((r, r) if isinstance(r, int) else r for r in ranges))


FLAGS = FetchAttribute("FLAGS")
UID = FetchAttribute("UID")
FAST = (FLAGS, FetchAttribute("INTERNALDATE"), FetchAttribute("RFC822.SIZE"))
ALL = (*FAST, FetchAttribute("ENVELOPE"))
SEEN = FlagKey("\\Seen", True)
UNSEEN = FlagKey("\\Seen", False)
RECENT = FlagKey("\\Recent", True)
MAX = 2**32 - 1
ZONE = datetime.timezone(datetime.timedelta(hours=-7))


# -- commands: (command as sent, the arguments it gives) ---------------------------------------

COMMANDS: list[tuple[bytes, Arguments]] = [
    # any state, not authenticated
    (b"a1 CAPABILITY", None),
    (b"a1 noop", None),
    (b"a1 LOGOUT", None),
    (b"a1 STARTTLS", None),
    (b"a1 AUTHENTICATE plain", Authenticate("PLAIN")),
    (b"a1 AUTHENTICATE PLAIN =", Authenticate("PLAIN", b"")),
    (b"a1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==", Authenticate("PLAIN", b"\0alice\0secret")),
    (b"a1 LOGIN alice secret", Login("alice", "secret")),
    (b'a1 LOGIN "alice@example.org" "se\\"cr\\\\et"', Login("alice@example.org", 'se"cr\\et')),
    (b"a1 LOGIN {5}\r\nalice {6}\r\nsecret", Login("alice", "secret")),
    (b"a1 LOGIN {5+}\r\nalice {6+}\r\nsecret", Login("alice", "secret")),
    (b'a1 LOGIN alice "p\xc3\xa4ss"', Login("alice", "päss")),
    (b"a1 LOGIN alice {2}\r\n\xff\xfe", Login("alice", "\udcff\udcfe")),  # surrogate escapes
    (b"a1 LOGIN alice ]x", Login("alice", "]x")),  # "]" is an ASTRING-CHAR
    (b"a1 ID NIL", Id(None)),
    (b"a1 ID ()", Id({})),
    (
        b'a1 ID ("name" "Thunderbird" "version" {4}\r\n1.00 "os" NIL)',
        Id({"name": "Thunderbird", "version": "1.00", "os": None}),
    ),
    (b"a1 ENABLE UTF8=ACCEPT condstore", Enable(("UTF8=ACCEPT", "CONDSTORE"))),
    # authenticated
    (b"a1 SELECT INBOX", Select("INBOX", read_only=False)),
    (b"a1 select inbox", Select("INBOX", read_only=False)),
    (b'a1 SELECT "iNbOx"', Select("INBOX", read_only=False)),
    (b"a1 EXAMINE Archive", Select("Archive", read_only=True)),
    (b"a1 SELECT INBOX (CONDSTORE)", Select("INBOX", False, condstore=True)),
    (
        b"a1 SELECT INBOX (QRESYNC (67890007 20050715194045000))",
        Select("INBOX", False, qresync=Qresync(67890007, 20050715194045000)),
    ),
    (  # RFC 7162 §3.2.5.2's example
        b"A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))",
        Select(
            "INBOX",
            False,
            qresync=Qresync(67890007, 20050715194045000, sequence(41, (43, 211), (214, 541))),
        ),
    ),
    (
        b"a1 EXAMINE INBOX (QRESYNC (1 2 1:100 (1,3:5 2,4:9)) CONDSTORE)",
        Select(
            "INBOX",
            True,
            condstore=True,
            qresync=Qresync(1, 2, sequence((1, 100)), (sequence(1, (3, 5)), sequence(2, (4, 9)))),
        ),
    ),
    (
        b"a1 SELECT INBOX (QRESYNC (1 2 (1 2)))",
        Select("INBOX", False, qresync=Qresync(1, 2, None, (sequence(1), sequence(2)))),
    ),
    (b"a1 CREATE Projects/2026", Create("Projects/2026")),
    (b"a1 CREATE Attic (USE (\\Archive))", Create("Attic", ("\\Archive",))),
    (b"a1 CREATE x (use (\\Sent \\Junk))", Create("x", ("\\Sent", "\\Junk"))),
    (b"a1 CREATE x (USE ())", Create("x")),
    (b"a1 DELETE Old", MailboxName("Old")),
    (b"a1 RENAME Old New", Rename("Old", "New")),
    (b'a1 RENAME "a b" {3}\r\nc d', Rename("a b", "c d")),
    (b"a1 SUBSCRIBE News", MailboxName("News")),
    (b"a1 UNSUBSCRIBE News", MailboxName("News")),
    (b'a1 LIST "" *', ListCommand("", ("*",))),
    (b'a1 LIST "" ""', ListCommand("", ("",))),
    (b"a1 LIST ~peter/ %/x*", ListCommand("~peter/", ("%/x*",))),
    (b'a1 LIST "" (INBOX Drafts*)', ListCommand("", ("INBOX", "Drafts*"))),
    (
        b'a1 LIST (SUBSCRIBED RECURSIVEMATCH) "" % RETURN (CHILDREN)',
        ListCommand(
            "", ("%",), frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}), frozenset({"CHILDREN"})
        ),
    ),
    (b'a1 LIST () "" %', ListCommand("", ("%",))),
    (b'a1 LIST "" % RETURN ()', ListCommand("", ("%",))),
    (
        b'a1 LIST (special-use) "" * return (special-use subscribed)',
        ListCommand(
            "", ("*",), frozenset({"SPECIAL-USE"}), frozenset({"SPECIAL-USE", "SUBSCRIBED"})
        ),
    ),
    (
        b'a1 LIST "" % RETURN (STATUS (MESSAGES UNSEEN))',
        ListCommand("", ("%",), status=("MESSAGES", "UNSEEN")),
    ),
    (b'a1 LSUB "" *', ListCommand("", ("*",), lsub=True)),
    (b"a1 NAMESPACE", None),
    (
        b"a1 STATUS Drafts (MESSAGES UIDNEXT uidvalidity UNSEEN DELETED SIZE RECENT)",
        Status(
            "Drafts", ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT")
        ),
    ),
    (
        b"a1 STATUS INBOX (HIGHESTMODSEQ APPENDLIMIT)",
        Status("INBOX", ("HIGHESTMODSEQ", "APPENDLIMIT")),
    ),
    (b"a1 APPEND INBOX {5}\r\nhello", Append("INBOX", b"hello")),
    (b"a1 APPEND INBOX {0+}\r\n", Append("INBOX", b"")),
    (
        b'a1 APPEND Drafts (\\Seen \\Draft) "17-Jul-1996 02:44:25 -0700" {5+}\r\nhe\r\nl',
        Append(
            "Drafts",
            b"he\r\nl",
            ("\\Seen", "\\Draft"),
            datetime.datetime(1996, 7, 17, 2, 44, 25, tzinfo=ZONE),
        ),
    ),
    (
        b'a1 APPEND Drafts " 7-jul-1996 02:44:25 +0000" {1}\r\nx',
        Append(
            "Drafts",
            b"x",
            internal_date=datetime.datetime(1996, 7, 7, 2, 44, 25, tzinfo=datetime.UTC),
        ),
    ),
    (b"a1 APPEND INBOX () ~{3}\r\na\0b", Append("INBOX", b"a\0b", binary=True)),
    (b"a1 APPEND INBOX ~{3+}\r\na\0b", Append("INBOX", b"a\0b", binary=True)),
    (b"a1 IDLE", None),
    # GETQUOTA and friends (RFC 9208)
    (b'a1 GETQUOTA ""', QuotaRoot("")),
    (b"a1 GETQUOTAROOT INBOX", MailboxName("INBOX")),
    (
        b'a1 SETQUOTA "" (STORAGE 512 message 1000)',
        SetQuota("", (("STORAGE", 512), ("MESSAGE", 1000))),
    ),
    (b'a1 SETQUOTA "" ()', SetQuota("", ())),
    # selected
    (b"a1 CHECK", None),
    (b"a1 CLOSE", None),
    (b"a1 UNSELECT", None),
    (b"a1 EXPUNGE", None),
    (b"a1 COPY 1:3 Archive", Copy(sequence((1, 3)), "Archive")),
    (b"a1 MOVE 1,5:* Trash", Copy(sequence(1, (5, STAR)), "Trash")),
    (b"a1 STORE 1 +FLAGS (\\Seen)", Store(sequence(1), "add", False, ("\\Seen",))),
    (
        b"a1 STORE 1 -flags.silent \\Seen $Junk",
        Store(sequence(1), "remove", True, ("\\Seen", "$Junk")),
    ),
    (b"a1 STORE 2:4 FLAGS ()", Store(sequence((2, 4)), "replace", False, ())),
    (b"a1 STORE * FLAGS.SILENT (a b)", Store(sequence(STAR), "replace", True, ("a", "b"))),
    (
        b"a1 STORE 7 (UNCHANGEDSINCE 320162338) +FLAGS (\\Deleted)",
        Store(sequence(7), "add", False, ("\\Deleted",), unchanged_since=320162338),
    ),
    (b"a1 STORE 7 (UNCHANGEDSINCE 0) FLAGS x", Store(sequence(7), "replace", False, ("x",), 0)),
]

UID_COMMANDS: list[tuple[bytes, str, Arguments]] = [
    (b"a1 UID FETCH 1:* FLAGS", "FETCH", Fetch(sequence((1, STAR)), (FLAGS,))),
    (b"a1 uid search UID 5", "SEARCH", Search(SequenceKey(sequence(5), uid=True))),
    (b"a1 UID STORE 5 +FLAGS x", "STORE", Store(sequence(5), "add", False, ("x",))),
    (b"a1 UID COPY 5 Archive", "COPY", Copy(sequence(5), "Archive")),
    (b"a1 UID MOVE 5 Archive", "MOVE", Copy(sequence(5), "Archive")),
    (b"a1 UID EXPUNGE 3:5,9", "EXPUNGE", UidExpunge(sequence((3, 5), 9))),
]


@pytest.mark.parametrize(("data", "arguments"), COMMANDS, ids=lambda v: repr(v)[:60])
def test_commands(data: bytes, arguments: Arguments) -> None:
    command = parse_command(data)
    assert command.arguments == arguments
    assert command.tag == data.split(b" ")[0].decode()
    assert command.name == data.split(b" ")[1].decode().upper()
    assert command.uid is False


@pytest.mark.parametrize(("data", "name", "arguments"), UID_COMMANDS, ids=lambda v: repr(v)[:60])
def test_uid_commands(data: bytes, name: str, arguments: Arguments) -> None:
    assert parse_command(data) == Command("a1", name, arguments, uid=True)


def test_id_fields() -> None:
    # Id's dict is not part of its hash, so compare it here too.
    command = parse_command(b'a1 ID ("name" "x" "name" "y")')
    assert command.arguments == Id({"name": "y"})


@pytest.mark.parametrize("tag", ["a1", "A001", "tag]", "0", "x.y-z_~!", "ab$&'=,;:@#^`|?/<>[]"])
def test_tags_are_astring_chars_without_plus(tag: str) -> None:
    assert parse_command(tag.encode() + b" NOOP").tag == tag


# -- mailbox names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "utf8", "mailbox"),
    [
        (b"a SELECT &U,BTFw-", False, "台北"),
        (b"a SELECT ~peter/mail/&U,BTFw-/&ZeVnLIqe-", False, "~peter/mail/台北/日本語"),
        (b"a SELECT &-", False, "&"),
        (b"a SELECT a&b", False, "a&b"),  # not modified UTF-7: taken as it is
        (b'a SELECT "\xe5\x8f\xb0\xe5\x8c\x97"', False, "台北"),  # 8-bit: taken as UTF-8
        (b'a SELECT "\xe5\x8f\xb0\xe5\x8c\x97"', True, "台北"),
        (b"a SELECT &U,BTFw-", True, "&U,BTFw-"),  # UTF8=ACCEPT: no modified UTF-7
        (b"a SELECT {6}\r\n\xe5\x8f\xb0\xe5\x8c\x97", True, "台北"),
    ],
)
def test_mailbox_names(data: bytes, utf8: bool, mailbox: str) -> None:
    arguments = parse_command(data, utf8=utf8).arguments
    assert isinstance(arguments, Select)
    assert arguments.mailbox == mailbox


def test_list_patterns_are_decoded_too() -> None:
    arguments = parse_command(b'a LIST "" &U,BTFw-/*').arguments
    assert arguments == ListCommand("", ("台北/*",))


def test_mailbox_names_must_be_utf8() -> None:
    with pytest.raises(ParseError, match="not UTF-8") as raised:
        parse_command(b'a SELECT "\xff"', utf8=True)
    assert raised.value.tag == "a"


# -- FETCH -------------------------------------------------------------------------------------


FETCHES: list[tuple[bytes, tuple[FetchAttribute, ...]]] = [
    (b"ALL", ALL),
    (b"fast", FAST),
    (b"FULL", (*ALL, FetchAttribute("BODY"))),
    (b"FLAGS", (FLAGS,)),
    (b"(FLAGS UID)", (FLAGS, UID)),
    (
        b"(ENVELOPE INTERNALDATE RFC822.SIZE BODY BODYSTRUCTURE MODSEQ)",
        (
            FetchAttribute("ENVELOPE"),
            FetchAttribute("INTERNALDATE"),
            FetchAttribute("RFC822.SIZE"),
            FetchAttribute("BODY"),
            FetchAttribute("BODYSTRUCTURE"),
            FetchAttribute("MODSEQ"),
        ),
    ),
    (b"RFC822", (FetchAttribute("RFC822", section=Section()),)),
    (
        b"RFC822.HEADER",
        (FetchAttribute("RFC822.HEADER", section=Section((), "HEADER"), peek=True),),
    ),
    (b"RFC822.TEXT", (FetchAttribute("RFC822.TEXT", section=Section((), "TEXT")),)),
    (b"BODY[]", (FetchAttribute("BODY", section=Section()),)),
    (
        b"body.peek[]<0.2048>",
        (FetchAttribute("BODY", section=Section(), peek=True, partial=(0, 2048)),),
    ),
    (b"BODY[TEXT]", (FetchAttribute("BODY", section=Section((), "TEXT")),)),
    (b"BODY[1.2.3]", (FetchAttribute("BODY", section=Section((1, 2, 3))),)),
    (b"BODY[1.2.mime]", (FetchAttribute("BODY", section=Section((1, 2), "MIME")),)),
    (b"BODY[2.HEADER]", (FetchAttribute("BODY", section=Section((2,), "HEADER")),)),
    (
        b"BODY[3.TEXT]<5.10>",
        (FetchAttribute("BODY", section=Section((3,), "TEXT"), partial=(5, 10)),),
    ),
    (
        b"BODY.PEEK[HEADER.FIELDS (From Subject {4}\r\nDate)]",
        (
            FetchAttribute(
                "BODY",
                section=Section((), "HEADER.FIELDS", ("FROM", "SUBJECT", "DATE")),
                peek=True,
            ),
        ),
    ),
    (
        b"BODY[1.header.fields.not (X-Spam)]",
        (FetchAttribute("BODY", section=Section((1,), "HEADER.FIELDS.NOT", ("X-SPAM",))),),
    ),
    (b"BINARY[]", (FetchAttribute("BINARY", section=Section()),)),
    (
        b"BINARY.PEEK[1.2]<0.10>",
        (FetchAttribute("BINARY", section=Section((1, 2)), peek=True, partial=(0, 10)),),
    ),
    (b"BINARY.SIZE[3]", (FetchAttribute("BINARY.SIZE", section=Section((3,))),)),
    (
        b"(UID BODY.PEEK[HEADER] BODY[TEXT]<0.100> FLAGS)",
        (
            UID,
            FetchAttribute("BODY", section=Section((), "HEADER"), peek=True),
            FetchAttribute("BODY", section=Section((), "TEXT"), partial=(0, 100)),
            FLAGS,
        ),
    ),
]


@pytest.mark.parametrize(("items", "attributes"), FETCHES, ids=lambda v: repr(v)[:50])
def test_fetch_attributes(items: bytes, attributes: tuple[FetchAttribute, ...]) -> None:
    assert parse_command(b"a FETCH 1 " + items) == Command(
        "a", "FETCH", Fetch(sequence(1), attributes)
    )


def test_fetch_modifiers() -> None:
    command = parse_command(b"a UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)")
    assert command.arguments == Fetch(
        sequence((300, 500)), (FLAGS,), changed_since=12345, vanished=True
    )
    command = parse_command(b"a FETCH 1:* FAST (changedsince 9223372036854775807)")
    assert command.arguments == Fetch(sequence((1, STAR)), FAST, changed_since=2**63 - 1)


def test_section_labels() -> None:
    arguments = parse_command(b"a FETCH 1 BODY[1.2.HEADER.FIELDS (from subject)]").arguments
    assert isinstance(arguments, Fetch)
    section = arguments.attributes[0].section
    assert section is not None
    assert section.label() == "1.2.HEADER.FIELDS (FROM SUBJECT)"


# -- sequence sets -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ranges", "largest", "resolved"),
    [
        (b"1", ((1, 1),), 10, [(1, 1)]),
        (b"*", ((STAR, STAR),), 10, [(10, 10)]),
        (b"*", ((STAR, STAR),), 0, []),
        (b"5:2", ((5, 2),), 10, [(2, 5)]),
        (b"1,3:*", ((1, 1), (3, STAR)), 10, [(1, 1), (3, 10)]),
        (b"*:4", ((STAR, 4),), 10, [(4, 10)]),
        (b"*:4", ((STAR, 4),), 2, [(2, 4)]),  # beyond largest: the caller clips
        (b"1:3,2:5,7,6", ((1, 3), (2, 5), (7, 7), (6, 6)), 10, [(1, 7)]),
        (b"9,1,4294967295", ((9, 9), (1, 1), (MAX, MAX)), 10, [(1, 1), (9, 9), (MAX, MAX)]),
        (b"1:*", ((1, STAR),), 0, [(1, 1)]),
    ],
)
def test_sequence_sets(
    text: bytes, ranges: tuple[tuple[int, int], ...], largest: int, resolved: list[tuple[int, int]]
) -> None:
    arguments = parse_command(b"a FETCH " + text + b" FLAGS").arguments
    assert isinstance(arguments, Fetch)
    assert arguments.sequence == SequenceSet(ranges)
    assert arguments.sequence.resolve(largest) == resolved


# -- SEARCH ------------------------------------------------------------------------------------

SEARCHES: list[tuple[bytes, SearchKey]] = [
    (b"ALL", All()),
    (b"answered", FlagKey("\\Answered", True)),
    (b"UNANSWERED", FlagKey("\\Answered", False)),
    (b"DELETED", FlagKey("\\Deleted", True)),
    (b"UNDELETED", FlagKey("\\Deleted", False)),
    (b"DRAFT", FlagKey("\\Draft", True)),
    (b"UNDRAFT", FlagKey("\\Draft", False)),
    (b"FLAGGED", FlagKey("\\Flagged", True)),
    (b"UNFLAGGED", FlagKey("\\Flagged", False)),
    (b"SEEN", SEEN),
    (b"UNSEEN", UNSEEN),
    (b"RECENT", RECENT),
    (b"NEW", And((RECENT, UNSEEN))),
    (b"OLD", Not(RECENT)),
    (b"KEYWORD $Forwarded", FlagKey("$Forwarded", True)),
    (b"UNKEYWORD Junk", FlagKey("Junk", False)),
    (b"BCC bob", HeaderKey("bcc", "bob")),
    (b"CC bob", HeaderKey("cc", "bob")),
    (b'FROM "Bob Smith"', HeaderKey("from", "Bob Smith")),
    (b"TO {3}\r\nbob", HeaderKey("to", "bob")),
    (b"SUBJECT {6}\r\n\xc3\xa4rger", HeaderKey("subject", "ärger")),
    (b'HEADER X-Mailer ""', HeaderKey("x-mailer", "")),
    (b"HEADER Message-ID <a@b>", HeaderKey("message-id", "<a@b>")),
    (b"BODY hello", TextKey("body", "hello")),
    (b'TEXT "hello world"', TextKey("text", "hello world")),
    (b"BEFORE 1-Feb-1994", DateKey("internal", "before", datetime.date(1994, 2, 1))),
    (b'ON "01-feb-1994"', DateKey("internal", "on", datetime.date(1994, 2, 1))),
    (b"SINCE 29-Feb-2024", DateKey("internal", "since", datetime.date(2024, 2, 29))),
    (b"SENTBEFORE 1-Jan-2000", DateKey("sent", "before", datetime.date(2000, 1, 1))),
    (b"SENTON 31-Dec-1999", DateKey("sent", "on", datetime.date(1999, 12, 31))),
    (b"SENTSINCE 15-Jun-2010", DateKey("sent", "since", datetime.date(2010, 6, 15))),
    (b"LARGER 1000", SizeKey("larger", 1000)),
    (b"SMALLER 5000000000", SizeKey("smaller", 5000000000)),  # number64 in IMAP4rev2
    (b"1:5", SequenceKey(sequence((1, 5)), uid=False)),
    (b"*", SequenceKey(sequence(STAR), uid=False)),
    (b"UID 1,3:*", SequenceKey(sequence(1, (3, STAR)), uid=True)),
    (b"NOT SEEN", Not(SEEN)),
    (b"OR SEEN FLAGGED", Or(SEEN, FlagKey("\\Flagged", True))),
    (b"MODSEQ 620162338", ModSeqKey(620162338)),
    (b'MODSEQ "/flags/\\\\draft" all 620162338', ModSeqKey(620162338)),
    (b"MODSEQ 0", ModSeqKey(0)),
    (b"SEEN FLAGGED", And((SEEN, FlagKey("\\Flagged", True)))),
    (b"(SEEN)", SEEN),
    (
        b"OR (FROM alice SINCE 1-Feb-1994) NOT (1:5 UNSEEN) LARGER 10",
        And(
            (
                Or(
                    And(
                        (
                            HeaderKey("from", "alice"),
                            DateKey("internal", "since", datetime.date(1994, 2, 1)),
                        )
                    ),
                    Not(And((SequenceKey(sequence((1, 5)), uid=False), UNSEEN))),
                ),
                SizeKey("larger", 10),
            )
        ),
    ),
    (b"NOT NOT (((ALL)))", Not(Not(All()))),
]


@pytest.mark.parametrize(("keys", "key"), SEARCHES, ids=lambda v: repr(v)[:50])
def test_search_keys(keys: bytes, key: SearchKey) -> None:
    assert parse_command(b"a SEARCH " + keys).arguments == Search(key)


@pytest.mark.parametrize(
    ("prefix", "charset", "returns"),
    [
        (b"CHARSET UTF-8 ", "UTF-8", None),
        (b'charset "us-ascii" ', "US-ASCII", None),
        (b"RETURN () ", None, ("ALL",)),
        (b"RETURN (MIN MAX COUNT) ", None, ("MIN", "MAX", "COUNT")),
        (b"RETURN (save all ALL) CHARSET UTF-8 ", "UTF-8", ("SAVE", "ALL")),
    ],
)
def test_search_return_and_charset(
    prefix: bytes, charset: str | None, returns: tuple[SearchReturn, ...] | None
) -> None:
    search = Search(SEEN, charset, returns)
    assert parse_command(b"a SEARCH " + prefix + b"SEEN").arguments == search


def test_unknown_charset_is_its_own_error() -> None:
    with pytest.raises(UnknownCharset) as raised:
        parse_command(b"a7 SEARCH CHARSET koi8-r FROM x")
    assert raised.value.charset == "KOI8-R"
    assert raised.value.tag == "a7"


def test_nesting_is_bounded() -> None:
    depth_63 = b"(" * 63 + b"ALL" + b")" * 63
    assert parse_command(b"a SEARCH " + depth_63).arguments == Search(All())
    for deep in (b"(" * 64 + b"ALL" + b")" * 64, b"NOT " * 1000 + b"ALL", b"OR ALL " * 1000):
        with pytest.raises(ParseError, match="nested too deeply"):
            parse_command(b"a SEARCH " + deep)


# -- malformed input: (command, tag in the ParseError, words of its message) -------------------

MALFORMED: list[tuple[bytes, str | None, str]] = [
    (b"", None, "missing a tag"),
    (b"+ NOOP", None, "expected a tag"),
    (b"a+b NOOP", "a", "expected a space"),
    (b"(a NOOP", None, "expected a tag"),
    (b"\xff NOOP", None, "8-bit"),
    (b"a", "a", "missing command"),
    (b"a  NOOP", "a", "expected a command name"),
    (b"a FROB", "a", "unknown command FROB"),
    (b"a UID NOOP", "a", "unknown command UID NOOP"),
    (b"a UID", "a", "missing arguments"),
    (b"a NOOP now", "a", "too many arguments"),
    (b"a NOOP\r\nb NOOP", "a", "unexpected characters"),
    (b"a N\xc3\xb6OP", "a", "unknown command N"),
    (b"a LOGIN alice", "a", "missing arguments"),
    (b"a LOGIN alice secret more", "a", "too many arguments"),
    (b"a LOGIN al\xc3\xa9 x", "a", "8-bit byte where a space belongs"),
    (b"a LOGIN \xc3\xa9 x", "a", "8-bit"),
    (b'a LOGIN "alice x', "a", "quoted string"),
    (b'a LOGIN "al\\ice" x', "a", "quoted string"),  # only \" and \\ may be escaped
    (b'a LOGIN "a\rb" x', "a", "quoted string"),
    (b"a LOGIN {5}\r\nali", "a", "literal shorter"),
    (b"a LOGIN {5}alice x", "a", "literal"),
    (b"a LOGIN {3}\r\na\0b x", "a", "NUL in a literal"),
    (b"a LOGIN ~{5}\r\nalice x", "a", "literal8 not allowed"),
    (b"a LOGIN {999999999999999999999}\r\nx y", "a", "too large"),
    (b"a AUTHENTICATE PLAIN abc", "a", "invalid base64"),
    (b"a AUTHENTICATE PLAIN a=b=", "a", "invalid base64"),
    (b"a AUTHENTICATE", "a", "missing arguments"),
    (b"a ID", "a", "missing arguments"),
    (b"a ID (name x)", "a", "expected a string"),
    (b'a ID ("name")', "a", "expected a space"),
    (b"a ID FOO", "a", "unknown ID argument FOO"),
    (b"a ENABLE", "a", "missing arguments"),
    (b"a SELECT", "a", "missing arguments"),
    (b"a SELECT INBOX (FOO)", "a", "unknown SELECT parameter FOO"),
    (b"a SELECT INBOX ()", "a", "empty list"),
    (b"a SELECT INBOX (QRESYNC (0 1))", "a", "must not be 0"),
    (b"a SELECT INBOX (QRESYNC (1 0))", "a", "must not be 0"),
    (b"a SELECT INBOX (QRESYNC (1 9223372036854775808))", "a", "too large"),
    (b"a SELECT INBOX (QRESYNC (1 2 1:*))", "a", "bad sequence set"),
    (b"a SELECT INBOX (QRESYNC (1 2 3 (1)))", "a", "expected a space"),
    (b"a SELECT INBOX (QRESYNC (4294967296 2))", "a", "too large"),
    (b"a SELECT INBOX (CONDSTORE", "a", "unbalanced parentheses"),
    (b"a CREATE x (USE (Archive))", "a", "special-use"),
    (b"a CREATE x (FOO)", "a", "unknown CREATE parameter FOO"),
    (b"a RENAME x", "a", "missing arguments"),
    (b'a LIST ""', "a", "missing arguments"),
    (b'a LIST (RECURSIVEMATCH) "" *', "a", "RECURSIVEMATCH needs"),
    (b'a LIST (FOO) "" *', "a", "unknown LIST option FOO"),
    (b'a LIST "" * RETURN (FOO)', "a", "unknown LIST return option FOO"),
    (b'a LIST "" * FOO (CHILDREN)', "a", "unknown LIST option FOO"),
    (b'a LIST "" ()', "a", "empty list"),
    (b'a LSUB "" (a b)', "a", "expected a string"),
    (b"a STATUS INBOX ()", "a", "empty list"),
    (b"a STATUS INBOX (MESSAGES FOO)", "a", "unknown STATUS item FOO"),
    (b"a STATUS INBOX MESSAGES", "a", 'expected "("'),
    (b"a APPEND INBOX", "a", "missing arguments"),
    (b'a APPEND INBOX "hello"', "a", "date-time"),
    (b"a APPEND INBOX hello", "a", "expected a literal"),
    (b'a APPEND INBOX "31-Feb-2020 00:00:00 +0000" {1}\r\nx', "a", "invalid date-time"),
    (b'a APPEND INBOX "1-Foo-2020 00:00:00 +0000" {1}\r\nx', "a", "invalid date-time"),
    (b'a APPEND INBOX "1-Jan-2020 00:00:00 +2400" {1}\r\nx', "a", "invalid date-time"),
    (b'a APPEND INBOX "1-Jan-2020 00:00:00 +0060" {1}\r\nx', "a", "invalid date-time"),
    (b'a APPEND INBOX "1-Jan-2020 24:00:00 +0000" {1}\r\nx', "a", "invalid date-time"),
    (b"a APPEND INBOX {1}\r\nx {1}\r\ny", "a", "too many arguments"),  # no MULTIAPPEND
    (b"a APPEND INBOX (\\Seen {1}\r\nx", "a", "expected a flag"),
    (b"a EXPUNGE 1:3", "a", "too many arguments"),
    (b"a UID EXPUNGE", "a", "missing arguments"),
    (b"a COPY 1", "a", "missing arguments"),
    (b"a FETCH", "a", "missing arguments"),
    (b"a FETCH 1", "a", "missing arguments"),
    (b"a FETCH 0 FLAGS", "a", "must not be 0"),
    (b"a FETCH 1: FLAGS", "a", "bad sequence set"),
    (b"a FETCH :1 FLAGS", "a", "bad sequence set"),
    (b"a FETCH 1,,2 FLAGS", "a", "bad sequence set"),
    (b"a FETCH 1:2:3 FLAGS", "a", "bad sequence set"),
    (b"a FETCH 1** FLAGS", "a", "bad sequence set"),
    (b"a FETCH -1 FLAGS", "a", "expected a sequence set"),
    (b"a FETCH 4294967296 FLAGS", "a", "too large"),
    (b"a FETCH 1" + b"0" * 5000 + b" FLAGS", "a", "too large"),
    (b"a FETCH $ FLAGS", "a", "expected a sequence set"),  # no SEARCHRES
    (b"a FETCH 1 FOO", "a", "unknown FETCH attribute FOO"),
    (b"a FETCH 1 (ALL)", "a", "unknown FETCH attribute ALL"),  # macros stand alone
    (b"a FETCH 1 ()", "a", "empty list"),
    (b"a FETCH 1 (FLAGS", "a", "unbalanced parentheses"),
    (b"a FETCH 1 FLAGS)", "a", "unbalanced parentheses"),
    (b"a FETCH 1 ((FLAGS))", "a", "expected a FETCH attribute"),
    (b"a FETCH 1 (FLAGS  UID)", "a", "expected a FETCH attribute"),
    (b"a FETCH 1 BODY.PEEK", "a", "unknown FETCH attribute BODY.PEEK"),
    (b"a FETCH 1 BINARY", "a", "unknown FETCH attribute BINARY"),
    (b"a FETCH 1 FLAGS[]", "a", "unknown FETCH attribute FLAGS["),
    (b"a FETCH 1 BODY[", "a", "missing"),
    (b"a FETCH 1 BODY[MIME]", "a", "bad section"),
    (b"a FETCH 1 BODY[0]", "a", "must not be 0"),
    (b"a FETCH 1 BODY[1.]", "a", "bad section"),
    (b"a FETCH 1 BODY[.TEXT]", "a", "bad section"),
    (b"a FETCH 1 BODY[1TEXT]", "a", "bad section"),
    (b"a FETCH 1 BODY[FOO]", "a", "bad section"),
    (b"a FETCH 1 BODY[HEADER.FIELDS]", "a", "expected a space"),
    (b"a FETCH 1 BODY[HEADER.FIELDS ()]", "a", "empty list"),
    (b"a FETCH 1 BODY[TEXT] (x)", "a", "unknown FETCH modifier X"),
    (b"a FETCH 1 BODY[]<0>", "a", 'expected "."'),
    (b"a FETCH 1 BODY[]<0.0>", "a", "must not be 0"),
    (b"a FETCH 1 BODY[]<-1.5>", "a", "expected a number"),
    (b"a FETCH 1 BINARY[TEXT]", "a", "expected a part number"),
    (b"a FETCH 1 BINARY.SIZE[1]<0.5>", "a", "unexpected characters"),
    (b"a FETCH 1 FLAGS (CHANGEDSINCE 0)", "a", "must not be 0"),
    (b"a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)", "a", "too large"),
    (b"a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)", "a", "VANISHED needs UID FETCH"),
    (b"a UID FETCH 1 FLAGS (VANISHED)", "a", "VANISHED needs"),
    (b"a STORE 1 FLAGS", "a", "missing arguments"),
    (b"a STORE 1 +FLAGS", "a", "missing arguments"),
    (b"a STORE 1 FOO x", "a", "unknown STORE item FOO"),
    (b"a STORE 1 *FLAGS x", "a", "expected FLAGS"),
    (b"a STORE 1 +FLAGS (\\*)", "a", "expected a flag"),
    (b"a STORE 1 (UNCHANGEDSINCE -1) FLAGS x", "a", "expected a mod-sequence"),
    (b"a STORE 1 (FOO 1) FLAGS x", "a", "unknown STORE modifier FOO"),
    (b"a SEARCH", "a", "missing arguments"),
    (b"a SEARCH FOO", "a", "unknown search key FOO"),
    (b"a SEARCH ()", "a", "empty list"),
    (b"a SEARCH (SEEN", "a", "unbalanced parentheses"),
    (b"a SEARCH SEEN)", "a", "unbalanced parentheses"),
    (b"a SEARCH OR SEEN", "a", "missing arguments"),
    (b"a SEARCH NOT", "a", "missing arguments"),
    (b"a SEARCH FROM", "a", "missing arguments"),
    (b"a SEARCH HEADER Subject", "a", "missing arguments"),
    (b"a SEARCH SINCE 1-Foo-2000", "a", "invalid date"),
    (b"a SEARCH SINCE 30-Feb-2000", "a", "invalid date"),
    (b"a SEARCH SINCE 1-2-2000", "a", "expected a date"),
    (b'a SEARCH SINCE "1-Feb-2000', "a", "expected a date"),
    (b"a SEARCH LARGER -5", "a", "expected a number"),
    (b"a SEARCH LARGER 9223372036854775808", "a", "too large"),
    (b"a SEARCH UID 0", "a", "must not be 0"),
    (b"a SEARCH MODSEQ -1", "a", "expected a mod-sequence"),
    (b'a SEARCH MODSEQ "/x" all 5', "a", "bad MODSEQ entry name"),
    (b'a SEARCH MODSEQ "/flags/x" some 5', "a", "unknown MODSEQ entry type SOME"),
    (b"a SEARCH RETURN (FOO) ALL", "a", "unknown RETURN option FOO"),
    (b"a SEARCH CHARSET UTF-8 SUBJECT {1}\r\n\xff", "a", "not UTF-8"),
    (b"a SEARCH KEYWORD \\Seen", "a", "expected a keyword"),
    (b"a SETQUOTA x (STORAGE)", "a", "expected a space"),
    (b"a SETQUOTA x (STORAGE -1)", "a", "expected a number"),
    (b"a GETQUOTA", "a", "missing arguments"),
]


@pytest.mark.parametrize(("data", "tag", "message"), MALFORMED, ids=lambda v: repr(v)[:60])
def test_malformed(data: bytes, tag: str | None, message: str) -> None:
    with pytest.raises(ParseError) as raised:
        parse_command(data)
    assert type(raised.value) is ParseError
    assert raised.value.tag == tag
    assert message in str(raised.value)
    # The message follows BAD on the wire: one short line of printable ASCII.
    assert len(str(raised.value)) < 80
    assert all(" " <= c <= "~" for c in str(raised.value))


# -- literal announcements ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "announced"),
    [
        (b"a LOGIN {5}", (5, False)),
        (b"a LOGIN {5+}", (5, True)),
        (b"a APPEND INBOX ~{12}", (12, False)),
        (b"a APPEND INBOX ~{12+}", (12, True)),
        (b" {0}", (0, False)),
        (b"a NOOP", None),
        (b"", None),
        (b"a SELECT x}", None),  # "}" is an atom character
        (b'a LOGIN "{" x}', None),  # the "{" is inside a quoted string
        (b'a LOGIN "{5}"', None),
    ],
)
def test_literal_at_end(line: bytes, announced: tuple[int, bool] | None) -> None:
    assert literal_at_end(line) == announced


@pytest.mark.parametrize(
    "line",
    [b"a {}", b"a {x}", b"a {-1}", b"a {5++}", b"a {+5}", b"a {5 }", b"a {1" + b"0" * 20 + b"}"],
)
def test_malformed_literal_announcements(line: bytes) -> None:
    with pytest.raises(ParseError):
        literal_at_end(line)


# -- robustness and speed ----------------------------------------------------------------------

SEEDS = [data for data, _ in COMMANDS] + [data for data, _, _ in UID_COMMANDS]
SEEDS += [b"a FETCH 1 " + items for items, _ in FETCHES] + [b"a SEARCH " + k for k, _ in SEARCHES]
NOISE = b' ()[]<>{}"\\*%:,.+-~0123456789NILa\r\n\x00\xff'


def test_random_bytes_give_only_parse_errors() -> None:
    rng = random.Random(9051)
    for round in range(6000):
        if round % 3 == 0:
            data = rng.randbytes(rng.randint(0, 60))
        else:  # a valid command, mutated: reaches deep into the grammar
            mutated = bytearray(rng.choice(SEEDS))
            for _ in range(rng.randint(1, 4)):
                at = rng.randrange(len(mutated) + 1)
                if rng.random() < 0.4:
                    del mutated[at : at + rng.randint(1, 4)]
                else:
                    mutated[at:at] = bytes([rng.choice(NOISE)])
            data = bytes(mutated)
        with contextlib.suppress(ParseError):
            parse_command(data, utf8=round % 2 == 0)
        with contextlib.suppress(ParseError):
            literal_at_end(data)
