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
        # Paid-newsletter tools: every kind of paying or comped reader is still subscribed
        # (Buttondown's subscriber_type, Ghost's status, Steady's subscription_state).
        "regular",
        # Kit: not opened in a while, still a confirmed subscriber who gets every broadcast.
        "cold",
        "unpaid",
        "trial",
        "trialed",
        "trialing",
        "intrial",
        "gifted",
        "gift",
        "comp",
        "comped",
        "complimentary",
        "founding",
        "churning",
        "notrenewing",
        "pastdue",
        "guest",
        # Constant Contact's permission statuses, HubSpot's marketing contact status.
        "implicit",
        "explicit",
        "marketingcontact",
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
        "attivo",
        "iscritto",
        "ativo",
        "inscrito",
        "actief",
        "ingeschreven",
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
        "pendingconfirmation",
        "confirmationpending",
        "unactivated",
        "notactivated",
        "validating",
        "unbestätigt",
        "ausstehend",
        "nonconfirmé",
        "enattente",
        "pendiente",
        "inattesa",
        "pendente",
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
        "abbestellt",
        "ausgetragen",
        "désabonné",
        "desabonne",
        "désinscrit",
        "baja",
        "dadodebaja",
        "cancelado",
        "cancelada",
        "disiscritto",
        "descadastrado",
        "uitgeschreven",
        "afgemeld",
    }
)
# The address does not take mail: the suppression list, as bounced.
BOUNCED_VALUES: Final = frozenset(
    {"bounced", "hardbounce", "hardbounced", "cleaned", "undeliverable", "rebotado"}
)
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
        # Contacts who never opted in: Mailchimp's non-subscribed, Klaviyo's and Shopify's
        # consent states, HubSpot's non-marketing contacts, Constant Contact's "not set".
        "nonsubscribed",
        "notsubscribed",
        "neversubscribed",
        "nonmarketingcontact",
        "notset",
        "redacted",
        "spammy",
        "excluded",
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
TRUE_VALUES: Final = frozenset(
    {"true", "yes", "y", "1", "t", "x", "✓", "✔", "wahr", "ja", "vrai", "oui", "sí", "si", "sim"}
)
FALSE_VALUES: Final = frozenset(
    {"false", "no", "n", "0", "f", "", "falsch", "nein", "faux", "non", "não", "nao"}
)
# What an opt-out column holds for someone who never opted out, besides FALSE_VALUES.
NOTHING_VALUES: Final = frozenset({"none", "null", "nil", "never", "na", "n/a", "[]", "{}"})
# Every value a status, consent or opt-out column is known to hold: what tells a column headed
# `State` or `Subscribed` that holds statuses from one that holds regions or dates.
STATUS_VOCABULARY: Final = (
    ACTIVE_VALUES
    | UNCONFIRMED_VALUES
    | UNSUBSCRIBED_VALUES
    | BOUNCED_VALUES
    | INACTIVE_VALUES
    | (TRUE_VALUES - {""})
    | (FALSE_VALUES - {""})
)


def value_key(value: str) -> str:
    """Status values are compared case-folded, without spaces, dashes or underscores."""
    return "".join(ch for ch in value.casefold() if ch not in " -_\t")


class RuleKind(StrEnum):
    """How a status column's values are read."""

    KNOWN_VALUES = "known values"  # the tables above
    ACTIVE_LIST = "active list"  # subscribers.status: only the listed values are active
    # Subscribed when yes (Ghost's subscribed_to_emails, Shopify's Accepts Email Marketing):
    # no, empty or anything else is no consent to mail.
    CONSENT = "consent"
    # Left when set (Substack's email_disabled, HubSpot's Unsubscribed from all email, an
    # unsubscribed_at date): yes, a date or any other value says they left.
    OPT_OUT = "opt-out"
    WHOLE_FILE = "whole file"  # the export itself lists people who left (Mailchimp)


@dataclass(frozen=True)
class StatusRule:
    """How to read one status column (or, for WHOLE_FILE, the file's shape)."""

    kind: RuleKind
    active: frozenset[str] = frozenset()
    # For WHOLE_FILE: why every row is out, e.g. "Mailchimp's unsubscribed export".
    reason: str = ""
    # For OPT_OUT: what a set value says about the person.
    left_as: Standing = Standing.UNSUBSCRIBED

    @classmethod
    def active_list(cls, values: Collection[str]) -> StatusRule:
        return cls(RuleKind.ACTIVE_LIST, frozenset(value_key(v) for v in values))

    @classmethod
    def opt_out(cls, left_as: Standing = Standing.UNSUBSCRIBED) -> StatusRule:
        return cls(RuleKind.OPT_OUT, left_as=left_as)

    def describe(self) -> str:
        """For the mapping printout: what counts as subscribed."""
        if self.kind is RuleKind.ACTIVE_LIST:
            return "active when one of: " + ", ".join(sorted(self.active))
        if self.kind is RuleKind.CONSENT:
            return "subscribed when yes/true; no, empty or unsubscribed are skipped"
        if self.kind is RuleKind.OPT_OUT:
            said = {
                Standing.UNSUBSCRIBED: "unsubscribed",
                Standing.BOUNCED: "bounced",
            }.get(self.left_as, "not subscribed")
            return f"yes/true or a date means {said}: skipped"
        if self.kind is RuleKind.WHOLE_FILE:
            return self.reason
        return "unsubscribed, cancelled, bounced, blocklisted ... are skipped"

    def standing(self, value: str) -> tuple[Standing, bool]:
        """The row's standing by this value, and whether the value was recognised."""
        key = value_key(value)
        if self.kind is RuleKind.WHOLE_FILE:
            return Standing.UNSUBSCRIBED, True
        if self.kind is RuleKind.OPT_OUT:
            if key in FALSE_VALUES or key in NOTHING_VALUES:
                return Standing.ACTIVE, True
            # A yes, a date, a reason: whatever is written there says they left.
            return self.left_as, True
        if self.kind is RuleKind.ACTIVE_LIST:
            if key in self.active:
                return Standing.ACTIVE, True
            # Not one of the operator's active values; a value that says the person left
            # still puts them on the suppression list.
            return _leaving(key) or Standing.INACTIVE, True
        if self.kind is RuleKind.CONSENT:
            if key in TRUE_VALUES or key in ACTIVE_VALUES:
                return Standing.ACTIVE, True
            if key in FALSE_VALUES:
                # No consent recorded is no consent: never mailed, but not suppressed
                # either, so a later "yes" brings them in.
                return Standing.INACTIVE, True
        elif not key or key in ACTIVE_VALUES:
            # An empty status says nothing about leaving.
            return Standing.ACTIVE, True
        if key in UNCONFIRMED_VALUES:
            return Standing.UNCONFIRMED, True
        left = _leaving(key)
        if left is not None:
            return left, True
        return Standing.INACTIVE, key in INACTIVE_VALUES


def is_status_word(value: str) -> bool:
    """Whether a value is one a status, consent or opt-out column holds."""
    key = value_key(value)
    return bool(key) and key in STATUS_VOCABULARY


def _leaving(key: str) -> Standing | None:
    if key in UNSUBSCRIBED_VALUES:
        return Standing.UNSUBSCRIBED
    if key in BOUNCED_VALUES:
        return Standing.BOUNCED
    return None
