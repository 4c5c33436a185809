"""Real aiosmtpd servers on 127.0.0.1 whose answers tests can script, plus test certificates."""

from __future__ import annotations

import asyncio
import datetime
import email
import hashlib
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from functools import cache
from pathlib import Path
from typing import Any, Literal, cast

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = [
    "SERVER_NAME",
    "Action",
    "CertChoice",
    "Certificates",
    "CommandRecord",
    "ConnectionRecord",
    "ReceivedMessage",
    "ScriptedHandler",
    "ServerCert",
    "ServerInfo",
    "Stage",
    "TlsMode",
    "certificates",
    "make_certificates",
    "make_server_cert",
    "max_in_window",
    "refusing_port",
    "silent_port",
    "smtp_server",
]

LOOPBACK = "127.0.0.1"
SERVER_NAME = "mx.example.org"
"""Name in the greeting and EHLO reply; set explicitly so aiosmtpd never calls getfqdn()."""
CERT_NAMES = ("127.0.0.1", "localhost")
WRONG_CERT_NAME = "mail.example.org"

TlsMode = Literal["none", "starttls", "implicit"]
CertChoice = Literal["good", "untrusted", "wrong_host", "expired"]
Stage = Literal["EHLO", "MAIL", "RCPT", "DATA"]
Action = Literal["drop_before_reply", "drop_mid_data", "stall", "reply_421_then_close"]

_STAGES: frozenset[str] = frozenset(("EHLO", "MAIL", "RCPT", "DATA"))
_ACTIONS: frozenset[str] = frozenset(
    ("drop_before_reply", "drop_mid_data", "stall", "reply_421_then_close")
)


# --- certificates -------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerCert:
    """A server certificate loaded into a server-side SSLContext, and the PEM of its CA."""

    context: ssl.SSLContext
    ca_file: Path
    hostnames: tuple[str, ...]


@dataclass(frozen=True)
class Certificates:
    """One trusted CA and the server certificates tests need, good and bad."""

    good: ServerCert
    """For 127.0.0.1 and localhost, signed by the trusted CA."""
    untrusted: ServerCert
    """For 127.0.0.1 and localhost, signed by a second CA that clients are never given."""
    wrong_host: ServerCert
    """Signed by the trusted CA, but only for mail.example.org."""
    expired: ServerCert
    """Signed by the trusted CA for the right names, but expired yesterday."""

    @property
    def ca_file(self) -> Path:
        """The PEM file of the CA that clients should trust."""
        return self.good.ca_file

    def pick(self, choice: CertChoice) -> ServerCert:
        """The certificate named by `choice`."""
        return cast(ServerCert, getattr(self, choice))


def _server_context(leaf: trustme.LeafCert) -> ssl.SSLContext:
    # PROTOCOL_TLS_SERVER leaves verify_mode=CERT_NONE, which aiosmtpd expects of a server.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    return context


def make_server_cert(
    directory: Path,
    *,
    ca: trustme.CA | None = None,
    hostnames: Sequence[str] = CERT_NAMES,
    not_after: datetime.datetime | None = None,
) -> ServerCert:
    """Issue a server cert (from `ca`, or a new CA) and write the CA PEM into `directory`."""
    ca = ca or trustme.CA()
    directory.mkdir(parents=True, exist_ok=True)
    # Named by content, so certs from the same CA share one file and CAs never collide.
    pem = ca.cert_pem.bytes()
    ca_file = directory / f"ca-{hashlib.sha256(pem).hexdigest()[:16]}.pem"
    ca_file.write_bytes(pem)
    if not_after is None:
        leaf = ca.issue_cert(*hostnames)
    else:
        leaf = ca.issue_cert(
            *hostnames, not_before=not_after - datetime.timedelta(days=30), not_after=not_after
        )
    return ServerCert(context=_server_context(leaf), ca_file=ca_file, hostnames=tuple(hostnames))


def make_certificates(directory: Path) -> Certificates:
    """A trusted CA with good, wrong-host and expired certs, and an untrusted CA's cert."""
    trusted = trustme.CA()
    yesterday = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    return Certificates(
        good=make_server_cert(directory, ca=trusted),
        untrusted=make_server_cert(directory / "untrusted", ca=trustme.CA()),
        wrong_host=make_server_cert(directory, ca=trusted, hostnames=(WRONG_CERT_NAME,)),
        expired=make_server_cert(directory, ca=trusted, not_after=yesterday),
    )


_cert_dir: tempfile.TemporaryDirectory[str] | None = None


@cache
def certificates() -> Certificates:
    """The process-wide test certificates (made once; their folder is removed at exit)."""
    global _cert_dir
    # Made once per process because key generation is the slowest part of a TLS test.
    _cert_dir = tempfile.TemporaryDirectory(prefix="dripcourse-certs-")
    return make_certificates(Path(_cert_dir.name))


# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandRecord:
    """One SMTP command the server dispatched."""

    connection: int
    verb: str
    at: float
    """time.monotonic() when the command was dispatched."""
    more_buffered: bool
    """More client input was already waiting when this command ran: it came pipelined."""


@dataclass
class ConnectionRecord:
    """One client connection (session) the server accepted."""

    number: int
    """1-based, in the order connections were opened."""
    peer: Any
    opened_at: float
    closed_at: float | None = None
    tls: bool = False
    """Implicit TLS, or STARTTLS completed."""
    authenticated_as: str | None = None
    commands: list[CommandRecord] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    """time.monotonic() at each final "." of DATA on this connection."""

    @property
    def is_open(self) -> bool:
        """Whether the server still sees this connection open."""
        return self.closed_at is None


@dataclass(frozen=True)
class ReceivedMessage:
    """A message whose DATA reached the final "." on the server."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    """DATA content byte for byte as sent, after dot-unstuffing, without the final "."."""
    mail_options: tuple[str, ...]
    rcpt_options: tuple[str, ...]
    smtp_utf8: bool
    connection: int
    arrived: float
    """time.monotonic() at the final "."."""
    reply: str | None
    """The reply sent after the "."; None when the connection was dropped instead."""
    queue_id: str | None
    authenticated_as: str | None
    tls: bool

    @property
    def accepted(self) -> bool:
        """Whether the server answered 2xx to the final "."."""
        return self.reply is not None and self.reply.startswith("2")

    def as_email(self) -> EmailMessage:
        """The content parsed with the modern email policy."""
        return email.message_from_bytes(self.content, policy=policy.default)


def max_in_window(times: Sequence[float], seconds: float = 1.0) -> int:
    """The most events that fall in any half-open window [t, t + seconds)."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


@dataclass
class _Rule:
    stage: Stage
    action: Action | None
    reply: str | None
    rcpt: str | None
    remaining: int | None
    seconds: float | None

    def matches(self, stage: Stage, rcpts: Sequence[str], *, mid_data: bool) -> bool:
        if self.stage != stage or (self.action == "drop_mid_data") != mid_data:
            return False
        if self.remaining is not None and self.remaining <= 0:
            return False
        return self.rcpt is None or self.rcpt in {r.lower() for r in rcpts}


async def _forever() -> None:
    # Parks a command handler after its connection was closed; connection_lost() cancels it.
    await asyncio.sleep(3600)


# --- the handler --------------------------------------------------------------------------


class ScriptedHandler:
    """An aiosmtpd handler that records everything and answers as the test scripts it."""

    def __init__(self) -> None:
        """Accept everything until told otherwise."""
        self.rcpt_reply: dict[str, str] = {}
        """Reply to RCPT TO for an address, on every try (e.g. "550 5.1.1 User unknown")."""
        self.data_reply: dict[str, str] = {}
        """Reply after the final "." of a transaction that includes this recipient."""
        self.default_data_reply = "250 2.0.0 OK queued as {queue_id}"
        self.reply_421 = "421 4.3.2 Service shutting down, closing channel"
        self.stall_seconds = 30.0
        """How long a "stall" waits; teardown or the client hanging up ends it sooner."""
        self.close_after: int | None = None
        """Close a connection silently right after its N-th DATA reply."""
        self.advertise_pipelining = True
        """aiosmtpd never advertises PIPELINING itself; this EHLO hook adds it."""
        self.errors: list[BaseException] = []
        """Exceptions aiosmtpd handed to handle_exception (e.g. failed STARTTLS handshakes)."""
        self.mid_data_drops = 0
        """Connections closed by "drop_mid_data" (their message is never recorded)."""
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._received: list[ReceivedMessage] = []
        self._connections: list[ConnectionRecord] = []
        self._open = 0
        self._peak = 0

    # --- scripting ---------------------------------------------------------------------

    def script(
        self,
        stage: Stage,
        *,
        action: Action | None = None,
        reply: str | None = None,
        rcpt: str | None = None,
        times: int | None = 1,
        seconds: float | None = None,
    ) -> None:
        """Do `action` or answer `reply` at `stage` (for `rcpt`, if given) `times` times."""
        if stage not in _STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        if (action is None) == (reply is None):
            raise ValueError("give exactly one of action= and reply=")
        if action is not None and action not in _ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        if action == "drop_mid_data" and stage != "DATA":
            raise ValueError("drop_mid_data only happens at the DATA stage")
        if reply is not None and not (reply[:3].isdigit() and reply[3:4] in (" ", "")):
            raise ValueError(f"not an SMTP reply: {reply!r}")
        if rcpt is not None and stage in ("EHLO", "MAIL"):
            raise ValueError(f"{stage} happens before any recipient is known")
        rule = _Rule(stage, action, reply, rcpt and rcpt.lower(), times, seconds)
        with self._lock:
            self._rules.append(rule)

    def fail_next_mail_with(self, reply: str, *, times: int = 1) -> None:
        """Answer the next `times` MAIL FROM commands with `reply` (e.g. 451 greylisting)."""
        self.script("MAIL", reply=reply, times=times)

    def drop_before_reply(self, *, rcpt: str | None = None, times: int | None = 1) -> None:
        """Take the whole message, then close without answering the "." (delivery in doubt)."""
        self.script("DATA", action="drop_before_reply", rcpt=rcpt, times=times)

    def drop_mid_data(self, *, rcpt: str | None = None, times: int | None = 1) -> None:
        """Answer DATA with 354, read the first content line, then close: no message."""
        self.script("DATA", action="drop_mid_data", rcpt=rcpt, times=times)

    def stall(
        self,
        stage: Stage,
        *,
        rcpt: str | None = None,
        times: int | None = 1,
        seconds: float | None = None,
    ) -> None:
        """Wait `seconds` (default stall_seconds) before answering at `stage`."""
        self.script(stage, action="stall", rcpt=rcpt, times=times, seconds=seconds)

    def reply_421_then_close(
        self, stage: Stage, *, rcpt: str | None = None, times: int | None = 1
    ) -> None:
        """Answer `reply_421` at `stage` and close the connection."""
        self.script(stage, action="reply_421_then_close", rcpt=rcpt, times=times)

    # --- what the server saw -----------------------------------------------------------

    @property
    def received(self) -> list[ReceivedMessage]:
        """Every message whose DATA reached the final ".", whatever the reply."""
        with self._lock:
            return list(self._received)

    @property
    def messages(self) -> list[ReceivedMessage]:
        """The messages the server accepted (2xx after the final ".")."""
        return [m for m in self.received if m.accepted]

    @property
    def connections(self) -> list[ConnectionRecord]:
        """Every client connection, in the order opened (the controller's probe excluded)."""
        with self._lock:
            return list(self._connections)

    @property
    def connection_count(self) -> int:
        """How many connections clients opened."""
        with self._lock:
            return len(self._connections)

    @property
    def open_connection_count(self) -> int:
        """How many connections the server sees open right now."""
        with self._lock:
            return self._open

    @property
    def peak_connections(self) -> int:
        """The most connections that were open at the same time."""
        with self._lock:
            return self._peak

    def commands(self, verb: str | None = None) -> list[CommandRecord]:
        """Dispatched commands over all connections, optionally only one verb, by time."""
        found = [c for conn in self.connections for c in list(conn.commands)]
        found.sort(key=lambda c: c.at)
        return [c for c in found if verb is None or c.verb == verb.upper()]

    def command_count(self, verb: str | None = None) -> int:
        """How many commands (of one verb, if given) the server dispatched."""
        return len(self.commands(verb))

    def arrival_times(self, connection: int | None = None) -> list[float]:
        """time.monotonic() of each final "." (on one connection, if given)."""
        return sorted(
            t
            for conn in self.connections
            if connection is None or conn.number == connection
            for t in list(conn.arrivals)
        )

    def max_in_window(self, seconds: float = 1.0) -> int:
        """The most messages whose final "." arrived within any `seconds` window."""
        return max_in_window(self.arrival_times(), seconds)

    def wait_until(
        self, condition: Callable[[], bool], *, timeout: float = 5.0, what: str = "condition"
    ) -> None:
        """Poll `condition` until true; the server thread may lag the client by a moment."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.005)

    # --- bookkeeping called by the server (loop thread) --------------------------------

    def _opened(self, peer: Any, *, tls: bool) -> ConnectionRecord:
        with self._lock:
            record = ConnectionRecord(
                number=len(self._connections) + 1, peer=peer, opened_at=time.monotonic(), tls=tls
            )
            self._connections.append(record)
            self._open += 1
            self._peak = max(self._peak, self._open)
            return record

    def _closed(self, record: ConnectionRecord) -> None:
        with self._lock:
            if record.closed_at is None:
                record.closed_at = time.monotonic()
                self._open -= 1

    def _take(self, stage: Stage, rcpts: Sequence[str], *, mid_data: bool = False) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(stage, rcpts, mid_data=mid_data):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule
        return None

    async def _apply(self, server: SMTP, rule: _Rule | None) -> str | None:
        """Carry out a rule; a reply to send, or None to go on as usual."""
        if rule is None:
            return None
        if rule.action == "stall":
            await asyncio.sleep(self.stall_seconds if rule.seconds is None else rule.seconds)
            return None
        if rule.action in ("drop_before_reply", "drop_mid_data"):
            await _drop(server)
        if rule.action == "reply_421_then_close":
            return await self._reply(server, self.reply_421)
        assert rule.reply is not None
        return await self._reply(server, rule.reply)

    async def _reply(self, server: SMTP, reply: str) -> str:
        # 421 means "closing the channel" (RFC 5321 3.8), so the server does exactly that.
        if reply.startswith("421"):
            await server.push(reply)
            await _close(server)
        return reply

    # --- aiosmtpd hooks (names starting with handle_ are found by aiosmtpd) -------------

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        """Advertise PIPELINING, hide AUTH where no users are set, or run the EHLO script."""
        reply = await self._apply(server, self._take("EHLO", ()))
        if reply is not None:
            return [reply]
        # With the 5-argument hook aiosmtpd leaves recording the greeting to the handler.
        session.host_name = hostname
        offers_auth = isinstance(server, _ScriptedSMTP) and server.offers_auth
        lines = [r for r in responses if offers_auth or not r.startswith("250-AUTH")]
        if self.advertise_pipelining:
            lines.insert(len(lines) - 1, "250-PIPELINING")
        return lines

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        """Accept the sender unless a MAIL script says otherwise."""
        reply = await self._apply(server, self._take("MAIL", ()))
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Accept the recipient unless scripted or listed in rcpt_reply."""
        reply = await self._apply(server, self._take("RCPT", (address,)))
        if reply is None:
            listed = _lookup(self.rcpt_reply, [address])
            reply = None if listed is None else await self._reply(server, listed)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Record the message, then answer as scripted, listed in data_reply, or 250."""
        arrived = time.monotonic()
        record = server.record if isinstance(server, _ScriptedSMTP) else None
        if record is not None:
            record.arrivals.append(arrived)
        rule = self._take("DATA", envelope.rcpt_tos)
        if rule is not None and rule.action == "stall":
            await self._apply(server, rule)
            rule = None
        with self._lock:
            queue_id = f"DC{len(self._received) + 1:06d}"
        if rule is not None and rule.action == "drop_before_reply":
            reply: str | None = None
        elif rule is not None:
            reply = self.reply_421 if rule.action == "reply_421_then_close" else rule.reply
        else:
            reply = _lookup(self.data_reply, envelope.rcpt_tos) or self.default_data_reply
        if reply is not None:
            reply = reply.replace("{queue_id}", queue_id)
        assert envelope.mail_from is not None
        message = ReceivedMessage(
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            content=envelope.original_content or b"",
            mail_options=tuple(envelope.mail_options),
            rcpt_options=tuple(envelope.rcpt_options),
            smtp_utf8=envelope.smtp_utf8,
            connection=record.number if record is not None else 0,
            arrived=arrived,
            reply=reply,
            queue_id=queue_id if reply is not None and reply.startswith("2") else None,
            authenticated_as=record.authenticated_as if record is not None else None,
            tls=record.tls if record is not None else False,
        )
        # Recorded before the reply goes out, so a client that saw 250 finds it here.
        with self._lock:
            self._received.append(message)
        if reply is None:
            await _drop(server)
            raise AssertionError("unreachable: _drop() never returns")
        reply = await self._reply(server, reply)
        if self.close_after is not None and record and len(record.arrivals) >= self.close_after:
            await server.push(reply)
            await _close(server)
        return reply

    async def handle_exception(self, error: Exception) -> str:
        """Keep server-side errors for the test instead of logging tracebacks."""
        with self._lock:
            self.errors.append(error)
        return f"451 4.3.0 Server error: {type(error).__name__}"


def _lookup(table: Mapping[str, str], addresses: Sequence[str]) -> str | None:
    lowered = {k.lower(): v for k, v in table.items()}
    for address in addresses:
        if address.lower() in lowered:
            return lowered[address.lower()]
    return None


async def _drop(server: SMTP) -> None:
    # abort(), not close(): nothing buffered is flushed, like a server that crashed.
    if server.transport is not None:
        server.transport.abort()  # type: ignore[attr-defined]
    await _forever()


async def _close(server: SMTP) -> None:
    # close() flushes what was already written (the 421 or the last reply) first.
    if server.transport is not None:
        server.transport.close()
    await _forever()


# --- the server ---------------------------------------------------------------------------


class _ScriptedSMTP(SMTP):
    """aiosmtpd's SMTP plus connection/command records, auth_required and a mid-DATA drop."""

    def __init__(
        self,
        handler: ScriptedHandler,
        *,
        probe: bool,
        implicit_tls: bool,
        offers_auth: bool,
        require_auth: bool,
        live: set[_ScriptedSMTP],
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.scripted = handler
        self.offers_auth = offers_auth
        self.record: ConnectionRecord | None = None
        self._probe = probe
        self._implicit_tls = implicit_tls
        self._require_auth = require_auth
        self._live = live
        # Wrapping the dispatch table sees every command, including STARTTLS and AUTH.
        self._smtp_methods = {
            verb: self._counted(verb, method) for verb, method in self._smtp_methods.items()
        }

    def _counted(
        self, verb: str, method: Callable[[str | None], Awaitable[None]]
    ) -> Callable[[str | None], Awaitable[None]]:
        async def run(arg: str | None) -> None:
            if self.record is not None:
                # StreamReader keeps unread input in _buffer: non-empty means pipelined.
                waiting = bool(getattr(self._reader, "_buffer", b""))
                self.record.commands.append(
                    CommandRecord(self.record.number, verb, time.monotonic(), waiting)
                )
            await method(arg)

        return run

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Open a record for a new connection; mark it TLS when STARTTLS completes."""
        after_starttls = self.transport is not None and self._original_transport is not None
        super().connection_made(transport)
        if after_starttls:
            if self.record is not None:
                self.record.tls = True
            return
        self._live.add(self)
        if not self._probe:
            self.record = self.scripted._opened(
                transport.get_extra_info("peername"), tls=self._implicit_tls
            )

    def connection_lost(self, error: Exception | None) -> None:
        """Close the record."""
        self._live.discard(self)
        if self.record is not None:
            self.scripted._closed(self.record)
        super().connection_lost(error)

    async def check_auth_needed(self, caller_method: str) -> bool:
        """Demand AUTH before MAIL when asked (done here to avoid aiosmtpd's warning)."""
        assert self.session is not None
        if self._require_auth and not self.session.authenticated:
            await self.push("530 5.7.0 Authentication required")
            return True
        return await super().check_auth_needed(caller_method)

    async def smtp_DATA(self, arg: str) -> None:
        """Run DATA, unless scripted to hang up while the content is arriving."""
        assert self.envelope is not None
        assert self.session is not None
        ready = bool(self.envelope.rcpt_tos and self.session.host_name and not arg)
        rule = self.scripted._take("DATA", self.envelope.rcpt_tos, mid_data=True) if ready else None
        if rule is None:
            await super().smtp_DATA(arg)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        # Wait for the first content line so the client is really mid-DATA when we hang up.
        await self._reader.readuntil(b"\r\n")
        with self.scripted._lock:
            self.scripted.mid_data_drops += 1
        await _drop(self)


def _authenticator(users: Mapping[str, str]) -> Callable[..., AuthResult]:
    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = data.login.decode("utf-8", "replace")
        if users.get(login) != data.password.decode("utf-8", "replace"):
            return AuthResult(success=False, handled=False)
        if isinstance(server, _ScriptedSMTP) and server.record is not None:
            server.record.authenticated_as = login
        return AuthResult(success=True, auth_data=login)

    return check


class _Controller(Controller):
    """A Controller that serves on a socket we bound ourselves and skips its probe in records."""

    def __init__(
        self,
        handler: ScriptedHandler,
        sock: socket.socket,
        *,
        implicit_tls: bool,
        offers_auth: bool,
        require_auth: bool,
        **kwargs: Any,
    ) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)
        self.sock = sock
        self.started = False
        self.live: set[_ScriptedSMTP] = set()
        self._implicit_tls = implicit_tls
        self._offers_auth = offers_auth
        self._require_auth = require_auth

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        # Serving on an already-bound socket: no window in which the port could be taken.
        return self.loop.create_server(self._factory_invoker, sock=self.sock, ssl=self.ssl_context)

    def factory(self) -> _ScriptedSMTP:
        """One SMTP protocol per connection; the one made before start() returns is the probe."""
        return _ScriptedSMTP(
            self.handler,
            probe=not self.started,
            implicit_tls=self._implicit_tls,
            offers_auth=self._offers_auth,
            require_auth=self._require_auth,
            live=self.live,
            **self.SMTP_kwargs,
        )

    def shutdown(self) -> None:
        """Hang up on every client, then stop the loop and join the thread."""
        if self._thread is not None and self.loop.is_running():

            async def hang_up() -> None:
                for protocol in list(self.live):
                    if protocol.transport is not None:
                        protocol.transport.abort()  # type: ignore[attr-defined]
                # Let connection_lost() callbacks run before the loop is stopped.
                for _ in range(3):
                    await asyncio.sleep(0)

            with suppress(Exception):
                asyncio.run_coroutine_threadsafe(hang_up(), self.loop).result(timeout=5)
        self.stop(no_assert=True)


@dataclass(frozen=True)
class ServerInfo:
    """Where a test server listens, what it presents, and its handler."""

    host: str
    port: int
    ca_file: Path
    """The CA clients should trust (the server may present a cert it did not sign)."""
    handler: ScriptedHandler
    tls: TlsMode
    users: Mapping[str, str]

    @property
    def address(self) -> tuple[str, int]:
        """(host, port)."""
        return (self.host, self.port)

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only the test CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))


@contextmanager
def smtp_server(
    handler: ScriptedHandler | None = None,
    *,
    tls: TlsMode = "none",
    auth: Mapping[str, str] | None = None,
    auth_required: bool = False,
    auth_require_tls: bool | None = None,
    require_starttls: bool = False,
    cert: CertChoice | ServerCert = "good",
    certs: Certificates | None = None,
    **smtp_kwargs: Any,
) -> Iterator[ServerInfo]:
    """Run an aiosmtpd server on 127.0.0.1 for the duration of the block; always stopped."""
    if tls not in ("none", "starttls", "implicit"):
        raise ValueError(f"unknown tls mode {tls!r}")
    if require_starttls and tls != "starttls":
        raise ValueError("require_starttls needs tls='starttls'")
    handler = handler if handler is not None else ScriptedHandler()
    certs = certs or certificates()
    server_cert = cert if isinstance(cert, ServerCert) else certs.pick(cert)
    # aiosmtpd only counts STARTTLS as encryption, so under implicit TLS (and with no TLS at
    # all) requiring TLS for AUTH would hide AUTH entirely.
    require_tls_for_auth = tls == "starttls" if auth_require_tls is None else auth_require_tls
    kwargs: dict[str, Any] = {
        "server_hostname": SERVER_NAME,
        "auth_require_tls": require_tls_for_auth,
        **smtp_kwargs,
    }
    if auth is not None:
        kwargs["authenticator"] = _authenticator(dict(auth))
    if tls == "starttls":
        kwargs["tls_context"] = server_cert.context
        kwargs["require_starttls"] = require_starttls
    elif tls == "implicit":
        kwargs["ssl_context"] = server_cert.context
    # IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on sockets that say they are TCP,
    # and without it each pipelined reply waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.bind((LOOPBACK, 0))
        controller = _Controller(
            handler,
            sock,
            implicit_tls=tls == "implicit",
            offers_auth=auth is not None,
            require_auth=auth_required,
            **kwargs,
        )
        try:
            controller.start()
            controller.started = True
            yield ServerInfo(
                host=LOOPBACK,
                port=controller.port,
                ca_file=certs.ca_file,
                handler=handler,
                tls=tls,
                users=dict(auth or {}),
            )
        finally:
            controller.shutdown()
    finally:
        sock.close()


@contextmanager
def refusing_port() -> Iterator[int]:
    """A 127.0.0.1 port where connecting is refused (bound, never listening, kept reserved)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        yield int(sock.getsockname()[1])


@contextmanager
def silent_port() -> Iterator[int]:
    """A 127.0.0.1 port that accepts TCP connections but never sends a greeting."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        # The kernel completes handshakes into the backlog; nobody ever calls accept().
        sock.listen(16)
        yield int(sock.getsockname()[1])
