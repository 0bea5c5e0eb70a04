"""Clients set themselves up: the documents mail, calendar and contacts programs fetch to find
this server, and a setup page for the rest.

Routes in the one HTTPS application (any hosted domain's host name reaches them):
    /mail/config-v1.1.xml, /.well-known/autoconfig/mail/config-v1.1.xml,
    /.well-known/mail-v1.xml                Thunderbird autoconfig (thunderbird.py)
    /autodiscover/autodiscover.xml          Microsoft Autodiscover POX, any case (autodiscover.py)
    /setup                                  the signed-in user's setup page (setup_page.py)
    /setup/apple.mobileconfig               Apple profile (apple.py); POST adds an app password
    /ca.pem, /ca.crt                        pcloud's own CA certificate, when it uses one

The settings are the same for every address of a domain, so the public documents answer for any
address in a hosted domain (they do not tell who has an account) and 404 for other domains.
DNS records that lead clients here (SRV, CNAME) are printed by `pcloud dns`.
"""

from __future__ import annotations

import datetime

from aiohttp import hdrs, web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from yarl import URL

from pcloud.autoconfig import apple, autodiscover, setup_page, thunderbird
from pcloud.autoconfig.settings import ClientSettings, client_settings, hosted_domain
from pcloud.directory import Principal
from pcloud.http.basic_auth import signed_in
from pcloud.services import Services

XML = "application/xml"
THUNDERBIRD_PATHS = (
    "/mail/config-v1.1.xml",
    "/.well-known/autoconfig/mail/config-v1.1.xml",
    "/.well-known/mail-v1.xml",
)
AUTODISCOVER_PATH = r"/{path:(?i:autodiscover/autodiscover\.xml)}"
# Settings change only when listeners do; clients ask once per account set-up.
CACHE_CONTROL = {hdrs.CACHE_CONTROL: "public, max-age=3600"}


def add_routes(app: web.Application, services: Services) -> None:
    async def thunderbird_config(request: web.Request) -> web.Response:
        domain = hosted_domain(services, request, request.query.get("emailaddress", ""))
        body = thunderbird.config_document(client_settings(services, domain))
        return web.Response(body=body, content_type=XML, charset="utf-8", headers=CACHE_CONTROL)

    async def autodiscover_config(request: web.Request) -> web.Response:
        address = ""
        if request.method == hdrs.METH_POST:
            body = await _read_at_most(request, autodiscover.MAX_REQUEST_BYTES)
            try:
                address, schema = autodiscover.parse_request(body)
            except autodiscover.BadRequest as error:
                raise web.HTTPBadRequest(text=f"{error}\n") from None
            if schema != autodiscover.OUTLOOK_NS:
                document = autodiscover.error_document("Only IMAP and SMTP are offered here")
                return web.Response(body=document, content_type=XML, charset="utf-8")
        elif request.method != hdrs.METH_GET:
            raise web.HTTPMethodNotAllowed(request.method, [hdrs.METH_GET, hdrs.METH_POST])
        domain = hosted_domain(services, request, address)
        document = autodiscover.settings_document(client_settings(services, domain), address)
        return web.Response(body=document, content_type=XML, charset="utf-8")

    async def user_settings(request: web.Request) -> tuple[Principal, ClientSettings]:
        principal = await signed_in(request, services.directory, "setup")
        domain = principal.address.rpartition("@")[2]
        return principal, client_settings(services, domain)

    async def page(request: web.Request) -> web.Response:
        principal, settings = await user_settings(request)
        chat = services.endpoint("xmpp")
        html = setup_page.page(settings, principal.address, chat.port if chat else None)
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    async def apple_profile(request: web.Request) -> web.Response:
        principal, settings = await user_settings(request)
        password = ""
        if request.method == hdrs.METH_POST:
            _refuse_cross_site(request)
            label = f"Apple profile {datetime.datetime.now():%Y-%m-%d %H:%M:%S}"
            password = services.directory.add_app_password(principal.address, label)
        user = services.directory.user(principal.address)
        body = apple.profile(
            settings,
            principal.address,
            display_name=user.display_name if user else "",
            password=password,
            ca_certificate_der=_ca_der(services) if settings.ca_fingerprint else None,
        )
        filename = f"{settings.domain}.mobileconfig"
        return web.Response(
            body=body,
            content_type=apple.CONTENT_TYPE,
            headers={
                hdrs.CONTENT_DISPOSITION: f'attachment; filename="{filename}"',
                hdrs.CACHE_CONTROL: "no-store",
            },
        )

    async def ca_certificate(request: web.Request) -> web.Response:
        if services.config.tls.certificate:
            raise web.HTTPNotFound(text="this server's certificate comes from a public CA\n")
        if request.path.endswith(".crt"):
            return web.Response(body=_ca_der(services), content_type="application/x-x509-ca-cert")
        return web.Response(
            body=services.tls.ca_file.read_bytes(), content_type="application/x-pem-file"
        )

    for path in THUNDERBIRD_PATHS:
        app.router.add_get(path, thunderbird_config)
    app.router.add_route("*", AUTODISCOVER_PATH, autodiscover_config)
    app.router.add_get("/setup", page)
    app.router.add_route(hdrs.METH_GET, "/setup/apple.mobileconfig", apple_profile)
    app.router.add_route(hdrs.METH_POST, "/setup/apple.mobileconfig", apple_profile)
    app.router.add_get("/ca.pem", ca_certificate)
    app.router.add_get("/ca.crt", ca_certificate)


async def _read_at_most(request: web.Request, limit: int) -> bytes:
    body = b""
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return body


def _refuse_cross_site(request: web.Request) -> None:
    """A form on another site must not make a signed-in browser create app passwords: browsers
    name the page a POST comes from in Origin."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and URL(origin).raw_authority != request.host:
        raise web.HTTPForbidden(text="cross-site request refused\n")


def _ca_der(services: Services) -> bytes:
    certificate = x509.load_pem_x509_certificate(services.tls.ca_file.read_bytes())
    return certificate.public_bytes(serialization.Encoding.DER)
