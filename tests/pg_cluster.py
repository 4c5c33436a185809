"""A private PostgreSQL cluster for tests and benchmarks: initdb into a temp dir, 127.0.0.1 only.

Debian's PostgreSQL binaries refuse to run as root, so as root they run as the `postgres`
user (runuser); as anyone else, as that user. The cluster listens on a free loopback port,
with password (SCRAM) authentication for TCP, so tests can also see a wrong password refused.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

BIN = Path(os.environ.get("COURSE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "course"
_names = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_postgres(*command: str) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return list(command)


@dataclass
class PostgresCluster:
    """A running private cluster; `stop()` removes it."""

    root: Path
    port: int
    password: str

    @classmethod
    def start(cls, *, durable: bool = False) -> PostgresCluster:
        """initdb and start a cluster; `durable=False` turns fsync off (tests only)."""
        if not (BIN / "initdb").exists():
            raise RuntimeError(
                f"PostgreSQL binaries not found in {BIN}: run `bash scripts/test-deps` "
                "(Debian's postgresql package)"
            )
        root = Path(tempfile.mkdtemp(prefix="course-pg-"))
        password = secrets.token_hex(12)
        (root / "pwfile").write_text(password + "\n")
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
            shutil.chown(root / "pwfile", "postgres", "postgres")
        data = root / "data"
        subprocess.run(
            _as_postgres(
                str(BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                f"--pwfile={root / 'pwfile'}",
                "--auth-host=scram-sha-256",
                "--auth-local=peer",
                "-E",
                "UTF8",
                "--locale=C",
            ),
            check=True,
            capture_output=True,
        )
        port = _free_port()
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={port}",
            f"-c unix_socket_directories={root}",
            "-c max_connections=200",
        ]
        if not durable:
            options += ["-c fsync=off", "-c full_page_writes=off"]
        subprocess.run(
            _as_postgres(
                str(BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "server.log"),
                "-o",
                " ".join(options),
                "-w",
                "start",
            ),
            check=True,
            capture_output=True,
        )
        return cls(root, port, password)

    def url(self, database: str, *, password: str | None = None) -> str:
        """The ledger URL of `database` in this cluster."""
        secret = self.password if password is None else password
        return f"postgresql://{SUPERUSER}:{secret}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            password=self.password,
            dbname="postgres",
            autocommit=True,
        )

    def create_database(self, prefix: str = "ledger") -> str:
        """A new, empty database; returns its name."""
        name = f"{prefix}_{os.getpid()}_{next(_names)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def server_pids(self) -> list[int]:
        """The postmaster and every server process under it (for CPU accounting)."""
        postmaster = int((self.root / "data" / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        return [postmaster, *map(int, children)]

    def stop(self) -> None:
        subprocess.run(
            _as_postgres(
                str(BIN / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"
            ),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)
