"""A real Dovecot IMAP server on 127.0.0.1, with its own config, passwd-file, Maildir and CA.

`dovecot -F -c CONFIG` runs in the foreground as a child of the test process; nothing of the
system's Dovecot (its config, its service) is touched.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme
from support import free_port

USER = "bounces"
PASSWORD = "imap-test-password"


@dataclass(frozen=True)
class Dovecot:
    """A running server: where it listens, the CA that signed its certificate, its Maildir."""

    port: int
    ca_file: Path
    maildir: Path
    log: Path

    def client(self) -> imaplib.IMAP4_SSL:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        imap = imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=context, timeout=10)
        imap.login(USER, PASSWORD)
        return imap

    def deliver(self, data: bytes, folder: str = "INBOX") -> None:
        """Put a message in the folder, as an MTA delivering to this mailbox would."""
        imap = self.client()
        try:
            status, reply = imap.append(folder, None, None, data)
            assert status == "OK", reply
        finally:
            imap.logout()

    def folder(self, name: str) -> list[tuple[set[str], bytes]]:
        """(flags, message) for every message in a folder; [] if it does not exist."""
        imap = self.client()
        try:
            status, _ = imap.select(f'"{name}"', readonly=True)
            if status != "OK":
                return []
            _, data = imap.uid("SEARCH", "ALL")
            found = []
            for uid in (data[0] or b"").split():
                _, fetched = imap.uid("FETCH", uid.decode(), "(FLAGS BODY.PEEK[])")
                head, body = fetched[0]
                flags = set(imaplib.ParseFlags(head))
                found.append(({f.decode() for f in flags} - {"\\Recent"}, body))
            return found
        finally:
            imap.logout()

    def empty(self) -> None:
        """Remove every message and folder, so each test starts from an empty mailbox."""
        imap = self.client()
        try:
            _, folders = imap.list()
            for line in folders:
                assert isinstance(line, bytes)
                name = line.decode().rsplit(' "." ', 1)[-1].strip('"')
                if name != "INBOX":
                    imap.delete(f'"{name}"')
            _, count = imap.select("INBOX")
            if count[0] != b"0":
                imap.store("1:*", "+FLAGS.SILENT", r"(\Deleted)")
                imap.expunge()
        finally:
            imap.logout()


def available() -> bool:
    return shutil.which("dovecot") is not None and os.geteuid() == 0


@contextmanager
def running_dovecot() -> Iterator[Dovecot]:
    """Start Dovecot on a free loopback port; stop it and remove its files afterwards."""
    # Dovecot's mail processes run as the mail user, so its files live outside pytest's
    # private (0700) temp folders.
    root = Path(tempfile.mkdtemp(prefix="course-dovecot-"))
    root.chmod(0o755)
    process = None
    try:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        cert.private_key_and_cert_chain_pem.write_to_path(str(root / "server.pem"))
        (root / "server.pem").chmod(0o600)
        ca.cert_pem.write_to_path(str(root / "ca.pem"))
        nobody = pwd.getpwnam("nobody")
        home = root / "home"
        (home / "Maildir").mkdir(parents=True)
        for path in (home, home / "Maildir"):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        (root / "passwd").write_text(
            f"{USER}:{{PLAIN}}{PASSWORD}:{nobody.pw_uid}:{nobody.pw_gid}::{home}\n"
        )
        port = free_port()
        config = root / "dovecot.conf"
        config.write_text(_config(root, port))
        log = root / "dovecot.log"
        with log.open("ab") as errors:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(
                ["dovecot", "-F", "-c", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
        _wait_for_port(port, process, log)
        yield Dovecot(port, root / "ca.pem", home / "Maildir", log)
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(root, ignore_errors=True)


def _config(root: Path, port: int) -> str:
    return f"""
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = required
ssl_cert = <{root}/server.pem
ssl_key = <{root}/server.pem
disable_plaintext_auth = yes
auth_mechanisms = plain
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = {root}/passwd
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  # No login penalty after the tests' deliberately failed logins.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dovecot exited: {log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"dovecot did not listen on {port}: {log.read_text(errors='replace')}")
