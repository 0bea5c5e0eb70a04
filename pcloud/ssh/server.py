"""The SSH listener: host keys, public-key authentication against the directory, and sessions
handed to the shell (see `pcloud.ssh` for the notes)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from concurrent.futures import ThreadPoolExecutor

import asyncssh

from pcloud.directory import DirectoryError, Principal
from pcloud.listeners import Stop
from pcloud.services import Services
from pcloud.ssh.sftp import FileServer
from pcloud.ssh.shell import Shell
from pcloud.store.ssh_host_keys import SshHostKeys

log = logging.getLogger(__name__)

LOGIN_TIMEOUT = 60  # seconds to sign in (OpenSSH's LoginGraceTime is 120)
COMMAND_THREADS = 4  # commands block (SQLite, password hashing, waiting for typed input)

_ids = itertools.count(1)


class _Connection(asyncssh.SSHServer):
    """One client connection: who it is, once signed in."""

    def __init__(self, services: Services, open_connections: set[_Connection]) -> None:
        self.services = services
        self.open_connections = open_connections
        self.id = next(_ids)
        self.remote = ""
        self.login = ""  # the address asked for, once the client names it
        self.locked_out = False
        self.fingerprint = ""  # of the last key the directory accepted
        self.principal: Principal | None = None
        self.connection: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.connection = conn
        peer = conn.get_extra_info("peername")
        self.remote = str(peer[0]) if peer else ""
        self.open_connections.add(self)
        log.info("ssh connected conn=%s remote=%s", self.id, self.remote)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open_connections.discard(self)
        if self.login and self.principal is None:
            log.warning(
                "login failed login=%s service=ssh remote=%s conn=%s",
                self.login, self.remote, self.id,
            )  # fmt: skip
        log.info("ssh closed conn=%s reason=%s", self.id, exc or "done")

    # RFC 4252 §5: the client names the user, then tries its keys.
    def begin_auth(self, username: str) -> bool:
        directory = self.services.directory
        self.login = directory.login_name(username)
        self.locked_out = directory.throttle.locked(self.remote, self.login)
        if self.locked_out:
            log.warning(
                "login refused: locked out login=%s service=ssh remote=%s conn=%s",
                self.login, self.remote, self.id,
            )  # fmt: skip
        else:
            directory.throttle.attempt(self.remote, self.login)
        return True  # authentication is required

    def public_key_auth_supported(self) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        """Called when a key is offered and again with its signature (which asyncssh checks)."""
        if self.locked_out:
            return False
        fingerprint = key.get_fingerprint("sha256")
        try:
            known = self.services.directory.ssh_keys(self.login)
        except DirectoryError:  # not an address at all
            return False
        if not any(k.fingerprint == fingerprint for k in known):
            return False
        self.fingerprint = fingerprint
        return True

    def auth_completed(self) -> None:
        directory = self.services.directory
        user = directory.user(self.login)
        assert self.connection is not None
        if user is None:  # deleted while signing in
            self.connection.close()
            return
        directory.throttle.succeeded(self.remote, self.login)
        self.principal = Principal(user.address, user.is_admin, f"ssh-key:{self.fingerprint}")
        log.info(
            "login login=%s service=ssh remote=%s credential=%s conn=%s",
            user.address, self.remote, self.principal.credential, self.id,
        )  # fmt: skip


async def serve(services: Services, sock: socket.socket) -> Stop:
    # asyncssh logs every packet exchange at INFO; pcloud logs one line per event itself.
    asyncssh.set_log_level(logging.WARNING)
    host_keys = SshHostKeys(services.data_dir / "ssh").ensure()
    for key in host_keys:
        log.info("ssh host key type=%s fingerprint=%s", key.algorithm, key.fingerprint)
    open_connections: set[_Connection] = set()
    executor = ThreadPoolExecutor(COMMAND_THREADS, thread_name_prefix="pcloud-ssh")
    loop = asyncio.get_running_loop()

    async def session(process: asyncssh.SSHServerProcess[str]) -> None:
        connection = process.get_extra_info("connection").get_owner()
        assert isinstance(connection, _Connection) and connection.principal is not None
        shell = Shell(services, process, connection.principal, executor, loop)
        status = await shell.run()
        process.exit(status)

    acceptor = await asyncssh.listen(
        sock=sock,
        server_factory=lambda: _Connection(services, open_connections),
        server_host_keys=[asyncssh.import_private_key(key.private_openssh) for key in host_keys],
        process_factory=session,
        sftp_factory=lambda channel: FileServer(services, channel),
        allow_scp=True,  # `scp -O`, served by asyncssh over FileServer
        public_key_auth=True,
        password_auth=False,
        kbdint_auth=False,
        gss_host=None,  # no Kerberos
        agent_forwarding=False,
        x11_forwarding=False,
        login_timeout=LOGIN_TIMEOUT,
    )

    async def stop() -> None:
        acceptor.close()
        for connection in list(open_connections):
            if connection.connection is not None:
                connection.connection.close()
        await acceptor.wait_closed()
        executor.shutdown(wait=False, cancel_futures=True)

    return stop
