"""DKIM (RFC 6376) signatures on finished messages: rsa-sha256, and ed25519-sha256 (RFC 8463).

Signing is per message, because every body is personalised, so it is built for the hot
path: the body is canonicalised piece by piece (`relaxed_body`), and a lesson's
unchanging pieces are canonicalised once (see `course.message`); the header hash covers
a dozen short fields; the private-key operation is OpenSSL's (RSA, through
`cryptography`) or libsodium's (Ed25519, through PyNaCl). dkimpy is the verifier: the
tests and `course check` verify every signature with it.

Canonicalisation is relaxed/relaxed, so a relay that re-folds headers or re-spaces the
body does not break the signature.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import dkim as dkimpy
import nacl.signing
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from course.config import DkimAlgorithm, DkimSettings
from course.errors import ConfigError

MIN_RSA_BITS = 2048
KEYGEN_RSA_BITS = 2048
# Signed, in this order. Each is listed once more than it appears (absent ones once), so
# nobody on the way can add a second From, a Reply-To or another unsubscribe link
# without breaking the signature (RFC 6376 section 8.15).
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"mime-version",
    b"content-type",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"feedback-id",
)
_WSP = re.compile(rb"[ \t]+")
_TRAILING_WSP = re.compile(rb"[ \t]+\r\n")
_CHUNK = 70  # characters of base64 per line of a folded b= value


def relaxed_body(piece: bytes) -> bytes:
    """RFC 6376 3.4.4 for a run of whole lines (ending with CRLF), except for the rule on
    empty lines at the very end of the body, which only the last piece can have."""
    if b"\t" not in piece and b"  " not in piece and b" \r\n" not in piece:
        return piece  # the usual filled-in value: nothing to change, no regex to run
    return _WSP.sub(b" ", _TRAILING_WSP.sub(b"\r\n", piece))


def relaxed_body_end(piece: bytes) -> bytes:
    """The last piece of a body: relaxed, and its trailing empty lines dropped."""
    canonical = relaxed_body(piece)
    while canonical.endswith(b"\r\n\r\n"):
        canonical = canonical[:-2]
    return b"" if canonical == b"\r\n" else canonical


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """RFC 6376 3.4.2, without the CRLF: lowercase name, unfolded value, blanks as one."""
    unfolded = value.replace(b"\r\n", b"")
    if b"\t" in unfolded or b"  " in unfolded:
        unfolded = _WSP.sub(b" ", unfolded)
    unfolded = unfolded.strip(b" ")
    return name.strip().lower() + b":" + unfolded


def header_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """A header block (CRLF lines, the empty line optional) as (name, raw value) pairs."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        else:
            name, _, value = line.partition(b":")
            fields.append((name, value))
    return fields


# (lowercase name, relaxed "name:value") of each field, in order.
CanonicalFields = list[tuple[bytes, bytes]]


def canonical_fields(head: bytes) -> CanonicalFields:
    """Each field of a header block in relaxed form, ready for `DkimSigner.signature`.

    A lesson's fixed fields can be canonicalised once and joined to each message's own.
    """
    return [(n.strip().lower(), relaxed_header(n, v)) for n, v in header_fields(head)]


PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class DkimSigner:
    """One signing identity: d=, s=, a= and the private key behind them."""

    def __init__(
        self, domain: str, selector: str, algorithm: DkimAlgorithm, private_key: PrivateKey
    ) -> None:
        self.domain = domain
        self.selector = selector
        self.algorithm = algorithm
        self.private_key = private_key
        self._ed25519: nacl.signing.SigningKey | None = None
        if isinstance(private_key, ed25519.Ed25519PrivateKey):
            seed = private_key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            # libsodium signs in about half the time OpenSSL takes here.
            self._ed25519 = nacl.signing.SigningKey(seed)
        self._opening = (
            f"DKIM-Signature: v=1; a={algorithm}; c=relaxed/relaxed;\r\n"
            f" d={domain}; s={selector}; t="
        ).encode("ascii")
        self._relaxed_opening = (
            f"dkim-signature:v=1; a={algorithm}; c=relaxed/relaxed; d={domain}; s={selector}; t="
        ).encode("ascii")
        self._plans: dict[tuple[bytes, ...], tuple[list[int], bytes, bytes]] = {}

    def __repr__(self) -> str:
        return f"DkimSigner({self.algorithm} d={self.domain} s={self.selector})"

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    def dns_record(self) -> str:
        """The TXT record to publish at `dns_name`."""
        return dns_record(self.private_key)

    def signature(self, fields: CanonicalFields, body_hash: bytes, date: datetime) -> bytes:
        """The DKIM-Signature field (CRLF-terminated) for a message with these header
        fields (see `canonical_fields`) and body hash; it goes at the top of the message."""
        order, folded_h, relaxed_h = self._plan(tuple(name for name, _ in fields))
        signed_fields = [fields[index][1] for index in order]
        stamp = str(int(date.timestamp())).encode("ascii")
        bh = base64.b64encode(body_hash)
        # The field as written, and the relaxed form a verifier computes from it (folds
        # become single spaces, b= empty): if they differed, no signature would verify.
        unsigned = self._opening + stamp + b";\r\n h=" + folded_h + b";\r\n bh=" + bh + b";\r\n b="
        signed_fields.append(
            self._relaxed_opening + stamp + b"; h=" + relaxed_h + b"; bh=" + bh + b"; b="
        )
        digest = hashlib.sha256(b"\r\n".join(signed_fields)).digest()
        signed = base64.b64encode(self._sign(digest))
        chunks = [signed[i : i + _CHUNK] for i in range(0, len(signed), _CHUNK)]
        return unsigned + b"\r\n  ".join(chunks) + b"\r\n"

    def _plan(self, names: tuple[bytes, ...]) -> tuple[list[int], bytes, bytes]:
        """Which fields are signed in which order, and h= folded and relaxed, for messages
        whose fields have these names. Every message of a lesson has the same names, so
        this is worked out once per lesson."""
        found = self._plans.get(names)
        if found is None:
            order: list[int] = []
            for wanted in SIGNED_HEADERS:
                # Several instances are signed from the bottom up (RFC 6376 5.4.2).
                order += [i for i in reversed(range(len(names))) if names[i] == wanted]
            listed = tuple(names[i] for i in order) + SIGNED_HEADERS
            folded = _fold_list(b":".join(listed))
            found = (order, folded, _WSP.sub(b" ", folded.replace(b"\r\n", b"")))
            if len(self._plans) < 64:
                self._plans[names] = found
        return found

    def _sign(self, digest: bytes) -> bytes:
        if self._ed25519 is not None:
            # RFC 8463: Ed25519 signs the SHA-256 hash of the canonical header data.
            return bytes(self._ed25519.sign(digest).signature)
        assert isinstance(self.private_key, rsa.RSAPrivateKey)
        return self.private_key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))


def _fold_list(h_tag: bytes, width: int = 64) -> bytes:
    """`a:b:c` folded after colons so no line of the field passes 78 columns."""
    lines: list[bytes] = [b""]
    for name in h_tag.split(b":"):
        if lines[-1] and len(lines[-1]) + len(name) + 1 > width:
            lines[-1] += b":"
            lines.append(name)
        else:
            lines[-1] = lines[-1] + b":" + name if lines[-1] else name
    return b"\r\n  ".join(lines)


def sign_message(
    signers: Sequence[DkimSigner], fields: CanonicalFields, body_hash: bytes, date: datetime
) -> bytes:
    """Every signer's DKIM-Signature field, one after another (double signing)."""
    return b"".join(signer.signature(fields, body_hash, date) for signer in signers)


def body_hash(message: bytes) -> bytes:
    """The relaxed body hash of a whole message (for messages not built piece by piece)."""
    _, _, body = message.partition(b"\r\n\r\n")
    return hashlib.sha256(relaxed_body_end(body)).digest()


def sign_whole(signers: Sequence[DkimSigner], message: bytes, date: datetime) -> bytes:
    """A finished message with signatures on top."""
    head, _, _ = message.partition(b"\r\n\r\n")
    fields = canonical_fields(head)
    return sign_message(signers, fields, body_hash(message), date) + message


# Keys


def load_signers(
    configured: Iterable[DkimSettings], environ: Mapping[str, str] = os.environ
) -> tuple[DkimSigner, ...]:
    """The configured keys, read from their files or environment variables and checked."""
    return tuple(load_signer(settings, environ) for settings in configured)


def load_signer(settings: DkimSettings, environ: Mapping[str, str]) -> DkimSigner:
    where = settings.where
    if settings.key_env:
        text = environ.get(settings.key_env, "")
        if not text:
            raise ConfigError(
                f"{where}.key_env: the environment variable {settings.key_env} is not set; "
                "export it with the private key (PEM)"
            )
        data = text.encode("utf-8")
        origin = f"{where}.key_env ({settings.key_env})"
    else:
        path = settings.key_file
        assert path is not None  # config guarantees one of key_file and key_env
        data = read_key_file(path, f"{where}.key_file", settings)
        origin = f"{where}.key_file ({path})"
    key = parse_private_key(data, origin)
    _check_key(key, settings, origin)
    return DkimSigner(settings.domain, settings.selector, settings.algorithm, key)


def read_key_file(path: Path, key: str, settings: DkimSettings) -> bytes:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(
            f"{key}: {path} does not exist; create it with `course dkim-keygen --domain "
            f"{settings.domain} --selector {settings.selector} --out {path}`"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{key}: {path} can be read by other users (mode {stat.S_IMODE(mode):04o}); "
            f"a private key must be yours alone: chmod 600 {path}"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None


def parse_private_key(data: bytes, origin: str) -> PrivateKey:
    """A PEM private key (PKCS#8 or PKCS#1), or a bare base64 Ed25519 seed as some DKIM
    tools write it."""
    stripped = data.strip()
    try:
        if stripped.startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(stripped, password=None)
        else:
            seed = base64.b64decode(stripped, validate=True)
            if len(seed) != 32:
                raise ValueError("not a PEM key or a base64 Ed25519 seed")
            key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    except (ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{origin}: not a usable private key: {reason}") from None
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{origin}: expected an RSA or Ed25519 key, got {type(key).__name__}")
    return key


def _check_key(key: PrivateKey, settings: DkimSettings, origin: str) -> None:
    kind = DkimAlgorithm.RSA_SHA256 if isinstance(key, rsa.RSAPrivateKey) else None
    kind = kind or DkimAlgorithm.ED25519_SHA256
    if kind != settings.algorithm:
        raise ConfigError(
            f"{origin}: holds a key for {kind}, but {settings.key}.algorithm is "
            f"{settings.algorithm}"
        )
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < MIN_RSA_BITS:
        raise ConfigError(
            f"{origin}: a {key.key_size}-bit RSA key is too weak for mailbox providers; "
            f"make a {KEYGEN_RSA_BITS}-bit one with `course dkim-keygen`"
        )


def generate_key(algorithm: DkimAlgorithm) -> PrivateKey:
    if algorithm == DkimAlgorithm.RSA_SHA256:
        return rsa.generate_private_key(public_exponent=65537, key_size=KEYGEN_RSA_BITS)
    return ed25519.Ed25519PrivateKey.generate()


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def dns_record(key: PrivateKey) -> str:
    """`v=DKIM1; k=…; p=…`: the public half, as RFC 6376 (RSA) and RFC 8463 (Ed25519) say."""
    if isinstance(key, rsa.RSAPrivateKey):
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode('ascii')}"
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"


def zone_line(name: str, record: str) -> str:
    """A zone-file TXT line, the record split into strings of at most 255 characters."""
    parts = [record[i : i + 250] for i in range(0, len(record), 250)]
    quoted = "\n    ".join(f'"{part}"' for part in parts)
    return f"{name}. IN TXT (\n    {quoted} )"


# Verifying (dkimpy)


@dataclass(frozen=True)
class SignatureCheck:
    """One DKIM-Signature of a message and whether it verifies."""

    domain: str
    selector: str
    algorithm: str
    valid: bool
    problem: str = ""

    def describe(self) -> str:
        what = f"{self.algorithm} d={self.domain} s={self.selector}"
        return what if self.valid else f"{what}: {self.problem or 'does not verify'}"


class Keyring:
    """Public keys by DNS name, answering dkimpy's TXT lookups instead of the DNS."""

    def __init__(self, records: Mapping[str, str]) -> None:
        self._records = {name.rstrip(".").lower(): record for name, record in records.items()}

    @classmethod
    def of(cls, signers: Iterable[DkimSigner]) -> Keyring:
        return cls({s.dns_name: s.dns_record() for s in signers})

    def __bool__(self) -> bool:
        return bool(self._records)

    def names(self) -> set[str]:
        return set(self._records)

    def lookup(self, name: bytes | str, timeout: int = 5) -> bytes | None:
        text = name.decode("ascii") if isinstance(name, bytes) else name
        record = self._records.get(text.rstrip(".").lower())
        return record.encode("ascii") if record is not None else None


_QUIET = logging.getLogger("course.dkim.verify")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def verify(message: bytes, keyring: Keyring) -> list[SignatureCheck]:
    """Every DKIM-Signature of `message`, verified by dkimpy against `keyring`'s keys."""
    head, _, _ = message.partition(b"\r\n\r\n")
    signatures = [v for n, v in header_fields(head) if n.strip().lower() == b"dkim-signature"]
    checks = []
    for index, value in enumerate(signatures):
        tags = _tags(value)
        domain, selector = tags.get("d", "?"), tags.get("s", "?")
        problem = ""
        if keyring.lookup(f"{selector}._domainkey.{domain}") is None:
            valid, problem = False, "no configured key for this selector and domain"
        else:
            try:
                verifier = dkimpy.DKIM(message, logger=_QUIET, minkey=MIN_RSA_BITS)
                valid = bool(verifier.verify(idx=index, dnsfunc=keyring.lookup))
            except dkimpy.DKIMException as exc:
                valid, problem = False, str(exc)
        checks.append(
            SignatureCheck(domain, selector, tags.get("a", "?"), valid, "" if valid else problem)
        )
    return checks


def _tags(value: bytes) -> dict[str, str]:
    text = re.sub(r"\s+", "", value.decode("ascii", errors="replace"))
    return {k: v for k, _, v in (part.partition("=") for part in text.split(";")) if k}
