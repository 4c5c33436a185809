"""The runner lease: whether its holder may still be running, and who holds it."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any, Final

LEASE_NAME: Final = "course run"


def lease_is_live(holder: Any, host: str, now: datetime, stale_after: timedelta) -> bool:
    """Whether the lease holder may still be running."""
    if now - holder.heartbeat_at >= stale_after:
        return False
    # On this host we can ask the kernel; elsewhere only the heartbeat tells.
    return holder.host != host or _pid_alive(holder.pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def lease_held_message(holder: Any, label: str) -> str:
    started = holder.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"another `course run` (pid {holder.pid} on host {holder.host}, started {started}) "
        f"holds the ledger {label}; stop it first"
    )
