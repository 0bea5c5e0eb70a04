"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3): the RFC's example, "&", round trips, and
every kind of invalid input."""

from __future__ import annotations

import pytest

from pcloud.imap.utf7 import decode_utf7, encode_utf7

ENCODED = [
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501 §5.1.3
    ("&", "&-"),
    ("a&b&&c", "a&-b&-&-c"),
    ("", ""),
    ("INBOX/Sent Items", "INBOX/Sent Items"),
    ("Entwürfe", "Entw&APw-rfe"),
    ("☺!", "&Jjo-!"),
    ("😀", "&2D3eAA-"),  # a surrogate pair in UTF-16
    ("tab\there", "tab&AAk-here"),  # control characters are not printable: shifted
    ("Ä&Ö", "&AMQ-&-&ANY-"),
]


@pytest.mark.parametrize(("name", "encoded"), ENCODED)
def test_encode(name: str, encoded: str) -> None:
    assert encode_utf7(name) == encoded


@pytest.mark.parametrize(("name", "encoded"), ENCODED)
def test_decode(name: str, encoded: str) -> None:
    assert decode_utf7(encoded) == name


@pytest.mark.parametrize(
    "name",
    ["Привет/мир", "日本語 & English", "a" * 300, "€" * 100, "mixed😀text☺&-end", "~%*"],
)
def test_round_trip(name: str) -> None:
    encoded = encode_utf7(name)
    assert encoded.isascii()
    assert decode_utf7(encoded) == name


@pytest.mark.parametrize(
    "encoded",
    [
        "&",  # unterminated
        "a&b",
        "&Jjo",
        "&AGE-",  # "a" must stand for itself
        "&AGEAZQ-",
        "&Jjp-",  # leftover bits not zero
        "&Jj-",  # an odd number of bytes
        "&2D0-",  # a lone surrogate
        "&Jj&-",
        "&AC/-",  # "/" where modified base64 has ","
        "é",  # 8-bit
        "tab\there",  # not printable
    ],
)
def test_invalid_input_is_a_value_error(encoded: str) -> None:
    with pytest.raises(ValueError):
        decode_utf7(encoded)


def test_python_utf7_is_not_the_imap_form() -> None:
    assert "台北".encode("utf-7").decode() != encode_utf7("台北")
