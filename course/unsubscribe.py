"""Personal unsubscribe tokens: HMAC-signed, so nobody can forge or alter one.

A token is `payload.signature`, both canonical base64url (course.tokens). Two shapes verify:

- current: the payload is the subscriber's opaque id (course.tokens.subscriber_ref), and the
  16-byte signature binds it to this course. Whoever sees the URL learns nothing about
  the address; the ledger maps the id back (Ledger.subscriber_by_ref).
- legacy (what links sent before carry): the payload is `course\0address`, readable, with a
  32-byte signature. They keep working, so nobody who already has one is stuck.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from course.errors import ConfigError, CourseError
from course.tokens import (
    SUBSCRIBER_REF_BYTES,
    MalformedToken,
    decode,
    encode,
    sign,
    signature_matches,
    subscriber_ref,
)

SECRET_FILE = "state/unsubscribe.secret"  # noqa: S105 (a path, not a secret)
MIN_SECRET_BYTES = 16


class InvalidToken(CourseError):
    """A token that was not made with our secret, or was altered; says nothing more."""


@dataclass(frozen=True, slots=True)
class TokenOwner:
    """Whom a valid token speaks for: an opaque id (current tokens) or an address (legacy)."""

    course_id: str
    email: str = ""
    ref: str = ""


class MissingSecret(ConfigError):
    """Neither the environment variable nor state/unsubscribe.secret holds a secret."""


def load_secret(
    secret_env: str, base_dir: Path, environ: Mapping[str, str], *, create: bool = True
) -> bytes:
    """The secret from the environment variable, else the one kept in the state folder.

    With `create`, a missing state file is generated (the first run of a course); without,
    it is MissingSecret. course.state decides which: a course that has sent mail must never
    get a new secret by accident, or every link in its subscribers' inboxes stops working.
    """
    value = environ.get(secret_env, "")
    if value:
        if len(value.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"environment variable {secret_env}: the unsubscribe secret must "
                f"be at least {MIN_SECRET_BYTES} bytes long"
            )
        return value.encode()
    path = base_dir / SECRET_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        if not create:
            raise MissingSecret(f"{SECRET_FILE}: missing, and {secret_env} is not set") from None
    except OSError as exc:
        raise ConfigError(f"{SECRET_FILE}: cannot read: {exc.strerror or exc}") from None
    return create_secret(path)


def create_secret(path: Path) -> bytes:
    """A new random secret in `path` (mode 0600); if another process won the race, theirs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32).encode()
    # O_EXCL: if two processes race to create it, the loser reads the winner's secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret + b"\n")
    return secret


PURPOSE = "unsubscribe"
SIGNATURE_BYTES = 16
LEGACY_SIGNATURE_BYTES = 32
# A course id (up to 63) and an address (up to 320 octets, UTF-8) with a separator.
MAX_TOKEN_CHARS = 600


def make_token(secret: bytes, course_id: str, email: str) -> str:
    """The current token for a subscriber: `<opaque id>.<signature>` (39 characters)."""
    return token_for_ref(secret, course_id, subscriber_ref(secret, course_id, email))


def token_for_ref(secret: bytes, course_id: str, ref: str) -> str:
    """make_token() for the subscriber whose opaque id (subscriber_ref) is `ref`."""
    signature = sign(secret, PURPOSE, _ref_payload(course_id, decode(ref)))[:SIGNATURE_BYTES]
    return f"{ref}.{encode(signature)}"


def legacy_token(secret: bytes, course_id: str, email: str) -> str:
    """A token as sent before opaque ids: the course and the address, readable, signed."""
    payload = f"{course_id}\0{email}".encode()
    return f"{encode(payload)}.{encode(sign(secret, PURPOSE, payload))}"


def verify_token(secret: bytes, token: str, *, course_id: str) -> TokenOwner:
    """The owner of a genuine token of this course, in the one spelling we issued.

    InvalidToken for anything else: forged, altered, truncated, another course's, or the
    right bytes spelled another way.
    """
    try:
        payload_text, signature_text = token.split(".")
        payload = decode(payload_text, max_chars=MAX_TOKEN_CHARS)
        signature = decode(signature_text, max_chars=MAX_TOKEN_CHARS)
    except (ValueError, MalformedToken):
        raise InvalidToken("invalid unsubscribe link") from None
    if len(signature) == SIGNATURE_BYTES and len(payload) == SUBSCRIBER_REF_BYTES:
        if signature_matches(secret, PURPOSE, _ref_payload(course_id, payload), signature):
            return TokenOwner(course_id, ref=payload_text)
    elif len(signature) == LEGACY_SIGNATURE_BYTES and signature_matches(
        secret, PURPOSE, payload, signature
    ):
        named_course, _, email = payload.decode("utf-8", "replace").partition("\0")
        if named_course == course_id:
            return TokenOwner(course_id, email=email)
    raise InvalidToken("invalid unsubscribe link")


def _ref_payload(course_id: str, ref: bytes) -> bytes:
    # Distinct from any legacy payload ("course\0address"): course ids never hold "\0".
    return b"ref\0" + course_id.encode() + b"\0" + ref


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url}/unsubscribe/{token}"
