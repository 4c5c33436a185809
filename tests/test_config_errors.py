"""Config and template errors name the file and the key; advice fits the error (issue 12, #11)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from support import run_course

from course.build import build_course
from course.config import load_settings
from course.errors import TemplateError
from course.web.server import ServerError, bind


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_course(project, *args, env={"COURSE_SECRET": "config-test-secret"})


def edit(project: Path, old: str, new: str) -> None:
    config = project / "schedule.yaml"
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new, 1))


def test_an_undefined_name_in_the_subject_names_the_file_and_key(project: Path) -> None:
    edit(project, 'subject: "Day {{ day }} of {{ days }}', 'subject: "Day {{ nope }} of {{ days }}')
    result = run(project, "lessons")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "course: error: schedule.yaml: course.subject: 'nope' is undefined"
    )


ANY_LEDGER = "expected sqlite:///path/to/file.db or postgresql://user@host/dbname"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("notaurl", ANY_LEDGER),
        ("mysql://db.example.com/course", ANY_LEDGER),
        ("postgres://db.example.com/course", "expected postgresql://, not postgres://"),
        (
            "postgresql://u@db.example.com:abc/course",
            "expected a port number 1-65535 after the host",
        ),
        ("sqlite:state/course.db", ANY_LEDGER),
        ("sqlite:/state/course.db", ANY_LEDGER),
        ("sqlite://state/course.db", "expected sqlite:/// and then the file's path"),
    ],
)
def test_a_bad_ledger_url_names_the_file_and_key(project: Path, url: str, expected: str) -> None:
    edit(project, "ledger: sqlite:///state/course.db", f"ledger: {url}")
    result = run(project, "status")
    assert result.returncode == 1
    assert result.stderr.strip() == f"course: error: schedule.yaml: ledger: {expected}, got {url!r}"
    assert not (project / "state").exists()


def test_a_missing_config_says_what_was_looked_for(project: Path) -> None:
    result = run(project, "lessons", "--config", "missing.yaml")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"course: error: --config missing.yaml: no such file (looked for {project}/missing.yaml)"
    )
    assert "pass --config" not in result.stderr


def test_a_config_that_is_a_folder(project: Path) -> None:
    result = run(project, "--config", "examples", "lessons")
    assert result.stderr.strip() == (
        "course: error: --config examples: is a folder; expected a schedule.yaml file"
    )


def test_listen_advice_fits_the_error() -> None:
    with pytest.raises(ServerError) as unresolvable:
        bind("no-such-host.invalid", 8026, what="serve")
    assert str(unresolvable.value) == (
        "serve: cannot listen on no-such-host.invalid:8026: cannot resolve the host "
        "'no-such-host.invalid'; use an IP address such as 127.0.0.1"
    )
    taken = bind("127.0.0.1", 0, what="preview")
    try:
        port = taken.getsockname()[1]
        with pytest.raises(ServerError) as busy:
            bind("127.0.0.1", port, what="preview")
        assert str(busy.value).endswith("stop what uses it, or choose another port")
    finally:
        taken.close()
    with pytest.raises(ServerError) as foreign:
        bind("192.0.2.1", 8026, what="serve")  # TEST-NET-1: never an address of this machine
    assert str(foreign.value).endswith("192.0.2.1 is not an address of this machine")
    assert "another port" not in str(foreign.value)


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_bad_tag_in_the_layout_is_blamed_on_the_layout(project: Path) -> None:
    layout = project / "templates" / "layout.mjml"
    layout.write_text(layout.read_text().replace("<mj-title>", "<mj-titel>", 1))
    line = _line_of(layout, "<mj-titel>")
    with pytest.raises(TemplateError) as error:
        build_course(load_settings(project / "schedule.yaml"))
    assert str(error.value) == (
        f"layout.mjml: line {line}, rendered as lesson.mjml (day 1): unknown MJML tag <mj-titel>"
    )


def test_an_unclosed_tag_in_the_blocks_is_blamed_on_the_blocks(project: Path) -> None:
    blocks = project / "templates" / "blocks.mjml"
    text = blocks.read_text()
    quote = next(line for line in text.splitlines() if "<mj-text><div" in line)
    blocks.write_text(text.replace(quote, quote.replace("</mj-text>", "</mj-column>")))
    line = _line_of(blocks, "</mj-column>")
    result = run(project, "build")
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"course: error: blocks.mjml: line {line}, rendered")
    assert "</mj-column> closes <mj-text>" in result.stderr


def test_the_listen_port_is_checked_before_anything_binds() -> None:
    # The parser's check means a socket call never sees a port out of range.
    with socket.socket() as probe, pytest.raises(OverflowError):
        probe.bind(("127.0.0.1", 70000))
    with pytest.raises(ServerError, match="expected a port number 1-65535"):
        bind("127.0.0.1", 70000, what="serve")
