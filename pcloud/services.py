"""The Services object every protocol is handed, and the first start of a data folder.

Data folder layout (each part is described by the module that owns it):
    pcloud.toml          config (pcloud.config), written at first start with commented defaults
    directory.sqlite3    users, domains, aliases, credentials (pcloud.directory)
    tls/                 local CA and server certificate (pcloud.tls)
    mail/<address>/      Maildir++ folders and index.sqlite3 of each account (pcloud.store.mail)
    queue/               mail waiting for delivery to other servers (pcloud.store.queue)
    dkim/                DKIM signing keys, one per domain (pcloud.store.dkim_keys)
    avatars/             pictures per address and per domain (pcloud.store.avatars)
    files/               users' files, their versions, shares and links (pcloud.store.files)
    xmpp/                chat rosters and messages kept for offline users (pcloud.store.xmpp)
    srs.secret           the key of rewritten senders of forwarded mail (pcloud.store.secret)
    run/                 lock and endpoints of the running server (pcloud.supervisor)
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path

from pcloud import config
from pcloud.config import Config, ConfigError
from pcloud.directory import DIRECTORY_FILE, Directory
from pcloud.directory.passwords import generate_password
from pcloud.dns_records import configure_resolver
from pcloud.events import Events
from pcloud.store import secret
from pcloud.store.avatars import AvatarStore
from pcloud.store.dkim_keys import DkimKeys
from pcloud.store.durable import write_atomically
from pcloud.store.files import FileStore
from pcloud.store.mail import MailStore
from pcloud.store.queue import QueueStore
from pcloud.store.xmpp import XmppStore
from pcloud.tls import Tls

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    service: str
    listener: str
    host: str
    port: int
    tls: str


@dataclass(frozen=True)
class Services:
    data_dir: Path
    config: Config
    directory: Directory
    tls: Tls
    events: Events
    mail: MailStore
    queue: QueueStore
    dkim: DkimKeys
    srs_secret: str  # signs rewritten senders of forwarded mail (SRS)
    avatars: AvatarStore
    files: FileStore
    xmpp: XmppStore
    # Filled by the supervisor once every listener is bound and before any serves, so that a
    # service can name the others' real ports (redirects, client autoconfiguration).
    endpoints: list[Endpoint] = field(default_factory=list)

    def endpoint(self, listener: str) -> Endpoint | None:
        return next((e for e in self.endpoints if e.listener == listener), None)

    def reload(self) -> None:
        """SIGHUP: issue and load the certificate again (new domains, renewal, a new file),
        make DKIM keys for new domains, and look at the queue (`pcloud queue retry`). The
        directory needs nothing: it is read on every request."""
        domains = self.directory.domains()
        self.tls.reload(domains)
        for domain in domains:
            self.dkim.ensure(domain)
        if self.queue.on_enqueue:
            self.queue.on_enqueue()

    def close(self) -> None:
        self.queue.close()
        self.mail.close()
        self.files.close()
        self.xmpp.close()
        self.directory.close()


@dataclass(frozen=True)
class FirstStart:
    admin_address: str
    admin_password: str


def default_domain() -> str:
    name = socket.gethostname().lower()
    return name if config.is_domain_name(name) else "localhost"


def load_config(data_dir: Path) -> Config:
    path = data_dir / config.CONFIG_FILE
    if not path.exists():
        raise ConfigError(f"no pcloud data folder at {data_dir} (create one with `pcloud init`)")
    return config.load(path)


def open_directory(data_dir: Path, settings: Config) -> Directory:
    return Directory(
        data_dir / DIRECTORY_FILE,
        default_domain=settings.server.domain,
        login_policy=settings.login,
    )


# The stores of a data folder, opened the same way by the server and by the command line.


def mail_store(data_dir: Path, directory: Directory, events: Events) -> MailStore:
    return MailStore(data_dir / "mail", directory.user, events)


def queue_store(data_dir: Path) -> QueueStore:
    return QueueStore(data_dir / "queue")


def dkim_keys(data_dir: Path) -> DkimKeys:
    return DkimKeys(data_dir / "dkim")


def avatar_store(data_dir: Path, directory: Directory) -> AvatarStore:
    return AvatarStore(data_dir / "avatars", directory)


def file_store(data_dir: Path, directory: Directory, settings: Config) -> FileStore:
    return FileStore(data_dir / "files", directory.user, settings.files)


def xmpp_store(data_dir: Path) -> XmppStore:
    return XmppStore(data_dir / "xmpp")


def open_services(
    data_dir: Path, *, domain: str | None = None
) -> tuple[Services, FirstStart | None]:
    """Open (creating on first start) the config, directory and certificates of a data folder.

    On first start the domain is `domain` or the host name, and an administrator is created
    whose generated password is returned, to be shown once.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    config_path = data_dir / config.CONFIG_FILE
    if not config_path.exists():
        text = config.render_default_file(domain or default_domain())
        write_atomically(config_path, text.encode(), mode=0o600)
        log.info("config written file=%s", config_path)
    settings = config.load(config_path)
    configure_resolver(settings.smtp)
    if domain and domain != settings.server.domain:
        raise ConfigError(
            f"{config_path}: server.domain: is {settings.server.domain!r}; --domain {domain} "
            "applies only to a new data folder (change the file instead)"
        )
    directory = open_directory(data_dir, settings)
    first_start = None
    if not directory.domains():
        directory.add_domain(settings.server.domain)
    if not directory.users():
        first_start = FirstStart(f"admin@{settings.server.domain}", generate_password())
        directory.add_user(first_start.admin_address, first_start.admin_password, is_admin=True)
    tls = Tls(data_dir / "tls", settings.tls, directory.domains())
    events = Events()
    mail = mail_store(data_dir, directory, events)
    queue = queue_store(data_dir)
    dkim = dkim_keys(data_dir)
    for hosted in directory.domains():
        dkim.ensure(hosted)
    srs_secret = secret.load_or_create(data_dir / "srs.secret")
    avatars = avatar_store(data_dir, directory)
    files = file_store(data_dir, directory, settings)
    xmpp = xmpp_store(data_dir)
    services = Services(
        data_dir, settings, directory, tls, events, mail, queue, dkim, srs_secret, avatars, files,
        xmpp,
    )  # fmt: skip
    return services, first_start
