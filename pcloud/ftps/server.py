"""The FTPS listener: pyftpdlib's threaded server with TLS required, logins checked by the
directory and files kept by the store (see `pcloud.ftps` for the notes)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import socket
import threading
import time
from typing import Any, ClassVar

from OpenSSL import SSL
from pyftpdlib.authorizers import AuthenticationFailed
from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import ThreadedFTPServer

from pcloud.config import FtpsSection, port_range
from pcloud.directory import Principal
from pcloud.ftps.filesystem import RestartRefused, StoreFS, UploadFile, reply
from pcloud.listeners import Stop
from pcloud.services import Services
from pcloud.store.files import FileStoreError, UserFiles
from pcloud.tls import Tls

log = logging.getLogger(__name__)

# pyftpdlib logs every command at INFO in a format of its own; pcloud logs its own lines. A
# handler on its logger also keeps it from setting up the process's logging by itself.
logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
logging.getLogger("pyftpdlib").addHandler(logging.NullHandler())

POLL_SECONDS = 0.25  # how soon the listener's and each connection's thread notice a stop
JOIN_SECONDS = 2.0  # connection threads still busy after this at stop are left to end alone
# pyftpdlib's permission letters: everything but SITE CHMOD ("M"); the store enforces the rest
# (read-only shares, the virtual Shared/ folders).
PERMISSIONS = "elradfmwT"

_ids = itertools.count(1)


class TlsContexts:
    """pyOpenSSL contexts from the certificate files `services.tls` serves, made again when those
    files change (a reload issued a new certificate)."""

    def __init__(self, tls: Tls) -> None:
        self.tls = tls
        self._lock = threading.Lock()
        self._made_from: tuple[tuple[str, int], ...] = ()
        self._context: SSL.Context | None = None

    def current(self) -> SSL.Context:
        files = (self.tls.certificate_file, self.tls.key_file)
        made_from = tuple((str(path), path.stat().st_mtime_ns) for path in files)
        with self._lock:
            if self._context is None or made_from != self._made_from:
                context = SSL.Context(SSL.TLS_SERVER_METHOD)
                context.set_min_proto_version(SSL.TLS1_2_VERSION)
                context.set_options(SSL.OP_NO_COMPRESSION)
                context.use_certificate_chain_file(str(files[0]))
                context.use_privatekey_file(str(files[1]))
                self._context, self._made_from = context, made_from
            return self._context


class DirectoryAuthorizer:
    """pyftpdlib's authorizer, over `directory.authenticate`. Every user has their own tree as
    home and may do everything in it."""

    def __init__(
        self,
        services: Services,
        loop: asyncio.AbstractEventLoop,
        pending: set[concurrent.futures.Future[Principal | None]],
    ) -> None:
        self.services = services
        self.loop = loop
        self.pending = pending  # cancelled at stop, so that no thread waits for a stopped loop

    def validate_authentication(self, username: str, password: str, handler: Session) -> None:
        coroutine = self.services.directory.authenticate(
            username, password, service="ftps", remote=handler.remote_ip
        )
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        self.pending.add(future)
        try:
            principal = future.result()
        except concurrent.futures.CancelledError:  # the listener is stopping
            principal = None
        finally:
            self.pending.discard(future)
        if principal is None:
            raise AuthenticationFailed("Authentication failed.")
        handler.principal = principal

    def get_home_dir(self, username: str) -> str:
        return "/"

    def get_msg_login(self, username: str) -> str:
        return "Logged in."

    def get_msg_quit(self, username: str) -> str:
        return "Goodbye."

    def get_perms(self, username: str) -> str:
        return PERMISSIONS

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        return perm in PERMISSIONS

    def impersonate_user(self, username: str, password: str) -> None:
        """Nothing to do: the store, not the process's Unix user, decides."""

    def terminate_impersonation(self, username: str) -> None:
        """Nothing to do."""


class DataChannel(TLS_DTPHandler):
    """One data connection. An upload is put in place when its data arrived whole, before the
    226 reply; a refused one gets the store's reply (552 for the quota) instead."""

    def send(self, data: bytes) -> int:
        # asynchat hands an empty buffer (an empty listing) to send(), and pyOpenSSL takes a
        # zero-length write during the handshake for the end of the connection: the client
        # then sees the data connection cut before its TLS handshake completed.
        if not data:
            return 0
        result: int = super().send(data)
        return result

    def close(self) -> None:
        upload = self.file_obj
        if isinstance(upload, UploadFile) and not upload.closed:
            # In stream mode the end of the connection is the end of the file: only TLS's
            # close_notify tells it from a connection cut short (RFC 8446 §6.1). Python's
            # ftplib and curl send it.
            ended_well = bool(self.socket.get_shutdown() & SSL.RECEIVED_SHUTDOWN)
            whole = self.receive and self.transfer_finished and ended_well
            failure = upload.finish(complete=whole)
            if failure:
                self._resp = (failure, log.debug)
            elif self.transfer_finished and not whole:
                reason = "the data connection ended without TLS close_notify"
                self._resp = (f"426 Transfer aborted: {reason}; nothing was stored.", log.debug)
        super().close()


class Session(TLS_FTPHandler):
    """One control connection: RFC 959 with RFC 4217's AUTH TLS, PBSZ and PROT, TLS required
    for the login and for every data connection."""

    # Set for each listener by `serve` (pyftpdlib configures handlers through class attributes).
    services: ClassVar[Services]
    tls_contexts: ClassVar[TlsContexts]
    _restart_position: int  # pyftpdlib's, set by REST

    tls_control_required = True
    tls_data_required = True
    dtp_handler = DataChannel
    abstracted_fs = StoreFS
    use_sendfile = False  # data goes through TLS
    auth_failed_timeout = 0  # the directory delays failed logins itself
    banner = "pcloud FTPS ready: AUTH TLS, then log in."
    # STOU would need names picked by the server; permissions are not kept.
    proto_cmds: ClassVar[dict[str, dict[str, Any]]] = {
        name: command
        for name, command in TLS_FTPHandler.proto_cmds.items()
        if name not in ("STOU", "SITE CHMOD")
    }

    def __init__(self, conn: socket.socket, server: Server, ioloop: Any = None) -> None:
        self.id = next(_ids)
        self.principal: Principal | None = None
        super().__init__(conn, server, ioloop)
        # RFC 3659 facts the store has (no inode numbers, no Unix owners)
        self._current_facts = ["type", "perm", "size", "modify"]
        self._available_facts = list(self._current_facts)

    @classmethod
    def get_ssl_context(cls) -> SSL.Context:
        return cls.tls_contexts.current()

    def decode(self, line: bytes) -> str:
        try:
            # Strictly: a path that is not UTF-8 gets 501, rather than U+FFFD in a name.
            return line.decode(self.encoding)
        except UnicodeDecodeError:
            # pyftpdlib answers 501 but keeps the line, which would spoil every later command.
            self._in_buffer: list[bytes] = []
            self._in_buffer_len = 0
            raise

    def user_files(self) -> UserFiles:
        assert self.principal is not None
        return self.services.files.user(self.principal.address)

    def on_connect(self) -> None:
        log.info("ftps connected conn=%s remote=%s", self.id, self.remote_ip)

    def on_disconnect(self) -> None:
        log.info("ftps closed conn=%s", self.id)

    def log_transfer(
        self,
        cmd: str,
        filename: str,
        receive: bool,
        completed: bool,
        elapsed: float,
        bytes: int,  # pyftpdlib passes it by this name
    ) -> None:
        log.info(
            "ftps transfer conn=%s command=%s path=%s bytes=%d seconds=%.3f completed=%s",
            self.id, cmd, filename, bytes, elapsed, completed,
        )  # fmt: skip

    # RFC 4217 §9: data connections are protected, and stay so (PROT C after PASV would
    # otherwise open the next one in clear).
    def ftp_PROT(self, line: str) -> None:
        if line.upper() == "C":
            self.respond("534 Data connections must be protected: use PROT P.")
        else:
            super().ftp_PROT(line)

    # RFC 959 §4.1.3 STOR and APPE (mode "a"), from REST's offset when one came first
    # (RFC 3659 §5): pyftpdlib's own opens a file object, where the store gives an upload.
    def ftp_STOR(self, file: str, mode: str = "w") -> str | None:
        offset, self._restart_position = self._restart_position, 0
        try:
            upload = self.fs.upload(file, append=mode == "a", offset=offset)
        except FileStoreError as error:
            self.respond(reply(error))
            return None
        except RestartRefused as error:
            self.respond(f"554 {error}.")
            return None
        command = "APPE" if mode == "a" else "STOR"
        if self.data_channel is not None:
            self.respond("125 Data connection already open. Transfer starting.")
            self.data_channel.file_obj = upload
            self.data_channel.enable_receiving(self._current_type, command)
        else:
            self.respond("150 File status okay. About to open data connection.")
            self._in_dtp_queue = (upload, command)
        return file


class Server(ThreadedFTPServer):
    """Accepts connections on its own thread and serves each on a thread of its own."""

    poll_timeout = POLL_SECONDS

    def __init__(self, sock: socket.socket, session: type[Session], settings: FtpsSection):
        # pyftpdlib keeps these on the class, shared by every server in the process: each
        # listener (each test's server) needs its own.
        self._exit = threading.Event()
        self._lock = threading.Lock()
        self._join_by = 0.0  # monotonic time after which stopping no longer waits
        super().__init__(sock, session, ioloop=IOLoop())
        self.max_cons = settings.max_connections
        self.max_cons_per_ip = settings.max_connections_per_address

    def _start_task(self, *args: Any, **kwargs: Any) -> threading.Thread:
        # A daemon: a thread still busy when the listener stops must not hold the process.
        return threading.Thread(*args, daemon=True, **kwargs)

    def _join_task(self, task: threading.Thread) -> None:
        # One deadline for all of them: a few busy threads must not add up their waits beyond
        # the supervisor's stop timeout.
        task.join(max(0.0, self._join_by - time.monotonic()))
        if task.is_alive():
            log.warning("ftps connection still busy at stop thread=%s", task.name)

    def run(self, stopping: threading.Event) -> None:
        try:
            while not stopping.is_set():
                self.serve_forever(timeout=POLL_SECONDS, blocking=False, handle_exit=False)
        finally:
            self._join_by = time.monotonic() + JOIN_SECONDS
            self.close_all()


async def serve(services: Services, sock: socket.socket) -> Stop:
    pending: set[concurrent.futures.Future[Principal | None]] = set()

    class ListenerSession(Session):
        authorizer = DirectoryAuthorizer(services, asyncio.get_running_loop(), pending)
        passive_ports = port_range(services.config.ftps.passive_ports)

    ListenerSession.services = services
    ListenerSession.tls_contexts = TlsContexts(services.tls)
    server = Server(sock, ListenerSession, services.config.ftps)
    stopping = threading.Event()
    thread = threading.Thread(target=server.run, args=(stopping,), name="pcloud-ftps")
    thread.start()

    async def stop() -> None:
        stopping.set()
        for future in list(pending):
            future.cancel()
        await asyncio.to_thread(thread.join)

    return stop
