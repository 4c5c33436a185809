"""The backend contract, run against every backend (SMTP on a real aiosmtpd server), plus
each backend's own promises."""

from __future__ import annotations

import dataclasses
import email
import itertools
import mailbox
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import cast
from unittest import mock

import pytest
import yaml
from smtp_servers import ServerInfo, smtp_server

from course.backends.base import Backend, OutgoingMessage
from course.backends.file import FileBackend
from course.backends.inbox import InboxBackend, read_inbox
from course.backends.memory import MemoryBackend
from course.backends.smtp import SmtpBackend
from course.backends.wire import check_wire_format, wire_problem
from course.config import parse_settings
from course.errors import DeliveryError

START = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
SENDER = "course@example.org"


def make_message(
    n: int = 1,
    *,
    recipient: str = "alice@example.com",
    to: str | None = None,
    day: int = 3,
    subject: str = "Day 3: listen first",
    body: str = "Hello\n",
) -> OutgoingMessage:
    """A finished message as the renderer would hand it over: SMTP policy, CRLF lines."""
    message_id = f"<demo.d{day:02d}.m{n}@example.com>"
    built = EmailMessage(policy=policy.SMTP)
    built["From"] = f"Dripcourse <{SENDER}>"
    built["To"] = to or recipient
    built["Subject"] = subject
    built["Date"] = "Mon, 01 Jan 2024 09:00:00 +0000"
    built["Message-ID"] = message_id
    built.set_content(body, cte="8bit")
    return OutgoingMessage(SENDER, recipient, message_id, built.as_bytes())


class StepClock:
    """A clock that advances by a fixed step on every call."""

    def __init__(self, start: datetime = START, step: timedelta = timedelta(seconds=1)) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> datetime:
        now = self.now
        self.now += self.step
        return now


def files_under(root: Path) -> list[Path]:
    """Every file below root (temp files included), ordered by file name."""
    if not root.exists():
        return []
    return sorted((path for path in root.rglob("*") if path.is_file()), key=lambda p: p.name)


@dataclass
class Harness:
    """A backend plus a way to read back, as bytes and in send order, what it stored."""

    backend: Backend
    delivered: Callable[[], list[bytes]]


def memory_harness(tmp_path: Path) -> Harness:
    """MemoryBackend: what is stored is the outbox."""
    backend = MemoryBackend()
    return Harness(backend, lambda: [message.data for message in backend.outbox])


def file_harness(tmp_path: Path) -> Harness:
    """FileBackend: every file in the folder, leftover temp files included."""
    folder = tmp_path / "outbox"
    backend = FileBackend(folder, clock=StepClock())
    return Harness(backend, lambda: [path.read_bytes() for path in files_under(folder)])


def inbox_harness(tmp_path: Path) -> Harness:
    """InboxBackend: every file in tmp/, new/ and cur/ (Maildir keys sort by time here)."""
    folder = tmp_path / "Maildir"
    backend = InboxBackend(folder, clock=StepClock())
    return Harness(backend, lambda: [path.read_bytes() for path in files_under(folder)])


def smtp_harness(server: ServerInfo) -> Harness:
    """SmtpBackend against a real aiosmtpd server: what it stored is what crossed the wire."""
    # One connection: over several, messages arrive in whatever order the server answers.
    node = {"host": server.host, "port": server.port, "security": "none", "max_connections": 1}
    text = yaml.safe_dump({"delivery": {"smtp": node}})
    settings = parse_settings(text, source=Path("/nonexistent/schedule.yaml")).delivery.smtp
    already = len(server.handler.received)  # the server is shared by the module's tests
    return Harness(
        SmtpBackend(settings, ""),
        lambda: [message.content for message in server.handler.received[already:]],
    )


HARNESSES = {"memory": memory_harness, "file": file_harness, "inbox": inbox_harness}


@pytest.fixture(scope="module")
def contract_server() -> Iterator[ServerInfo]:
    """One aiosmtpd server for every SMTP run of the contract."""
    with smtp_server() as info:
        yield info


@pytest.fixture(params=sorted([*HARNESSES, "smtp"]))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    """Each backend in turn; SMTP through a real server on 127.0.0.1."""
    name = cast(str, request.param)
    if name == "smtp":
        return smtp_harness(request.getfixturevalue("contract_server"))
    return HARNESSES[name](tmp_path)


def bare_lf(m: OutgoingMessage) -> OutgoingMessage:
    return dataclasses.replace(m, data=m.data.replace(b"Hello\r\n", b"Hello\nagain\r\n"))


def bare_cr(m: OutgoingMessage) -> OutgoingMessage:
    return dataclasses.replace(m, data=m.data.replace(b"Hello\r\n", b"Hello\ragain\r\n"))


def long_line(m: OutgoingMessage) -> OutgoingMessage:
    return dataclasses.replace(m, data=m.data + b"x" * 999 + b"\r\n")


def nul_octet(m: OutgoingMessage) -> OutgoingMessage:
    return dataclasses.replace(m, data=m.data.replace(b"Hello", b"He\x00llo"))


def str_data(m: OutgoingMessage) -> OutgoingMessage:
    return dataclasses.replace(m, data=cast(bytes, m.data.decode()))


def bytearray_data(m: OutgoingMessage) -> OutgoingMessage:
    return dataclasses.replace(m, data=cast(bytes, bytearray(m.data)))


def recipient_injection(m: OutgoingMessage) -> OutgoingMessage:
    return dataclasses.replace(m, recipient="a@example.com\r\nBcc: b@example.org")


def two_recipients(m: OutgoingMessage) -> OutgoingMessage:
    return dataclasses.replace(m, recipient="a@example.com, b@example.org")


def sender_injection(m: OutgoingMessage) -> OutgoingMessage:
    return dataclasses.replace(m, sender="course@example.org\nRCPT TO:<b@example.org>")


def id_mismatch(m: OutgoingMessage) -> OutgoingMessage:
    return dataclasses.replace(m, message_id="<demo.d03.other@example.com>")


def id_injection(m: OutgoingMessage) -> OutgoingMessage:
    return dataclasses.replace(m, message_id=m.message_id + "\r\nBcc: b@example.org")


def no_blank_line(m: OutgoingMessage) -> OutgoingMessage:
    return dataclasses.replace(m, data=m.data.partition(b"\r\n\r\n")[0] + b"\r\n")


def two_message_ids(m: OutgoingMessage) -> OutgoingMessage:
    return dataclasses.replace(m, data=f"Message-ID: {m.message_id}\r\n".encode() + m.data)


def header_without_colon(m: OutgoingMessage) -> OutgoingMessage:
    return dataclasses.replace(m, data=b"Bcc b@example.org\r\n" + m.data)


def leading_continuation(m: OutgoingMessage) -> OutgoingMessage:
    return dataclasses.replace(m, data=b" folded\r\n" + m.data)


MALFORMED: list[tuple[Callable[[OutgoingMessage], OutgoingMessage], str]] = [
    (bare_lf, "bare CR or LF"),
    (bare_cr, "bare CR or LF"),
    (long_line, "999-octet line; the limit is 998"),
    (nul_octet, "NUL"),
    (str_data, "not bytes"),
    (bytearray_data, "not bytes"),
    (recipient_injection, "recipient is not"),
    (two_recipients, "recipient is not"),
    (sender_injection, "sender is not"),
    (id_mismatch, "differs from message_id"),
    (id_injection, "message_id is not"),
    (no_blank_line, "no blank line"),
    (two_message_ids, "found 2"),
    (header_without_colon, "malformed header line"),
    (leading_continuation, "continuation"),
]


class TestBackendContract:
    """What every backend promises, whatever it does with the bytes."""

    def test_sends_each_message_in_order(self, harness: Harness) -> None:
        messages = [make_message(n, recipient=f"user{n}@example.com") for n in range(12)]
        with harness.backend as backend:
            results = backend.send(messages)
        assert [result.outcome for result in results] == ["sent"] * 12
        assert [result.message for result in results] == messages
        assert harness.delivered() == [message.data for message in messages]

    def test_empty_batch_sends_nothing(self, harness: Harness) -> None:
        with harness.backend as backend:
            assert backend.send([]) == []
        assert harness.delivered() == []

    def test_stored_bytes_are_the_wire_bytes_and_parse_back(self, harness: Harness) -> None:
        message = make_message(recipient="bob@example.com", subject="Day 3: a subject")
        with harness.backend as backend:
            backend.send([message])
        [stored] = harness.delivered()
        assert stored == message.data
        assert b"\r\n" in stored
        assert b"\n" not in stored.replace(b"\r\n", b"")
        parsed = email.message_from_bytes(stored, policy=policy.default)
        assert parsed["Message-ID"] == message.message_id
        assert parsed["To"] == "bob@example.com"
        assert parsed["Subject"] == "Day 3: a subject"

    def test_utf8_body_bytes_are_preserved(self, harness: Harness) -> None:
        message = make_message(body="Café ☕ — día 3, naïve résumé\n")
        assert "Café ☕".encode() in message.data  # 8bit, not quoted-printable
        with harness.backend as backend:
            backend.send([message])
        [stored] = harness.delivered()
        assert stored == message.data
        parsed = email.message_from_bytes(stored, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        assert parsed.get_content().rstrip() == "Café ☕ — día 3, naïve résumé"

    def test_context_manager_opens_and_closes(self, harness: Harness) -> None:
        backend = harness.backend
        with (
            mock.patch.object(backend, "open", wraps=backend.open) as opened,
            mock.patch.object(backend, "close", wraps=backend.close) as closed,
        ):
            with backend as entered:
                assert entered is backend
                opened.assert_called_once_with()
                closed.assert_not_called()
                entered.send([make_message()])
            closed.assert_called_once_with()
        assert len(harness.delivered()) == 1

    def test_close_twice_and_reopen_are_fine(self, harness: Harness) -> None:
        backend = harness.backend
        backend.open()
        backend.close()
        backend.close()
        with backend:
            backend.send([make_message(1)])
        with backend:
            backend.send([make_message(2)])
        assert harness.delivered() == [make_message(1).data, make_message(2).data]

    def test_send_without_open_still_delivers(self, harness: Harness) -> None:
        harness.backend.send([make_message()])
        assert harness.delivered() == [make_message().data]

    def test_998_octet_lines_are_accepted(self, harness: Harness) -> None:
        good = make_message()
        edge = dataclasses.replace(good, data=good.data + b"x" * 998 + b"\r\n")
        with harness.backend as backend:
            backend.send([edge])
        assert harness.delivered() == [edge.data]

    @pytest.mark.parametrize(
        ("malform", "reason"), MALFORMED, ids=[malform.__name__ for malform, _ in MALFORMED]
    )
    def test_malformed_message_is_refused_and_nothing_stored(
        self,
        harness: Harness,
        malform: Callable[[OutgoingMessage], OutgoingMessage],
        reason: str,
    ) -> None:
        good = make_message(1)
        bad = malform(make_message(2))
        with harness.backend as backend, pytest.raises(DeliveryError, match=reason) as refused:
            backend.send([good, bad])
        assert harness.delivered() == []
        # The error is printed to the operator: an injected CRLF must not reach the terminal raw.
        assert "\r" not in str(refused.value)
        assert "\n" not in str(refused.value)


class TestWireFormat:
    """The shared checks, on the messages the contract does not cover."""

    @pytest.mark.parametrize(
        "address",
        [
            "alice@example.com",
            "o'brien+course@example.org",
            '"alice smith"@example.com',
            "user@[192.0.2.1]",
            "josé@example.com",
        ],
    )
    def test_plain_addr_specs_pass(self, address: str) -> None:
        message = make_message(recipient="alice@example.com")
        check_wire_format(dataclasses.replace(message, recipient=address, sender=address))

    @pytest.mark.parametrize(
        "address",
        [
            "",
            "alice",
            "Alice <alice@example.com>",
            "alice@example.com ",
            "a..b@example.com",
            "alice@-example.com",
            "alice@example.com\x00",
            "alice\x85@example.com",
            "a" * 250 + "@example.com",
        ],
    )
    def test_anything_else_is_refused(self, address: str) -> None:
        with pytest.raises(DeliveryError, match="recipient"):
            check_wire_format(dataclasses.replace(make_message(), recipient=address))

    def test_folded_message_id_header_matches(self) -> None:
        message = make_message()
        folded = message.data.replace(
            f"Message-ID: {message.message_id}".encode(),
            f"Message-ID:\r\n {message.message_id}".encode(),
        )
        check_wire_format(dataclasses.replace(message, data=folded))


class TestFileBackend:
    """One atomically written .eml file per message, named to sort by time."""

    def test_names_are_unique_sorted_and_safe_with_a_frozen_clock(self, tmp_path: Path) -> None:
        recipients = [f"user{n}@example.com" for n in range(11)] + ["a/b'c@example.org"]
        messages = [make_message(n, recipient=r) for n, r in enumerate(recipients)]
        with FileBackend(tmp_path, clock=lambda: START) as backend:
            results = backend.send(messages)
        written = [Path(result.reply) for result in results]
        names = [path.name for path in written]
        assert len(set(names)) == len(names)
        assert sorted(names) == names
        assert all(path.parent == tmp_path for path in written)
        assert all(name.startswith("20240101T090000.000000Z-") for name in names)
        assert names[-1].endswith("-a_b_c@example.org.eml")
        assert [path.read_bytes() for path in written] == [m.data for m in messages]

    def test_names_follow_the_clock_in_utc(self, tmp_path: Path) -> None:
        paris = timezone(timedelta(hours=1))
        times = iter([datetime(2024, 1, 1, 10, 0, 59, tzinfo=paris), START + timedelta(minutes=1)])
        with FileBackend(tmp_path, clock=lambda: next(times)) as backend:
            results = backend.send([make_message(1), make_message(2)])
        names = [Path(result.reply).name for result in results]
        assert names[0].startswith("20240101T090059.000000Z-")
        assert names[1].startswith("20240101T090100.000000Z-")

    def test_two_backends_on_one_folder_never_overwrite(self, tmp_path: Path) -> None:
        for n in range(2):
            with FileBackend(tmp_path, clock=lambda: START) as backend:
                backend.send([make_message(n)])
        assert len(list(tmp_path.glob("*.eml"))) == 2

    def test_open_creates_the_folder(self, tmp_path: Path) -> None:
        folder = tmp_path / "a" / "b"
        with FileBackend(folder):
            assert folder.is_dir()

    def test_only_eml_files_remain(self, tmp_path: Path) -> None:
        with FileBackend(tmp_path) as backend:
            backend.send([make_message(n) for n in range(3)])
        assert sorted(path.suffix for path in tmp_path.iterdir()) == [".eml"] * 3

    def test_failed_write_leaves_no_temp_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def refuse(src: object, dst: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "replace", refuse)
        with FileBackend(tmp_path) as backend, pytest.raises(DeliveryError, match="No space"):
            backend.send([make_message()])
        assert list(tmp_path.iterdir()) == []

    def test_unwritable_folder_is_a_delivery_error(self, tmp_path: Path) -> None:
        (tmp_path / "taken").write_text("not a folder")
        with pytest.raises(DeliveryError, match="cannot create"):
            FileBackend(tmp_path / "taken").open()


class TestInboxBackend:
    """A real Maildir holding the wire bytes, and the preview's reader."""

    def test_is_a_valid_maildir(self, tmp_path: Path) -> None:
        messages = [make_message(n) for n in range(3)]
        with InboxBackend(tmp_path / "Maildir") as backend:
            keys = [result.reply for result in backend.send(messages)]
        box = mailbox.Maildir(tmp_path / "Maildir", create=False)
        assert sorted(box.keys()) == sorted(keys)
        assert [box.get_bytes(key) for key in keys] == [m.data for m in messages]
        assert box[keys[0]]["Message-ID"] == messages[0].message_id
        assert list((tmp_path / "Maildir" / "tmp").iterdir()) == []

    def test_open_completes_an_existing_empty_folder(self, tmp_path: Path) -> None:
        with InboxBackend(tmp_path):
            assert sorted(p.name for p in tmp_path.iterdir()) == ["cur", "new", "tmp"]

    def test_read_inbox_lists_newest_first_with_headers_decoded(self, tmp_path: Path) -> None:
        clock = StepClock()
        messages = [
            make_message(1, day=1, recipient="alice@example.com", subject="Day 1: begin"),
            make_message(
                2,
                day=2,
                recipient="bob@example.org",
                to="Bób Example <bob@example.org>",
                subject="Día 2 — café ☕",
            ),
            make_message(3, day=12, recipient="carol@example.com", subject="Day 12: end"),
        ]
        assert b"=?utf-8?" in messages[1].data  # the subject really is RFC 2047 encoded
        with InboxBackend(tmp_path, clock=clock) as backend:
            backend.send(messages)
        listed = read_inbox(tmp_path)
        assert [m.message_id for m in listed] == [m.message_id for m in reversed(messages)]
        assert [m.day for m in listed] == [12, 2, 1]
        assert [m.recipient for m in listed] == [
            "carol@example.com",
            "bob@example.org",
            "alice@example.com",
        ]
        assert listed[1].subject == "Día 2 — café ☕"
        assert [m.received_at for m in listed] == [START + timedelta(seconds=s) for s in (2, 1, 0)]
        assert listed[0].received_at.tzinfo is UTC
        assert [m.read_bytes() for m in listed] == [m.data for m in reversed(messages)]
        assert all(m.path == tmp_path / "new" / m.key for m in listed)

    def test_received_at_keeps_the_clock_microseconds(self, tmp_path: Path) -> None:
        moment = datetime(2024, 3, 5, 7, 8, 9, 123457, tzinfo=UTC)
        with InboxBackend(tmp_path, clock=lambda: moment) as backend:
            backend.send([make_message()])
        [listed] = read_inbox(tmp_path)
        assert listed.received_at == moment
        assert listed.key.startswith(f"{int(moment.timestamp())}.M123457P{os.getpid()}Q")

    def test_read_inbox_sees_cur_and_skips_dot_files(self, tmp_path: Path) -> None:
        with InboxBackend(tmp_path, clock=StepClock()) as backend:
            keys = [r.reply for r in backend.send([make_message(1), make_message(2)])]
        # A mail client marks the first one seen: it moves to cur/ with an info suffix.
        os.rename(tmp_path / "new" / keys[0], tmp_path / "cur" / f"{keys[0]}:2,S")
        (tmp_path / "new" / ".stray").write_bytes(b"not a message")
        listed = read_inbox(tmp_path)
        assert [m.key for m in listed] == [keys[1], f"{keys[0]}:2,S"]

    def test_read_inbox_limit_keeps_the_newest(self, tmp_path: Path) -> None:
        with InboxBackend(tmp_path, clock=StepClock()) as backend:
            backend.send([make_message(n) for n in range(5)])
        listed = read_inbox(tmp_path, limit=2)
        assert [m.message_id for m in listed] == [make_message(n).message_id for n in (4, 3)]

    def test_read_inbox_of_a_missing_folder_is_empty(self, tmp_path: Path) -> None:
        assert read_inbox(tmp_path / "nowhere") == []

    def test_read_inbox_tolerates_foreign_files(self, tmp_path: Path) -> None:
        InboxBackend(tmp_path).open()
        (tmp_path / "new" / "1.foreign").write_bytes(
            b"To: someone\nMessage-ID: <x@example.com>\n\nbody\n"
        )
        [listed] = read_inbox(tmp_path)
        assert listed.recipient == "someone"
        assert listed.subject == ""
        assert listed.day is None
        assert listed.message_id == "<x@example.com>"

    def test_read_inbox_parses_only_the_header(self, tmp_path: Path) -> None:
        message = make_message(body="line of body text\n" * 100_000)
        with InboxBackend(tmp_path) as backend:
            backend.send([message])
        parse = BytesHeaderParser.parsebytes
        with mock.patch.object(
            BytesHeaderParser, "parsebytes", autospec=True, side_effect=parse
        ) as spy:
            [listed] = read_inbox(tmp_path)
        assert listed.message_id == message.message_id
        [[_, head], _] = spy.call_args
        assert len(head) < 1000
        assert head.endswith(b"\r\n\r\n")


def test_the_line_end_check_agrees_with_a_reading_octet_by_octet() -> None:
    """Every body of up to 7 octets drawn from 'a', CR and LF: refused for a bare CR or LF
    exactly when a plain scan finds a CR not followed by LF or an LF not preceded by CR."""

    def bare(body: bytes) -> bool:
        return any(
            (octet == 13 and body[i + 1 : i + 2] != b"\n")
            or (octet == 10 and (i == 0 or body[i - 1] != 13))
            for i, octet in enumerate(body)
        )

    message = make_message()
    checked = 0
    for length in range(8):
        for body in itertools.product((b"a", b"\r", b"\n"), repeat=length):
            data = message.data + b"".join(body) + b"\r\n"
            problem = wire_problem(dataclasses.replace(message, data=data))
            assert (problem == "data has a bare CR or LF; every line must end with CRLF") == bare(
                b"".join(body) + b"\r\n"
            ), body
            checked += 1
    assert checked == sum(3**n for n in range(8))
