"""A real Postfix on 127.0.0.1 for tests and benchmarks, started and stopped by the caller.

Debian's postfix package is installed unconfigured and never started (scripts/test-deps).
This gives it everything privately, in one temporary folder: a config directory for
`postfix -c DIR start`, queue and data directories, a self-signed CA and server
certificate (trustme), virtual mailboxes delivered into Maildirs (or discarded, for
benchmarks), and `maillog_file`, so the log can be read back and checked.

Each `Listener` is an smtpd service on its own free port with its own overrides (`-o` in
master.cf), so one Postfix serves a whole test module: the restriction under test, a
connection limit, implicit TLS, no STARTTLS... Anvil counts rates per service, so
listeners do not disturb each other.

    with postfix_server([Listener("plain"), Listener("tls", tls="implicit")]) as postfix:
        port = postfix.port("tls")
        ... send ...
        assert postfix.client_problems() == []

Postfix needs root to start (its master process binds and drops privileges itself);
`unavailable()` says why it cannot run here, if it cannot.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import trustme

__all__ = [
    "MAILBOX_DOMAINS",
    "Disconnect",
    "Listener",
    "Postfix",
    "postfix_server",
    "unavailable",
]

POSTFIX = Path("/usr/sbin/postfix")
LOOPBACK = "127.0.0.1"
HOSTNAME = "mx.example.test"
# Every address at example.com is a mailbox; at example.org only these are.
MAILBOX_DOMAINS = ("example.com", "example.org")
EXAMPLE_ORG_MAILBOXES = ("hello", "course", "postmaster")
# What the Postfix log says when a client misbehaves (on smtpd's lines).
_CLIENT_PROBLEM = re.compile(
    r"warning:|improper command pipelining|lost connection|too many errors|timeout after"
    r"|bare <LF>|non-SMTP command|Illegal address syntax|SSL_accept error|protocol error"
    r"|synchronization",
    re.IGNORECASE,
)
_DISCONNECT = re.compile(r"/smtpd\[\d+\]: disconnect from \S+ (?P<stats>.*)$")

TlsMode = Literal["starttls", "implicit", "none"]


def unavailable() -> str | None:
    """Why a private Postfix cannot run here, or None when it can."""
    if not POSTFIX.exists():
        return "Postfix is not installed (bash scripts/test-deps installs it)"
    if os.geteuid() != 0:
        return "Postfix's master process must be started as root"
    return None


@dataclass(frozen=True)
class Listener:
    """One smtpd service on its own port; `options` are main.cf overrides for it alone."""

    name: str
    options: Mapping[str, str] = field(default_factory=dict)
    tls: TlsMode = "starttls"
    """starttls: offered (not required); implicit: TLS from the first byte; none: plain."""

    def master_line(self, port: int) -> str:
        options = {"syslog_name": f"dripcourse/{self.name}", **self._tls_options(), **self.options}
        # "{ name = value }" (Postfix 3.0+) allows spaces and commas in a value.
        overrides = " ".join(f"-o {{ {k} = {v} }}" for k, v in options.items())
        return f"{LOOPBACK}:{port} inet n - n - - smtpd {overrides}"

    def _tls_options(self) -> dict[str, str]:
        if self.tls == "implicit":
            return {"smtpd_tls_wrappermode": "yes", "smtpd_tls_security_level": "encrypt"}
        if self.tls == "none":
            return {"smtpd_tls_security_level": "none"}
        return {}


@dataclass(frozen=True)
class Disconnect:
    """smtpd's summary line when a client leaves: each command's count (ok/total)."""

    listener: str
    line: str
    commands: Mapping[str, tuple[int, int]]

    @property
    def said_quit(self) -> bool:
        """Whether the client ended the session with QUIT (or the session never began:
        the server refused it at the greeting, or TLS was never agreed)."""
        return self.commands.get("quit", (0, 0))[0] >= 1 or self.commands["commands"] == (0, 0)

    @property
    def errors(self) -> int:
        """Commands the server refused in this session."""
        return sum(total - ok for name, (ok, total) in self.commands.items() if name != "commands")


class Postfix:
    """A private Postfix instance under `root`; `start()`, `stop()`, read its mail and log."""

    def __init__(
        self,
        root: Path,
        listeners: Sequence[Listener],
        *,
        deliver: Literal["maildir", "discard"] = "maildir",
        main: Mapping[str, str] | None = None,
    ) -> None:
        names = [listener.name for listener in listeners]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"listeners need distinct names, got {names}")
        self.root = root
        self.listeners = {listener.name: listener for listener in listeners}
        self.deliver = deliver
        self.extra_main = dict(main or {})
        self.ports: dict[str, int] = {}
        self.config = root / "conf"
        self.maildirs = root / "mail"
        self.maillog = root / "maillog"
        self.ca_file = root / "tls" / "ca.pem"
        self.running = False

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Write the private configuration and start the master; waits for every port."""
        reason = unavailable()
        if reason is not None:
            raise RuntimeError(reason)
        self._lay_out()
        self.ports = {name: _free_port() for name in self.listeners}
        self._write_config()
        self._postfix("start")
        self.running = True
        deadline = time.monotonic() + 20
        for name, port in self.ports.items():
            while not _listening(port):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"Postfix listener {name!r} never opened port {port}")
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the master (which stops every child) and wait until it has gone."""
        if not self.running:
            return
        self.running = False
        pid_file = self.root / "queue" / "pid" / "master.pid"
        master = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        self._postfix("stop", check=False)
        deadline = time.monotonic() + 10
        while master is not None and _alive(master) and time.monotonic() < deadline:
            time.sleep(0.05)

    def port(self, name: str) -> int:
        return self.ports[name]

    # --- what happened -------------------------------------------------------------------

    def log_size(self) -> int:
        """A mark in the log: pass it as `since` to see only what came after."""
        return self.maillog.stat().st_size if self.maillog.exists() else 0

    def log(self, since: int = 0) -> str:
        if not self.maillog.exists():
            return ""
        with self.maillog.open("rb") as log:
            log.seek(since)
            return log.read().decode("utf-8", "replace")

    def smtpd_lines(self, since: int = 0, listener: str | None = None) -> list[str]:
        """Log lines of the SMTP server processes (of one listener, if given)."""
        tag = f"dripcourse/{listener}/smtpd[" if listener else "/smtpd["
        return [line for line in self.log(since).splitlines() if tag in line]

    def client_problems(self, since: int = 0) -> list[str]:
        """smtpd's complaints about the client on 127.0.0.1: warnings, pipelining, lost
        connections, too many errors, bare newlines..."""
        return [
            line
            for line in self.smtpd_lines(since)
            if f"[{LOOPBACK}]" in line and _CLIENT_PROBLEM.search(line)
        ]

    def rejections(self, since: int = 0, listener: str | None = None) -> list[str]:
        """smtpd's "reject:" lines (a restriction said no)."""
        return [line for line in self.smtpd_lines(since, listener) if " reject: " in line]

    def disconnects(self, since: int = 0, listener: str | None = None) -> list[Disconnect]:
        found = []
        for line in self.smtpd_lines(since, listener):
            match = _DISCONNECT.search(line)
            if match is None:
                continue
            name = line.split("dripcourse/", 1)[1].split("/", 1)[0]
            commands = {}
            for item in match["stats"].split():
                command, _, counts = item.partition("=")
                ok, _, total = counts.partition("/")
                commands[command] = (int(ok), int(total or ok))
            found.append(Disconnect(name, line, commands))
        return found

    def mailbox(self, address: str) -> list[bytes]:
        """Every message the virtual agent delivered to `address`, oldest first, as stored
        (with the Delivered-To, Return-Path and Received lines it adds on top)."""
        domain = address.rpartition("@")[2]
        folder = self.maildirs / domain / "new"
        if not folder.is_dir():
            return []
        wanted = f"Delivered-To: {address}\n".encode()
        found = [path.read_bytes() for path in sorted(folder.iterdir(), key=_delivery_order)]
        return [message for message in found if wanted in message.split(b"\n\n", 1)[0] + b"\n"]

    def delivered_count(self) -> int:
        return sum(1 for _ in self.maildirs.glob("*/new/*"))

    def wait_for_delivery(self, count: int, timeout: float = 30.0) -> None:
        """Wait until `count` messages in all have reached the Maildirs."""
        deadline = time.monotonic() + timeout
        while self.delivered_count() < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.delivered_count()} of {count} messages delivered after {timeout} s"
                )
            time.sleep(0.05)

    def wait_for_mail(self, addresses: Sequence[str], timeout: float = 30.0) -> None:
        """Wait until every one of `addresses` has had a message delivered."""
        deadline = time.monotonic() + timeout
        while missing := [a for a in addresses if not self.mailbox(a)]:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing delivered to {missing[:5]} after {timeout} s")
            time.sleep(0.05)

    def clear_mailboxes(self) -> None:
        for message in self.maildirs.glob("*/new/*"):
            message.unlink()

    # --- configuration -------------------------------------------------------------------

    def _lay_out(self) -> None:
        postfix = pwd.getpwnam("postfix")
        nobody = pwd.getpwnam("nobody")
        # Postfix's children run as postfix, the virtual agent as nobody: both must reach in.
        self.root.chmod(0o755)
        for name in ("conf", "queue", "data", "mail", "tls"):
            (self.root / name).mkdir(exist_ok=True)
        os.chown(self.root / "data", postfix.pw_uid, postfix.pw_gid)
        os.chown(self.maildirs, nobody.pw_uid, nobody.pw_gid)
        ca = trustme.CA()
        leaf = ca.issue_cert(LOOPBACK, "localhost", HOSTNAME)
        ca.cert_pem.write_to_path(str(self.ca_file))
        chain = self.root / "tls" / "server.pem"
        leaf.private_key_and_cert_chain_pem.write_to_path(str(chain))
        chain.chmod(0o600)

    def _write_config(self) -> None:
        nobody = pwd.getpwnam("nobody")
        local_parts = "|".join(EXAMPLE_ORG_MAILBOXES)
        # One Maildir per domain (the virtual agent refuses $1 substitutions); who a
        # message was for is in the Delivered-To header it adds.
        (self.config / "mailboxes").write_text(
            "%^[^@]+@example\\.com$% example.com/\n"
            f"%^({local_parts})@example\\.org$% example.org/\n",
            encoding="utf-8",
        )
        main = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.root / "queue"),
            "data_directory": str(self.root / "data"),
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(self.root),
            "syslog_name": "dripcourse",
            "inet_interfaces": LOOPBACK,
            "inet_protocols": "ipv4",
            "myhostname": HOSTNAME,
            "mydomain": "example.test",
            "mydestination": "",
            "relay_domains": "",
            # TEST-NET: the test client on 127.0.0.1 is a stranger, not a trusted network,
            # so every restriction and limit applies to it.
            "mynetworks": "192.0.2.1/32",
            "smtpd_client_event_limit_exceptions": "",
            "smtpd_forbid_bare_newline": "reject",
            "smtpd_forbid_bare_newline_exclusions": "",
            "virtual_mailbox_domains": " ".join(MAILBOX_DOMAINS),
            "virtual_mailbox_base": str(self.maildirs),
            "virtual_mailbox_maps": f"regexp:{self.config / 'mailboxes'}",
            "virtual_uid_maps": f"static:{nobody.pw_uid}",
            "virtual_gid_maps": f"static:{nobody.pw_gid}",
            "virtual_transport": "virtual" if self.deliver == "maildir" else "discard",
            "smtpd_tls_chain_files": str(self.root / "tls" / "server.pem"),
            "smtpd_tls_security_level": "may",
            "smtpd_banner": "$myhostname ESMTP",
            "biff": "no",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            **self.extra_main,
        }
        (self.config / "main.cf").write_text(
            "".join(f"{key} = {value}\n" for key, value in main.items()), encoding="utf-8"
        )
        services = [self.listeners[name].master_line(port) for name, port in self.ports.items()]
        (self.config / "master.cf").write_text("\n".join([*services, _SERVICES]), "utf-8")

    def _postfix(self, command: str, *, check: bool = True) -> None:
        done = subprocess.run(
            [str(POSTFIX), "-c", str(self.config), command],
            capture_output=True,
            text=True,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"postfix {command} failed ({done.returncode}): {done.stderr.strip()}\n"
                + self.log()[-4000:]
            )

    def write_table(self, name: str, rows: Mapping[str, str]) -> Path:
        """A texthash: lookup table in the config directory (read at start, no postmap)."""
        path = self.config / name
        self.config.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k} {v}\n" for k, v in rows.items()), encoding="utf-8")
        return path


# Postfix's own services, unprivileged and unchrooted (the fourth and fifth columns).
_SERVICES = """
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port, asked of the kernel (/proc/net/tcp), so
    that no probe connection shows up in the Postfix log."""
    wanted = f"0100007F:{port:04X}"
    with open("/proc/net/tcp", encoding="ascii") as table:
        return any(
            fields[1] == wanted and fields[3] == "0A"  # 0A: LISTEN
            for fields in (line.split() for line in table)
            if len(fields) > 3
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _delivery_order(path: Path) -> tuple[int, str]:
    # Maildir names start with the delivery time in seconds.
    seconds = path.name.split(".", 1)[0]
    return (int(seconds) if seconds.isdigit() else 0, path.name)


@contextmanager
def postfix_server(
    listeners: Sequence[Listener],
    *,
    deliver: Literal["maildir", "discard"] = "maildir",
    main: Mapping[str, str] | None = None,
    tables: Mapping[str, Mapping[str, str]] | None = None,
) -> Iterator[Postfix]:
    """A started private Postfix in a temporary folder, stopped and removed afterwards.

    `tables` are texthash: lookup tables written into the config directory before the
    start, for listener options to name as texthash:$config_directory/NAME.
    """
    root = Path(tempfile.mkdtemp(prefix="dripcourse-postfix-"))
    postfix = Postfix(root, listeners, deliver=deliver, main=main)
    try:
        for name, rows in (tables or {}).items():
            postfix.write_table(name, rows)
        postfix.start()
        yield postfix
    finally:
        postfix.stop()
        shutil.rmtree(root, ignore_errors=True)
