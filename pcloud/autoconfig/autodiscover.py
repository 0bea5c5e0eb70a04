"""Microsoft Autodiscover, the plain-old-XML kind (MS-OXDISCO) that Outlook POSTs to
`/autodiscover/autodiscover.xml` (in any case), and that Delta Chat GETs from the same path.

The answer names one IMAP and one SMTP server, the preferred ones: both clients take only the
first of each type. `SSL on` means implicit TLS; a STARTTLS-only server adds `Encryption TLS`.
Requests for another response schema (ActiveSync's `mobilesync`, which pcloud does not speak)
get the protocol's error 600, so that the client goes on to IMAP.
"""

from __future__ import annotations

import datetime
from xml.etree import ElementTree

import defusedxml.ElementTree
from defusedxml import DefusedXmlException

from pcloud.autoconfig.settings import ClientSettings

RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
# A request is a few hundred bytes; anything much larger is not one.
MAX_REQUEST_BYTES = 16 * 1024


class BadRequest(Exception):
    pass


def parse_request(body: bytes) -> tuple[str, str]:
    """(EMailAddress, AcceptableResponseSchema) of a POX request; namespaces vary between
    clients, so elements are matched by local name."""
    try:
        root = defusedxml.ElementTree.fromstring(body)
    except (ElementTree.ParseError, DefusedXmlException) as error:
        raise BadRequest(f"not an Autodiscover request: {error}") from None
    values = {"EMailAddress": "", "AcceptableResponseSchema": ""}
    for element in root.iter():
        name = element.tag.rpartition("}")[2]
        if name in values:
            values[name] = (element.text or "").strip()
    address = values["EMailAddress"]
    if address.count("@") != 1 or len(address) > 320:
        raise BadRequest("the request names no e-mail address")
    return address, values["AcceptableResponseSchema"] or OUTLOOK_NS


def _add(parent: ElementTree.Element, tag: str, text: str) -> None:
    ElementTree.SubElement(parent, tag).text = text


def _document(response: ElementTree.Element) -> bytes:
    root = ElementTree.Element("Autodiscover", {"xmlns": RESPONSE_NS})
    root.append(response)
    ElementTree.indent(root)
    document: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def settings_document(settings: ClientSettings, address: str) -> bytes:
    response = ElementTree.Element("Response", {"xmlns": OUTLOOK_NS})
    account = ElementTree.SubElement(response, "Account")
    _add(account, "AccountType", "email")
    _add(account, "Action", "settings")
    for protocol in ("imap", "smtp"):
        servers = settings.servers(protocol)
        if not servers:
            continue
        server = servers[0]
        element = ElementTree.SubElement(account, "Protocol")
        _add(element, "Type", protocol.upper())
        _add(element, "Server", settings.host)
        _add(element, "Port", str(server.port))
        _add(element, "DomainRequired", "off")
        if address:
            _add(element, "LoginName", address)
        _add(element, "SPA", "off")
        _add(element, "SSL", "on")
        if server.security == "starttls":
            _add(element, "Encryption", "TLS")
        _add(element, "AuthRequired", "on")
        if protocol == "smtp":
            _add(element, "UsePOPAuth", "off")
            _add(element, "SMTPLast", "off")
    return _document(response)


def error_document(message: str) -> bytes:
    response = ElementTree.Element("Response")
    now = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S.%f")
    error = ElementTree.SubElement(response, "Error", {"Time": now, "Id": "0"})
    _add(error, "ErrorCode", "600")
    _add(error, "Message", message)
    ElementTree.SubElement(error, "DebugData")
    return _document(response)
