"""The test SMTP servers behave as scripted, checked with nothing but smtplib and ssl."""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from io import BufferedIOBase

import pytest
from smtp_servers import (
    SERVER_NAME,
    CertChoice,
    ScriptedHandler,
    ServerInfo,
    certificates,
    max_in_window,
    refusing_port,
    silent_port,
    smtp_server,
)

SENDER = "course@example.org"
ALICE = "alice@example.com"
BOB = "bob@example.com"
BODY = (
    b"From: course@example.org\r\n"
    b"To: alice@example.com\r\n"
    b"Subject: Day 1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b".a line that starts with a dot\r\n"
    b"..and one with two\r\n"
    b"caf\xc3\xa9 \xe2\x80\x94 trailing space \r\n"
)
USERS = {"course": "s3cret"}


@pytest.fixture
def handler() -> ScriptedHandler:
    """A fresh handler per test."""
    return ScriptedHandler()


@pytest.fixture
def server(handler: ScriptedHandler) -> Iterator[ServerInfo]:
    """A plain server (no TLS, no AUTH)."""
    with smtp_server(handler) as info:
        yield info


def connect(info: ServerInfo, *, timeout: float = 5.0) -> smtplib.SMTP:
    """An smtplib client that has already said EHLO."""
    client = smtplib.SMTP(
        info.host, info.port, local_hostname="client.example.org", timeout=timeout
    )
    client.ehlo()
    return client


def test_plain_send_is_recorded_byte_for_byte(server: ServerInfo, handler: ScriptedHandler) -> None:
    with connect(server) as client:
        assert client.ehlo_resp is not None
        assert SERVER_NAME in client.ehlo_resp.decode()
        assert client.mail(SENDER, ["BODY=8BITMIME"])[0] == 250
        assert client.rcpt(ALICE)[0] == 250
        code, reply = client.data(BODY)
    assert code == 250
    assert reply == b"2.0.0 OK queued as DC000001"
    [message] = handler.messages
    assert message.content == BODY
    assert message.mail_from == SENDER
    assert message.rcpt_tos == (ALICE,)
    assert message.mail_options == ("BODY=8BITMIME",)
    assert message.queue_id == "DC000001"
    assert not message.tls
    assert message.as_email()["Subject"] == "Day 1"


def test_smtputf8_is_offered_and_recorded(server: ServerInfo, handler: ScriptedHandler) -> None:
    with connect(server) as client:
        assert client.has_extn("smtputf8")
        client.sendmail(SENDER, ["zoë@example.com"], BODY, mail_options=["SMTPUTF8"])
    [message] = handler.messages
    assert message.smtp_utf8
    assert "SMTPUTF8" in message.mail_options
    assert message.rcpt_tos == ("zoë@example.com",)


def test_starttls_verifies_against_the_test_ca(handler: ScriptedHandler) -> None:
    with smtp_server(handler, tls="starttls", require_starttls=True) as info, connect(info) as c:
        assert c.has_extn("starttls")
        c.starttls(context=info.client_context())
        c.ehlo()
        assert not c.has_extn("starttls")
        c.sendmail(SENDER, [ALICE], BODY)
    [message] = handler.messages
    assert message.tls
    assert handler.connections[0].tls


def test_required_starttls_refuses_mail_in_plain_text(handler: ScriptedHandler) -> None:
    with smtp_server(handler, tls="starttls", require_starttls=True) as info, connect(info) as c:
        assert c.mail(SENDER) == (530, b"Must issue a STARTTLS command first")


def test_a_plain_server_offers_no_starttls(server: ServerInfo) -> None:
    with connect(server) as client:
        assert not client.has_extn("starttls")
        with pytest.raises(smtplib.SMTPNotSupportedError):
            client.starttls(context=server.client_context())


@pytest.mark.parametrize(
    ("cert", "complaint"),
    [
        ("untrusted", "unable to get local issuer certificate"),
        ("wrong_host", "IP address mismatch"),
        ("expired", "certificate has expired"),
    ],
)
def test_bad_certificates_fail_verification(cert: CertChoice, complaint: str) -> None:
    with (
        smtp_server(tls="starttls", cert=cert) as info,
        connect(info) as client,
        pytest.raises(ssl.SSLCertVerificationError, match=complaint),
    ):
        client.starttls(context=info.client_context())


def test_wrong_host_cert_names_another_host() -> None:
    assert certificates().wrong_host.hostnames == ("mail.example.org",)
    assert certificates().untrusted.ca_file != certificates().ca_file


def test_implicit_tls(handler: ScriptedHandler) -> None:
    with smtp_server(handler, tls="implicit", auth=USERS, auth_required=True) as info:
        with smtplib.SMTP_SSL(info.host, info.port, context=info.client_context(), timeout=5) as c:
            c.login("course", "s3cret")
            c.sendmail(SENDER, [ALICE], BODY)
        with pytest.raises(ssl.SSLCertVerificationError):
            smtplib.SMTP_SSL(info.host, info.port, context=ssl.create_default_context(), timeout=5)
    assert handler.messages[0].tls


def test_auth_login_and_plain_over_starttls(handler: ScriptedHandler) -> None:
    with smtp_server(handler, tls="starttls", auth=USERS, auth_required=True) as info:
        with connect(info) as client:
            assert not client.has_extn("auth"), "AUTH must wait for TLS"
            client.starttls(context=info.client_context())
            client.ehlo()
            assert set(client.esmtp_features["auth"].split()) == {"LOGIN", "PLAIN"}
            client.user, client.password = "course", "s3cret"
            assert client.auth("LOGIN", client.auth_login)[0] == 235
            client.sendmail(SENDER, [ALICE], BODY)
        with connect(info) as client:
            client.starttls(context=info.client_context())
            client.ehlo()
            client.user, client.password = "course", "s3cret"
            assert client.auth("PLAIN", client.auth_plain)[0] == 235
    assert [m.authenticated_as for m in handler.messages] == ["course"]


def test_auth_on_a_plain_server_and_wrong_password(handler: ScriptedHandler) -> None:
    with smtp_server(handler, auth=USERS, auth_required=True) as info:
        with connect(info) as client:
            assert client.mail(SENDER)[0] == 530
            with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
                client.login("course", "wrong")
            assert failed.value.smtp_code == 535
        with connect(info) as client:
            client.login("course", "s3cret")
            client.sendmail(SENDER, [ALICE], BODY)
    assert handler.messages[0].authenticated_as == "course"


def test_a_server_without_users_does_not_advertise_auth(server: ServerInfo) -> None:
    with connect(server) as client:
        assert not client.has_extn("auth")


def test_scripted_rcpt_replies(server: ServerInfo, handler: ScriptedHandler) -> None:
    replies = {
        "gone@example.com": (550, b"5.1.1 User unknown"),
        "later@example.com": (450, b"4.2.1 Try later"),
        "full@example.com": (452, b"4.2.2 Mailbox full"),
        "spam@example.com": (550, b"5.7.1 Message rejected as spam"),
    }
    for address, (code, text) in replies.items():
        handler.rcpt_reply[address] = f"{code} {text.decode()}"
    with connect(server) as client:
        refused = client.sendmail(SENDER, [ALICE, *replies], BODY)
    assert refused == replies
    assert handler.messages[0].rcpt_tos == (ALICE,)


def test_scripted_data_replies(server: ServerInfo, handler: ScriptedHandler) -> None:
    handler.data_reply["temp@example.com"] = "451 4.3.0 Temporary failure"
    handler.data_reply["policy@example.com"] = "554 5.7.1 Policy rejection"
    with connect(server) as client:
        for address, code in [("temp@example.com", 451), ("policy@example.com", 554), (BOB, 250)]:
            client.mail(SENDER)
            client.rcpt(address)
            assert client.data(BODY)[0] == code
    assert [m.reply for m in handler.received] == [
        "451 4.3.0 Temporary failure",
        "554 5.7.1 Policy rejection",
        "250 2.0.0 OK queued as DC000003",
    ]
    assert [m.rcpt_tos for m in handler.messages] == [(BOB,)]


def test_one_shot_scripts_then_normal_service(server: ServerInfo, handler: ScriptedHandler) -> None:
    handler.fail_next_mail_with("451 4.7.1 Greylisted, try again")
    handler.script("RCPT", reply="450 4.2.0 Busy", rcpt=ALICE, times=2)
    with connect(server) as client:
        assert client.mail(SENDER) == (451, b"4.7.1 Greylisted, try again")
        assert client.mail(SENDER)[0] == 250
        assert client.rcpt(ALICE)[0] == 450
        assert client.rcpt(ALICE)[0] == 450
        assert client.rcpt(ALICE)[0] == 250


def test_drop_before_reply_leaves_the_message_in_doubt(
    server: ServerInfo, handler: ScriptedHandler
) -> None:
    handler.drop_before_reply()
    with connect(server) as client, pytest.raises(smtplib.SMTPServerDisconnected):
        client.sendmail(SENDER, [ALICE], BODY)
    [message] = handler.received
    assert message.content == BODY
    assert message.reply is None
    assert handler.messages == []


def test_drop_mid_data_loses_the_message(server: ServerInfo, handler: ScriptedHandler) -> None:
    handler.drop_mid_data(rcpt=BOB)
    with connect(server) as client, pytest.raises(smtplib.SMTPServerDisconnected):
        client.sendmail(SENDER, [ALICE, BOB], BODY)
    assert handler.received == []
    assert handler.mid_data_drops == 1
    with connect(server) as client:
        client.sendmail(SENDER, [ALICE, BOB], BODY)
    assert len(handler.messages) == 1


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
def test_stall_makes_a_client_time_out(
    server: ServerInfo, handler: ScriptedHandler, stage: str
) -> None:
    handler.stall(stage)  # type: ignore[arg-type]
    started = time.monotonic()
    # smtplib reports a read timeout as a disconnect, with the TimeoutError as context.
    with (
        connect(server, timeout=0.5) as client,
        pytest.raises(smtplib.SMTPServerDisconnected, match="timed out") as gave_up,
    ):
        client.sendmail(SENDER, [ALICE], BODY)
    assert isinstance(gave_up.value.__context__, TimeoutError)
    assert time.monotonic() - started < 2
    # The client hanging up ends the stall on the server side too.
    handler.wait_until(lambda: handler.open_connection_count == 0, what="the server to hang up")


def test_reply_421_then_close(server: ServerInfo, handler: ScriptedHandler) -> None:
    handler.reply_421_then_close("MAIL")
    with connect(server) as client:
        assert client.mail(SENDER)[0] == 421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()


def test_421_at_ehlo_and_a_drop_at_rcpt(server: ServerInfo, handler: ScriptedHandler) -> None:
    handler.reply_421_then_close("EHLO")
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        assert client.ehlo()[0] == 421
    handler.script("RCPT", action="drop_before_reply", rcpt=BOB)
    with connect(server) as client:
        client.mail(SENDER)
        assert client.rcpt(ALICE)[0] == 250
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.rcpt(BOB)


def test_connections_and_commands_are_counted(server: ServerInfo, handler: ScriptedHandler) -> None:
    with connect(server) as client:
        for _ in range(3):
            client.sendmail(SENDER, [ALICE], BODY)
    for _ in range(2):
        with connect(server) as client:
            client.sendmail(SENDER, [BOB], BODY)
    handler.wait_until(lambda: handler.open_connection_count == 0, what="all hang-ups")
    assert handler.connection_count == 3
    assert handler.peak_connections == 1
    assert handler.command_count("MAIL") == 5
    assert handler.command_count("EHLO") == 3
    assert [m.connection for m in handler.messages] == [1, 1, 1, 2, 3]
    assert len(handler.arrival_times(connection=1)) == 3
    assert handler.max_in_window(60) == 5


def test_peak_counts_simultaneous_connections(server: ServerInfo, handler: ScriptedHandler) -> None:
    clients = [connect(server) for _ in range(3)]
    for client in clients:
        client.quit()
    assert handler.peak_connections == 3


def test_close_after_drops_a_used_connection(server: ServerInfo, handler: ScriptedHandler) -> None:
    handler.close_after = 2
    with connect(server) as client:
        client.sendmail(SENDER, [ALICE], BODY)
        client.sendmail(SENDER, [ALICE], BODY)
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.sendmail(SENDER, [ALICE], BODY)
    assert len(handler.messages) == 2


def test_max_in_window() -> None:
    assert max_in_window([], 1.0) == 0
    assert max_in_window([0.0, 0.5, 0.99, 1.0, 1.5, 3.0], 1.0) == 3
    assert max_in_window([0.0, 1.0, 2.0], 1.0) == 1


def read_reply(stream: BufferedIOBase) -> list[bytes]:
    """Read one (possibly multi-line) SMTP reply from a binary file."""
    lines: list[bytes] = []
    while True:
        line = stream.readline()
        assert line, "server closed the connection"
        lines.append(line.rstrip(b"\r\n"))
        if line[3:4] != b"-":
            return lines


def test_pipelined_commands_are_answered_in_order(
    server: ServerInfo, handler: ScriptedHandler
) -> None:
    handler.rcpt_reply[BOB] = "550 5.1.1 User unknown"
    with socket.create_connection(server.address, timeout=5) as sock:
        stream = sock.makefile("rb")
        assert read_reply(stream)[0].startswith(b"220 ")
        sock.sendall(b"EHLO client.example.org\r\n")
        assert b"250-PIPELINING" in read_reply(stream)
        sock.sendall(
            b"MAIL FROM:<course@example.org>\r\n"
            b"RCPT TO:<bob@example.com>\r\n"
            b"RCPT TO:<alice@example.com>\r\n"
            b"DATA\r\n"
        )
        replies = [read_reply(stream)[0][:3] for _ in range(4)]
        assert replies == [b"250", b"550", b"250", b"354"]
        # A raw client must dot-stuff itself (smtplib does it in data()).
        sock.sendall(BODY.replace(b"\r\n.", b"\r\n..") + b".\r\nQUIT\r\n")
        assert read_reply(stream)[0].startswith(b"250 2.0.0 OK queued as ")
        assert read_reply(stream)[0].startswith(b"221")
    assert handler.messages[0].content == BODY
    pipelined = [(c.verb, c.more_buffered) for c in handler.commands()]
    assert pipelined[1:5] == [("MAIL", True), ("RCPT", True), ("RCPT", True), ("DATA", False)]


def test_pipelined_mail_failure_makes_the_rest_fail_in_order(
    server: ServerInfo, handler: ScriptedHandler
) -> None:
    handler.fail_next_mail_with("451 4.7.1 Greylisted")
    with socket.create_connection(server.address, timeout=5) as sock:
        stream = sock.makefile("rb")
        read_reply(stream)
        sock.sendall(b"EHLO client.example.org\r\n")
        read_reply(stream)
        sock.sendall(b"MAIL FROM:<course@example.org>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n")
        replies = [read_reply(stream)[0][:3] for _ in range(3)]
    assert replies == [b"451", b"503", b"503"]


def test_pipelining_advertisement_can_be_switched_off(
    server: ServerInfo, handler: ScriptedHandler
) -> None:
    handler.advertise_pipelining = False
    with connect(server) as client:
        assert not client.has_extn("pipelining")
        assert client.has_extn("8bitmime")


def test_refusing_port_refuses() -> None:
    with refusing_port() as port, pytest.raises(ConnectionRefusedError):
        smtplib.SMTP("127.0.0.1", port, timeout=2)


def test_silent_port_never_greets() -> None:
    with silent_port() as port, pytest.raises(smtplib.SMTPServerDisconnected) as gave_up:
        smtplib.SMTP("127.0.0.1", port, timeout=0.3)
    assert isinstance(gave_up.value.__context__, TimeoutError)


def test_servers_stop_even_when_the_test_fails(handler: ScriptedHandler) -> None:
    threads_before = threading.active_count()
    handler.stall("RCPT")
    with socket.socket() as stuck:
        with pytest.raises(RuntimeError), smtp_server(handler, tls="starttls") as info:  # noqa: PT012
            stuck.connect(info.address)
            stream = stuck.makefile("rb")
            read_reply(stream)
            stuck.sendall(b"EHLO client.example.org\r\n")
            read_reply(stream)
            stuck.sendall(b"MAIL FROM:<course@example.org>\r\nRCPT TO:<alice@example.com>\r\n")
            assert read_reply(stream)[0].startswith(b"250")
            handler.wait_until(lambda: handler.command_count("RCPT") == 1, what="RCPT")
            raise RuntimeError("the test failed with a client stuck mid-session")
        # Teardown hung up on the stuck client and stopped the server thread.
        stuck.settimeout(2)
        assert stuck.recv(100) == b""
    assert threading.active_count() == threads_before
    assert handler.open_connection_count == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(info.address, timeout=1)
