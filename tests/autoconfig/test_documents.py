"""Thunderbird autoconfig and Microsoft Autodiscover through the wire, for two hosted domains,
checked against what Thunderbird, Outlook and Delta Chat read from them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest

from pcloud.testing import RunningServer, running_server
from tests.https import fetch

DOMAINS = ("example.org", "example.net")
THUNDERBIRD_PATHS = (
    "/mail/config-v1.1.xml",
    "/.well-known/autoconfig/mail/config-v1.1.xml",
    "/.well-known/mail-v1.xml",
)
AUTODISCOVER_REQUEST = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>{address}</EMailAddress>
    <AcceptableResponseSchema>{schema}</AcceptableResponseSchema>
  </Request>
</Autodiscover>"""
OUTLOOK_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
MOBILESYNC_SCHEMA = (
    "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data_dir: Path = tmp_path_factory.mktemp("autoconfig") / "data"
    with running_server(data_dir) as running:
        running.services.directory.add_domain("example.net")
        yield running


def servers(document: ElementTree.Element, tag: str) -> list[tuple[str, ...]]:
    return [
        (
            element.get("type", ""),
            element.findtext("hostname", ""),
            element.findtext("port", ""),
            element.findtext("socketType", ""),
            element.findtext("authentication", ""),
            element.findtext("username", ""),
        )
        for element in document.iter(tag)
    ]


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("path", THUNDERBIRD_PATHS)
def test_thunderbird_autoconfig(server: RunningServer, domain: str, path: str) -> None:
    # As Thunderbird and Delta Chat ask: on autoconfig.<domain> with the address, and on the
    # domain itself without it.
    for host, query in ((f"autoconfig.{domain}", f"?emailaddress=alice%40{domain}"), (domain, "")):
        status, headers, body = fetch(server, path + query, host=host)
        assert status == 200, body
        assert headers["Content-Type"].startswith("application/xml")
        document = ElementTree.fromstring(body)
        assert document.tag == "clientConfig" and document.get("version") == "1.1"
        provider = document.find("emailProvider")
        assert provider is not None and provider.get("id") == domain
        assert provider.findtext("domain") == domain
        mail_host = f"mail.{domain}"
        login = ("password-cleartext", "%EMAILADDRESS%")
        assert servers(document, "incomingServer") == [
            ("imap", mail_host, str(server.port("imaps")), "SSL", *login),
            ("imap", mail_host, str(server.port("imap")), "STARTTLS", *login),
        ]
        assert servers(document, "outgoingServer") == [
            ("smtp", mail_host, str(server.port("submissions")), "SSL", *login),
            ("smtp", mail_host, str(server.port("submission")), "STARTTLS", *login),
        ]
        dav_url = f"https://{mail_host}:{server.port('https')}/dav/"
        for tag, kind in (("addressBook", "carddav"), ("calendar", "caldav")):
            element = document.find(tag)
            assert element is not None and element.get("type") == kind
            assert element.findtext("serverURL") == dav_url
            assert element.findtext("username") == "%EMAILADDRESS%"
            assert element.findtext("authentication") == "http-basic"


@pytest.mark.parametrize(
    ("path", "host"),
    [
        ("/mail/config-v1.1.xml?emailaddress=alice%40other.org", "autoconfig.example.org"),
        ("/mail/config-v1.1.xml", "autoconfig.other.org"),
        ("/.well-known/autoconfig/mail/config-v1.1.xml", "other.org"),
        ("/.well-known/mail-v1.xml?emailaddress=not-an-address", "autoconfig.example.org"),
        ("/autodiscover/autodiscover.xml", "autodiscover.other.org"),
    ],
)
def test_an_unknown_domain_gets_404(server: RunningServer, path: str, host: str) -> None:
    status, _, _ = fetch(server, path, host=host)
    assert status == 404


def autodiscover_protocols(body: bytes) -> dict[str, dict[str, str]]:
    namespace = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
    document = ElementTree.fromstring(body)
    assert document.tag == (
        "{http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006}Autodiscover"
    )
    account = document.find(f"{namespace}Response/{namespace}Account")
    assert account is not None
    assert account.findtext(f"{namespace}AccountType") == "email"
    assert account.findtext(f"{namespace}Action") == "settings"
    return {
        protocol.findtext(f"{namespace}Type", ""): {
            child.tag.removeprefix(namespace): child.text or "" for child in protocol
        }
        for protocol in account.iter(f"{namespace}Protocol")
    }


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize(
    "path",
    [
        "/autodiscover/autodiscover.xml",
        "/Autodiscover/Autodiscover.xml",
        "/AUTODISCOVER/AUTODISCOVER.XML",
    ],
)
def test_outlook_autodiscover(server: RunningServer, domain: str, path: str) -> None:
    address = f"bob@{domain}"
    request = AUTODISCOVER_REQUEST.format(address=address, schema=OUTLOOK_SCHEMA).encode()
    status, headers, body = fetch(
        server,
        path,
        host=f"autodiscover.{domain}",
        method="POST",
        body=request,
        headers={"Content-Type": "text/xml"},
    )
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/xml")
    protocols = autodiscover_protocols(body)
    assert list(protocols) == ["IMAP", "SMTP"]
    for kind, listener in (("IMAP", "imaps"), ("SMTP", "submissions")):
        assert protocols[kind]["Server"] == f"mail.{domain}"
        assert protocols[kind]["Port"] == str(server.port(listener))
        assert protocols[kind]["SSL"] == "on"
        assert protocols[kind]["LoginName"] == address
        assert protocols[kind]["AuthRequired"] == "on"
        assert "Encryption" not in protocols[kind]  # implicit TLS


def test_delta_chat_gets_autodiscover_settings_without_a_request_body(
    server: RunningServer,
) -> None:
    for host in ("example.net", "autodiscover.example.net"):
        status, _, body = fetch(server, "/autodiscover/autodiscover.xml", host=host)
        assert status == 200, body
        protocols = autodiscover_protocols(body)
        assert protocols["IMAP"]["Port"] == str(server.port("imaps"))
        assert protocols["SMTP"]["Server"] == "mail.example.net"


def test_an_activesync_request_gets_the_protocols_error(server: RunningServer) -> None:
    request = AUTODISCOVER_REQUEST.format(address="bob@example.org", schema=MOBILESYNC_SCHEMA)
    status, _, body = fetch(
        server,
        "/autodiscover/autodiscover.xml",
        host="example.org",
        method="POST",
        body=request.encode(),
    )
    assert status == 200
    assert b"<ErrorCode>600</ErrorCode>" in body
    assert b"<Protocol>" not in body


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Autodiscover><Request><EMailAddress>&lol3;@example.org</EMailAddress></Request></Autodiscover>"""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"not xml at all", 400),
        (b"<Autodiscover><Request></Request></Autodiscover>", 400),
        (BILLION_LAUGHS, 400),
        (b"<Autodiscover>" + b" " * 20_000 + b"</Autodiscover>", 413),
    ],
    ids=["not-xml", "no-address", "entities", "oversized"],
)
def test_bad_autodiscover_requests(server: RunningServer, body: bytes, expected: int) -> None:
    status, _, _ = fetch(
        server, "/autodiscover/autodiscover.xml", host="example.org", method="POST", body=body
    )
    assert status == expected
    # The server goes on answering.
    status, _, _ = fetch(server, "/mail/config-v1.1.xml", host="autoconfig.example.org")
    assert status == 200


def test_autodiscover_refuses_other_methods(server: RunningServer) -> None:
    status, _, _ = fetch(
        server, "/autodiscover/autodiscover.xml", host="example.org", method="PUT", body=b"x"
    )
    assert status == 405
