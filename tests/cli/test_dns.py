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
    assert lines[-1] == "3 of 5 records are published as shown"


def test_an_unknown_domain_is_refused(published: RunningServer) -> None:
    out, err = io.StringIO(), io.StringIO()
    argv = ["dns", "other.org", "--data", str(published.data_dir)]
    assert run(argv, Context(out, err)) == 1
    assert "not hosted" in err.getvalue()
