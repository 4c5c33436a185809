"""The envelope sender (MAIL FROM), and VERP: one signed return path per subscriber and day.

With `sender.verp: true`, the lesson for day D to subscriber S goes out with the envelope
sender `local+TOKEN@domain`, where TOKEN names S by their opaque id (course.tokens'
subscriber_ref, which does not reveal the address) and D, signed with the course's secret
for the purpose "return-path". A bounce is mailed to that address, so whatever its body
says (or fails to say), the address it arrives at names the subscriber it is about.

TOKEN is lowercase base32: SMTP leaves a local part's case to the receiving host, and some
hosts and gateways fold it, which would break a case-sensitive encoding.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

from course.config import VERP_TOKEN_CHARS, SenderSettings
from course.tokens import (
    SUBSCRIBER_REF_BYTES,
    decode,
    encode,
    sign,
    signature_matches,
    subscriber_ref,
)

PURPOSE = "return-path"
SIGNATURE_BYTES = 16  # course.tokens verifies no shorter signature
DAY_BYTES = 2
TOKEN_BYTES = SUBSCRIBER_REF_BYTES + DAY_BYTES + SIGNATURE_BYTES
# 30 bytes of base32 is exactly 48 characters, with no padding and no spare bits.
assert len(base64.b32encode(bytes(TOKEN_BYTES))) == VERP_TOKEN_CHARS


@dataclass(frozen=True, slots=True)
class VerpMark:
    """What a genuine token says: whose lesson, which day."""

    ref: str  # course.tokens.subscriber_ref of the subscriber
    day: int


@dataclass(frozen=True, slots=True)
class Sighting:
    """The VERP tokens found among a message's envelope addresses."""

    marks: tuple[VerpMark, ...]
    forged: tuple[str, ...]  # addresses shaped like ours whose signature does not verify

    @property
    def mark(self) -> VerpMark | None:
        """The one subscriber and day the tokens agree on; None if none, or they disagree."""
        unique = set(self.marks)
        return unique.pop() if len(unique) == 1 else None


@dataclass(frozen=True)
class ReturnPath:
    """Makes each message's envelope sender, and reads tokens back from bounces."""

    address: str  # sender.return_path, else the From address
    verp: bool
    secret: bytes
    course_id: str

    @classmethod
    def from_settings(cls, sender: SenderSettings, secret: bytes, course_id: str) -> ReturnPath:
        return cls(sender.envelope_sender, sender.verp, secret, course_id)

    @property
    def local(self) -> str:
        return self.address.rpartition("@")[0]

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    def for_lesson(self, email: str, day: int) -> str:
        """The envelope sender of day `day` to `email`."""
        if not self.verp:
            return self.address
        return self.for_ref(subscriber_ref(self.secret, self.course_id, email), day)

    def for_ref(self, ref: str, day: int) -> str:
        """for_lesson() for the subscriber whose opaque id (subscriber_ref) is `ref`."""
        if not self.verp:
            return self.address
        return f"{self.local}+{self.token(ref, day)}@{self.domain}"

    def token(self, ref: str, day: int) -> str:
        payload = decode(ref) + day.to_bytes(DAY_BYTES, "big")
        signature = sign(self.secret, PURPOSE, self._signed(payload))[:SIGNATURE_BYTES]
        return base64.b32encode(payload + signature).decode("ascii").lower()

    def read(self, addresses: Iterable[str]) -> Sighting:
        """The genuine tokens among these addresses, and the forged ones."""
        pattern = re.compile(
            rf"^{re.escape(self.local)}\+([a-z2-7]{{{VERP_TOKEN_CHARS}}})@{re.escape(self.domain)}$",
            re.IGNORECASE,
        )
        marks: list[VerpMark] = []
        forged: list[str] = []
        for address in addresses:
            match = pattern.match(address.strip())
            if match is None:
                continue
            mark = self._verify(match[1])
            if mark is None:
                forged.append(address)
            else:
                marks.append(mark)
        return Sighting(tuple(marks), tuple(forged))

    def _verify(self, token: str) -> VerpMark | None:
        try:
            data = base64.b32decode(token.upper())
        except (binascii.Error, ValueError):
            return None
        payload, signature = data[:-SIGNATURE_BYTES], data[-SIGNATURE_BYTES:]
        if len(data) != TOKEN_BYTES or not signature_matches(
            self.secret, PURPOSE, self._signed(payload), signature
        ):
            return None
        ref = encode(payload[:SUBSCRIBER_REF_BYTES])
        return VerpMark(ref, int.from_bytes(payload[SUBSCRIBER_REF_BYTES:], "big"))

    def _signed(self, payload: bytes) -> bytes:
        # The course id is signed too: a course sharing the return path cannot claim our bounces.
        return self.course_id.encode() + b"\0" + payload
