"""Shared fixtures; tests cannot reach the network or the real home folder by accident."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_cluster import PostgresCluster

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = ("127.", "::1", "localhost")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A throwaway HOME, and sockets that may only connect to loopback."""
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family in (socket.AF_INET, socket.AF_INET6) and not str(host).startswith(LOOPBACK):
            raise OSError(f"test tried to reach {host}: only loopback is allowed")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the shipped project (config, templates, examples) in a temp folder."""
    for name in ("templates", "examples"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / "schedule.yaml", tmp_path / "schedule.yaml")
    return tmp_path


# --- ledgers on SQLite and PostgreSQL ---------------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One private PostgreSQL cluster for the whole session, on a free loopback port."""
    cluster = PostgresCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty ledger, once on SQLite (a file under the test's base dir, where the
    `project` and `tmp_path` of the test are) and once on PostgreSQL (a new database)."""
    if request.param == "sqlite":
        yield "sqlite:///state/course.db"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    name = cluster.create_database()
    try:
        yield cluster.url(name)
    finally:
        cluster.drop_database(name)
