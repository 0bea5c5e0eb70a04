"""The DNS records a hosted domain needs, and whether they are published (`pcloud dns`).

Mail: MX, SPF (RFC 7208), DKIM (RFC 6376), DMARC (RFC 7489). Clients: the SRV records of
RFC 6186 (mail, with RFC 8314's preference for implicit TLS) and RFC 6764 (CalDAV, CardDAV),
Outlook's `_autodiscover._tcp`, the autoconfig/autodiscover host names, Libravatar's
`_avatars._tcp`/`_avatars-sec._tcp`, and XMPP's `_xmpps-client._tcp`/`_xmpp-client._tcp`
(without them chat programs would look for the server at the domain's own address). A service
this server does not offer gets an SRV record with the target "." (RFC 2782), so that clients
do not go looking for it.

Ports are the public ones: a listener's configured port, else its standard port (a server on
the high ports is normally reached through a router that forwards the standard ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.exception
import dns.resolver

from pcloud.config import Config, SmtpSection, split_host_port
from pcloud.listeners import LISTENERS
from pcloud.store.dkim_keys import DkimKey


@dataclass(frozen=True)
class Record:
    name: str
    type: str
    value: str
    purpose: str


def configure_resolver(settings: SmtpSection) -> None:
    """Point dnspython's default resolver at `smtp.dns_server`, or the system's resolver.

    Process-wide on purpose: the libraries pcloud checks mail with (pyspf, dkimpy,
    authheaders) all ask the default resolver. One `pcloud serve` is one process, so this is
    its DNS setting; several servers embedded in one program share the last one set.
    """
    if settings.dns_server:
        configured = dns.resolver.Resolver(configure=False)
        host, port = split_host_port(settings.dns_server, 53)
        configured.nameservers = [host]
        configured.port = port
        dns.resolver.default_resolver = configured
    else:
        dns.resolver.reset_default_resolver()
    # Each message asks about its sender's domain several times (SPF, DMARC, DKIM).
    dns.resolver.get_default_resolver().cache = dns.resolver.LRUCache(10_000)


def mail_records(domain: str, dkim_key: DkimKey) -> list[Record]:
    host = f"mail.{domain}"
    return [
        Record(host, "A", "<this server's public IPv4 address>", "where the mail host is"),
        Record(domain, "MX", f"10 {host}.", "other servers deliver this domain's mail here"),
        Record(domain, "TXT", "v=spf1 mx ~all", "SPF: only this domain's MX sends its mail"),
        Record(dkim_key.dns_name, "TXT", dkim_key.dns_value, "DKIM: the key mail is signed with"),
        Record(
            f"_dmarc.{domain}",
            "TXT",
            f"v=DMARC1; p=quarantine; adkim=r; aspf=r; rua=mailto:postmaster@{domain}",
            "DMARC: receivers put unauthenticated mail claiming this domain aside",
        ),
    ]


def public_ports(settings: Config) -> dict[str, int]:
    """Listener name → the port clients reach it on, for the enabled listeners."""
    ports = {}
    for spec in LISTENERS:
        listener = settings.listeners.get(spec.name)
        if listener is not None and not listener.enabled:
            continue
        configured = listener.port if listener is not None else None
        ports[spec.name] = configured or spec.standard_port
    return ports


# (SRV name, listener, priority, what it is for); RFC 8314 §5.1: implicit TLS preferred.
SERVICE_RECORDS = (
    ("_imaps._tcp", "imaps", 0, "mail programs find IMAP over TLS (RFC 6186)"),
    ("_imap._tcp", "imap", 10, "mail programs find IMAP with STARTTLS (RFC 6186)"),
    ("_submissions._tcp", "submissions", 0, "mail programs find submission over TLS (RFC 8314)"),
    ("_submission._tcp", "submission", 10, "mail programs find submission (RFC 6186)"),
    ("_pop3s._tcp", "", 0, "no POP3 here (RFC 6186)"),
    ("_pop3._tcp", "", 0, "no POP3 here (RFC 6186)"),
    ("_caldavs._tcp", "https", 0, "calendar programs find CalDAV (RFC 6764)"),
    ("_carddavs._tcp", "https", 0, "contacts programs find CardDAV (RFC 6764)"),
    ("_caldav._tcp", "", 0, "no CalDAV without TLS (RFC 6764)"),
    ("_carddav._tcp", "", 0, "no CardDAV without TLS (RFC 6764)"),
    ("_autodiscover._tcp", "https", 0, "Outlook finds its settings"),
    ("_avatars-sec._tcp", "https", 0, "Libravatar clients find this domain's avatars"),
    ("_avatars._tcp", "http", 0, "Libravatar clients find this domain's avatars (HTTP)"),
    ("_xmpps-client._tcp", "xmpps", 0, "chat programs find XMPP over TLS (XEP-0368)"),
    ("_xmpp-client._tcp", "xmpp", 5, "chat programs find XMPP (RFC 6120 §3.2.1)"),
    ("_xmpp-server._tcp", "", 0, "no XMPP federation here yet: other servers need not try"),
)


def client_records(domain: str, ports: dict[str, int]) -> list[Record]:
    host = f"mail.{domain}."
    records = []
    for name, listener, priority, purpose in SERVICE_RECORDS:
        port = ports.get(listener)
        value = f"{priority} 1 {port} {host}" if port else "0 0 0 ."
        records.append(Record(f"{name}.{domain}", "SRV", value, purpose))
        if port and name in ("_caldavs._tcp", "_carddavs._tcp"):
            records.append(Record(f"{name}.{domain}", "TXT", "path=/dav/", "where DAV starts"))
    if "https" in ports:
        for name in ("autoconfig", "autodiscover"):
            records.append(
                Record(f"{name}.{domain}", "CNAME", host, "mail programs fetch their settings")
            )
    return records


def _published(record: Record) -> list[str]:
    try:
        answer = dns.resolver.resolve(record.name, record.type)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    if record.type == "TXT":
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
    return [r.to_text() for r in answer]


def check(record: Record) -> str:
    """Whether a record is published: "ok", "missing", or what is published instead."""
    try:
        found = _published(record)
    except dns.exception.DNSException as error:
        return f"could not look it up: {error}"
    if record.type == "A":
        return "ok" if found else "missing"
    if record.type == "TXT":
        prefix = record.value.split(";")[0].split()[0]  # v=spf1, v=DKIM1, v=DMARC1
        found = [value for value in found if value.startswith(prefix)]
    if not found:
        return "missing"
    if record.name.startswith("_dmarc.") or any(_same(record, value) for value in found):
        return "ok"
    return "different: " + " | ".join(found)


def _same(record: Record, published: str) -> bool:
    if record.type in ("MX", "SRV", "CNAME"):
        return published.lower().rstrip(".") == record.value.lower().rstrip(".")
    if "DKIM1" in record.value:  # the key is what matters, not the order of the tags
        return record.value.split("p=")[1] == published.split("p=")[-1].replace(" ", "")
    return published == record.value
