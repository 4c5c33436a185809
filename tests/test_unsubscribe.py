"""Unsubscribe tokens: only our secret makes them, and any change breaks them."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from course.errors import ConfigError
from course.tokens import MalformedToken, decode, encode, is_subscriber_ref, subscriber_ref
from course.unsubscribe import InvalidToken, legacy_token, load_secret, make_token, verify_token

SECRET = b"s" * 32
MAKERS = [make_token, legacy_token]


def test_a_new_token_names_the_subscriber_by_an_opaque_id_only() -> None:
    token = make_token(SECRET, "cats", "zoë@example.com")
    owner = verify_token(SECRET, token, course_id="cats")
    assert (owner.course_id, owner.email) == ("cats", "")
    assert owner.ref == subscriber_ref(SECRET, "cats", "zoë@example.com")
    payload = decode(token.split(".")[0])
    assert b"zo" not in payload
    assert b"@" not in payload
    assert b"example" not in payload
    assert len(token) == 39


def test_tokens_already_sent_keep_working() -> None:
    owner = verify_token(SECRET, legacy_token(SECRET, "cats", "zoë@example.com"), course_id="cats")
    assert (owner.course_id, owner.email, owner.ref) == ("cats", "zoë@example.com", "")


@pytest.mark.parametrize("maker", MAKERS)
def test_token_is_url_safe_and_stable(maker: Callable[[bytes, str, str], str]) -> None:
    token = maker(SECRET, "cats", "ann@example.com")
    assert token == maker(SECRET, "cats", "ann@example.com")
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


@pytest.mark.parametrize("maker", MAKERS)
@pytest.mark.parametrize(
    "tamper",
    [
        lambda t, m: t[:-1] + ("A" if t[-1] != "A" else "B"),  # altered signature
        lambda t, m: t[:-5],  # truncated
        lambda t, m: m(SECRET, "cats", "eve@example.com").split(".")[0] + "." + t.split(".")[1],
        lambda t, m: m(b"o" * 32, "cats", "ann@example.com"),  # another secret
        lambda t, m: m(SECRET, "dogs", "ann@example.com"),  # another course
        lambda t, m: "",
        lambda t, m: "not a token",
        lambda t, m: t + ".extra",
        lambda t, m: "%%%." + t.split(".")[1],
    ],
)
def test_forged_or_altered_tokens_are_refused(
    maker: Callable[[bytes, str, str], str],
    tamper: Callable[[str, Callable[[bytes, str, str], str]], str],
) -> None:
    token = maker(SECRET, "cats", "ann@example.com")
    with pytest.raises(InvalidToken, match=r"^invalid unsubscribe link$"):
        verify_token(SECRET, tamper(token, maker), course_id="cats")


def test_secret_from_environment(tmp_path: Path) -> None:
    assert load_secret("COURSE_SECRET", tmp_path, {"COURSE_SECRET": "x" * 20}) == b"x" * 20
    assert not (tmp_path / "state").exists()


def test_short_environment_secret_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="COURSE_SECRET: the unsubscribe secret must be at least"):
        load_secret("COURSE_SECRET", tmp_path, {"COURSE_SECRET": "short"})


def test_secret_generated_once_and_kept_private(tmp_path: Path) -> None:
    first = load_secret("COURSE_SECRET", tmp_path, {})
    again = load_secret("COURSE_SECRET", tmp_path, {})
    assert first == again
    assert len(first) >= 32
    path = tmp_path / "state" / "unsubscribe.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def spare_bit_twins(text: str) -> list[str]:
    """`text` with its last character's unused low bits set: lenient decoders read the same."""
    spare = {1: 0, 2: 4, 3: 2}[len(text) % 4] if len(text) % 4 else 0
    index = B64URL.index(text[-1])
    return [text[:-1] + B64URL[index | bits] for bits in range(1, 1 << spare) if spare]


@pytest.mark.parametrize("maker", MAKERS)
def test_only_the_canonical_spelling_verifies(maker: Callable[[bytes, str, str], str]) -> None:
    token = maker(SECRET, "cats", "ann@example.com")
    payload, signature = token.split(".")
    twins = [f"{payload}.{s}" for s in spare_bit_twins(signature)]
    twins += [f"{p}.{signature}" for p in spare_bit_twins(payload)]
    assert twins, "the example must have spare bits to vary"
    for variant in [
        *twins,
        f"{payload}.{signature[:10]}!!{signature[10:]}",
        f"{payload}.{signature}==",
        f"{payload}=.{signature}",
        f"{payload}.{signature[:20]}\n{signature[20:]}",
        f"{payload.replace('-', '+').replace('_', '/')}.{signature}",
    ]:
        if variant == token:
            continue
        with pytest.raises(InvalidToken):
            verify_token(SECRET, variant, course_id="cats")
    assert verify_token(SECRET, token, course_id="cats").course_id == "cats"


def test_canonical_decoding_round_trips_every_length() -> None:
    for size in range(40):
        data = bytes(range(size))
        assert decode(encode(data)) == data
    for bad in ("A", "AB=", "A B", "AB+", "ABCDE"):
        with pytest.raises(MalformedToken):
            decode(bad)


def test_subscriber_refs_are_opaque_stable_and_per_course() -> None:
    ref = subscriber_ref(SECRET, "cats", "Ann@Example.com")
    assert ref == subscriber_ref(SECRET, "cats", "ann@example.com")
    assert ref != subscriber_ref(SECRET, "dogs", "ann@example.com")
    assert ref != subscriber_ref(b"o" * 32, "cats", "ann@example.com")
    assert len(ref) == 16
    assert is_subscriber_ref(ref)
    assert "ann" not in ref.lower()
    assert not is_subscriber_ref(ref[:-1] + "!")
