"""A large list is read by a helper process while the sync writes (course/list_helper.py).

The helper must be invisible but for the time it saves: the same rows, report lines and
errors as reading in-process, nothing left running when the sync ends early, and a clear
error (with nothing synced) when the helper dies.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from course.config import load_settings
from course.errors import SubscribersError
from course.ledger import Departure, SubscriberRecord, SubscriberStatus
from course.list_rows import HELPER_MIN_BYTES, list_rows
from course.runtime import Runtime
from course.subscribers import Field, ImportOptions, StatusColumn

EXPORTS = Path(__file__).parent / "data" / "exports"
IN_PROCESS = 1 << 62  # no file is this large: always read here
HELPER = 0  # every file is this large: always read by the helper
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def helper_pids() -> set[int]:
    """Running children of this process that are list helpers."""
    pids = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"course.list_helper" in command:
                pids.add(int(pid))
    return pids


def big_list(path: Path, rows: int) -> Path:
    """Active rows, with a cancelled one, a bad address and a full name every so often."""
    lines = ["email,name,timezone,state,subscribed_at"]
    for n in range(rows):
        state = "cancelled" if n % 997 == 0 else "active"
        address = f"not-an-address-{n}" if n % 1009 == 5 else f"reader{n}@example.com"
        lines.append(f'{address},"Lee, Ann",Europe/Berlin,{state},5/28/2026')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("export", sorted(p.name for p in EXPORTS.iterdir()))
def test_the_helper_reads_every_export_exactly_as_this_process_does(export: str) -> None:
    path = EXPORTS / export
    options = ImportOptions(default_timezone="America/Chicago")
    here = list(list_rows(path, options, helper_min_bytes=IN_PROCESS))
    helped = list(list_rows(path, options, helper_min_bytes=HELPER))
    assert helped == here
    assert any(isinstance(item, SubscriberRecord | Departure) for item in here)
    assert helper_pids() == set()


def test_the_options_of_schedule_yaml_reach_the_helper(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_text(
        "Kontakt,Rufname,Phase\n"
        "ann@example.com,Ann,Kunde\n"
        "ben@example.com,Ben,Interessent\n"
        "cy@example.com,Cy,Ehemalig\n",
        encoding="utf-8",
    )
    options = ImportOptions(
        columns={"Kontakt": Field.EMAIL, "Rufname": Field.FIRST_NAME},
        status=StatusColumn("Phase", ("Kunde", "Interessent")),
    )
    helped = list(list_rows(path, options, helper_min_bytes=HELPER))
    assert helped == list(list_rows(path, options, helper_min_bytes=IN_PROCESS))
    records = [item for item in helped if isinstance(item, SubscriberRecord)]
    assert [(r.email, r.name) for r in records] == [
        ("ann@example.com", "Ann"),
        ("ben@example.com", "Ben"),
    ]
    assert [item for item in helped if isinstance(item, Departure)] == [
        Departure("cy@example.com", SubscriberStatus.REMOVED, "crm.csv row 4: Phase 'Ehemalig'")
    ]


def test_a_list_that_cannot_be_read_gives_the_same_error_from_the_helper(
    tmp_path: Path,
) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(SubscribersError) as here:
        list(list_rows(path, ImportOptions(), helper_min_bytes=IN_PROCESS))
    with pytest.raises(SubscribersError) as helped:
        list(list_rows(path, ImportOptions(), helper_min_bytes=HELPER))
    assert str(helped.value) == str(here.value)
    assert "empty" in str(helped.value)


def test_a_sync_that_stops_early_leaves_no_helper_running(tmp_path: Path) -> None:
    rows = list_rows(big_list(tmp_path / "big.csv", 20_000), ImportOptions(), helper_min_bytes=0)
    next(rows)
    assert len(helper_pids()) == 1
    rows.close()
    assert helper_pids() == set()


def test_a_helper_that_dies_fails_the_read_with_a_clear_error(tmp_path: Path) -> None:
    path = big_list(tmp_path / "big.csv", 20_000)
    rows = list_rows(path, ImportOptions(), helper_min_bytes=0)
    next(rows)
    (pid,) = helper_pids()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(SubscribersError) as error:
        list(rows)
    assert str(error.value) == (f"{path}: the process reading the list stopped (killed by SIGKILL)")


def test_a_stop_signal_for_the_process_group_leaves_the_helper_to_the_sync(
    tmp_path: Path,
) -> None:
    """Ctrl-C or a service manager's SIGTERM reaches every process of the group; the sync
    decides when to stop, and the helper reads on until it does."""
    path = big_list(tmp_path / "big.csv", 20_000)
    expected = list(list_rows(path, ImportOptions(), helper_min_bytes=IN_PROCESS))
    rows = list_rows(path, ImportOptions(), helper_min_bytes=0)
    got = [next(rows)]
    (pid,) = helper_pids()
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    got.extend(rows)
    assert got == expected


def test_a_large_list_syncs_through_the_helper_with_its_report_logged(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = HELPER_MIN_BYTES // 50  # about 60 bytes a row: larger than the threshold
    path = big_list(project / "examples" / "subscribers.csv", rows)
    assert path.stat().st_size >= HELPER_MIN_BYTES
    settings = load_settings(project / "schedule.yaml")
    assert settings.subscribers == path
    cancelled = len(range(0, rows, 997))
    invalid = len([n for n in range(5, rows, 1009) if n % 997])
    caplog.set_level(logging.INFO, logger="course")
    runtime = Runtime.open(settings, clock=lambda: NOW)
    try:
        summary = runtime.refresh_subscribers(NOW)
        assert summary is not None
        assert summary.added == rows - cancelled - invalid
        assert summary.suppressed == cancelled
        anna = runtime.ledger.subscriber("reader1@example.com")
        assert anna is not None
        assert anna.name == "Ann"
        assert anna.timezone == "Europe/Berlin"
        assert runtime.ledger.status_counts()[SubscriberStatus.UNSUBSCRIBED] == cancelled
    finally:
        runtime.close()
    logged = [record.getMessage() for record in caplog.records]
    assert "row 2: skipped: state 'cancelled' (reader0@example.com)" in logged
    assert any(line.startswith(f"{path}: ") and "accepted" in line for line in logged)
    assert helper_pids() == set()


def test_without_a_helper_the_list_is_read_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = EXPORTS / "kit.csv"
    expected = list(list_rows(path, ImportOptions(), helper_min_bytes=IN_PROCESS))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    assert list(list_rows(path, ImportOptions(), helper_min_bytes=HELPER)) == expected


def test_on_one_core_the_list_is_read_here(monkeypatch: pytest.MonkeyPatch) -> None:
    path = EXPORTS / "kit.csv"
    expected = list(list_rows(path, ImportOptions(), helper_min_bytes=IN_PROCESS))
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0})
    rows = list_rows(path, ImportOptions(), helper_min_bytes=HELPER)
    first = next(rows)
    assert helper_pids() == set()
    assert [first, *rows] == expected
