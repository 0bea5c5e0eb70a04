"""What a client needs to know to connect: one description every setup document is made from.

Each hosted domain is served at `mail.<domain>` (the name its MX record and the server
certificate carry), with the ports this server really listens on. Mail programs sign in with
the full address; implicit TLS comes first in every list (RFC 8314 §3), STARTTLS second.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from pcloud.services import Services
from pcloud.tls import fingerprint

# Prefixes of the host names clients ask for a domain's settings on.
SETUP_HOST_PREFIXES = ("autoconfig.", "autodiscover.", "mail.")


@dataclass(frozen=True)
class Server:
    protocol: str  # "imap" or "smtp"
    port: int
    security: str  # "tls" (implicit TLS) or "starttls"


@dataclass(frozen=True)
class ClientSettings:
    domain: str
    host: str
    mail_servers: tuple[Server, ...]  # implicit TLS first
    https_port: int | None
    # The server's own CA, which devices must be told to trust; "" with a public certificate.
    ca_fingerprint: str

    def servers(self, protocol: str) -> list[Server]:
        return [server for server in self.mail_servers if server.protocol == protocol]

    @property
    def https_base(self) -> str:
        port = "" if self.https_port in (443, None) else f":{self.https_port}"
        return f"https://{self.host}{port}"

    @property
    def dav_url(self) -> str:
        return f"{self.https_base}/dav/"

    def principal_url(self, address: str) -> str:
        return f"{self.dav_url}{address}/"


# (protocol, security, listener) in the order clients should prefer them.
MAIL_LISTENERS = (
    ("imap", "tls", "imaps"),
    ("imap", "starttls", "imap"),
    ("smtp", "tls", "submissions"),
    ("smtp", "starttls", "submission"),
)


def client_settings(services: Services, domain: str) -> ClientSettings:
    servers = []
    for protocol, security, listener in MAIL_LISTENERS:
        endpoint = services.endpoint(listener)
        if endpoint is not None:
            servers.append(Server(protocol, endpoint.port, security))
    https = services.endpoint("https")
    return ClientSettings(
        domain=domain,
        host=f"mail.{domain}",
        mail_servers=tuple(servers),
        https_port=https.port if https else None,
        ca_fingerprint="" if services.config.tls.certificate else fingerprint(services.tls.ca_file),
    )


def hosted_domain(services: Services, request: web.Request, address: str = "") -> str:
    """The hosted domain a setup request is about: the address's domain when one is given (the
    `emailaddress` query of Thunderbird and Delta Chat, Autodiscover's EMailAddress), else the
    host name it was sent to (`autoconfig.example.org`, `example.org`). 404 when not hosted."""
    if address:
        domain = address.rpartition("@")[2]
    else:
        domain = (request.url.host or "").removesuffix(".")
        for prefix in SETUP_HOST_PREFIXES:
            if domain.startswith(prefix):
                domain = domain.removeprefix(prefix)
                break
    domain = domain.strip().lower()
    if domain not in services.directory.domains():
        raise web.HTTPNotFound(text="no mail settings for that domain here\n")
    return domain
