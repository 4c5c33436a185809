"""Values the operator types on the command line, checked before any command runs.

argparse types (a bad value is a usage error naming the option, exit 2) and the check for
addresses typed by hand, which goes through the same validation as the CSV's (exit 1).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from course.errors import CourseError
from course.subscribers.emails import InvalidAddress, normalize_email

MAX_PORT = 65535
MAX_DAYS = 3660
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def path_argument(text: str) -> Path:
    """A file or folder path; an empty one would silently mean the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a path, got {text!r}")
    if _CONTROL.search(text):
        raise argparse.ArgumentTypeError(f"a path cannot contain control characters: {text!r}")
    return Path(text)


def port_argument(text: str) -> int:
    """A TCP port, 1 to 65535; 0 asks for any free port (the server prints which)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= MAX_PORT:
        raise argparse.ArgumentTypeError(
            f"expected a port number 1-{MAX_PORT} (or 0 for any free one), got {text!r}"
        )
    return port


def host_argument(text: str) -> str:
    """A host name or IP address to listen on; empty would mean every interface."""
    host = text.strip(" ")
    if not host or _CONTROL.search(host) or " " in host:
        raise argparse.ArgumentTypeError(
            f"expected a host name or IP address such as 127.0.0.1, got {text!r}"
        )
    return host


def positive_int(text: str) -> int:
    """A whole number >= 1 (a lesson number)."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return number


def day_count(text: str) -> int:
    """How many days to simulate: 1 to MAX_DAYS (ten years is more than any course needs)."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_DAYS:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of days from 1 to {MAX_DAYS}, got {text!r}"
        )
    return number


class TypedAddressError(CourseError):
    """An address typed by the operator is not a valid email address."""


def operator_address(text: str, option: str) -> str:
    """The address the operator typed, validated and normalised exactly as the CSV's are.

    The CSV reader's own normaliser (email-validator, syntax only): internationalised domains
    are accepted and come back in their Unicode form whether typed as Unicode or IDNA (xn--),
    the domain lowercased. Surrounding spaces are dropped; a control character anywhere (a
    newline pasted along with the address) is refused, as it is in a CSV row.
    """
    if _CONTROL.search(text):
        raise TypedAddressError(f"{option}: {text!r} contains a control character (a line break?)")
    try:
        return normalize_email(text.strip(" \t"))
    except InvalidAddress as exc:
        raise TypedAddressError(f"{option}: {text!r}: {exc}") from None
