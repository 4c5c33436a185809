"""Addresses validated and normalised by email-validator, with the domain half cached."""

from __future__ import annotations

from typing import Final

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, DOT_ATOM_TEXT

_DOMAIN_CACHE_MAX = 100_000
_EMAIL_MAX_BYTES = 254
_ROLE_MAILBOXES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
_UNSEEN: Final = ("", 0)  # a domain not in the cache yet


class InvalidAddress(Exception):
    """The operator-facing reason an address was refused (email-validator's own words)."""


class EmailNormalizer:
    """email-validator's verdict on each address, with the domain half cached.

    validate_email costs ~30 µs, two thirds of it checking the domain, and real lists repeat
    a few domains. For a plain ASCII dot-atom local part (not an RFC 2142 role name, which it
    lowercases) the library returns the local part unchanged and checks the domain on its own,
    so local@domain normalises to local + '@' + the normalised domain of 'a@' + domain, provided
    the whole fits in 254 bytes. Every other address, valid or not, goes through validate_email
    itself, so all error messages are the library's. A test checks both paths agree.
    """

    def __init__(self) -> None:
        self._domains: dict[str, tuple[str, int] | None] = {}

    def normalize(self, raw: str) -> str:
        """The normalised address; raises InvalidAddress with the library's reason if invalid."""
        local, _, domain = raw.partition("@")
        known = self._domains.get(domain, _UNSEEN)
        if known is _UNSEEN:
            known = self._domain(domain)
        if (
            known is not None
            and DOT_ATOM_TEXT.match(local)
            and local.lower() not in _ROLE_MAILBOXES
            and len(local) + 1 + known[1] <= _EMAIL_MAX_BYTES
        ):
            return local + "@" + known[0]
        return normalize_email(raw)

    def _domain(self, domain: str) -> tuple[str, int] | None:
        """(normalised domain, longest UTF-8 length of its forms), None if not known good."""
        # Bounded so that a file of a million distinct domains cannot grow the cache unchecked.
        if len(self._domains) >= _DOMAIN_CACHE_MAX:
            return None
        known = self._domains[domain] = _probe_domain(domain)
        return known


def _probe_domain(domain: str) -> tuple[str, int] | None:
    """Validate domain behind a trivial local part; None if email-validator refuses it."""
    try:
        probe = validate_email("a@" + domain, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        return None
    forms = (domain, probe.domain, probe.ascii_domain)
    return probe.domain, max(len(form.encode()) for form in forms)


def normalize_email(raw: str) -> str:
    """Validate with email-validator and return its normalised form.

    test_environment=True accepts the reserved '.test' domain (and bare '@test') so operators
    can rehearse against a local SMTP sink; it also turns off DNS checks, which we never want
    here. Other special-use domains (localhost, .local, .invalid, .onion) stay rejected.
    """
    try:
        return validate_email(raw, check_deliverability=False, test_environment=True).normalized
    except EmailNotValidError as error:
        raise InvalidAddress(f"invalid email address: {error}") from None


def duplicate_key(email: str) -> str:
    """Addresses differing only in case are one subscriber: mailboxes are case-blind in practice."""
    # Most addresses are lowercase already; reusing them saves a string per row.
    return email if email.islower() else email.lower()
