"""A mail corpus for benches: the same count and seed give the same messages, byte for byte.

Messages of 2 to 20 KB, about 6 KB on average (log-normal, as real mail is), from a few hundred
senders, one every few minutes through 2023. Most are text/plain, a quarter
multipart/alternative with an HTML part, one in ten carries a base64 attachment; a few have
non-ASCII subjects or sender names (RFC 2047 encoded words). About 1% of the subjects hold
SEARCH_WORD, some of them inside an encoded word, so that a SUBJECT search has a known answer.

Files are written flat into one folder, named as Maildir names them in cur/
(`<time>.<unique>,S=<size>:2,<flags>`, names sorting in delivery order), with the delivery time
as their mtime (the internal date Maildir servers read), ready to be hard-linked into the cur/
of any number of Maildirs.
"""

from __future__ import annotations

import base64
import bisect
import datetime
import email.header
import email.utils
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

RECIPIENT = "alice@example.org"
SEARCH_WORD = "zeppelin"  # in no other subject, and part of no other word
MIN_BYTES, MAX_BYTES = 2 * 1024, 20 * 1024
FIRST_DATE = 1_672_531_200  # 2023-01-01 00:00 UTC
# Word lists as text, split once: they read better so than as a hundred quoted items.
WORDS = (  # noqa: SIM905
    "account agenda answer april archive budget build call change client contract cost data "
    "deadline design draft early estimate event feedback field final follow garden group "
    "holiday idea invoice issue join launch lunch meeting minutes monday network news note "
    "offer office order outline paper party photos plan please project proposal quarter "
    "question quick receipt release report request review room sales schedule server shared "
    "ship spring staff status summer support team test ticket today travel trip update urgent "
    "visit week weekend welcome workshop yearly about again before could every first great "
    "little never other right small still thanks think where which while would"
).split()
FIRST_NAMES = (  # noqa: SIM905
    "Anna Ben Carla David Elena Farid Grace Hugo Ines Jonas Kim Lena Marco Nadia Omar Petra "
    "Quentin Rosa Samir Tessa Ugo Vera Walter Xenia Yusuf Zoe"
).split()
LAST_NAMES = (  # noqa: SIM905
    "Adams Berger Costa Dubois Evans Fischer Garcia Hansen Ivanova Jensen Keller Lopez Meyer "
    "Nowak Olsen Petit"
).split()
DOMAINS = ("example.com", "example.net", "mail.example.com", "lists.example.net", "corp.test")
UNICODE_NAMES = ("José Núñez", "Jürgen Weiß", "Zoë Ørsted", "Дмитрий Козлов", "山田 花子")
UNICODE_PHRASES = ("Réunion", "Grüße aus München", "Привет", "会議の議事録", "Café ☕", "Ünïcödé")
ZONES = tuple(datetime.timezone(datetime.timedelta(hours=h)) for h in (0, 1, 2, -5, -8, 9, 5.5))
TEXT_POOL_BYTES = 1 << 20


@dataclass(frozen=True)
class Corpus:
    folder: Path
    names: list[str]  # file names in delivery order
    total_bytes: int
    search_hits: int  # messages whose subject holds SEARCH_WORD


class _Text:
    """A pool of wrapped prose to cut message bodies from: far quicker than making each one."""

    def __init__(self, rng: random.Random) -> None:
        lines, size = [], 0
        while size < TEXT_POOL_BYTES:
            if rng.random() < 0.15:
                line = b"\r\n"  # a paragraph break
            else:
                words = rng.choices(WORDS, k=rng.randint(8, 12))
                line = " ".join(words).capitalize().encode()[:76] + b"\r\n"
            lines.append(line)
            size += len(line)
        self.pool = b"".join(lines)
        self.starts = [0]
        for line in lines:
            self.starts.append(self.starts[-1] + len(line))

    def cut(self, rng: random.Random, size: int) -> bytes:
        """Whole lines, about `size` bytes of them."""
        first = rng.randrange(len(self.starts) // 2)
        start = self.starts[first]
        end = self.starts[min(bisect.bisect_left(self.starts, start + size), len(self.starts) - 1)]
        return self.pool[start:end]


def _encoded(text: str) -> str:
    """A header value, as RFC 2047 encoded words when it is not ASCII."""
    return email.header.Header(text, "utf-8").encode(linesep="\r\n") if not text.isascii() else text


def _subject(rng: random.Random, with_word: bool) -> str:
    words = rng.choices(WORDS, k=rng.randint(3, 7))
    if rng.random() < 0.03:
        words.insert(rng.randrange(len(words) + 1), rng.choice(UNICODE_PHRASES))
    if with_word:
        words.insert(rng.randrange(len(words) + 1), SEARCH_WORD)
    subject = " ".join(words).capitalize()
    prefix = rng.random()
    return ("Re: " if prefix < 0.3 else "Fwd: " if prefix < 0.35 else "") + subject


def _sender(rng: random.Random) -> str:
    if rng.random() < 0.02:
        name, local = rng.choice(UNICODE_NAMES), f"user{rng.randrange(100)}"
    else:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        name, local = f"{first} {last}", f"{first}.{last}".lower()
    return f"{_encoded(name)} <{local}@{rng.choice(DOMAINS)}>"


def _size(rng: random.Random) -> int:
    return min(MAX_BYTES, max(MIN_BYTES, int(math.exp(rng.gauss(math.log(5000), 0.6)))))


def _body(rng: random.Random, text: _Text, number: int, size: int) -> tuple[bytes, bytes]:
    """The Content-Type header lines and the body of a message of about `size` bytes."""
    kind = rng.random()
    if kind < 0.65:
        return b"Content-Type: text/plain; charset=utf-8\r\n", text.cut(rng, size)
    boundary = f"=_part_{number:07d}_{rng.getrandbits(32):08x}".encode()
    if kind < 0.9:
        plain = text.cut(rng, size * 4 // 10)
        html = b"<html><body>\r\n<p>" + plain.replace(b"\r\n\r\n", b"</p>\r\n<p>") + b"</p>"
        parts = [
            (b"text/plain; charset=utf-8", b"", plain),
            (b"text/html; charset=utf-8", b"", html + b"\r\n</body></html>\r\n"),
        ]
        subtype = b"alternative"
    else:
        plain = text.cut(rng, rng.randint(300, 1500))
        raw = rng.randbytes(max(256, (size - len(plain) - 900) * 3 // 4))
        encoded = base64.encodebytes(raw).replace(b"\n", b"\r\n")
        disposition = f'Content-Disposition: attachment; filename="scan-{number}.pdf"\r\n'
        parts = [
            (b"text/plain; charset=utf-8", b"", plain),
            (b"application/pdf", disposition.encode() + b"Content-Transfer-Encoding: base64\r\n",
             encoded),
        ]  # fmt: skip
        subtype = b"mixed"
    body = b"This is a multi-part message in MIME format.\r\n"
    for content_type, more, content in parts:
        body += b"\r\n--" + boundary + b"\r\nContent-Type: " + content_type + b"\r\n" + more
        body += b"\r\n" + content
    body += b"\r\n--" + boundary + b"--\r\n"
    return b"Content-Type: multipart/" + subtype + b'; boundary="' + boundary + b'"\r\n', body


def message(rng: random.Random, text: _Text, number: int, when: int) -> tuple[bytes, bool]:
    """A message, and whether its subject holds SEARCH_WORD."""
    date = email.utils.format_datetime(
        datetime.datetime.fromtimestamp(when, rng.choice(ZONES))
    )  # fmt: skip
    sender = _sender(rng)
    address = sender.rpartition("<")[2].rstrip(">")
    host = address.partition("@")[2]
    hit = rng.random() < 0.01
    subject = _subject(rng, hit)
    content_type, body = _body(rng, text, number, _size(rng))
    headers = (
        f"Return-Path: <{address}>\r\n"
        f"Received: from mail.{host} (mail.{host} [192.0.2.{number % 250 + 1}])\r\n"
        f"\tby mx.example.org with ESMTPS id {rng.getrandbits(48):012X}\r\n"
        f"\tfor <{RECIPIENT}>; {date}\r\n"
        f"Message-ID: <{number}.{rng.getrandbits(40):010x}@{host}>\r\n"
        f"Date: {date}\r\n"
        f"From: {sender}\r\n"
        f"To: Alice Example <{RECIPIENT}>\r\n"
        f"Subject: {_encoded(subject)}\r\n"
        "MIME-Version: 1.0\r\n"
    ).encode()
    return headers + content_type + b"\r\n" + body, hit


def write(folder: Path, count: int, seed: int = 1) -> Corpus:
    """Write `count` message files into `folder` (created, empty)."""
    rng = random.Random(seed)
    text = _Text(rng)
    folder.mkdir()
    names, total, hits, when = [], 0, 0, FIRST_DATE
    for number in range(count):
        when += rng.randint(30, 600)
        data, hit = message(rng, text, number, when)
        flags = rng.choices(("S", "FS", "RS", ""), weights=(80, 5, 5, 10))[0]
        name = f"{when}.M{number:07d}P1.bench,S={len(data)}:2,{flags}"
        path = folder / name
        path.write_bytes(data)
        os.utime(path, (when, when))
        names.append(name)
        total += len(data)
        hits += hit
    return Corpus(folder, names, total, hits)
