"""The export shapes of the tools operators come from, recognised by their header keys.

Recognising the tool names it in `course subscribers` and settles what a generic table cannot:
which column holds the status (`type` is MailerLite's; `email_disabled` is Substack's switch),
and that Mailchimp's unsubscribed and cleaned exports list only people who left.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from course.subscribers.fields import Field
from course.subscribers.statuses import RuleKind, Standing, StatusRule

# The header keys in file order.
Keys = tuple[str, ...]


@dataclass(frozen=True)
class Tool:
    """One export shape: how to recognise it and what its own columns mean."""

    name: str
    recognise: Callable[[Keys], bool]
    # Header key -> field, on top of the generic alias table.
    columns: Mapping[str, Field] = field(default_factory=dict)
    # Header key -> how that status column reads; keys absent from the file are ignored.
    statuses: Mapping[str, StatusRule] = field(default_factory=dict)
    # Why every row of this file is out (Mailchimp's unsubscribed/cleaned exports), or "",
    # and how they left: unsubscribed, or bounced (Mailchimp "cleans" addresses that bounce).
    everyone_left: str = ""
    left_as: Standing = Standing.UNSUBSCRIBED
    evidence: tuple[str, ...] = ()

    def evidence_in(self, keys: Keys) -> list[str]:
        """The header keys that gave the shape away, for the report."""
        return [key for key in self.evidence if key in keys]


_KNOWN = StatusRule(RuleKind.KNOWN_VALUES)
_MAILCHIMP_MARKERS: Final = frozenset(
    {"memberrating", "optintime", "optinip", "confirmtime", "confirmip", "leid", "euid", "gmtoff"}
)


def _mailchimp(keys: Keys) -> bool:
    return "emailaddress" in keys and len(_MAILCHIMP_MARKERS.intersection(keys)) >= 2


def _mailchimp_left(marker: str, what: str, left_as: Standing) -> Tool:
    return Tool(
        f"Mailchimp's {what}-members export",
        lambda keys: _mailchimp(keys) and marker in keys,
        everyone_left=f"in Mailchimp's {what} export",
        left_as=left_as,
        evidence=("emailaddress", "memberrating", "leid", marker),
    )


def _any(*wanted: str) -> Callable[[Keys], bool]:
    return lambda keys: any(key in keys for key in wanted)


def _all(*wanted: str) -> Callable[[Keys], bool]:
    return lambda keys: all(key in keys for key in wanted)


_BEEHIIV_MARKERS = _any(
    "subscriptiontier",
    "subscriptionpremiumtiernames",
    "utmchannel",
    "referralcode",
    "referringsite",
)
_MAILERLITE_MARKERS = _any(
    "signupip",
    "optinip",
    "confirmationip",
    "confirmationtimestamp",
    "signuptimestamp",
    "unsubscribedat",
    "datesubscribe",
    "dateunsubscribe",
)
_FORM_TIMESTAMPS = (
    "timestamp",
    "zeitstempel",
    "horodateur",
    "marcatemporal",
    "informazionicronologiche",
)

TOOLS: Final = (
    _mailchimp_left("unsubtime", "unsubscribed", Standing.UNSUBSCRIBED),
    _mailchimp_left("cleantime", "cleaned", Standing.BOUNCED),
    Tool(
        "Mailchimp's subscribed-members export",
        _mailchimp,
        evidence=("emailaddress", "memberrating", "optintime", "confirmtime", "leid"),
    ),
    Tool(
        "listmonk's subscribers export",
        _all("uuid", "email", "name", "attributes", "status"),
        columns={"name": Field.FULL_NAME, "attributes": Field.ATTRIBUTES},
        statuses={"status": _KNOWN, "subscriptionstatus": _KNOWN},
        evidence=("uuid", "attributes", "status"),
    ),
    Tool(
        "Substack's email list export",
        lambda keys: "email" in keys and "emaildisabled" in keys,
        statuses={"emaildisabled": StatusRule(RuleKind.DISABLED_FLAG)},
        columns={"activesubscription": Field.EXTRA, "plan": Field.EXTRA},
        evidence=("emaildisabled", "activesubscription", "plan"),
    ),
    Tool(
        "Kit's (ConvertKit's) subscribers export",
        _all("emailaddress", "state"),
        statuses={"state": _KNOWN},
        evidence=("emailaddress", "state"),
    ),
    Tool(
        "beehiiv's subscribers export",
        lambda keys: "email" in keys and "status" in keys and _BEEHIIV_MARKERS(keys),
        statuses={"status": _KNOWN},
        evidence=("status", "subscriptiontier", "utmsource", "utmchannel", "referralcode"),
    ),
    Tool(
        "MailerLite's subscribers export",
        lambda keys: (
            _any("email", "subscriber")(keys)
            and _any("status", "type")(keys)
            and _MAILERLITE_MARKERS(keys)
        ),
        columns={"subscriber": Field.EMAIL},
        statuses={"status": _KNOWN, "type": _KNOWN},
        evidence=("subscriber", "type", "status", "signupip", "optinip", "confirmationip"),
    ),
    Tool(
        "a Google Forms response sheet",
        # The form's own column comes first; a hand-made sheet with a timestamp is not a form.
        lambda keys: bool(keys) and keys[0] in _FORM_TIMESTAMPS,
        evidence=_FORM_TIMESTAMPS,
    ),
)


def recognise(keys: Keys) -> Tool | None:
    """The first tool whose shape the header keys fit, or None for a hand-made CSV."""
    for tool in TOOLS:
        if tool.recognise(keys):
            return tool
    return None
