"""pcloud's shortcuts in aiosmtpd's protocol read what aiosmtpd itself would."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import SMTP

from pcloud.smtp.server import Connections, PcloudSMTP

PATHS = [
    # Plain paths, read without the email package's parser.
    "<alice@example.org>",
    "<Alice.Smith+tag@Mail.Example.ORG> SIZE=10240",
    "<a_b-c@x-y.example>\tBODY=8BITMIME  SMTPUTF8",
    "<a@b> x(y)",
    # The rest, left to it.
    "<>",
    "<> SIZE=10",
    '<"quoted local"@example.org>',
    "<a..b@example.org>",
    "<.a@example.org>",
    "<a@example.org.>",
    "<a@[192.0.2.1]>",
    "<@relay.example:a@example.org>",
    "<a@example.org> (comment)",
    "<a@example.org>SIZE=1",
    "<a@example.org> ",
    " <a@example.org>",
    "a@example.org",
    "<a@example.org",
    "<ü@example.org>",
]


@pytest.mark.parametrize("argument", PATHS)
async def test_mail_and_rcpt_paths_are_read_as_aiosmtpd_reads_them(argument: str) -> None:
    ours, theirs = PcloudSMTP(object(), Connections(1)), SMTP(object())
    assert ours._getaddr(argument) == theirs._getaddr(argument)
