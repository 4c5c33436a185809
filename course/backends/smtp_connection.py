"""One SMTP connection: opened, secured and logged in by smtplib, then driven raw.

smtplib does what it does well and securely: connecting, EHLO, STARTTLS, AUTH, QUIT. The
transactions are ours (see smtp_session.py): smtplib's sendmail() re-scans each message
with two regexes and waits for every reply in turn, which bench/send.py measured as the
bottleneck of the whole pipeline.
"""

from __future__ import annotations

import math
import re
import select
import smtplib
import socket
import ssl

from course.backends.base import OutgoingMessage
from course.backends.smtp_replies import MalformedReply, Reply, ReplyParser
from course.config import SmtpSettings
from course.errors import DeliveryError, RenderError
from course.message import ascii_domain

RECEIVE_SIZE = 65536
SEND_BUFFER = 1 << 19  # 512 KiB: the largest lesson is well under a third of it
# How long a server may keep quiet after we connect before we ask whether it is waiting
# for a TLS handshake instead (an implicit-TLS port, with security: starttls or none).
GREETING_WAIT = 3.0
# OpenSSL's reasons for a handshake that got something other than TLS back (a "220").
_NOT_TLS = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL"}
)
# A regex substitution, because bytes.replace() took three times as long on an 18 KB
# message with one line to stuff (an Outlook conditional's CSS, in every lesson).
_LINE_STARTING_WITH_DOT = re.compile(rb"\r\n\.")


class ServerRefused(DeliveryError):
    """The server would not take a (further) connection: a 421 or 5xx greeting, a refusal
    to connect, or a hang-up before it said hello. `reply` holds its words when it gave any.
    """

    def __init__(self, message: str, reply: str = "") -> None:
        super().__init__(message)
        self.reply = reply


class ConnectionLost(Exception):
    """The connection failed mid-transaction; `written` is how much of the last write went."""

    def __init__(self, detail: str, written: int = 0) -> None:
        super().__init__(detail)
        self.written = written


def tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    """Verify certificates and host names; trust the configured CA file when there is one."""
    cafile = str(settings.ca_file) if settings.ca_file else None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryError(f"delivery.smtp.ca_file: cannot load {cafile}: {exc}") from None


def dot_stuff(data: bytes) -> bytes:
    """RFC 5321 4.5.2 transparency, plus the terminating dot line."""
    stuffed = _LINE_STARTING_WITH_DOT.sub(b"\r\n..", data)
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


class SmtpConnection:
    """A verified, authenticated session, reused for many messages."""

    def __init__(self, settings: SmtpSettings, password: str, context: ssl.SSLContext) -> None:
        self.settings = settings
        self._password = password
        self._context = context
        self._smtp: smtplib.SMTP | None = None
        self._parser = ReplyParser()
        self.pipelining = False
        self.smtputf8 = False
        self.eightbit = False

    @property
    def server(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def open(self) -> None:
        """Connect, secure and log in; DeliveryError names the server on any failure."""
        try:
            self._smtp = self._connect()
            self._secure_and_login(self._smtp)
        except DeliveryError:
            self.close()  # a refusal we understood (no STARTTLS, login, HELO): say QUIT
            raise
        except smtplib.SMTPConnectError as exc:  # a greeting other than 220
            self.abort()
            reply = describe(exc)
            message = f"SMTP server {self.server} refused the connection: {reply}"
            raise ServerRefused(message, reply) from None
        except (ConnectionRefusedError, smtplib.SMTPServerDisconnected) as exc:
            self.abort()
            raise ServerRefused(f"SMTP server {self.server}: {describe(exc)}") from None
        except (OSError, smtplib.SMTPException) as exc:
            self.abort()
            raise DeliveryError(f"SMTP server {self.server}: {describe(exc)}") from None
        self._parser = ReplyParser()
        self.pipelining = self._smtp.has_extn("pipelining")
        self.smtputf8 = self._smtp.has_extn("smtputf8")
        self.eightbit = self._smtp.has_extn("8bitmime")

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        helo = s.helo or local_name()
        if s.security == "tls":
            try:
                secure = smtplib.SMTP_SSL(
                    s.host, s.port, local_hostname=helo, timeout=s.timeout, context=self._context
                )
            except ssl.SSLError as exc:
                if exc.reason not in _NOT_TLS:
                    raise
                raise DeliveryError(
                    f"SMTP server {self.server} answered in plain text, not TLS; if it offers "
                    "STARTTLS (usually port 587), set delivery.smtp.security: starttls"
                ) from None
            _no_delay(secure)
            return secure
        smtp = self._dial(helo, min(GREETING_WAIT, s.timeout))
        if smtp is None:
            if speaks_tls(s.host, s.port, min(GREETING_WAIT, s.timeout)):
                raise DeliveryError(
                    f"SMTP server {self.server} expects TLS from the first byte (implicit TLS, "
                    f"usually port 465) and security is {s.security!r}; set "
                    "delivery.smtp.security: tls"
                )
            # A slow greeting, not a TLS port: wait the full time.
            smtp = self._dial(helo, s.timeout) if s.timeout > GREETING_WAIT else None
            if smtp is None:
                waited = f"no greeting within {s.timeout:g} s"
                raise DeliveryError(f"SMTP server {self.server}: {waited}")
        smtp.timeout = s.timeout
        if smtp.sock is not None:
            smtp.sock.settimeout(s.timeout)
        _no_delay(smtp)
        return smtp

    def _dial(self, helo: str, timeout: float) -> smtplib.SMTP | None:
        """Connect and read the greeting; None if none came within `timeout`."""
        try:
            return smtplib.SMTP(
                self.settings.host, self.settings.port, local_hostname=helo, timeout=timeout
            )
        except smtplib.SMTPServerDisconnected as exc:
            # smtplib reports a timeout while waiting for the greeting as a disconnection.
            if isinstance(exc.__context__, TimeoutError):
                return None
            raise

    def _secure_and_login(self, smtp: smtplib.SMTP) -> None:
        self._greet(smtp)
        if self.settings.security == "starttls":
            if not smtp.has_extn("starttls"):
                raise DeliveryError(
                    f"SMTP server {self.server} does not offer STARTTLS; refusing to send in "
                    "plain text. Fix the server, or use security: tls for port 465"
                )
            smtp.starttls(context=self._context)
            self._greet(smtp)
        if self.settings.username:
            self._login(smtp)

    def _greet(self, smtp: smtplib.SMTP) -> None:
        """EHLO (HELO for a server that does not know it); a refusal names our HELO name."""
        code, text = smtp.ehlo()
        if code in (500, 502):
            code, text = smtp.helo()
        if code == 250:
            return
        reply = f"{code} {_text(text)}"
        if code == 421:
            raise ServerRefused(f"SMTP server {self.server} refused the connection: {reply}", reply)
        raise DeliveryError(
            f"SMTP server {self.server} refused our HELO name {smtp.local_hostname!r}: {reply}. "
            "Set delivery.smtp.helo to this host's fully-qualified name"
        )

    def _login(self, smtp: smtplib.SMTP) -> None:
        try:
            smtp.login(self.settings.username, self._password)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"SMTP server {self.server} refused the login for user "
                f"{self.settings.username!r}: {exc.smtp_code} {_text(exc.smtp_error)}. "
                f"Check the user and the password in ${self.settings.password_env}"
            ) from None

    def close(self) -> None:
        """Say QUIT and hang up; only between transactions."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()

    def abort(self) -> None:
        """Hang up without a word: mid-DATA, QUIT would be taken as part of the message."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    @property
    def is_open(self) -> bool:
        return self._smtp is not None and self._smtp.sock is not None

    def fileno(self) -> int:
        return self._socket().fileno()

    def has_buffered_replies(self) -> bool:
        """TLS may hold decrypted bytes that poll() cannot see."""
        sock = self._socket()
        return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0

    def said_something(self) -> bool:
        """Whether an idle connection has something to read: a 421 or a hang-up."""
        return self.wait_readable(0)

    def wait_readable(self, seconds: float) -> bool:
        """Whether there is something to read within `seconds` (False when not connected)."""
        try:
            if self.has_buffered_replies():
                return True
            poller = select.poll()
            poller.register(self._socket(), select.POLLIN)
        except ConnectionLost:
            return False
        return bool(poller.poll(max(0, math.ceil(seconds * 1000))))

    def envelope(self, message: OutgoingMessage) -> tuple[bytes, bytes, bytes] | str:
        """MAIL, RCPT and DATA for `message`, or why they cannot be sent."""
        try:
            sender, recipient = ascii_domain(message.sender), ascii_domain(message.recipient)
        except RenderError as exc:  # a domain that cannot be IDNA-encoded
            return str(exc)
        needs_utf8 = not (sender.isascii() and recipient.isascii())
        if needs_utf8 and not self.smtputf8:
            return (
                f"SMTP server {self.server} does not support "
                f"SMTPUTF8, needed for {message.recipient}"
            )
        options = " SMTPUTF8" if needs_utf8 else ""
        # RFC 6152: 8-bit content is announced (our lessons are quoted-printable, so this
        # is only a UTF-8 header of RFC 6532 or a message built elsewhere).
        if self.eightbit and not message.data.isascii():
            options += " BODY=8BITMIME"
        mail = f"MAIL FROM:<{sender}>{options}\r\n"
        return mail.encode(), f"RCPT TO:<{recipient}>\r\n".encode(), b"DATA\r\n"

    def write(self, data: bytes) -> None:
        """Send all of `data`; ConnectionLost says how much went if it could not."""
        sock, view, written = self._socket(), memoryview(data), 0
        try:
            while written < len(data):
                written += sock.send(view[written:])
        except OSError as exc:
            raise ConnectionLost(describe(exc), written) from None

    def receive(self) -> list[Reply]:
        """The replies complete so far; call when the socket is readable."""
        sock = self._socket()
        try:
            data = sock.recv(RECEIVE_SIZE)
            while data and isinstance(sock, ssl.SSLSocket) and sock.pending():
                data += sock.recv(RECEIVE_SIZE)
        except OSError as exc:
            raise ConnectionLost(describe(exc)) from None
        if not data:
            raise ConnectionLost("the server closed the connection")
        try:
            return self._parser.feed(data)
        except MalformedReply as exc:
            raise ConnectionLost(str(exc)) from None

    def _socket(self) -> socket.socket:
        if self._smtp is None or self._smtp.sock is None:
            raise ConnectionLost("not connected")
        return self._smtp.sock


def _text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return " ".join(text.split())


def _no_delay(smtp: smtplib.SMTP) -> None:
    if smtp.sock is None:
        return
    # Without it the last TLS record of a message waits for the server's delayed ACK
    # (Nagle), about 40 ms per message; every write here is a whole batch of commands.
    smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # Room for a whole message and the next envelope, so a write returns at once instead
    # of holding the one thread (and every other connection) until the server has read
    # it: Linux starts a socket with 16 KB and a lesson is 20 KB.
    smtp.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)


def speaks_tls(host: str, port: int, timeout: float = GREETING_WAIT) -> bool:
    """Whether the server at host:port answers a TLS handshake (an implicit-TLS port).

    Only a question, on its own connection, that is closed at once: nothing is sent over
    it, so the certificate is not what is being checked here.
    """
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            probe.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except ssl.SSLError as exc:
        return exc.reason not in _NOT_TLS  # TLS, even if the two sides did not agree
    except OSError:
        return False


def local_name() -> str:
    """This host's fully-qualified name for EHLO; never an address literal."""
    name = socket.getfqdn()
    return name if "." in name and not name.replace(".", "").isdigit() else "localhost.localdomain"


def describe(exc: BaseException) -> str:
    """A short, secret-free account of a connection failure, the server's words as text."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
