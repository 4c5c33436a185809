"""Personal unsubscribe tokens: HMAC-signed, so nobody can forge or alter one."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from course.errors import ConfigError, CourseError
from course.tokens import MalformedToken, decode, encode, sign, signature_matches

SECRET_FILE = "state/unsubscribe.secret"  # noqa: S105 (a path, not a secret)
MIN_SECRET_BYTES = 16


class InvalidToken(CourseError):
    """A token that was not made with our secret, or was altered; says nothing more."""


@dataclass(frozen=True, slots=True)
class TokenOwner:
    """Whom a valid token speaks for."""

    course_id: str
    email: str


def load_secret(secret_env: str, base_dir: Path, environ: Mapping[str, str]) -> bytes:
    """The secret from the environment variable, else one generated once in the state folder."""
    value = environ.get(secret_env, "")
    if value:
        if len(value.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"environment variable {secret_env}: the unsubscribe secret must "
                f"be at least {MIN_SECRET_BYTES} bytes long"
            )
        return value.encode()
    return _state_secret(base_dir / SECRET_FILE)


def _state_secret(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
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
# A course id (up to 63) and an address (up to 320 octets, UTF-8) with a separator.
MAX_TOKEN_CHARS = 600


def make_token(secret: bytes, course_id: str, email: str) -> str:
    """`payload.signature`, both base64url; the payload names the course and subscriber."""
    payload = f"{course_id}\0{email}".encode()
    return f"{encode(payload)}.{encode(sign(secret, PURPOSE, payload))}"


def verify_token(secret: bytes, token: str) -> TokenOwner:
    """The owner of a genuine token, in the one spelling we issued; InvalidToken otherwise."""
    try:
        payload_text, signature_text = token.split(".")
        payload = decode(payload_text, max_chars=MAX_TOKEN_CHARS)
        signature = decode(signature_text, max_chars=MAX_TOKEN_CHARS)
    except (ValueError, MalformedToken):
        raise InvalidToken("invalid unsubscribe link") from None
    if len(signature) != 32 or not signature_matches(secret, PURPOSE, payload, signature):
        raise InvalidToken("invalid unsubscribe link")
    course_id, _, email = payload.decode("utf-8", "replace").partition("\0")
    return TokenOwner(course_id, email)


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url}/unsubscribe/{token}"
