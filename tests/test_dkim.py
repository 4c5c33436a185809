"""DKIM: keys, configuration, signing on every path a message takes, verified by dkimpy.

dkimpy gets the public keys through its DNS lookup hook (`dnsfunc`), answered from the
records `course dkim-keygen` prints, so nothing here reaches the network.
"""

from __future__ import annotations

import base64
import contextlib
import io
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dkim
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from smtp_servers import ScriptedHandler, smtp_server

from course.backends.inbox import read_inbox
from course.backends.memory import MemoryBackend
from course.build import build_course, sample_recipient, write_build
from course.cli import main
from course.config import DkimAlgorithm, load_settings
from course.dkim import (
    SIGNED_HEADERS,
    Keyring,
    dns_record,
    generate_key,
    header_fields,
    load_signers,
    private_pem,
    relaxed_body,
    relaxed_body_end,
    sign_whole,
    verify,
)
from course.errors import ConfigError
from course.message import Recipient
from course.runtime import Runtime
from course.web.preview import start_preview

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REQUIRED = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-id",
}
DOUBLE = """
  dkim:
    - {selector: rsa2026, algorithm: rsa-sha256}
    - {selector: ed2026, algorithm: ed25519-sha256}
"""


@dataclass(frozen=True)
class Keys:
    """Keys made once for the module: the PEM files and the DNS records to answer with."""

    folder: Path
    records: dict[str, str]

    def install(self, project: Path) -> None:
        state = project / "state"
        state.mkdir(exist_ok=True)
        for key in self.folder.iterdir():
            shutil.copy(key, state / key.name)
            (state / key.name).chmod(0o600)

    def dns(self, name: bytes, timeout: int = 5) -> bytes | None:
        """dkimpy's DNS hook: `selector._domainkey.domain.` -> the TXT record."""
        return Keyring(self.records).lookup(name, timeout)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("keys")
    records = {}
    for selector, algorithm in (
        ("rsa2026", DkimAlgorithm.RSA_SHA256),
        ("ed2026", DkimAlgorithm.ED25519_SHA256),
    ):
        key = generate_key(algorithm)
        (folder / f"dkim-{selector}.key").write_bytes(private_pem(key))
        records[f"{selector}._domainkey.example.com"] = dns_record(key)
    return Keys(folder, records)


def configure(project: Path, keys: Keys, dkim_yaml: str = DOUBLE, extra: str = "") -> Path:
    keys.install(project)
    config = project / "schedule.yaml"
    text = (REPO / "schedule.yaml").read_text(encoding="utf-8")  # each call starts afresh
    text = text.replace(
        'postal_address: "1 Example Street, Springfield, EX 00000"\n',
        'postal_address: "1 Example Street, Springfield, EX 00000"\n' + dkim_yaml + extra,
    )
    config.write_text(text, encoding="utf-8")
    return config


def signatures(data: bytes) -> list[dict[str, str]]:
    head = data.partition(b"\r\n\r\n")[0]
    found = []
    for name, value in header_fields(head):
        if name.lower() == b"dkim-signature":
            text = re.sub(r"\s+", "", value.decode("ascii"))
            found.append(dict(part.split("=", 1) for part in text.split(";") if part))
    return found


def verifies(data: bytes, index: int, keys: Keys) -> bool:
    """dkimpy's verdict on the index-th signature (it raises on some mismatches)."""
    try:
        return bool(dkim.DKIM(data).verify(idx=index, dnsfunc=keys.dns))
    except dkim.DKIMException:
        return False


def assert_verifies(data: bytes, keys: Keys, count: int = 2) -> None:
    """dkimpy verifies every signature, each through the DNS hook."""
    found = signatures(data)
    assert len(found) == count
    for index in range(count):
        assert dkim.DKIM(data).verify(idx=index, dnsfunc=keys.dns), found[index]


def lesson_message(project: Path, day: int = 3, **recipient: str) -> bytes:
    settings = load_settings(project / "schedule.yaml")
    build = build_course(settings)
    sample = sample_recipient(settings)
    who = Recipient(
        recipient.get("email", sample.email),
        recipient.get("name", sample.name),
        recipient.get("url", sample.unsubscribe_url),
        {},
    )
    return build.lesson(day).build(who, date=NOW)[1]


# Signing


def test_double_signing_verifies_with_both_keys(project: Path, keys: Keys) -> None:
    configure(project, keys)
    data = lesson_message(project)
    assert_verifies(data, keys)
    rsa_sig, ed_sig = signatures(data)
    assert (rsa_sig["a"], rsa_sig["s"], rsa_sig["d"]) == ("rsa-sha256", "rsa2026", "example.com")
    assert (ed_sig["a"], ed_sig["s"]) == ("ed25519-sha256", "ed2026")
    for sig in (rsa_sig, ed_sig):
        assert sig["c"] == "relaxed/relaxed"
        assert sig["t"] == str(int(NOW.timestamp()))
        assert set(sig["h"].split(":")) >= REQUIRED
    # Every field line stays within 78 columns.
    head = data.partition(b"\r\n\r\n")[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78


@pytest.mark.parametrize("selector", ["rsa2026", "ed2026"])
def test_one_key_signs_once(project: Path, keys: Keys, selector: str) -> None:
    algorithm = "rsa-sha256" if selector.startswith("rsa") else "ed25519-sha256"
    configure(project, keys, f"  dkim:\n    selector: {selector}\n    algorithm: {algorithm}\n")
    assert_verifies(lesson_message(project), keys, count=1)


def test_every_signed_header_is_oversigned(project: Path, keys: Keys) -> None:
    configure(project, keys, extra='  reply_to: "help@example.com"\n  feedback_id: "a:b:c"\n')
    data = lesson_message(project)
    assert_verifies(data, keys)
    listed = signatures(data)[0]["h"].split(":")
    present = [
        n.decode() for n in SIGNED_HEADERS if n.decode() in REQUIRED | {"reply-to", "feedback-id"}
    ]
    assert listed == present + [n.decode() for n in SIGNED_HEADERS]
    # A second From (or any signed header) added on the way breaks both signatures.
    forged = data.replace(b"\r\nTo: ", b"\r\nFrom: Mallory <m@example.org>\r\nTo: ", 1)
    assert not verifies(forged, 0, keys)
    assert not verifies(forged, 1, keys)


def test_personal_values_are_covered(project: Path, keys: Keys) -> None:
    configure(project, keys)
    data = lesson_message(project, name="Zoë  Ünïcode   Spaces", url="https://e.example/u/x")
    assert_verifies(data, keys)
    changed = data.replace(b"https://e.example/u/x", b"https://e.example/u/y")
    assert changed != data
    assert not verifies(changed, 0, keys)
    assert not verifies(changed, 1, keys)


def refold(data: bytes) -> bytes:
    """What a relay may do under relaxed canonicalisation: unfold and re-fold every header
    at other places, stretch blanks, add trailing blanks to body lines, add Received."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = []
    for name, value in header_fields(head):
        flat = re.sub(rb"\r\n[ \t]+", b" ", value).strip()
        words = flat.split(b" ")
        folded = name + b":  " + words[0]
        for word in words[1:]:
            folded += (
                b"\r\n\t" if len(words) > 3 and word is words[len(words) // 2] else b"  "
            ) + word
        lines.append(folded)
    received = (
        b"Received: from relay.example.net (relay.example.net [192.0.2.1])\r\n\tby mx.example.org; "
        + NOW.strftime("%a, %d %b %Y %H:%M:%S +0000").encode()
    )
    body = body.replace(b"\r\n", b" \t\r\n").replace(b"Hi ", b"Hi    ")
    return received + b"\r\n" + b"\r\n".join(lines) + b"\r\n\r\n" + body + b"\r\n\r\n"


def test_a_message_refolded_by_a_relay_still_verifies(project: Path, keys: Keys) -> None:
    configure(project, keys)
    data = lesson_message(project)
    relayed = refold(data)
    assert relayed != data
    assert relayed.count(b"\r\n\t") > 5
    assert_verifies(relayed, keys)


def test_canonical_pieces_match_the_whole_body() -> None:
    pieces = [b"a  b \t\r\n", b"\tc\r\n\r\n", b"d=\r\n", b"end\r\n\r\n\r\n"]
    whole = b"".join(pieces)
    by_piece = b"".join(relaxed_body(p) for p in pieces[:-1]) + relaxed_body_end(pieces[-1])
    assert by_piece == b"a b\r\n c\r\n\r\nd=\r\nend\r\n"
    assert by_piece == relaxed_body_end(whole)
    assert relaxed_body_end(b"\r\n\r\n") == b""


def test_sign_whole_signs_any_message(keys: Keys, tmp_path: Path) -> None:
    keys.install(tmp_path)
    config = tmp_path / "schedule.yaml"
    config.write_text(
        'sender:\n  from: "C <c@mail.example.com>"\n  dkim:\n    domain: example.com\n'
        "    selector: ed2026\n    algorithm: ed25519-sha256\n"
    )
    signers = load_signers(load_settings(config).sender.dkim)
    message = b"From: c@mail.example.com\r\nTo: x@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
    assert_verifies(sign_whole(signers, message, NOW), keys, count=1)


# Every path a message takes is signed


def delivered_via(project: Path, backend: str, port: int = 0) -> list[bytes]:
    """Run one tick with `backend` and return what it delivered."""
    config = project / "schedule.yaml"
    text = config.read_text(encoding="utf-8").replace("backend: inbox", f"backend: {backend}")
    if backend == "smtp":
        text = text.replace("base_url: http://127.0.0.1:8026", "base_url: https://c.example.com")
        text = text.replace(
            "  # smtp:\n", f"  smtp:\n    host: 127.0.0.1\n    port: {port}\n    security: none\n"
        )
    config.write_text(text, encoding="utf-8")
    (project / "examples" / "subscribers.csv").write_text(
        "email,first_name\nana@example.org,Ana\nbo@example.net,Bo\n", encoding="utf-8"
    )
    settings = load_settings(config)
    runtime = Runtime.open(settings, clock=lambda: NOW)
    try:
        runtime.refresh_subscribers(NOW)
        report = runtime.tick(NOW)
        backend_used = runtime.backend
    finally:
        runtime.close()
    assert report.sent == 2, report.summary()
    if isinstance(backend_used, MemoryBackend):
        return [m.data for m in backend_used.outbox]
    if backend == "inbox":
        return [m.read_bytes() for m in read_inbox(settings.delivery.inbox)]
    return [p.read_bytes() for p in sorted(settings.delivery.outbox.glob("*.eml"))]


@pytest.mark.parametrize("backend", ["inbox", "file", "memory"])
def test_local_backends_deliver_signed_messages(project: Path, keys: Keys, backend: str) -> None:
    configure(project, keys)
    delivered = delivered_via(project, backend)
    assert len(delivered) == 2
    for data in delivered:
        assert_verifies(data, keys)


def test_smtp_delivers_signed_messages(project: Path, keys: Keys) -> None:
    configure(project, keys)
    handler = ScriptedHandler()
    with smtp_server(handler) as info:
        delivered_via(project, "smtp", info.port)
    assert len(handler.messages) == 2
    for received in handler.messages:
        assert_verifies(received.content, keys)


def test_build_eml_and_preview_show_the_signed_message(project: Path, keys: Keys) -> None:
    configure(project, keys)
    settings = load_settings(project / "schedule.yaml")
    write_build(build_course(settings), settings, project / "out", now=NOW)
    assert_verifies((project / "out" / "day-05.eml").read_bytes(), keys)
    server = start_preview(settings, 0, spamassassin=False)
    try:
        eml = httpx.get(f"{server.url}lessons/5/message.eml").content
        page = httpx.get(f"{server.url}lessons/5").text
    finally:
        server.stop()
    assert_verifies(eml, keys)
    assert "DKIM-Signature" in page
    assert re.search(r'data-check="DKIM".*?verifies: rsa-sha256', page, re.S)


# Keys and configuration


def run(project: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.chdir(project),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "ed25519-sha256"])
def test_keygen_writes_a_private_key_and_prints_its_record(project: Path, algorithm: str) -> None:
    code, out, _ = run(
        project,
        "dkim-keygen",
        "--domain",
        "example.com",
        "--selector",
        "s1",
        "--algorithm",
        algorithm,
    )
    assert code == 0
    key = project / "state" / "dkim-s1.key"
    assert key.stat().st_mode & 0o777 == 0o600
    record = re.search(r"^v=DKIM1; k=(\w+); p=([A-Za-z0-9+/=]+)$", out, re.M)
    assert record is not None
    assert record[1] == ("rsa" if algorithm == "rsa-sha256" else "ed25519")
    assert "s1._domainkey.example.com" in out
    assert "s1._domainkey.example.com. IN TXT (" in out
    # The printed record verifies what the written key signs.
    config = project / "schedule.yaml"
    config.write_text(
        config.read_text().replace(
            'postal_address: "1 Example Street, Springfield, EX 00000"\n',
            'postal_address: "1 Example Street, Springfield, EX 00000"\n'
            f"  dkim:\n    selector: s1\n    algorithm: {algorithm}\n",
        )
    )
    data = lesson_message(project)
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: f"{record[0]}".encode())
    if algorithm == "rsa-sha256":
        public = base64.b64decode(record[2])
        assert len(public) > 256  # a 2048-bit modulus in SubjectPublicKeyInfo


def test_keygen_never_replaces_a_key(project: Path) -> None:
    args = ("dkim-keygen", "--domain", "example.com", "--selector", "s1")
    assert run(project, *args)[0] == 0
    before = (project / "state" / "dkim-s1.key").read_bytes()
    code, _, err = run(project, *args)
    assert code == 1
    assert err.startswith("course: error: ")
    assert "already exists" in err
    assert (project / "state" / "dkim-s1.key").read_bytes() == before


def test_keygen_out_and_bad_arguments(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "keys" / "k.pem"
    code, printed, _ = run(
        project, "dkim-keygen", "--domain", "Example.COM.", "--selector", "s2", "--out", str(out)
    )
    assert code == 0
    assert out.stat().st_mode & 0o777 == 0o600
    assert "s2._domainkey.example.com" in printed
    assert "key_file:" in printed
    code, _, err = run(project, "dkim-keygen", "--domain", "example.org", "--selector", "s3")
    assert code == 0
    assert "course: warning: --domain example.org does not align with sender.from" in err
    code, _, err = run(project, "dkim-keygen", "--domain", "not a domain", "--selector", "s")
    assert (code, err.strip()) == (
        1,
        "course: error: --domain: expected a domain name such as example.com, got 'not a domain'",
    )
    code, _, err = run(project, "dkim-keygen", "--domain", "example.com", "--selector", "../x")
    assert code == 1
    assert "--selector" in err


def error_for(project: Path, keys: Keys, dkim_yaml: str, env: dict[str, str] | None = None) -> str:
    configure(project, keys, dkim_yaml)
    with pytest.raises(ConfigError) as caught:
        build_course(load_settings(project / "schedule.yaml"), env or {})
    return str(caught.value)


def test_a_key_readable_by_others_is_refused(project: Path, keys: Keys) -> None:
    configure(project, keys)
    (project / "state" / "dkim-rsa2026.key").chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        build_course(load_settings(project / "schedule.yaml"))
    assert str(caught.value) == (
        f"{project / 'schedule.yaml'}: sender.dkim[0].key_file: "
        f"{project / 'state' / 'dkim-rsa2026.key'} can be read by other users (mode 0644); "
        f"a private key must be yours alone: chmod 600 {project / 'state' / 'dkim-rsa2026.key'}"
    )


def test_key_problems_name_the_key_and_the_fix(project: Path, keys: Keys) -> None:
    missing = error_for(project, keys, "  dkim: {selector: nokey}\n")
    assert "sender.dkim.key_file" in missing
    assert "course dkim-keygen --domain example.com --selector nokey" in missing
    wrong = error_for(project, keys, "  dkim: {selector: ed2026}\n")
    assert "holds a key for ed25519-sha256, but sender.dkim.algorithm is rsa-sha256" in wrong
    unset = error_for(project, keys, "  dkim: {selector: e, key_env: DKIM_KEY}\n")
    assert "environment variable DKIM_KEY is not set" in unset
    garbage = error_for(
        project, keys, "  dkim: {selector: e, key_env: DKIM_KEY}\n", {"DKIM_KEY": "nope"}
    )
    assert "sender.dkim.key_env (DKIM_KEY): not a usable private key" in garbage
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    short = error_for(
        project,
        keys,
        "  dkim: {selector: e, key_env: DKIM_KEY}\n",
        {"DKIM_KEY": private_pem(weak).decode()},
    )
    assert "a 1024-bit RSA key is too weak" in short


def test_a_key_from_the_environment_signs(project: Path, keys: Keys) -> None:
    configure(
        project, keys, "  dkim: {selector: ed2026, algorithm: ed25519-sha256, key_env: DKIM_KEY}\n"
    )
    pem = (keys.folder / "dkim-ed2026.key").read_text()
    settings = load_settings(project / "schedule.yaml")
    build = build_course(settings, {"DKIM_KEY": pem})
    data = build.lesson(1).build(sample_recipient(settings), date=NOW)[1]
    assert_verifies(data, keys, count=1)


@pytest.mark.parametrize(
    ("dkim_yaml", "message"),
    [
        (
            "  dkim: {domain: example.org, selector: s}\n",
            "sender.dkim.domain: expected the From domain example.com or a parent of it "
            "(DMARC alignment), got 'example.org'",
        ),
        ("  dkim: {selector: ''}\n", "sender.dkim.selector: expected a selector"),
        (
            "  dkim: {selector: s, algorithm: rsa-sha1}\n",
            "sender.dkim.algorithm: expected one of rsa-sha256, ed25519-sha256, got 'rsa-sha1'",
        ),
        (
            "  dkim: {selector: s, key_file: a.key, key_env: K}\n",
            "sender.dkim: expected key_file or key_env, not both",
        ),
        (
            "  dkim: [{selector: s}, {selector: s}]\n",
            "sender.dkim: expected a different selector for each key",
        ),
        ("  dkim: {selector: s, colour: red}\n", "sender.dkim.colour: unknown key"),
        ("  dkim: []\n", "sender.dkim: expected a key or a list of keys"),
    ],
)
def test_dkim_settings_are_validated(
    project: Path, keys: Keys, dkim_yaml: str, message: str
) -> None:
    configure(project, keys, dkim_yaml)
    with pytest.raises(ConfigError) as caught:
        load_settings(project / "schedule.yaml")
    assert message in str(caught.value)


def test_a_parent_domain_aligns(project: Path, keys: Keys) -> None:
    dkim_yaml = "  dkim: {domain: example.com, selector: ed2026, algorithm: ed25519-sha256}\n"
    configure(project, keys, dkim_yaml)
    config = project / "schedule.yaml"
    config.write_text(config.read_text().replace("hello@example.com", "hello@news.example.com"))
    settings = load_settings(config)
    assert settings.sender.dkim[0].domain == "example.com"
    assert_verifies(lesson_message(project), keys, count=1)


def test_verify_reports_each_signature(project: Path, keys: Keys) -> None:
    configure(project, keys)
    data = lesson_message(project)
    ring = Keyring(keys.records)
    assert [c.valid for c in verify(data, ring)] == [True, True]
    tampered = data.replace(b"Subject: Day 3", b"Subject: Day 4")
    checks = verify(tampered, ring)
    assert [c.valid for c in checks] == [False, False]
    only_rsa = Keyring({k: v for k, v in keys.records.items() if k.startswith("rsa")})
    assert [c.problem for c in verify(data, only_rsa)][
        1
    ] == "no configured key for this selector and domain"
