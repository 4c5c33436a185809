"""`course dkim-keygen`: a DKIM private key, and the DNS record that publishes its public half."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from course.arguments import path_argument
from course.config import DOMAIN_PATTERN, SELECTOR_PATTERN, DkimAlgorithm, Settings, a_label
from course.dkim import dns_record, generate_key, private_pem, zone_line
from course.errors import CourseError


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keygen = commands.add_parser(
        "dkim-keygen", help="make a DKIM signing key and print the DNS record to publish"
    )
    keygen.add_argument(
        "--domain",
        required=True,
        metavar="DOMAIN",
        help="the signing domain (d=), e.g. example.com",
    )
    keygen.add_argument(
        "--selector", required=True, metavar="SELECTOR", help="the selector (s=), e.g. s2026"
    )
    keygen.add_argument(
        "--algorithm",
        choices=[str(a) for a in DkimAlgorithm],
        default=str(DkimAlgorithm.RSA_SHA256),
        help="rsa-sha256 (2048-bit, every receiver) or ed25519-sha256 (RFC 8463); "
        "default rsa-sha256",
    )
    keygen.add_argument(
        "--out",
        type=path_argument,
        default=None,
        metavar="FILE",
        help="where to write the private key (default: state/dkim-SELECTOR.key)",
    )
    keygen.set_defaults(handler=cmd_dkim_keygen)


def cmd_dkim_keygen(args: argparse.Namespace, settings: Settings) -> int:
    domain = a_label(str(args.domain).strip().lower().rstrip("."))
    if not DOMAIN_PATTERN.fullmatch(domain):
        raise CourseError(f"--domain: expected a domain name such as example.com, got {domain!r}")
    selector = str(args.selector)
    if not SELECTOR_PATTERN.fullmatch(selector):
        raise CourseError(
            f"--selector: expected letters, digits, '-' or '_' such as s2026, got {selector!r}"
        )
    algorithm = DkimAlgorithm(args.algorithm)
    sender = a_label(settings.sender.domain.lower())
    if sender != domain and not sender.endswith("." + domain):
        print(
            f"course: warning: --domain {domain} does not align with sender.from "
            f"({settings.sender.from_address}): DMARC needs d= to be the From domain or a "
            "parent of it, and sender.dkim will refuse it until sender.from changes",
            file=sys.stderr,
        )
    out: Path = args.out or settings.base_dir / "state" / f"dkim-{selector}.key"
    key = generate_key(algorithm)
    write_private(out, private_pem(key))
    name = f"{selector}._domainkey.{domain}"
    record = dns_record(key)
    print(f"Wrote the private key to {out} (mode 0600). Keep it secret; back it up.")
    print()
    print(f"Publish this TXT record at {name}:")
    print()
    print(record)
    print()
    print("As a zone-file line:")
    print()
    print(zone_line(name, record))
    print()
    print("Then sign with it (schedule.yaml):")
    print()
    print("sender:\n  dkim:")
    print(f"    domain: {domain}\n    selector: {selector}\n    algorithm: {algorithm}")
    if args.out is not None:
        # key_file is read relative to schedule.yaml's folder, --out to the current one.
        print(f"    key_file: {os.path.relpath(out.resolve(), settings.base_dir.resolve())}")
    return 0


def write_private(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 from the start; never replace an existing key."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CourseError(
            f"{path}: already exists; a key in use must not be replaced by accident. "
            "Choose another --selector or --out (rotate by publishing the new selector first)"
        ) from None
    except OSError as exc:
        raise CourseError(f"{path}: cannot create: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise CourseError(f"{path}: cannot write: {exc.strerror}") from None
