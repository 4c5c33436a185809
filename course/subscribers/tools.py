"""The export shapes of the tools operators come from, recognised by their header keys.

Recognising the tool names it in `course subscribers` and settles what a generic table cannot:
which column holds the status (`type` is MailerLite's; `email_disabled` is Substack's switch),
and that Mailchimp's unsubscribed and cleaned exports list only people who left.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import PurePath
from typing import Final

from course.subscribers.fields import FORM_TIMESTAMPS, Field
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
    # A word the file's name must have as well (Mailchimp's non-subscribed export has the
    # very columns of its subscribed one; only the name it is saved under tells them apart).
    name_word: str = ""

    def evidence_in(self, keys: Keys) -> list[str]:
        """The header keys (and the file name) that gave the shape away, for the report."""
        found = [key for key in self.evidence if key in keys]
        if self.name_word:
            found.append(f"the file name ({self.name_word})")
        return found


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


def _mailchimp_named(word: str, what: str, left_as: Standing, why: str = "") -> Tool:
    return Tool(
        f"Mailchimp's {what}-members export",
        _mailchimp,
        everyone_left=f"in Mailchimp's {what} export{why}",
        left_as=left_as,
        evidence=("emailaddress", "memberrating", "leid"),
        name_word=word,
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
TOOLS: Final = (
    _mailchimp_left("unsubtime", "unsubscribed", Standing.UNSUBSCRIBED),
    _mailchimp_left("cleantime", "cleaned", Standing.BOUNCED),
    # Contacts who bought or were added but never opted in: not to be mailed, not suppressed.
    _mailchimp_named(
        "nonsubscribed", "non-subscribed", Standing.INACTIVE, " (never opted in to email)"
    ),
    _mailchimp_named("unsubscribed", "unsubscribed", Standing.UNSUBSCRIBED),
    _mailchimp_named("cleaned", "cleaned", Standing.BOUNCED),
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
        statuses={"emaildisabled": StatusRule.opt_out()},
        columns={"activesubscription": Field.EXTRA, "plan": Field.EXTRA},
        evidence=("emaildisabled", "activesubscription", "plan"),
    ),
    Tool(
        # `state` is judged by its values like any column headed so (a region, or a status).
        "Kit's (ConvertKit's) subscribers export",
        _all("emailaddress", "state"),
        evidence=("emailaddress", "state"),
    ),
    Tool(
        "Ghost's members export",
        _all("email", "subscribedtoemails", "complimentaryplan"),
        evidence=("subscribedtoemails", "complimentaryplan", "stripecustomerid", "deletedat"),
    ),
    Tool(
        "Buttondown's subscribers export",
        _all("email", "subscribertype"),
        columns={"metadata": Field.ATTRIBUTES},
        evidence=("subscribertype", "metadata"),
    ),
    Tool(
        "Shopify's customers export",
        lambda keys: (
            _any("acceptsemailmarketing", "acceptsmarketing")(keys)
            and _any("totalspent", "totalorders", "taxexempt")(keys)
        ),
        evidence=("acceptsemailmarketing", "acceptsmarketing", "totalspent", "totalorders"),
    ),
    Tool(
        "HubSpot's contacts export",
        lambda keys: (
            "recordid" in keys
            and _any("unsubscribedfromallemail", "marketingcontactstatus", "contactowner")(keys)
        ),
        evidence=("recordid", "unsubscribedfromallemail", "marketingcontactstatus"),
    ),
    Tool(
        "Klaviyo's profiles export",
        _any("klaviyoid", "emailmarketingconsent"),
        evidence=("klaviyoid", "emailmarketingconsent"),
    ),
    Tool(
        "Brevo's (Sendinblue's) contacts export",
        lambda keys: "emailblacklisted" in keys or _all("contactid", "smsblacklisted")(keys),
        evidence=("emailblacklisted", "smsblacklisted", "doubleoptin"),
    ),
    Tool(
        "AWeber's subscribers export",
        _all("adtracking", "subscribedate"),
        evidence=("adtracking", "subscribedate", "stopstatus"),
    ),
    Tool(
        "Campaign Monitor's subscribers export",
        lambda keys: "consenttotrack" in keys and _any("emailaddress", "email")(keys),
        evidence=("consenttotrack", "datesubscribed"),
    ),
    Tool(
        "Steady's members export",
        _all("subscriptionstate", "planname"),
        evidence=("subscriptionstate", "planname"),
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
        evidence=(
            "subscriber",
            "type",
            "status",
            "signupip",
            "optinip",
            "confirmationip",
            "datesubscribe",
            "dateunsubscribe",
        ),
    ),
    Tool(
        "a Google Forms response sheet",
        # The form's own column comes first; a hand-made sheet with a timestamp is not a form.
        lambda keys: bool(keys) and keys[0] in FORM_TIMESTAMPS,
        evidence=FORM_TIMESTAMPS,
    ),
)


def recognise(keys: Keys, source: str = "") -> Tool | None:
    """The first tool whose shape the header keys (and file name) fit, or None."""
    words = file_name_words(source)
    for tool in TOOLS:
        if tool.recognise(keys) and (not tool.name_word or tool.name_word in words):
            return tool
    return None


# Words in a file's name that say who is in it, when it lists people who are not subscribed:
# `unsubscribed_members_export_3f2a.csv`, `cleaned.csv`, `Abmeldungen 2024.csv`.
GONE_BY_FILE_NAME: Final = {
    "unsubscribed": Standing.UNSUBSCRIBED,
    "unsubscribers": Standing.UNSUBSCRIBED,
    "unsubscribes": Standing.UNSUBSCRIBED,
    "optedout": Standing.UNSUBSCRIBED,
    "optouts": Standing.UNSUBSCRIBED,
    "complained": Standing.UNSUBSCRIBED,
    "complaints": Standing.UNSUBSCRIBED,
    "suppressed": Standing.UNSUBSCRIBED,
    "suppressions": Standing.UNSUBSCRIBED,
    "suppressionlist": Standing.UNSUBSCRIBED,
    "blocklist": Standing.UNSUBSCRIBED,
    "blocklisted": Standing.UNSUBSCRIBED,
    "blacklist": Standing.UNSUBSCRIBED,
    "blacklisted": Standing.UNSUBSCRIBED,
    "abgemeldet": Standing.UNSUBSCRIBED,
    "abmeldungen": Standing.UNSUBSCRIBED,
    "désabonnés": Standing.UNSUBSCRIBED,
    "desabonnes": Standing.UNSUBSCRIBED,
    "cleaned": Standing.BOUNCED,
    "bounced": Standing.BOUNCED,
    "hardbounces": Standing.BOUNCED,
    "nonsubscribed": Standing.INACTIVE,
    "nonsubscribers": Standing.INACTIVE,
}
_NAME_SPLIT = re.compile(r"[^\w]+|_+")


def file_name_words(source: str) -> frozenset[str]:
    """The words of a file's name (without its extension), lowercase, and each two adjacent
    ones joined: `non-subscribed members.csv` has `non`, `subscribed`, `nonsubscribed`."""
    if not source:
        return frozenset()
    parts = [part for part in _NAME_SPLIT.split(PurePath(source).stem.casefold()) if part]
    return frozenset(parts + [a + b for a, b in pairwise(parts)])


def gone_by_file_name(source: str) -> tuple[str, Standing] | None:
    """The word of the file's name that says nobody in it is subscribed, and how they left."""
    for word in sorted(file_name_words(source)):
        if word in GONE_BY_FILE_NAME:
            return word, GONE_BY_FILE_NAME[word]
    return None
