"""Thunderbird's autoconfig document (clientConfig 1.1), which Thunderbird, K-9/Thunderbird for
Android, FairEmail, Evolution, KMail and Delta Chat all read.

Clients fetch it from `https://autoconfig.<domain>/mail/config-v1.1.xml?emailaddress=…`,
`https://autoconfig.<domain>/.well-known/mail-v1.xml?emailaddress=…` (the format's current
draft) or `https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml`; plain-HTTP requests
are redirected to HTTPS by the redirect listener. Delta Chat tries the servers in the order given
and keeps the first that works, so implicit TLS comes first. CalDAV and CardDAV go in the
`calendar` and `addressBook` elements Thunderbird reads since version 102.
"""

from __future__ import annotations

from xml.etree import ElementTree

from pcloud.autoconfig.settings import ClientSettings

SOCKET_TYPES = {"tls": "SSL", "starttls": "STARTTLS"}


def _add(parent: ElementTree.Element, tag: str, text: str, **attributes: str) -> None:
    ElementTree.SubElement(parent, tag, attributes).text = text


def _dav(parent: ElementTree.Element, tag: str, kind: str, url: str) -> None:
    element = ElementTree.SubElement(parent, tag, {"type": kind})
    _add(element, "username", "%EMAILADDRESS%")
    _add(element, "authentication", "http-basic")
    _add(element, "serverURL", url)


def config_document(settings: ClientSettings) -> bytes:
    root = ElementTree.Element("clientConfig", {"version": "1.1"})
    provider = ElementTree.SubElement(root, "emailProvider", {"id": settings.domain})
    _add(provider, "domain", settings.domain)
    _add(provider, "displayName", f"{settings.domain} mail")
    _add(provider, "displayShortName", settings.domain)
    for server in settings.mail_servers:
        if server.protocol == "imap":
            element = ElementTree.SubElement(provider, "incomingServer", {"type": "imap"})
        else:
            element = ElementTree.SubElement(provider, "outgoingServer", {"type": "smtp"})
        _add(element, "hostname", settings.host)
        _add(element, "port", str(server.port))
        _add(element, "socketType", SOCKET_TYPES[server.security])
        _add(element, "authentication", "password-cleartext")  # inside TLS only
        _add(element, "username", "%EMAILADDRESS%")
    if settings.https_port is not None:
        _dav(root, "addressBook", "carddav", settings.dav_url)
        _dav(root, "calendar", "caldav", settings.dav_url)
    ElementTree.indent(root)
    document: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return document
