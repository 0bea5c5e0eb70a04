"""SEARCH key evaluation: every key over messages built in memory, and how often they are read."""

from __future__ import annotations

import base64
import datetime
from collections import Counter

import pytest

from pcloud.imap.search import (
    Candidate,
    compress_sequence,
    header_fields_read,
    highest_modseq,
    mentions_modseq,
    search,
    text_needle,
)
from pcloud.imap.values import (
    STAR,
    All,
    And,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    Not,
    Or,
    SearchKey,
    SequenceKey,
    SequenceSet,
    SizeKey,
    TextKey,
)
from pcloud.store.index import cached_header_lines, first_values
from pcloud.store.mail_values import Message

JAN_1 = 1_704_067_200  # 2024-01-01 00:00:00 UTC
DAY = 86400


def mail(headers: str, body: str | bytes = "Hi.\r\n") -> bytes:
    head = headers.replace("\n", "\r\n").encode("utf-8", "surrogateescape")
    return head + b"\r\n" + (body if isinstance(body, bytes) else body.encode())


class Mailbox:
    """Candidates numbered from 1, and their bytes, counting each read."""

    def __init__(self) -> None:
        self.candidates: list[Candidate] = []
        self.files: dict[int, bytes] = {}
        self.reads: Counter[int] = Counter()

    def add(
        self,
        data: bytes = b"Subject: x\r\n\r\nbody\r\n",
        *,
        uid: int | None = None,
        flags: tuple[str, ...] = (),
        modseq: int = 1,
        internal_date: int = JAN_1,
        recent: bool = False,
        headers: dict[str, str] | None = None,  # as the index has them; else from `data`
    ) -> int:
        uid = uid or (self.candidates[-1].message.uid + 1 if self.candidates else 1)
        if headers is None:
            headers = first_values(cached_header_lines(data))
        message = Message(uid, flags, modseq, internal_date, len(data), headers)
        self.candidates.append(Candidate(len(self.candidates) + 1, message, recent))
        self.files[uid] = data
        return uid

    def read(self, uid: int) -> bytes:
        self.reads[uid] += 1
        return self.files[uid]

    def uids(self, key: SearchKey) -> list[int]:
        largest_uid = self.candidates[-1].message.uid if self.candidates else 0
        found = search(
            key, self.candidates, largest_number=len(self.candidates), largest_uid=largest_uid,
            read_message=self.read,
        )  # fmt: skip
        return [candidate.message.uid for candidate in found]


def sequence(*ranges: tuple[int, int]) -> SequenceSet:
    return SequenceSet(ranges)


# -- flags, sizes, MODSEQ, sequence sets --------------------------------------------------------


def test_flags() -> None:
    box = Mailbox()
    seen = box.add(flags=("\\Seen",), recent=True)
    answered = box.add(flags=("\\Answered", "\\Seen"))
    flagged = box.add(flags=("\\Flagged", "$Forwarded"))
    deleted = box.add(flags=("\\Deleted", "\\Draft"), recent=True)
    everyone = [seen, answered, flagged, deleted]
    assert box.uids(FlagKey("\\Seen", True)) == [seen, answered]
    assert box.uids(FlagKey("\\Seen", False)) == [flagged, deleted]
    assert box.uids(FlagKey("\\ANSWERED", True)) == [answered]
    assert box.uids(FlagKey("\\flagged", True)) == [flagged]
    assert box.uids(FlagKey("\\Deleted", False)) == [seen, answered, flagged]
    assert box.uids(FlagKey("\\Draft", True)) == [deleted]
    assert box.uids(FlagKey("$forwarded", True)) == [flagged]  # keywords: any case
    assert box.uids(FlagKey("$Junk", False)) == everyone
    assert box.uids(FlagKey("\\Recent", True)) == [seen, deleted]
    new = And((FlagKey("\\Recent", True), FlagKey("\\Seen", False)))
    assert box.uids(new) == [deleted]
    assert box.uids(Not(FlagKey("\\Recent", True))) == [answered, flagged]  # OLD
    assert not box.reads


def test_size_and_modseq() -> None:
    box = Mailbox()
    small = box.add(b"\r\n" * 5, modseq=7)  # 10 bytes
    large = box.add(b"\r\n" * 50, modseq=3)  # 100 bytes
    assert box.uids(SizeKey("larger", 10)) == [large]
    assert box.uids(SizeKey("larger", 9)) == [small, large]
    assert box.uids(SizeKey("smaller", 100)) == [small]
    assert box.uids(SizeKey("smaller", 101)) == [small, large]
    assert box.uids(ModSeqKey(3)) == [small, large]
    assert box.uids(ModSeqKey(4)) == [small]
    assert box.uids(ModSeqKey(8)) == []


def test_highest_modseq_and_mentions_modseq() -> None:
    box = Mailbox()
    box.add(modseq=7, flags=("\\Seen",))
    box.add(modseq=9)
    box.add(modseq=4, flags=("\\Seen",))
    seen = search(
        FlagKey("\\Seen", True), box.candidates, largest_number=3, largest_uid=3,
        read_message=box.read,
    )  # fmt: skip
    assert highest_modseq(seen) == 7
    assert highest_modseq([]) == 0
    assert mentions_modseq(And((All(), Or(FlagKey("\\Seen", True), Not(ModSeqKey(5))))))
    assert not mentions_modseq(And((All(), Or(FlagKey("\\Seen", True), SizeKey("larger", 1)))))


def test_sequence_numbers() -> None:
    box = Mailbox()
    for uid in (3, 8, 9, 20, 21):
        box.add(uid=uid)
    assert box.uids(SequenceKey(sequence((2, 4)), uid=False)) == [8, 9, 20]
    assert box.uids(SequenceKey(sequence((STAR, STAR)), uid=False)) == [21]
    assert box.uids(SequenceKey(sequence((4, STAR)), uid=False)) == [20, 21]
    assert box.uids(SequenceKey(sequence((STAR, 4)), uid=False)) == [20, 21]
    assert box.uids(SequenceKey(sequence((1, 1), (5, 5), (9, 12)), uid=False)) == [3, 21]


def test_uid_sets() -> None:
    box = Mailbox()
    for uid in (3, 8, 9, 20, 21):
        box.add(uid=uid)
    assert box.uids(SequenceKey(sequence((4, 9)), uid=True)) == [8, 9]
    assert box.uids(SequenceKey(sequence((STAR, STAR)), uid=True)) == [21]
    assert box.uids(SequenceKey(sequence((1, 3), (21, 21)), uid=True)) == [3, 21]
    # RFC 9051 §6.4.8: "*" is the largest UID, so 30:* is 21:30.
    assert box.uids(SequenceKey(sequence((30, STAR)), uid=True)) == [21]
    assert box.uids(SequenceKey(sequence((30, 40)), uid=True)) == []


def test_uid_star_in_empty_mailbox() -> None:
    assert Mailbox().uids(SequenceKey(sequence((5, STAR)), uid=True)) == []


# -- dates --------------------------------------------------------------------------------------


def test_internal_date_in_utc_at_day_boundaries() -> None:
    box = Mailbox()
    last_of_december = box.add(internal_date=JAN_1 - 1)
    first_of_january = box.add(internal_date=JAN_1)
    late_on_january_1 = box.add(internal_date=JAN_1 + DAY - 1)
    january_2 = box.add(internal_date=JAN_1 + DAY)
    day = datetime.date(2024, 1, 1)
    assert box.uids(DateKey("internal", "before", day)) == [last_of_december]
    assert box.uids(DateKey("internal", "on", day)) == [first_of_january, late_on_january_1]
    assert box.uids(DateKey("internal", "since", day)) == [
        first_of_january,
        late_on_january_1,
        january_2,
    ]


def test_sent_date_is_the_day_written_in_the_header() -> None:
    box = Mailbox()
    # 23:30 at -0500 is 2 January in UTC, but the header's own day is 1 January.
    evening = box.add(mail("Date: Mon, 1 Jan 2024 23:30:00 -0500\n"), internal_date=JAN_1 + 9 * DAY)
    # Folded, with a comment, two-digit year.
    morning = box.add(mail("Date: 2 Jan\n 24 00:10 +1400 (far east)\n"))
    day = datetime.date(2024, 1, 2)
    assert box.uids(DateKey("sent", "on", day)) == [morning]
    assert box.uids(DateKey("sent", "before", day)) == [evening]
    assert box.uids(DateKey("sent", "since", day)) == [morning]
    assert box.uids(DateKey("sent", "since", datetime.date(2024, 1, 1))) == [evening, morning]
    assert not box.reads


def test_sent_date_falls_back_to_the_internal_date() -> None:
    box = Mailbox()
    missing = box.add(mail("Subject: no date\n"), internal_date=JAN_1 + DAY)
    garbage = box.add(mail("Date: next Tuesday\n"), internal_date=JAN_1 + DAY)
    impossible = box.add(mail("Date: 31 Feb 2024 10:00 +0000\n"), internal_date=JAN_1)
    assert box.uids(DateKey("sent", "on", datetime.date(2024, 1, 2))) == [missing, garbage]
    assert box.uids(DateKey("sent", "before", datetime.date(2024, 1, 2))) == [impossible]


# -- headers ------------------------------------------------------------------------------------


def test_envelope_fields_match_names_and_addresses_in_any_case() -> None:
    box = Mailbox()
    bob = box.add(
        mail(
            "From: Bob Smith <bob@example.net>\nTo: alice@example.org, Carol <carol@example.com>\n"
            "Cc: dave@example.com\nBcc: eve@example.com\nSubject: Lunch on Friday?\n"
            "Message-ID: <abc@example.net>\n"
        )
    )
    other = box.add(mail("From: zed@example.org\nSubject: Report\n"))
    assert box.uids(HeaderKey("from", "bob smith")) == [bob]
    assert box.uids(HeaderKey("from", "BOB@EXAMPLE")) == [bob]
    assert box.uids(HeaderKey("from", "example.org")) == [other]
    assert box.uids(HeaderKey("to", "carol")) == [bob]
    assert box.uids(HeaderKey("cc", "dave@")) == [bob]
    assert box.uids(HeaderKey("bcc", "eve")) == [bob]
    assert box.uids(HeaderKey("subject", "friday")) == [bob]
    assert box.uids(HeaderKey("message-id", "abc@")) == [bob]
    assert box.uids(HeaderKey("cc", "")) == [bob]  # has the field
    assert box.uids(HeaderKey("subject", "")) == [bob, other]
    assert box.uids(HeaderKey("to", "zed")) == []
    assert not box.reads


def test_encoded_words_folding_and_8bit_headers() -> None:
    box = Mailbox()
    quoted = box.add(mail("Subject: Re: =?utf-8?q?Caf=C3=A9_cr=C3=A8me?=\n"))
    # "Ééé" split inside a character across two base64 words, the words folded apart.
    split = "=?UTF-8?B?w4nD?=\n =?UTF-8?B?qcOp?= end"
    folded = box.add(mail(f"Subject: {split}\n"))
    latin = box.add(mail("From: =?ISO-8859-1*fr?Q?Fran=E7ois?= <f@example.fr>\n"))
    # RFC 6532 UTF-8 in a header: the index keeps its bytes as surrogates.
    raw_utf8 = box.add(
        mail("From: Jörg <j@example.de>\nX-Name: Jörg\n"),
        headers={"from": "J\udcc3\udcb6rg <j@example.de>"},
    )
    assert box.uids(HeaderKey("subject", "CAFÉ CRÈME")) == [quoted]
    assert box.uids(HeaderKey("subject", "ééé end")) == [folded]
    assert box.uids(HeaderKey("from", "françois <f@")) == [latin]
    assert box.uids(HeaderKey("from", "jörg")) == [raw_utf8]
    assert box.uids(HeaderKey("x-name", "JÖRG")) == [raw_utf8]
    assert box.uids(TextKey("text", "x-name: jörg")) == [raw_utf8]
    assert box.uids(HeaderKey("subject", "=?")) == []


def test_garbage_in_encoded_words_never_raises() -> None:
    box = Mailbox()
    unknown = box.add(mail("Subject: =?x-unknown?q?abc?= =?idna?q?d=FFe?=\n"))
    bad_base64 = box.add(mail("Subject: =?utf-8?b?a?= tail\n"))
    invalid_utf8 = box.add(mail("Subject: =?utf-8?q?x=FFy?=\n"))
    latin1_raw = box.add(mail("Subject: caf\udce9\n"))  # 8-bit, not UTF-8
    assert box.uids(HeaderKey("subject", "abc")) == [unknown]
    assert box.uids(HeaderKey("subject", "=?utf-8?b?a?= tail")) == [bad_base64]
    assert box.uids(HeaderKey("subject", "x\ufffdy")) == [invalid_utf8]
    assert box.uids(HeaderKey("subject", "caf\ufffd")) == [latin1_raw]


def test_other_header_fields_are_read_from_the_message_once() -> None:
    box = Mailbox()
    both = box.add(
        mail(
            "Received: from a.example by b.example\nReceived: from relay.example by a.example\n"
            "X-Mailer: =?utf-8?q?Mutt_=E2=9C=93?=\n"
        )
    )
    plain = box.add(mail("Received: from c.example\n"))
    assert box.uids(HeaderKey("received", "RELAY.example")) == [both]  # any occurrence
    assert box.uids(HeaderKey("x-mailer", "mutt ✓")) == [both]
    assert box.uids(HeaderKey("x-mailer", "")) == [both]
    assert box.uids(HeaderKey("received", "")) == [both, plain]
    assert box.reads == {both: 4, plain: 4}  # one read per message per search
    box.reads.clear()
    key = And(
        (
            HeaderKey("x-mailer", "mutt"),
            TextKey("text", "hi."),
            Or(HeaderKey("received", "c.example"), HeaderKey("received", "relay")),
        )
    )
    assert box.uids(key) == [both]
    assert box.reads == {both: 1, plain: 1}


def test_cheap_keys_decide_before_a_message_is_read() -> None:
    box = Mailbox()
    seen = box.add(mail("X-Spam: yes\n"), flags=("\\Seen",))
    unseen = box.add(mail("X-Spam: yes\n"))
    assert box.uids(And((HeaderKey("x-spam", "yes"), FlagKey("\\Seen", True)))) == [seen]
    assert box.reads == {seen: 1}
    box.reads.clear()
    assert box.uids(Or(TextKey("body", "nothing"), FlagKey("\\Seen", False))) == [unseen]
    assert box.reads == {seen: 1}
    box.reads.clear()
    assert box.uids(Not(Or(TextKey("body", "hi"), SequenceKey(sequence((1, 1)), False)))) == []
    assert box.reads == {unseen: 1}


# -- bodies -------------------------------------------------------------------------------------


MULTIPART = mail(
    "Subject: =?utf-8?q?Rapport_annuel?=\nMIME-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="b"\n',
    b"preamble\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes("Voilà le résumé de l'année.\n".encode())
    + b"\r\n--b\r\nContent-Type: text/html; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"<p>Tr=E8s =\r\nbien</p>\r\n"
    b"--b\r\nContent-Type: application/octet-stream; name=secret.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes(b"hidden treasure")
    + b"\r\n--b--\r\n",
)


def test_body_searches_decoded_text_parts() -> None:
    box = Mailbox()
    multipart = box.add(MULTIPART)
    plain = box.add(mail("Subject: plain\n", "Just TEXT, no MIME.\r\n"))
    assert box.uids(TextKey("body", "RÉSUMÉ DE")) == [multipart]  # base64, UTF-8
    assert box.uids(TextKey("body", "très bien")) == [multipart]  # QP soft break, Latin-1
    assert box.uids(TextKey("body", "no mime")) == [plain]
    assert box.uids(TextKey("body", "hidden treasure")) == []  # not a text part
    assert box.uids(TextKey("body", "rapport")) == []  # the header is not the body
    assert box.uids(TextKey("body", "")) == [multipart, plain]


def test_text_searches_headers_too() -> None:
    box = Mailbox()
    multipart = box.add(MULTIPART)
    plain = box.add(mail("Subject: plain\n", "Just text.\r\n"))
    assert box.uids(TextKey("text", "rapport annuel")) == [multipart]  # decoded subject
    assert box.uids(TextKey("text", "secret.bin")) == [multipart]  # a MIME header
    assert box.uids(TextKey("text", "subject: plain")) == [plain]
    assert box.uids(TextKey("text", "JUST")) == [plain]
    assert box.uids(TextKey("text", "voilà")) == [multipart]


@pytest.mark.parametrize(
    "data",
    [
        mail("Content-Type: text/plain\nContent-Transfer-Encoding: base64\n", "abc!!!d"),
        mail("Content-Type: text/plain; charset=x-nonsense\n", "caf\xe9 needle".encode("latin-1")),
        mail("Content-Type: text/plain; charset=idna\n", b"\xff needle"),
        mail('Content-Type: multipart/mixed; boundary="gone"\n', "--gone\r\nneedle"),
        mail("Content-Type: multipart/mixed\n", "no boundary at all, needle"),
        mail("Content-Type: ///\nContent-Transfer-Encoding: x-unheard-of\n", "needle"),
        b"\xff\xfe\x00garbage without a header end needle",
        b"",
    ],
)
def test_malformed_messages_never_raise(data: bytes) -> None:
    box = Mailbox()
    box.add(data)
    box.uids(Or(TextKey("text", "needle"), HeaderKey("x-anything", "")))
    box.uids(TextKey("body", "needle"))


# -- combinations -------------------------------------------------------------------------------


def test_all_not_or_and_nesting() -> None:
    box = Mailbox()
    one = box.add(mail("From: ann@example.org\n"), flags=("\\Seen",))
    two = box.add(mail("From: ben@example.org\n"), flags=("\\Flagged",))
    three = box.add(mail("From: ann@example.org\n"), flags=("\\Seen", "\\Flagged"))
    assert box.uids(All()) == [one, two, three]
    assert box.uids(And((All(),))) == [one, two, three]
    assert box.uids(And(())) == [one, two, three]
    assert box.uids(Not(All())) == []
    ann_seen = And((HeaderKey("from", "ann"), FlagKey("\\Seen", True)))
    assert box.uids(ann_seen) == [one, three]
    assert box.uids(Not(ann_seen)) == [two]
    flagged_or_ben = Or(FlagKey("\\Flagged", True), HeaderKey("from", "ben"))
    assert box.uids(flagged_or_ben) == [two, three]
    assert box.uids(And((ann_seen, flagged_or_ben))) == [three]
    assert box.uids(Or(Not(FlagKey("\\Seen", True)), Not(HeaderKey("from", "ann")))) == [two]
    assert box.uids(And((Not(Not(ann_seen)), Or(Not(All()), ModSeqKey(1))))) == [one, three]


def test_an_empty_mailbox() -> None:
    assert (
        Mailbox().uids(And((TextKey("text", "x"), SequenceKey(sequence((1, STAR)), False)))) == []
    )


# -- compress_sequence --------------------------------------------------------------------------


def test_compress_sequence() -> None:
    assert compress_sequence([1, 2, 3, 7, 9, 10]) == "1:3,7,9:10"
    assert compress_sequence([5]) == "5"
    assert compress_sequence([]) == ""
    assert compress_sequence(iter([4, 5, 1, 2])) == "4:5,1:2"  # order kept (COPYUID)
    assert compress_sequence([3, 2, 1]) == "3,2,1"


def test_header_fields_read_by_header_and_sent_date_keys() -> None:
    assert not header_fields_read(And((FlagKey("\\Seen", True), Not(SizeKey("larger", 5)))))
    assert not header_fields_read(DateKey("internal", "on", datetime.date(2026, 1, 1)))
    assert header_fields_read(Or(All(), Not(HeaderKey("from", "bob")))) == {"from"}
    sent = DateKey("sent", "since", datetime.date(2026, 1, 1))
    assert header_fields_read(And((sent, HeaderKey("subject", "x")))) == {"date", "subject"}
    assert not header_fields_read(HeaderKey("x-spam", "yes"))  # read from the message


def test_text_needle_is_a_string_every_match_has_in_a_kept_field() -> None:
    assert text_needle(HeaderKey("subject", "Zeppelin")) == "zeppelin"
    nested = And((FlagKey("\\Seen", True), HeaderKey("from", "bob"),
                  And((HeaderKey("to", "Straße Nord"),))))  # fmt: skip
    assert text_needle(nested) == "strasse nord"  # the longest, casefolded as compared
    assert text_needle(Or(HeaderKey("from", "a"), HeaderKey("from", "b"))) is None
    assert text_needle(Not(HeaderKey("from", "bob"))) is None
    assert text_needle(HeaderKey("x-spam", "yes")) is None  # the index does not keep it
    assert text_needle(HeaderKey("subject", " \t")) is None  # any subject matches


def test_star_is_the_views_last_message_when_not_all_are_candidates() -> None:
    box = Mailbox()
    first = box.add()
    box.add()
    last = SequenceKey(sequence((STAR, STAR)), uid=False)
    candidates = box.candidates[:1]  # the others left out by the index

    def found(largest_number: int) -> list[Candidate]:
        return search(
            last, candidates, largest_number=largest_number, largest_uid=2, read_message=box.read
        )

    assert found(2) == []
    assert [c.message.uid for c in found(1)] == [first]
