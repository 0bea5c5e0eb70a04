"""`pcloud dns DOMAIN`: the records to publish, and with --check what DNS really says."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcloud.cli import Context, run
from pcloud.testing import RunningServer, running_server


@pytest.fixture
def published(tmp_path: Path) -> Iterator[RunningServer]:
    records = {
        ("mail.example.org", "A"): ["192.0.2.10"],
        ("example.org", "MX"): ["10 mail.example.org."],
        ("example.org", "TXT"): ['"v=spf1 mx ~all"', '"google-site-verification=x"'],
        ("pcloud._domainkey.example.org", "TXT"): ['"v=DKIM1; k=rsa; p=MIIBold"'],
        ("_imaps._tcp.example.org", "SRV"): ["0 1 993 mail.example.org."],
        ("_submissions._tcp.example.org", "SRV"): ["0 1 4465 mail.example.org."],
        ("_pop3._tcp.example.org", "SRV"): ["0 0 0 ."],
        ("autoconfig.example.org", "CNAME"): ["mail.example.org."],
    }
    with running_server(tmp_path / "data", dns_records=records) as server:
        yield server


def dns_command(server: RunningServer, *options: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    status = run(
        ["dns", "example.org", "--data", str(server.data_dir), *options], Context(out, err)
    )
    assert status == 0, err.getvalue()
    return out.getvalue()


def test_the_records_to_publish(published: RunningServer) -> None:
    output = dns_command(published)
    key = published.services.dkim.get("example.org")
    assert key is not None
    assert "example.org.  MX  10 mail.example.org." in output
    assert 'example.org.  TXT  "v=spf1 mx ~all"' in output
    assert '_dmarc.example.org.  TXT  "v=DMARC1; p=quarantine;' in output
    public_key = key.dns_value.split("p=")[1]
    assert f'pcloud._domainkey.example.org.  TXT  "v=DKIM1; k=rsa; p={public_key[:200]}' in output
    # RFC 6186 and RFC 8314: implicit TLS first; RFC 6764 for DAV; no POP3, no DAV without TLS.
    for line in (
        "_imaps._tcp.example.org.  SRV  0 1 993 mail.example.org.",
        "_imap._tcp.example.org.  SRV  10 1 143 mail.example.org.",
        "_submissions._tcp.example.org.  SRV  0 1 465 mail.example.org.",
        "_submission._tcp.example.org.  SRV  10 1 587 mail.example.org.",
        "_pop3s._tcp.example.org.  SRV  0 0 0 .",
        "_caldavs._tcp.example.org.  SRV  0 1 443 mail.example.org.",
        '_caldavs._tcp.example.org.  TXT  "path=/dav/"',
        '_carddavs._tcp.example.org.  TXT  "path=/dav/"',
        "_carddav._tcp.example.org.  SRV  0 0 0 .",
        "_autodiscover._tcp.example.org.  SRV  0 1 443 mail.example.org.",
        "autoconfig.example.org.  CNAME  mail.example.org.",
        "autodiscover.example.org.  CNAME  mail.example.org.",
        "_avatars-sec._tcp.example.org.  SRV  0 1 443 mail.example.org.",
        "_avatars._tcp.example.org.  SRV  0 1 80 mail.example.org.",
        "_xmpps-client._tcp.example.org.  SRV  0 1 5223 mail.example.org.",
        "_xmpp-client._tcp.example.org.  SRV  5 1 5222 mail.example.org.",
        "_xmpp-server._tcp.example.org.  SRV  0 0 0 .",
    ):
        assert line in output


def test_records_follow_the_listeners(tmp_path: Path) -> None:
    settings = {"listeners.imap": {"enabled": False}, "listeners.imaps": {"port": 10993}}
    with running_server(tmp_path / "data", settings=settings) as server:
        output = dns_command(server)
    assert "_imap._tcp.example.org.  SRV  0 0 0 ." in output
    assert "_imaps._tcp.example.org.  SRV  0 1 10993 mail.example.org." in output


def test_check_says_what_is_published(published: RunningServer) -> None:
    lines = dns_command(published, "--check").splitlines()
    status = {lines[i].split()[0]: lines[i + 1] for i, line in enumerate(lines[:-1])
              if not line.startswith(";")}  # fmt: skip
    assert status["mail.example.org."] == ";   published: ok"
    assert status["example.org."] in (";   published: ok",)
    assert status["pcloud._domainkey.example.org."] == (
        ";   published: different: v=DKIM1; k=rsa; p=MIIBold"
    )
    assert status["_dmarc.example.org."] == ";   published: missing"
    assert status["_imaps._tcp.example.org."] == ";   published: ok"
    assert status["_submissions._tcp.example.org."] == (
        ";   published: different: 0 1 4465 mail.example.org."
    )
    assert status["_pop3._tcp.example.org."] == ";   published: ok"
    assert status["autoconfig.example.org."] == ";   published: ok"
    assert status["autodiscover.example.org."] == ";   published: missing"
    assert lines[-1] == "6 of 25 records are published as shown"


def test_an_unknown_domain_is_refused(published: RunningServer) -> None:
    out, err = io.StringIO(), io.StringIO()
    argv = ["dns", "other.org", "--data", str(published.data_dir)]
    assert run(argv, Context(out, err)) == 1
    assert "not hosted" in err.getvalue()
