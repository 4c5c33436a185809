"""Whether a row is subscribed, according to the status columns its tool writes.

A value that says someone left (unsubscribed, cancelled, bounced, blocklisted, ...) keeps them
from ever being mailed. A value nobody recognises does too: mailing someone whose source marks
them gone is worse than leaving someone out, and the report names the value and the fix.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Standing(StrEnum):
    """What a row's status says about the person."""

    ACTIVE = "active"
    # Double opt-in still pending: skipped unless `subscribers.unconfirmed: include`.
    UNCONFIRMED = "unconfirmed"
    INACTIVE = "inactive"


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
INACTIVE_VALUES: Final = frozenset(
    {
        "inactive",
        "unsubscribed",
        "unsubscribe",
        "optedout",
        "optout",
        "cancelled",
        "canceled",
        "bounced",
        "hardbounce",
        "hardbounced",
        "softbounced",
        "complained",
        "spam",
        "spamcomplaint",
        "junk",
        "cleaned",
        "blocklisted",
        "blacklisted",
        "blocked",
        "disabled",
        "deleted",
        "removed",
        "suppressed",
        "archived",
        "invalid",
        "needsattention",
        "transactional",
        "expired",
        "left",
        "inaktiv",
        "abgemeldet",
        "gelöscht",
        "désabonné",
        "desabonne",
        "désinscrit",
        "inactif",
        "inactivo",
        "baja",
        "dadodebaja",
    }
)
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
            return Standing.INACTIVE, True
        if self.kind is RuleKind.DISABLED_FLAG:
            if key in FALSE_VALUES:
                return Standing.ACTIVE, True
            return Standing.INACTIVE, key in TRUE_VALUES
        if self.kind is RuleKind.ACTIVE_LIST:
            return (Standing.ACTIVE if key in self.active else Standing.INACTIVE), True
        if not key or key in ACTIVE_VALUES:
            # An empty status says nothing about leaving.
            return Standing.ACTIVE, True
        if key in UNCONFIRMED_VALUES:
            return Standing.UNCONFIRMED, True
        return Standing.INACTIVE, key in INACTIVE_VALUES
