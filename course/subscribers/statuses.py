"""Whether a row is subscribed, according to the status columns its tool writes.

A value that says someone left (unsubscribed, cancelled, bounced, blocklisted, ...) keeps them
from ever being mailed. A value nobody recognises does too: mailing someone whose source marks
them gone is worse than leaving someone out, and the report names the value and the fix.

Not every "not subscribed" is the same. A person who unsubscribed or complained, and an address
that bounced, have said no: the course puts them on its suppression list, and a later export
listing them again does not bring them back (only `course resubscribe` does). A row that is
merely not active now (inactive, disabled, unconfirmed, a value nobody knows) stops them the way
a row that disappeared does, and they are back when the export lists them as active again.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Standing(StrEnum):
    """What a row's status says about the person, from mailable to gone for good."""

    ACTIVE = "active"
    # Double opt-in still pending: skipped unless `subscribers.unconfirmed: include`.
    UNCONFIRMED = "unconfirmed"
    # Not subscribed now, for a reason that can pass (inactive, disabled, a value nobody
    # knows): skipped, and back on the course when a later export has them active.
    INACTIVE = "inactive"
    # The person left (unsubscribed, cancelled, complained, blocklisted): suppressed.
    UNSUBSCRIBED = "unsubscribed"
    # The address takes no mail (bounced, cleaned): suppressed.
    BOUNCED = "bounced"

    @property
    def suppresses(self) -> bool:
        """Whether the address goes on the suppression list, beyond skipping the row."""
        return self in (Standing.UNSUBSCRIBED, Standing.BOUNCED)

    @property
    def weight(self) -> int:
        """How strongly the value keeps mail away: of several status columns, the heaviest
        speaks for the row."""
        return _WEIGHTS[self]


# Values seen in the status columns of Kit, listmonk, MailerLite, Beehiiv, Mailchimp and
# friends, compared case-folded with spaces, dashes and underscores removed.
ACTIVE_VALUES: Final = frozenset(
    {
        "active",
        "subscribed",
        "confirmed",
        "enabled",
        "optedin",
        "optin",
        "valid",
        "member",
        "free",
        "paid",
        "premium",
        # German, French and Spanish spreadsheets
        "aktiv",
        "angemeldet",
        "bestätigt",
        "abonniert",
        "actif",
        "abonné",
        "inscrit",
        "activo",
        "suscrito",
    }
)
UNCONFIRMED_VALUES: Final = frozenset(
    {
        "unconfirmed",
        "pending",
        "notconfirmed",
        "awaitingconfirmation",
        "needsconfirmation",
        "doubleoptinpending",
        "validating",
        "unbestätigt",
        "ausstehend",
        "nonconfirmé",
        "enattente",
        "pendiente",
    }
)
# The person said no (or the tool says no on their behalf): the suppression list.
UNSUBSCRIBED_VALUES: Final = frozenset(
    {
        "unsubscribed",
        "unsubscribe",
        "optedout",
        "optout",
        "cancelled",
        "canceled",
        "complained",
        "spam",
        "spamcomplaint",
        "junk",
        "blocklisted",
        "blacklisted",
        "blocked",
        "suppressed",
        "left",
        "abgemeldet",
        "désabonné",
        "desabonne",
        "désinscrit",
        "baja",
        "dadodebaja",
    }
)
# The address does not take mail: the suppression list, as bounced.
BOUNCED_VALUES: Final = frozenset({"bounced", "hardbounce", "hardbounced", "cleaned"})
# Not subscribed now, for reasons that can pass: skipped, not suppressed.
INACTIVE_VALUES: Final = frozenset(
    {
        "inactive",
        "softbounced",
        "softbounce",
        "disabled",
        "deleted",
        "removed",
        "archived",
        "invalid",
        "needsattention",
        "transactional",
        "expired",
        "inaktiv",
        "gelöscht",
        "inactif",
        "inactivo",
    }
)
_WEIGHTS: Final = {
    Standing.ACTIVE: 0,
    Standing.UNCONFIRMED: 1,
    Standing.INACTIVE: 2,
    Standing.UNSUBSCRIBED: 3,
    Standing.BOUNCED: 3,
}
TRUE_VALUES: Final = frozenset({"true", "yes", "y", "1", "t", "x", "wahr", "ja", "vrai", "oui"})
FALSE_VALUES: Final = frozenset({"false", "no", "n", "0", "f", "", "falsch", "nein", "faux", "non"})


def value_key(value: str) -> str:
    """Status values are compared case-folded, without spaces, dashes or underscores."""
    return "".join(ch for ch in value.casefold() if ch not in " -_\t")


class RuleKind(StrEnum):
    """How a status column's values are read."""

    KNOWN_VALUES = "known values"  # the tables above
    ACTIVE_LIST = "active list"  # subscribers.status: only the listed values are active
    DISABLED_FLAG = "disabled flag"  # true means the address is switched off (Substack)
    WHOLE_FILE = "whole file"  # the export itself lists people who left (Mailchimp)


@dataclass(frozen=True)
class StatusRule:
    """How to read one status column (or, for WHOLE_FILE, the file's shape)."""

    kind: RuleKind
    active: frozenset[str] = frozenset()
    # For WHOLE_FILE: why every row is out, e.g. "Mailchimp's unsubscribed export".
    reason: str = ""

    @classmethod
    def active_list(cls, values: Collection[str]) -> StatusRule:
        return cls(RuleKind.ACTIVE_LIST, frozenset(value_key(v) for v in values))

    def describe(self) -> str:
        """For the mapping printout: what counts as subscribed."""
        if self.kind is RuleKind.ACTIVE_LIST:
            return "active when one of: " + ", ".join(sorted(self.active))
        if self.kind is RuleKind.DISABLED_FLAG:
            return "true means the address is switched off"
        if self.kind is RuleKind.WHOLE_FILE:
            return self.reason
        return "unsubscribed, cancelled, bounced, blocklisted ... are skipped"

    def standing(self, value: str) -> tuple[Standing, bool]:
        """The row's standing by this value, and whether the value was recognised."""
        key = value_key(value)
        if self.kind is RuleKind.WHOLE_FILE:
            return Standing.UNSUBSCRIBED, True
        if self.kind is RuleKind.DISABLED_FLAG:
            if key in FALSE_VALUES:
                return Standing.ACTIVE, True
            # Substack switches email off when the reader asks or the address bounces.
            return (
                (Standing.UNSUBSCRIBED, True) if key in TRUE_VALUES else (Standing.INACTIVE, False)
            )
        if self.kind is RuleKind.ACTIVE_LIST:
            if key in self.active:
                return Standing.ACTIVE, True
            # Not one of the operator's active values; a value that says the person left
            # still puts them on the suppression list.
            return _leaving(key) or Standing.INACTIVE, True
        if not key or key in ACTIVE_VALUES:
            # An empty status says nothing about leaving.
            return Standing.ACTIVE, True
        if key in UNCONFIRMED_VALUES:
            return Standing.UNCONFIRMED, True
        left = _leaving(key)
        if left is not None:
            return left, True
        return Standing.INACTIVE, key in INACTIVE_VALUES


def _leaving(key: str) -> Standing | None:
    if key in UNSUBSCRIBED_VALUES:
        return Standing.UNSUBSCRIBED
    if key in BOUNCED_VALUES:
        return Standing.BOUNCED
    return None
