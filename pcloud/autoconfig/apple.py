"""An Apple configuration profile (`.mobileconfig`) that sets up mail, calendars and contacts on
iOS, iPadOS and macOS in one install (Apple's Configuration Profile Reference: the
com.apple.mail.managed, com.apple.caldav.account and com.apple.carddav.account payloads).

The profile carries no password unless one is given (an app password created for it): the
device asks for the password during installation instead. When the server uses its own
certificate authority, the profile also carries that CA (com.apple.security.root), so the
device can be told to trust it in the same install. Identifiers and UUIDs are derived from the
address, so installing a newer profile replaces the older one. Not signed: devices show it as
"unverified", which the setup page explains.
"""

from __future__ import annotations

import plistlib
import uuid
from typing import Any

from pcloud.autoconfig.settings import ClientSettings

CONTENT_TYPE = "application/x-apple-aspen-config"


def _payload(kind: str, identifier: str, name: str, **fields: Any) -> dict[str, Any]:
    return {
        "PayloadType": kind,
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.{kind}",
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{identifier}/{kind}")).upper(),
        "PayloadDisplayName": name,
        **fields,
    }


def _dav_payload(
    kind: str, prefix: str, identifier: str, settings: ClientSettings, address: str, password: str
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        f"{prefix}AccountDescription": f"{address} {kind}",
        f"{prefix}HostName": settings.host,
        f"{prefix}Port": settings.https_port or 443,
        f"{prefix}PrincipalURL": settings.principal_url(address),
        f"{prefix}UseSSL": True,
        f"{prefix}Username": address,
    }
    if password:
        fields[f"{prefix}Password"] = password
    return _payload(f"com.apple.{prefix.lower()}.account", identifier, kind, **fields)


def _mail_payload(
    identifier: str, settings: ClientSettings, address: str, name: str, password: str
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "EmailAccountDescription": address,
        "EmailAccountName": name or address,
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": address,
    }
    # Apple's "use SSL" is TLS on the given port, implicit or by STARTTLS as the port implies.
    for direction, protocol in (("Incoming", "imap"), ("Outgoing", "smtp")):
        server = settings.servers(protocol)[0]
        fields |= {
            f"{direction}MailServerAuthentication": "EmailAuthPassword",
            f"{direction}MailServerHostName": settings.host,
            f"{direction}MailServerPortNumber": server.port,
            f"{direction}MailServerUseSSL": True,
            f"{direction}MailServerUsername": address,
        }
    fields["OutgoingPasswordSameAsIncomingPassword"] = True
    if password:
        fields["IncomingPassword"] = password
    return _payload("com.apple.mail.managed", identifier, "Mail", **fields)


def profile(
    settings: ClientSettings,
    address: str,
    display_name: str = "",
    password: str = "",
    ca_certificate_der: bytes | None = None,
) -> bytes:
    """The profile as a property list (XML), for one user's address."""
    reversed_domain = ".".join(reversed(settings.domain.split(".")))
    identifier = f"{reversed_domain}.pcloud.{uuid.uuid5(uuid.NAMESPACE_URL, 'mailto:' + address)}"
    content = []
    if ca_certificate_der is not None:
        content.append(
            _payload(
                "com.apple.security.root",
                identifier,
                f"{settings.domain} certificate authority",
                PayloadContent=ca_certificate_der,
            )
        )
    if settings.servers("imap") and settings.servers("smtp"):
        content.append(_mail_payload(identifier, settings, address, display_name, password))
    if settings.https_port is not None:
        content.append(_dav_payload("Calendars", "CalDAV", identifier, settings, address, password))
        content.append(_dav_payload("Contacts", "CardDAV", identifier, settings, address, password))
    document = _payload(
        "Configuration",
        identifier,
        f"{address} on {settings.domain}",
        PayloadContent=content,
        PayloadDescription=f"Mail, calendars and contacts of {address}.",
        PayloadOrganization=settings.domain,
        PayloadRemovalDisallowed=False,
    )
    document["PayloadIdentifier"] = identifier
    return plistlib.dumps(document, fmt=plistlib.FMT_XML)
