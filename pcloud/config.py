"""pcloud.toml: one schema for every option, its type, default and help text.

The schema is the dataclasses below: each field is an option, and its metadata holds the help
text and the kind of value it takes. From that one schema come the validation of pcloud.toml
(an unknown key, a wrong type or a bad value is one line naming the file, the key and what is
expected), the commented file written at first start, and the reference in the README.

Listener sections (`[listeners.NAME]`) come from `pcloud.listeners.LISTENERS`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import textwrap
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pcloud.listeners import LISTENERS, PORT_MAPS, ListenerSpec

CONFIG_FILE = "pcloud.toml"


class ConfigError(Exception):
    """A problem in pcloud.toml, already phrased as the one line to show."""


# -- kinds of values --------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """What an option accepts; `parse` raises ValueError when the value does not fit."""

    expected: str

    def parse(self, value: object) -> object:
        raise NotImplementedError


class Boolean(Kind):
    def parse(self, value: object) -> object:
        if not isinstance(value, bool):
            raise ValueError
        return value


@dataclass(frozen=True)
class Integer(Kind):
    low: int = 0
    high: int = 2**63

    def parse(self, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError
        if not self.low <= value <= self.high:
            raise ValueError
        return value


@dataclass(frozen=True)
class Choice(Kind):
    values: tuple[str, ...] = ()

    def parse(self, value: object) -> object:
        if value not in self.values:
            raise ValueError
        return value


class Text(Kind):
    def parse(self, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError
        return value


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def is_domain_name(name: str) -> bool:
    """A host or domain name in lower case: dot-separated labels of letters, digits, hyphens."""
    return len(name) <= 253 and all(_LABEL.match(label) for label in name.split("."))


class DomainName(Kind):
    def parse(self, value: object) -> object:
        if not isinstance(value, str) or not is_domain_name(value):
            raise ValueError
        return value


class BindAddress(Kind):
    def parse(self, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError
        if value:
            ipaddress.ip_address(value)  # raises ValueError
        return value


class HostPort(Kind):
    """ "" or "host" or "host:port" (an IPv6 address in brackets: "[::1]:53")."""

    def parse(self, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError
        if value:
            split_host_port(value, 0)
        return value


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if not text.endswith("]") else (text, "", "")
    if not host or "]" in port:
        host, port = text, ""
    host = host.strip("[]")
    number = int(port) if port else default_port
    if not host or not 0 <= number <= 65535 or (":" in host and not text.startswith("[")):
        raise ValueError
    return host, number


class PortRange(Kind):
    """ "" or "low-high"."""

    def parse(self, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError
        port_range(value)
        return value


def port_range(text: str) -> range | None:
    """ "low-high" as the range of those ports (1024 to 65535), "" as None; else ValueError."""
    if not text:
        return None
    match = re.fullmatch(r"(\d{1,5})-(\d{1,5})", text)
    if not match or not 1024 <= int(match[1]) <= int(match[2]) <= 65535:
        raise ValueError
    return range(int(match[1]), int(match[2]) + 1)


class Port(Kind):
    def parse(self, value: object) -> object:
        if value == "auto":
            return None
        return Integer(self.expected, 0, 65535).parse(value)


def option(default: Any, kind: Kind, help: str) -> Any:
    return field(default=default, metadata={"kind": kind, "help": help})


# -- the schema -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSection:
    """Who this server is and where it listens."""

    domain: str = option(
        "localhost",
        DomainName("a domain name such as example.org"),
        "The main domain: users are name@domain. First start takes it from --domain or the "
        "machine's host name. More domains are added with `pcloud domain add`.",
    )
    address: str = option(
        "",
        BindAddress('an IP address, or "" for all addresses'),
        'Address every listener binds to unless its own section says otherwise; "" means all.',
    )
    ports: str = option(
        "auto",
        Choice('one of "auto", "standard", "high", "ephemeral"', ("auto", *PORT_MAPS)),
        'Which port map the listeners use. "auto": the standard ports when the process may bind '
        'them (root or CAP_NET_BIND_SERVICE), else "high" ones; "ephemeral": ports the kernel '
        "chooses. `pcloud serve --ports` overrides it.",
    )

    @property
    def mail_host(self) -> str:
        """The name this server gives itself in SMTP (banner, Received, bounces)."""
        return f"mail.{self.domain}"


@dataclass(frozen=True)
class TlsSection:
    """Certificates. By default pcloud runs its own certificate authority (tls/ca.pem)."""

    certificate: str = option(
        "",
        Text("a file path"),
        "PEM certificate chain issued elsewhere (by an ACME client, say); empty: pcloud's own "
        "CA issues one for every hosted domain, its mail., autoconfig. and autodiscover. names, "
        "and localhost.",
    )
    private_key: str = option(
        "", Text("a file path"), "PEM private key that goes with `certificate`."
    )


@dataclass(frozen=True)
class LoginSection:
    """Throttling of failed logins, for every protocol alike."""

    delay_after_failures: int = option(
        3,
        Integer("an integer from 0 to 1000", 0, 1000),
        "Failed logins (from one address, or for one login) answered at once; each further "
        "failure is answered after a delay that doubles every time.",
    )
    first_delay_ms: int = option(
        500, Integer("an integer from 0 to 60000", 0, 60000), "The first such delay."
    )
    max_delay_ms: int = option(
        15000, Integer("an integer from 0 to 600000", 0, 600000), "The longest delay."
    )
    address_lockout_failures: int = option(
        10,
        Integer("an integer from 1 to 100000", 1, 100000),
        "Failed logins in a row from one address after which that address is locked out.",
    )
    login_lockout_failures: int = option(
        30,
        Integer("an integer from 1 to 100000", 1, 100000),
        "Failed logins in a row for one login, from anywhere, after which it is locked out. "
        "Higher than the address limit, so that a stranger cannot easily lock a user out.",
    )
    lockout_minutes: int = option(
        15,
        Integer("an integer from 1 to 10080", 1, 10080),
        "How long a lock-out lasts; failures older than this are forgotten.",
    )


@dataclass(frozen=True)
class SmtpSection:
    """Mail transfer (port 25) and submission (587, 465) limits."""

    max_message_bytes: int = option(
        25 * 1024 * 1024,
        Integer("an integer from 1024 to 1073741824", 1024, 1024**3),
        "The largest message accepted (advertised as SIZE); larger ones get 552.",
    )
    max_recipients: int = option(
        100,
        Integer("an integer from 1 to 10000", 1, 10000),
        "Recipients per message; further RCPT commands get 452.",
    )
    max_connections_per_address: int = option(
        20,
        Integer("an integer from 1 to 10000", 1, 10000),
        "Simultaneous connections from one address (IPv6: one /64); more get 421.",
    )
    queue_lifetime_hours: int = option(
        120,
        Integer("an integer from 1 to 720", 1, 720),
        "How long mail to other servers is retried before it is returned to its sender.",
    )
    smarthost: str = option(
        "",
        HostPort('"host:port", or "" to deliver directly'),
        "Send all outgoing mail through this server (a provider's, for connections whose "
        "port 25 is blocked), with a verified certificate: STARTTLS, or TLS from the start "
        "on port 465. The default port is 587.",
    )
    smarthost_login: str = option("", Text("a string"), "Login at the smarthost, if it asks.")
    smarthost_password: str = option(
        "", Text("a string"), "Password at the smarthost (this file is readable by pcloud only)."
    )
    outbound_port: int = option(
        25,
        Integer("an integer from 1 to 65535", 1, 65535),
        "Port of other servers' MX; only tests change it.",
    )
    dns_server: str = option(
        "",
        HostPort('"ip" or "ip:port", or "" for the system\'s resolver'),
        "DNS server for every lookup: MX and addresses of other servers, SPF, DKIM, DMARC.",
    )


@dataclass(frozen=True)
class ImapSection:
    """Mail access by users' mail programs (993, and 143 with STARTTLS)."""

    max_connections_per_address: int = option(
        50,
        Integer("an integer from 1 to 10000", 1, 10000),
        "Simultaneous connections from one address (IPv6: one /64); more are refused with BYE.",
    )
    max_connections_per_user: int = option(
        30,
        Integer("an integer from 1 to 10000", 1, 10000),
        "Simultaneous signed-in connections of one user (phones and desktops each keep a few).",
    )


@dataclass(frozen=True)
class XmppSection:
    """Chat (XMPP: 5222 with STARTTLS, 5223 with TLS from the start)."""

    max_stanza_bytes: int = option(
        256 * 1024,
        Integer("an integer from 10240 to 16777216", 10240, 16 * 1024 * 1024),
        "The largest stanza a client may send; a larger one ends its stream (policy-violation).",
    )
    rate_bytes_per_second: int = option(
        100_000,
        Integer("an integer from 0 to 1073741824", 0, 1024**3),
        "What one connection may send on average (bursts of two seconds' worth pass); beyond, "
        "the server reads from it more slowly. 0: no limit.",
    )
    max_resources_per_user: int = option(
        20,
        Integer("an integer from 1 to 1000", 1, 1000),
        "Simultaneous sessions (phones, desktops) of one user; more are refused at bind.",
    )
    max_offline_messages: int = option(
        1000,
        Integer("an integer from 0 to 1000000", 0, 1_000_000),
        "Messages kept for a user who is offline; further ones are refused to their sender.",
    )
    max_connections_per_address: int = option(
        50,
        Integer("an integer from 1 to 10000", 1, 10000),
        "Simultaneous connections from one address (IPv6: one /64); more get a stream error.",
    )
    login_seconds: int = option(
        60,
        Integer("an integer from 5 to 3600", 5, 3600),
        "Time a new connection has to sign in and bind a resource before it is closed.",
    )
    ping_after_seconds: int = option(
        300,
        Integer("an integer from 0 to 86400", 0, 86400),
        "Silence of a signed-in client after which the server pings it; one that still sends "
        "nothing within a minute more is taken as gone (a phone that lost its network). 0: never.",
    )
    roster_from_contacts: bool = option(
        True,
        Boolean("true or false"),
        "Put the contacts of a user's address books that have a chat address (or an address of "
        "a user here) in their chat roster when they sign in, each once: one they remove stays "
        "removed. No presence is asked for on their behalf.",
    )
    upload_max_bytes: int = option(
        100 * 1024 * 1024,
        Integer("an integer from 0 to 1099511627776", 0, 1 << 40),
        "The largest file a chat program may send (XEP-0363 HTTP upload, into the sender's "
        'files under "Chat uploads"; their quota applies too). 0: no uploads.',
    )
    stun_server: str = option(
        "",
        HostPort('"host" or "host:port" (3478 if not given), or "" for none'),
        "A STUN server offered to chat programs for calls (XEP-0215).",
    )
    turn_server: str = option(
        "",
        HostPort('"host" or "host:port" (3478 if not given), or "" for none'),
        "A TURN relay offered to chat programs for calls (XEP-0215), over UDP and TCP; it is "
        "offered only with `turn_secret`.",
    )
    turn_secret: str = option(
        "",
        Text("text"),
        "The TURN relay's shared secret (coturn's `use-auth-secret` and `static-auth-secret`): "
        "each user gets credentials valid for a day (TURN REST API).",
    )


@dataclass(frozen=True)
class LogSection:
    """What the server writes to its log (standard error)."""

    level: str = option(
        "info",
        Choice('one of "debug", "info", "warning", "error"', ("debug", "info", "warning", "error")),
        "The least severe events that are logged.",
    )


@dataclass(frozen=True)
class FilesSection:
    """Users' files (WebDAV, SFTP): earlier versions and how long they are kept."""

    keep_all_minutes: int = option(
        60,
        Integer("an integer from 0 to 10080", 0, 10080),
        "Every earlier version of a file (overwritten, deleted or moved away) is kept at least "
        "this long.",
    )
    hourly_for_hours: int = option(
        24,
        Integer("an integer from 0 to 8760", 0, 8760),
        "Then the state of the files at each full hour is kept for this many hours.",
    )
    daily_for_days: int = option(
        30,
        Integer("an integer from 0 to 3650", 0, 3650),
        "Then the state at each midnight (UTC) is kept for this many days.",
    )
    weekly_for_weeks: int = option(
        52,
        Integer("an integer from 0 to 5200", 0, 5200),
        "Then the state at each Monday midnight (UTC) is kept for this many weeks.",
    )
    versions_count_against_quota: bool = option(
        True,
        Boolean("true or false"),
        "Whether the space that earlier versions take counts against the user's quota (each "
        "content once: versions are stored deduplicated).",
    )


@dataclass(frozen=True)
class FtpsSection:
    """Users' files over FTPS, when its listener is enabled (`[listeners.ftps]`)."""

    passive_ports: str = option(
        "50000-50099",
        PortRange('"low-high", ports from 1024 to 65535, or "" to let the kernel choose'),
        "Ports on which data connections (listings, transfers) are accepted, at the address "
        "the client reached; a firewall in front must let them through. Should all be busy, "
        "the kernel chooses one and a warning is logged.",
    )
    max_connections: int = option(
        100,
        Integer("an integer from 1 to 10000", 1, 10000),
        "Simultaneous connections in all (each is served by a thread of its own); more get 421.",
    )
    max_connections_per_address: int = option(
        10,
        Integer("an integer from 1 to 10000", 1, 10000),
        "Simultaneous connections from one address; more get 421.",
    )


@dataclass(frozen=True)
class ListenerSection:
    """One listener; the defaults differ per listener (see `pcloud.listeners`)."""

    enabled: bool = option(True, Boolean("true or false"), "Whether this listener is opened.")
    address: str = option(
        "",
        BindAddress('an IP address, or "" for server.address'),
        'Address to bind; "" means server.address.',
    )
    port: int | None = option(
        None,
        Port('an integer from 0 to 65535, or "auto"'),
        '"auto" takes the port from the port map (server.ports); 0 lets the kernel choose.',
    )
    tls: str = option("", Text(""), "How the listener uses TLS.")


def _listener_kind(spec: ListenerSpec, name: str) -> tuple[Kind, Any]:
    """The tls option's choices and default, and enabled's default, depend on the listener."""
    if name == "tls":
        quoted = ", ".join(f'"{mode}"' for mode in spec.tls_modes)
        return Choice(f"one of {quoted}", spec.tls_modes), spec.tls_modes[0]
    schema_field = _fields(ListenerSection)[name]
    if name == "enabled":
        return schema_field.metadata["kind"], spec.enabled
    return schema_field.metadata["kind"], schema_field.default


@dataclass(frozen=True)
class Config:
    path: Path
    server: ServerSection = ServerSection()
    tls: TlsSection = TlsSection()
    login: LoginSection = LoginSection()
    smtp: SmtpSection = SmtpSection()
    imap: ImapSection = ImapSection()
    xmpp: XmppSection = XmppSection()
    log: LogSection = LogSection()
    files: FilesSection = FilesSection()
    ftps: FtpsSection = FtpsSection()
    listeners: Mapping[str, ListenerSection] = field(default_factory=dict)


SECTIONS: dict[str, type[Any]] = {
    "server": ServerSection,
    "tls": TlsSection,
    "login": LoginSection,
    "smtp": SmtpSection,
    "imap": ImapSection,
    "xmpp": XmppSection,
    "log": LogSection,
    "files": FilesSection,
    "ftps": FtpsSection,
}


def _fields(section: type[Any]) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(section)}


# -- loading ----------------------------------------------------------------------------------


def load(path: Path) -> Config:
    """Read and validate pcloud.toml; raises ConfigError with one line naming key and problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return from_mapping(path, raw)


def from_mapping(path: Path, raw: Mapping[str, Any]) -> Config:
    sections: dict[str, Any] = {}
    listeners: dict[str, ListenerSection] = {}
    specs = {spec.name: spec for spec in LISTENERS}
    for name, body in raw.items():
        if name == "listeners":
            body = _table(path, name, body)
            for listener_name, listener_body in body.items():
                key = f"listeners.{listener_name}"
                if listener_name not in specs:
                    known = ", ".join(specs)
                    raise ConfigError(f"{path}: {key}: unknown listener (known: {known})")
                values = _section_values(
                    path, key, _table(path, key, listener_body), specs[listener_name]
                )
                listeners[listener_name] = ListenerSection(**values)
        elif name in SECTIONS:
            values = _section_values(path, name, _table(path, name, body), None)
            sections[name] = SECTIONS[name](**values)
        else:
            known = ", ".join([*SECTIONS, "listeners"])
            raise ConfigError(f"{path}: {name}: unknown section (known: {known})")
    for spec in LISTENERS:
        if spec.name not in listeners:
            listeners[spec.name] = ListenerSection(**_section_values(path, "", {}, spec))
    return Config(path=path, listeners=listeners, **sections)


def _table(path: Path, key: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {key}: expected a table ([{key}])")
    return value


def _section_values(
    path: Path, section: str, body: Mapping[str, Any], spec: ListenerSpec | None
) -> dict[str, Any]:
    schema = _fields(ListenerSection if spec else SECTIONS[section])
    for key in body:
        if key not in schema:
            known = ", ".join(schema)
            raise ConfigError(f"{path}: {section}.{key}: unknown key (known: {known})")
    values: dict[str, Any] = {}
    for name, schema_field in schema.items():
        kind, default = (
            _listener_kind(spec, name)
            if spec
            else (schema_field.metadata["kind"], schema_field.default)
        )
        if name not in body:
            values[name] = default
            continue
        try:
            values[name] = kind.parse(body[name])
        except ValueError:
            got = json.dumps(body[name], default=str)
            raise ConfigError(
                f"{path}: {section}.{name}: expected {kind.expected}, got {got}"
            ) from None
    return values


# -- writing the commented file and the reference ---------------------------------------------


@dataclass(frozen=True)
class OptionDoc:
    section: str
    name: str
    kind: Kind
    default: Any
    help: str


def _documented_sections() -> Iterator[tuple[str, str, list[OptionDoc]]]:
    for section, cls in SECTIONS.items():
        docs = [
            OptionDoc(section, f.name, f.metadata["kind"], f.default, f.metadata["help"])
            for f in dataclasses.fields(cls)
        ]
        yield section, cls.__doc__ or "", docs
    for spec in LISTENERS:
        section = f"listeners.{spec.name}"
        docs = []
        for f in dataclasses.fields(ListenerSection):
            kind, default = _listener_kind(spec, f.name)
            docs.append(OptionDoc(section, f.name, kind, default, f.metadata["help"]))
        yield section, f"The {spec.name} listener ({spec.description}).", docs


def toml_value(value: Any) -> str:
    """A TOML literal for the simple values the schema uses."""
    if value is None:
        return '"auto"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    # JSON string escapes are all valid TOML basic-string escapes.
    return json.dumps(value)


def render_default_file(domain: str) -> str:
    """The pcloud.toml written at first start: every option, commented, with its default."""
    lines = [
        "# pcloud configuration. Every option is shown with its default value, commented out;",
        "# remove the # in front of an option to change it. `pcloud serve` checks this file at",
        "# start and names any key it does not accept.",
    ]
    for section, description, docs in _documented_sections():
        lines += ["", f"[{section}]", *_comment(description)]
        for doc in docs:
            lines += _comment(f"{doc.help} Expects {doc.kind.expected}.")
            if section == "server" and doc.name == "domain":
                lines.append(f"domain = {toml_value(domain)}")
            else:
                lines.append(f"# {doc.name} = {toml_value(doc.default)}")
    return "\n".join(lines) + "\n"


def _comment(text: str) -> list[str]:
    return ["# " + line for line in textwrap.wrap(text, 96)]


def render_reference() -> str:
    """The configuration reference in Markdown, as the README carries it."""
    out: list[str] = []
    for section, description, docs in _documented_sections():
        out += [f"`[{section}]` {description}", "", "| key | default | accepts | meaning |"]
        out.append("|---|---|---|---|")
        for doc in docs:
            default = toml_value(doc.default).replace("|", "\\|")
            expected = doc.kind.expected.replace("|", "\\|")
            out.append(f"| `{doc.name}` | `{default}` | {expected} | {doc.help} |")
        out.append("")
    return "\n".join(out)
