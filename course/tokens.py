"""Signed tokens: one text encoding, one signature, one opaque id per subscriber.

Unsubscribe links use these, and so can anything else that must name a subscriber in
public (a VERP return path names the subscriber and the day the same way). Three rules:

- **Canonical only.** `decode()` accepts exactly the text `encode()` makes: the base64url
  alphabet, no padding, no stray characters, and no spare low bits set in the last
  character. So a token verifies in one spelling only; `…A` and `…B`, or `…%21%21`, are
  not the same token dressed differently but invalid.
- **Purpose-bound signatures.** `sign()` prefixes a purpose, so a signature made for one use
  (an unsubscribe link) never verifies as another (a return path).
- **Opaque ids.** `subscriber_ref()` names a subscriber without revealing the address: a keyed
  hash of (course, address). It is the same for the same secret whatever the ledger's row
  ids, so it survives a ledger rebuilt from backups and a list re-imported in another order.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Final

_ALPHABET: Final = re.compile(r"[A-Za-z0-9_-]*")
SUBSCRIBER_REF_BYTES: Final = 12
# 12 bytes of base64url is exactly 16 characters, with no spare bits to vary.
SUBSCRIBER_REF_CHARS: Final = 16


class MalformedToken(ValueError):
    """Text that is not the canonical encoding of anything we could have issued."""


def encode(data: bytes) -> str:
    """base64url without padding: safe in URL paths and in an email's local part."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(text: str, *, max_chars: int = 1024) -> bytes:
    """The bytes `text` encodes; MalformedToken unless `text` is exactly `encode(bytes)`."""
    if len(text) > max_chars or len(text) % 4 == 1 or not _ALPHABET.fullmatch(text):
        raise MalformedToken("not canonical base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    # The last character may carry spare bits that decoding ignores; only the form with
    # those bits clear is canonical.
    if encode(data) != text:
        raise MalformedToken("not canonical base64url")
    return data


def sign(secret: bytes, purpose: str, payload: bytes) -> bytes:
    """HMAC-SHA256 of `payload` for one `purpose` (32 bytes; callers may keep a prefix)."""
    return hmac.new(secret, purpose.encode("ascii") + b"\0" + payload, hashlib.sha256).digest()


def signature_matches(secret: bytes, purpose: str, payload: bytes, signature: bytes) -> bool:
    """Constant-time check of a (possibly truncated, but at least 16-byte) signature."""
    if len(signature) < 16:
        return False
    expected = sign(secret, purpose, payload)[: len(signature)]
    return hmac.compare_digest(expected, signature)


def subscriber_ref(secret: bytes, course_id: str, email: str) -> str:
    """A subscriber's opaque id: 16 characters, stable for (secret, course, address).

    Addresses compare case-insensitively, as in the ledger, so `Ann@` and `ann@` share it.
    """
    payload = f"{course_id}\0{email.lower()}".encode()
    return encode(sign(secret, "subscriber-ref", payload)[:SUBSCRIBER_REF_BYTES])


def is_subscriber_ref(text: str) -> bool:
    """Whether `text` has the shape of a subscriber_ref() (not whether it is one of ours)."""
    if len(text) != SUBSCRIBER_REF_CHARS:
        return False
    try:
        decode(text)
    except MalformedToken:
        return False
    return True
