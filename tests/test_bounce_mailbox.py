"""The bounce mailbox: a Maildir on disk and an IMAP folder on a real Dovecot."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dovecot
import pytest
import trustme

from course.bounces.mailbox import (
    ImapMailbox,
    MailboxError,
    MaildirMailbox,
    encode_folder,
)
from course.config import ImapSettings

ONE = b"From: MAILER-DAEMON@example.net\r\nSubject: one\r\n\r\nbody one\r\n"
TWO = b"From: MAILER-DAEMON@example.net\r\nSubject: two\r\n\r\nbody two\r\n"


def deliver(maildir: Path, name: str, data: bytes) -> None:
    (maildir / "new" / name).write_bytes(data)


# --- Maildir ------------------------------------------------------------------------------------


def test_maildir_is_created_and_read_oldest_first(tmp_path: Path) -> None:
    box = MaildirMailbox(tmp_path / "bounces")
    assert sorted(p.name for p in (tmp_path / "bounces").iterdir()) == ["cur", "new", "tmp"]
    deliver(tmp_path / "bounces", "1700000002.M1P1.host", TWO)
    deliver(tmp_path / "bounces", "1700000001.M1P1.host", ONE)
    assert [m.data for m in box.waiting()] == [ONE, TWO]


def test_processed_goes_to_cur_seen_and_held_to_cur_flagged(tmp_path: Path) -> None:
    box = MaildirMailbox(tmp_path)
    deliver(tmp_path, "1.M1P1.host", ONE)
    deliver(tmp_path, "2.M1P1.host", TWO)
    first, second = box.waiting()
    box.processed(first)
    box.hold(second)
    assert sorted(os.listdir(tmp_path / "cur")) == ["1.M1P1.host:2,S", "2.M1P1.host:2,F"]
    assert os.listdir(tmp_path / "new") == []
    assert list(box.waiting()) == []  # nothing is read twice
    assert [m.data for m in box.held()] == [TWO]


def test_a_message_a_mail_client_moved_unread_is_still_waiting(tmp_path: Path) -> None:
    box = MaildirMailbox(tmp_path)
    (tmp_path / "cur" / "3.M1P1.host:2,").write_bytes(ONE)
    (tmp_path / "cur" / "4.M1P1.host:2,S").write_bytes(TWO)  # the operator read it
    waiting = list(box.waiting())
    assert [m.data for m in waiting] == [ONE]
    box.processed(waiting[0])
    assert sorted(os.listdir(tmp_path / "cur")) == ["3.M1P1.host:2,S", "4.M1P1.host:2,S"]


def test_a_held_message_the_operator_read_is_no_longer_held(tmp_path: Path) -> None:
    box = MaildirMailbox(tmp_path)
    (tmp_path / "cur" / "5.M1P1.host:2,FS").write_bytes(ONE)
    assert list(box.held()) == []
    assert list(box.waiting()) == []


def test_a_message_moved_by_another_reader_is_skipped(tmp_path: Path) -> None:
    box = MaildirMailbox(tmp_path)
    deliver(tmp_path, "6.M1P1.host", ONE)
    (message,) = box.waiting()
    os.rename(tmp_path / "new" / "6.M1P1.host", tmp_path / "cur" / "6.M1P1.host:2,S")
    box.processed(message)  # no error: it is where it should be
    assert os.listdir(tmp_path / "cur") == ["6.M1P1.host:2,S"]


def test_an_unusable_maildir_is_one_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(MailboxError, match=r"maildir:.*file: cannot create the Maildir"):
        MaildirMailbox(tmp_path / "file")


def test_folder_names_are_quoted_in_modified_utf7() -> None:
    assert encode_folder("Processed") == '"Processed"'
    assert encode_folder("Bounces & co") == '"Bounces &- co"'
    assert encode_folder("Unzustellbar/Erledigt ü") == '"Unzustellbar/Erledigt &APw-"'
    assert encode_folder('a"b') == '"a\\"b"'


# --- IMAP on Dovecot ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[dovecot.Dovecot]:
    if not dovecot.available():
        pytest.skip("needs Debian's dovecot-imapd, run as root (scripts/test-deps)")
    with dovecot.running_dovecot() as running:
        yield running


@pytest.fixture
def imap(server: dovecot.Dovecot) -> dovecot.Dovecot:
    server.empty()
    return server


def open_imap(server: dovecot.Dovecot, **overrides: object) -> ImapMailbox:
    options: dict[str, object] = {
        "password": dovecot.PASSWORD,
        "ca_file": server.ca_file,
        "processed_folder": "Processed bounces",
        "timeout": 10.0,
    }
    options.update(overrides)
    settings = ImapSettings("127.0.0.1", server.port, dovecot.USER, "INBOX")
    return ImapMailbox(settings, **options)  # type: ignore[arg-type]


def test_imap_processed_is_seen_and_moved_held_is_flagged(imap: dovecot.Dovecot) -> None:
    imap.deliver(ONE)
    imap.deliver(TWO)
    with open_imap(imap) as box:
        first, second = box.waiting()
        assert first.data.replace(b"\r\n", b"\n") == ONE.replace(b"\r\n", b"\n")
        box.processed(first)
        box.hold(second)
        assert list(box.waiting()) == []  # nothing read twice
        assert [m.key for m in box.held()] == [second.key]
    inbox = imap.folder("INBOX")
    assert [(flags, body.split(b"\r\n")[1]) for flags, body in inbox] == [
        ({"\\Flagged"}, b"Subject: two")
    ]
    moved = imap.folder("Processed bounces")
    assert [(flags, body.split(b"\r\n")[1]) for flags, body in moved] == [
        ({"\\Seen"}, b"Subject: one")
    ]


def test_imap_reading_does_not_mark_anything_seen(imap: dovecot.Dovecot) -> None:
    imap.deliver(ONE)
    with open_imap(imap) as box:
        assert len(list(box.waiting())) == 1
    assert imap.folder("INBOX")[0][0] == set()


def test_imap_a_wrong_password_is_one_error_naming_the_server(imap: dovecot.Dovecot) -> None:
    expected = r"imaps://bounces@127\.0\.0\.1:\d+/INBOX: login refused"
    with pytest.raises(MailboxError, match=expected):
        open_imap(imap, password="wrong")


def test_imap_a_certificate_from_another_ca_is_refused(
    imap: dovecot.Dovecot, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with pytest.raises(MailboxError, match=r"certificate does not verify.*bounces\.ca_file"):
        open_imap(imap, ca_file=other)


def test_imap_a_missing_folder_is_one_error(imap: dovecot.Dovecot) -> None:
    settings = ImapSettings("127.0.0.1", imap.port, dovecot.USER, "No such folder")
    with pytest.raises(MailboxError, match="cannot open the folder"):
        ImapMailbox(
            settings,
            password=dovecot.PASSWORD,
            ca_file=imap.ca_file,
            processed_folder="Processed",
            timeout=10.0,
        )


def test_imap_without_move_copies_and_expunges_only_that_message(imap: dovecot.Dovecot) -> None:
    imap.deliver(ONE)
    imap.deliver(TWO)
    with open_imap(imap) as box:
        box._capabilities.discard("MOVE")  # an RFC 3501 server (UIDPLUS still offered)
        first, _ = box.waiting()
        box.processed(first)
    assert [body.split(b"\r\n")[1] for _, body in imap.folder("INBOX")] == [b"Subject: two"]
    assert [flags for flags, _ in imap.folder("Processed bounces")] == [{"\\Seen"}]


def test_imap_a_message_someone_read_is_left_alone(imap: dovecot.Dovecot) -> None:
    imap.deliver(ONE)
    with open_imap(imap) as box:
        (message,) = box.waiting()
        box.hold(message)
    client = imap.client()
    try:
        client.select("INBOX")
        client.store("1", "+FLAGS.SILENT", r"(\Seen)")  # the operator reads it
    finally:
        client.logout()
    with open_imap(imap) as box:
        assert list(box.waiting()) == []
        assert list(box.held()) == []
