"""One IMAP session: its state (RFC 9051 §3), the commands of every state, and keeping the
client's view of its selected mailbox up to date.

Commands run one at a time, in the order received; a handler returns the text of its tagged OK
or raises ImapError. Handlers of larger commands live in their own modules (mailboxes.py,
messages.py, fetch.py); this module holds the session-level ones and the dispatch table.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from pcloud import __version__
from pcloud.directory import Principal
from pcloud.events import MailboxChanged, Overflowed
from pcloud.imap import fetch, mailboxes, messages
from pcloud.imap.errors import ImapError, bad, from_store
from pcloud.imap.search import compress_sequence
from pcloud.imap.selected import Selected, Update
from pcloud.imap.values import (
    Authenticate,
    Command,
    Enable,
    Id,
    Login,
    Select,
)
from pcloud.imap.wire import flag_list, mailbox, parenthesized, string
from pcloud.services import Services
from pcloud.store.mail import Account
from pcloud.store.mail_values import MailStoreError, Message

if TYPE_CHECKING:
    from pcloud.imap.server import Connection

log = logging.getLogger(__name__)
T = TypeVar("T")

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
IDLE_TIMEOUT = 30 * 60  # RFC 9051 §5.4: at least 30 minutes; clients renew IDLE every 29
ENABLABLE = {"CONDSTORE", "QRESYNC", "UTF8=ACCEPT", "IMAP4REV2"}


class Logout(Exception):
    """Ends the session after the current reply (LOGOUT, or a BYE the server sent)."""


class Session:
    def __init__(self, services: Services, connection: Connection) -> None:
        self.services = services
        self.connection = connection
        self.principal: Principal | None = None  # who signed in
        self.address: str | None = None  # whose mail (another user's when an admin impersonates)
        self.account: Account | None = None
        self.selected: Selected | None = None
        self.enabled: set[str] = set()
        self.dirty = False  # the selected mailbox changed since the last catch-up
        self.wake = asyncio.Event()  # set with dirty, for IDLE
        self._watcher: asyncio.Task[None] | None = None

    # -- state --------------------------------------------------------------------------------

    @property
    def utf8(self) -> bool:
        return bool(self.enabled & {"UTF8=ACCEPT", "IMAP4REV2"})

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def condstore(self) -> bool:
        return bool(self.enabled & {"CONDSTORE", "QRESYNC"})

    def require_account(self) -> Account:
        assert self.account is not None  # the dispatch table admits only signed-in sessions
        return self.account

    def require_selected(self) -> Selected:
        assert self.selected is not None
        return self.selected

    async def store_call(self, function: Callable[..., T], *args: object, **kw: object) -> T:
        """Run a blocking store method in a worker thread; its refusals become NO replies."""
        try:
            return await asyncio.to_thread(function, *args, **kw)
        except MailStoreError as error:
            raise from_store(error) from None

    # -- output -------------------------------------------------------------------------------

    def untagged(self, line: bytes) -> None:
        self.connection.write(b"* " + line + b"\r\n")

    def mailbox_name(self, name: str) -> bytes:
        return mailbox(name, utf8=self.utf8)

    def fetch_flags_line(self, number: int, message: Message) -> bytes:
        """An unsolicited FETCH telling a message's flags (with UID, and MODSEQ under
        CONDSTORE: RFC 7162 §3.2.4 wants the UID when QRESYNC is on; always sending it is
        harmless)."""
        items = [b"UID %d" % message.uid, b"FLAGS " + flag_list(message.flags)]
        if self.condstore:
            items.append(b"MODSEQ (%d)" % message.modseq)
        return b"%d FETCH " % number + parenthesized(items)

    # -- catching up with changes made elsewhere ----------------------------------------------

    async def catch_up(self, *, expunges_allowed: bool) -> None:
        """Tell the client what changed in its selected mailbox (RFC 9051 §5.2, §7.5.1)."""
        selected = self.selected
        if selected is None:
            return
        self.dirty = False
        self.wake.clear()
        account = self.require_account()
        try:
            changes = await asyncio.to_thread(account.changes, selected.name, selected.modseq)
        except MailStoreError:  # the mailbox was deleted (or renamed) by another session
            changes = None
        if changes is None:
            update = Update(uidvalidity_changed=True)
        else:
            update = selected.apply(changes, expunges_allowed=expunges_allowed)
        if update.uidvalidity_changed:
            self.untagged(b"BYE The selected mailbox was deleted or replaced")
            raise Logout
        self.report(update)

    def report(self, update: Update) -> None:
        if update.expunged:
            if "QRESYNC" in self.enabled:  # RFC 7162 §3.2.10
                uids = compress_sequence(sorted(uid for _, uid in update.expunged))
                self.untagged(b"VANISHED " + uids.encode())
            else:
                for number, _ in update.expunged:
                    self.untagged(b"%d EXPUNGE" % number)
        if update.exists is not None:
            self.untagged(b"%d EXISTS" % update.exists)
        for number, message in update.changed:
            self.untagged(self.fetch_flags_line(number, message))

    async def _watch(self, address: str) -> None:
        """Marks the session dirty when its selected mailbox changes (the store's events)."""
        subscription = self.services.events.subscribe(address)
        try:
            while True:
                event = await subscription.next()
                selected = self.selected
                if selected is None:
                    continue
                if isinstance(event, MailboxChanged):
                    if event.mailbox != selected.name:
                        continue
                    if event.new_name is not None:  # renamed: the UIDs stay valid
                        selected.name = event.new_name
                        continue
                elif not isinstance(event, Overflowed) and event.mailbox != selected.name:
                    continue
                self.dirty = True
                self.wake.set()
        finally:
            subscription.close()

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()

    # -- running commands ---------------------------------------------------------------------

    async def run(self, command: Command) -> None:
        """Run one command and write its replies (the tagged one last)."""
        entry = HANDLERS.get(command.name)
        if entry is None or (command.uid and command.name not in UID_COMMANDS):
            self.tagged(command.tag, bad(f"Unknown command {command.name}"))
            return
        states, handler = entry
        state = self.state
        if state not in states:
            self.tagged(command.tag, bad(f"{command.name} is not allowed {STATE_TEXT[state]}"))
            return
        started = time.monotonic()
        try:
            text = await handler(self, command)
            if self.selected is not None and (self.dirty or command.name in CHANGING):
                # RFC 9051 §7.5.1: no EXPUNGE during FETCH, STORE or SEARCH by number.
                await self.catch_up(
                    expunges_allowed=command.uid or command.name not in ("FETCH", "STORE", "SEARCH")
                )
        except ImapError as error:
            self.tagged(command.tag, error)
        else:
            self.connection.write(command.tag.encode() + b" OK " + text.encode() + b"\r\n")
        elapsed = time.monotonic() - started
        if elapsed > 1:
            log.info("imap slow command conn=%s command=%s elapsed=%.1fs",
                     self.connection.id, command.name, elapsed)  # fmt: skip

    def tagged(self, tag: str, error: ImapError) -> None:
        code = f"[{error.code}] " if error.code else ""
        self.connection.write(f"{tag} {error.status} {code}{error.text}\r\n".encode())

    @property
    def state(self) -> str:
        if self.account is None:
            return "not authenticated"
        return "selected" if self.selected is not None else "authenticated"

    def capabilities(self) -> str:
        """RFC 9051 §6.1.1: what this session may use now."""
        names = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "ID", "ENABLE", "IDLE", "SASL-IR"]
        if self.account is None:
            if self.connection.tls:
                names.append("AUTH=PLAIN")
            else:
                names += ["STARTTLS", "LOGINDISABLED"]
            return " ".join(names)
        limit = self.services.config.smtp.max_message_bytes
        names += [
            "NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE", "CHILDREN", "SPECIAL-USE",
            "CREATE-SPECIAL-USE", "CONDSTORE", "QRESYNC", "ESEARCH", "LIST-EXTENDED",
            "LIST-STATUS", "QUOTA", "QUOTA=RES-STORAGE", "BINARY",
            "STATUS=SIZE", "UTF8=ACCEPT", f"APPENDLIMIT={limit}",
        ]  # fmt: skip
        return " ".join(names)

    # -- signing in ---------------------------------------------------------------------------

    async def sign_in(self, login: str, password: str, authorize_as: str = "") -> None:
        """Through the directory (throttling and app passwords included). An administrator may
        act as another user by naming them as SASL authorization identity."""
        if not self.connection.tls:
            raise ImapError("Sign in only over TLS (STARTTLS first)", code="PRIVACYREQUIRED")
        directory = self.services.directory
        principal = await directory.authenticate(
            login, password, service="imap", remote=self.connection.remote
        )
        if principal is None:
            raise ImapError("Wrong user name or password", code="AUTHENTICATIONFAILED")
        address = principal.address
        if authorize_as and directory.login_name(authorize_as) != address:
            target = directory.login_name(authorize_as)
            if not principal.is_admin or await asyncio.to_thread(directory.user, target) is None:
                log.warning("imap impersonation refused login=%s as=%s conn=%s",
                            address, target, self.connection.id)  # fmt: skip
                raise ImapError("Not authorized to act as that user", code="AUTHORIZATIONFAILED")
            log.warning("imap impersonation login=%s as=%s conn=%s",
                        address, target, self.connection.id)  # fmt: skip
            address = target
        if not self.connection.admit_user(address):
            raise ImapError("Too many connections for this user", code="LIMIT")
        self.account = await self.store_call(self.services.mail.account, address)
        self.principal, self.address = principal, address
        self._watcher = asyncio.create_task(self._watch(address))


# -- handlers of the session-level commands ------------------------------------------------------


# RFC 9051 §6.1.1
async def capability(session: Session, command: Command) -> str:
    session.untagged(b"CAPABILITY " + session.capabilities().encode())
    return "CAPABILITY completed"


# RFC 9051 §6.1.2
async def noop(session: Session, command: Command) -> str:
    session.dirty = True  # NOOP (and CHECK) is how clients poll: always look for changes
    return f"{command.name} completed"


# RFC 9051 §6.1.3
async def logout(session: Session, command: Command) -> str:
    session.untagged(b"BYE Logging out")
    session.connection.write(command.tag.encode() + b" OK LOGOUT completed\r\n")
    raise Logout


# RFC 2971
async def id_command(session: Session, command: Command) -> str:
    assert isinstance(command.arguments, Id)
    if command.arguments.fields:
        log.info("imap client id conn=%s fields=%s", session.connection.id,
                 {k: v for k, v in list(command.arguments.fields.items())[:8]})  # fmt: skip
    fields = {"name": "pcloud", "version": __version__}
    session.untagged(b"ID " + parenthesized(string(x) for pair in fields.items() for x in pair))
    return "ID completed"


# RFC 5161 (and RFC 9051 §6.3.1)
async def enable(session: Session, command: Command) -> str:
    assert isinstance(command.arguments, Enable)
    wanted = [name for name in command.arguments.capabilities if name in ENABLABLE]
    if "QRESYNC" in wanted:
        wanted.append("CONDSTORE")  # RFC 7162 §3.2.3: QRESYNC implies CONDSTORE
    newly = [name for name in dict.fromkeys(wanted) if name not in session.enabled]
    session.enabled.update(newly)
    spelled = {"IMAP4REV2": "IMAP4rev2"}
    session.untagged(b"ENABLED" + b"".join(b" " + spelled.get(n, n).encode() for n in newly))
    return "ENABLE completed"


# RFC 9051 §6.2.3
async def login(session: Session, command: Command) -> str:
    assert isinstance(command.arguments, Login)
    await session.sign_in(command.arguments.user, command.arguments.password)
    return f"[CAPABILITY {session.capabilities()}] Signed in"


# RFC 9051 §6.2.2, RFC 4616 (PLAIN), RFC 4959 (SASL-IR)
async def authenticate(session: Session, command: Command) -> str:
    assert isinstance(command.arguments, Authenticate)
    if command.arguments.mechanism != "PLAIN" or not session.connection.tls:
        raise ImapError("Unsupported authentication mechanism (PLAIN, over TLS)")
    response = command.arguments.initial
    if response is None:
        session.connection.write(b"+ \r\n")
        await session.connection.flush()
        line = await session.connection.read_line()
        if line == b"*":
            raise bad("Authentication cancelled")
        try:
            response = base64.b64decode(line, validate=True)
        except binascii.Error:
            raise bad("Invalid base64") from None
    parts = response.split(b"\0")
    if len(parts) != 3:
        raise bad("Malformed PLAIN response")
    authzid, authcid, password = (part.decode("utf-8", "replace") for part in parts)
    await session.sign_in(authcid, password, authzid)
    return f"[CAPABILITY {session.capabilities()}] Signed in"


# RFC 9051 §6.3.2 (SELECT), §6.3.3 (EXAMINE); RFC 7162 §3.1.8, §3.2.5 (CONDSTORE, QRESYNC)
async def select(session: Session, command: Command) -> str:
    arguments = command.arguments
    assert isinstance(arguments, Select)
    if arguments.qresync is not None and "QRESYNC" not in session.enabled:
        raise bad("QRESYNC must be enabled first")
    if session.selected is not None:
        session.selected = None
        if "QRESYNC" in session.enabled:
            session.untagged(b"OK [CLOSED] Previous mailbox closed")
    if arguments.condstore:
        session.enabled.add("CONDSTORE")
    account = session.require_account()
    view = await session.store_call(account.view, arguments.mailbox)
    selected = Selected(view, read_only=arguments.read_only)
    flags = flag_list([*SYSTEM_FLAGS, *view.keywords])
    session.untagged(b"%d EXISTS" % len(view.uids))
    if not session.rev2:
        session.untagged(b"0 RECENT")
        if view.first_unseen_uid is not None:
            number = selected.number_of(view.first_unseen_uid)
            session.untagged(b"OK [UNSEEN %d] First unseen message" % (number or 0))
    session.untagged(b"OK [UIDVALIDITY %d] UIDs valid" % view.uidvalidity)
    session.untagged(b"OK [UIDNEXT %d] Predicted next UID" % view.uidnext)
    session.untagged(b"FLAGS " + flags)
    permanent = b"()" if arguments.read_only else flags[:-1] + b" \\*)"
    session.untagged(b"OK [PERMANENTFLAGS " + permanent + b"] Flags the client may change")
    session.untagged(b"OK [HIGHESTMODSEQ %d] Highest" % view.highestmodseq)
    session.selected = selected
    session.dirty = False
    qresync = arguments.qresync
    if qresync is not None and qresync.uidvalidity == view.uidvalidity:
        await fetch.resync(session, qresync)
    mode = "READ-ONLY" if arguments.read_only else "READ-WRITE"
    return f"[{mode}] {'EXAMINE' if arguments.read_only else 'SELECT'} completed"


# RFC 9051 §6.4.1 (CLOSE: expunge, then leave), RFC 3691 (UNSELECT: just leave)
async def close(session: Session, command: Command) -> str:
    selected = session.require_selected()
    session.selected = None
    if command.name == "CLOSE" and not selected.read_only:
        account = session.require_account()
        await session.store_call(account.expunge, selected.name)
    return f"{command.name} completed"


# RFC 9051 §6.3.13
async def idle(session: Session, command: Command) -> str:
    session.connection.write(b"+ idling\r\n")
    await session.connection.flush()
    done = asyncio.ensure_future(session.connection.read_line())
    try:
        while True:
            if session.dirty and session.selected is not None:
                await session.catch_up(expunges_allowed=True)
                await session.connection.flush()
            woken = asyncio.ensure_future(session.wake.wait())
            finished, _ = await asyncio.wait(
                {done, woken}, timeout=IDLE_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
            woken.cancel()
            if done in finished:
                break
            if not finished:
                session.untagged(b"BYE Idle for too long")
                raise Logout
    finally:
        done.cancel()
    if done.result().upper() != b"DONE":
        raise bad("Expected DONE")
    return "IDLE terminated"


Handler = Callable[[Session, Command], Awaitable[str]]
ANY = frozenset({"not authenticated", "authenticated", "selected"})
AUTHENTICATED = frozenset({"authenticated", "selected"})
SELECTED = frozenset({"selected"})
STATE_TEXT = {
    "not authenticated": "before signing in",
    "authenticated": "without a selected mailbox",
    "selected": "here",
}
HANDLERS: dict[str, tuple[frozenset[str], Handler]] = {
    "CAPABILITY": (ANY, capability),
    "NOOP": (ANY, noop),
    "LOGOUT": (ANY, logout),
    "ID": (ANY, id_command),
    "LOGIN": (frozenset({"not authenticated"}), login),
    "AUTHENTICATE": (frozenset({"not authenticated"}), authenticate),
    "ENABLE": (AUTHENTICATED, enable),
    "SELECT": (AUTHENTICATED, select),
    "EXAMINE": (AUTHENTICATED, select),
    "IDLE": (AUTHENTICATED, idle),
    "CREATE": (AUTHENTICATED, mailboxes.create),
    "DELETE": (AUTHENTICATED, mailboxes.delete),
    "RENAME": (AUTHENTICATED, mailboxes.rename),
    "SUBSCRIBE": (AUTHENTICATED, mailboxes.subscribe),
    "UNSUBSCRIBE": (AUTHENTICATED, mailboxes.subscribe),
    "LIST": (AUTHENTICATED, mailboxes.list_mailboxes),
    "LSUB": (AUTHENTICATED, mailboxes.list_mailboxes),
    "NAMESPACE": (AUTHENTICATED, mailboxes.namespace),
    "STATUS": (AUTHENTICATED, mailboxes.status),
    "APPEND": (AUTHENTICATED, mailboxes.append),
    "GETQUOTA": (AUTHENTICATED, mailboxes.get_quota),
    "GETQUOTAROOT": (AUTHENTICATED, mailboxes.get_quota_root),
    "SETQUOTA": (AUTHENTICATED, mailboxes.set_quota),
    "CHECK": (SELECTED, noop),
    "CLOSE": (SELECTED, close),
    "UNSELECT": (SELECTED, close),
    "EXPUNGE": (SELECTED, messages.expunge),
    "SEARCH": (SELECTED, messages.search),
    "FETCH": (SELECTED, fetch.fetch),
    "STORE": (SELECTED, messages.store),
    "COPY": (SELECTED, messages.copy),
    "MOVE": (SELECTED, messages.copy),
}
UID_COMMANDS = frozenset({"FETCH", "SEARCH", "STORE", "COPY", "MOVE", "EXPUNGE"})
# Commands after which the selected mailbox has surely changed (their own events may not have
# arrived yet): catch up even when no event was seen.
CHANGING = frozenset({"NOOP", "CHECK", "STORE", "COPY", "MOVE", "EXPUNGE", "APPEND"})
