"""One SMTP connection: opened, secured and logged in by smtplib, then driven raw.

smtplib does what it does well and securely: connecting, EHLO, STARTTLS, AUTH, QUIT. The
transactions are ours (see smtp_session.py): smtplib's sendmail() re-scans each message
with two regexes and waits for every reply in turn, which bench/send.py measured as the
bottleneck of the whole pipeline.
"""

from __future__ import annotations

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
# A regex substitution, because bytes.replace() took three times as long on an 18 KB
# message with one line to stuff (an Outlook conditional's CSS, in every lesson).
_LINE_STARTING_WITH_DOT = re.compile(rb"\r\n\.")


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

    @property
    def server(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def open(self) -> None:
        """Connect, secure and log in; DeliveryError names the server on any failure."""
        try:
            self._smtp = self._connect()
            self._secure_and_login(self._smtp)
        except DeliveryError:
            self.abort()
            raise
        except (OSError, smtplib.SMTPException) as exc:
            self.abort()
            raise DeliveryError(f"SMTP server {self.server}: {describe(exc)}") from None
        self._parser = ReplyParser()
        self.pipelining = self._smtp.has_extn("pipelining")
        self.smtputf8 = self._smtp.has_extn("smtputf8")

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        helo = s.helo or None
        if s.security == "tls":
            return smtplib.SMTP_SSL(
                s.host, s.port, local_hostname=helo, timeout=s.timeout, context=self._context
            )
        return smtplib.SMTP(s.host, s.port, local_hostname=helo, timeout=s.timeout)

    def _secure_and_login(self, smtp: smtplib.SMTP) -> None:
        smtp.ehlo()
        if self.settings.security == "starttls":
            if not smtp.has_extn("starttls"):
                raise DeliveryError(
                    f"SMTP server {self.server} does not offer STARTTLS; refusing to send in "
                    "plain text. Fix the server, or use security: tls for port 465"
                )
            smtp.starttls(context=self._context)
            smtp.ehlo()
        if self.settings.username:
            self._login(smtp)

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
        poller = select.poll()
        poller.register(self._socket(), select.POLLIN)
        return bool(poller.poll(0))

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
        mail = f"MAIL FROM:<{sender}>{' SMTPUTF8' if needs_utf8 else ''}\r\n"
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


def describe(exc: BaseException) -> str:
    """A short, secret-free account of a connection failure."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
