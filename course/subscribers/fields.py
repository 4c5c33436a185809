"""What a column can mean, the usual header names for each meaning, and how headers are compared.

Headers are compared by their key: letters and digits only, case-folded, so `Email Address`,
`email_address`, `EMAIL-ADDRESS` and `E-Mail` meet `emailaddress` or `email`. A question from a
form (`What's your first name?`) also meets the alias once its leading `what's your` is dropped.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum
from typing import Final


class Field(StrEnum):
    """What the import does with a column (the values `subscribers.columns` accepts)."""

    EMAIL = "email"
    FIRST_NAME = "first_name"
    LAST_NAME = "last_name"
    FULL_NAME = "full_name"
    TIMEZONE = "timezone"
    JOINED_AT = "joined_at"
    STATUS = "status"
    # A JSON object per row whose keys become template fields (listmonk's `attributes`).
    ATTRIBUTES = "attributes"
    # Nothing but a template field, even if its name looks like one of the above.
    EXTRA = "extra"


# Spellings a config may use for a field, besides the field's own name.
FIELD_SYNONYMS: Final = {
    "name": Field.FULL_NAME,
    "subscribed_at": Field.JOINED_AT,
    "time_zone": Field.TIMEZONE,
    "tz": Field.TIMEZONE,
    "state": Field.STATUS,
}

FIELD_LABELS: Final = {
    Field.EMAIL: "email",
    Field.FIRST_NAME: "first name",
    Field.LAST_NAME: "last name",
    Field.FULL_NAME: "full name",
    Field.TIMEZONE: "time zone",
    Field.JOINED_AT: "joined at",
    Field.STATUS: "status",
    Field.ATTRIBUTES: "attributes (JSON; its keys become template fields)",
    Field.EXTRA: "template field",
}

# Aliases by field, as header keys, most specific first: when two columns could hold the same
# field, the one whose alias comes first is used and the other stays a template field.
ALIASES: Final[dict[Field, tuple[str, ...]]] = {
    Field.EMAIL: (
        "email",
        "emailaddress",
        "mail",
        "emailadresse",
        "mailadresse",
        "adresseemail",
        "adressemail",
        "courriel",
        "correo",
        "correoelectronico",
        "emailaddr",
        "emails",
    ),
    Field.FIRST_NAME: (
        "firstname",
        "fname",
        "givenname",
        "first",
        "forename",
        "vorname",
        "prénom",
        "prenom",
        "nombre",
        "voornaam",
        "nome",
    ),
    Field.LAST_NAME: (
        "lastname",
        "lname",
        "surname",
        "familyname",
        "last",
        "nachname",
        "nom",
        "apellido",
        "apellidos",
        "achternaam",
        "cognome",
    ),
    Field.FULL_NAME: (
        "fullname",
        "name",
        "displayname",
        "subscribername",
        "contactname",
        "vollständigername",
        "nomcomplet",
        "nombrecompleto",
    ),
    Field.TIMEZONE: (
        "timezone",
        "tz",
        "timezonename",
        "zeitzone",
        "fuseauhoraire",
        "zonahoraria",
        "tzid",
    ),
    Field.JOINED_AT: (
        "subscribedat",
        "subscribed",
        "subscriptiondate",
        "datesubscribed",
        "confirmtime",
        "confirmedat",
        "optintime",
        "signedup",
        "signedupat",
        "signupdate",
        "joinedat",
        "joined",
        "dateadded",
        "createdat",
        "created",
        "timestamp",
        "zeitstempel",
        "horodateur",
        "marcatemporal",
        "anmeldedatum",
    ),
    Field.STATUS: (
        "status",
        "state",
        "subscriptionstatus",
        "subscriberstatus",
        "emailstatus",
    ),
}

# Form questions ask for a field politely; the alias is what follows the politeness.
_QUESTION_PREFIXES: Final = (
    "pleaseenteryour",
    "pleasegiveyour",
    "whatisyour",
    "whatsyour",
    "enteryour",
    "your",
    "ihr",
    "ihre",
    "dein",
    "deine",
    "votre",
    "tu",
    "su",
)

_BY_KEY: Final = {alias: field for field, aliases in ALIASES.items() for alias in aliases}
_RANK: Final = {alias: rank for aliases in ALIASES.values() for rank, alias in enumerate(aliases)}
_NOT_WORD = re.compile(r"[^\w]+|_+")
_APOSTROPHES = re.compile(r"['’`´]")


def header_key(header: str) -> str:
    """The key a header is compared by: its letters and digits, case-folded."""
    text = unicodedata.normalize("NFC", header).casefold()
    return "".join(ch for ch in text if ch.isalnum())


def field_for(key: str) -> tuple[Field, int] | None:
    """The field a header key names, with its alias rank (lower is more specific); or None."""
    for candidate in _candidates(key):
        field = _BY_KEY.get(candidate)
        if field is not None:
            return field, _RANK[candidate]
    return None


def _candidates(key: str) -> list[str]:
    """The key itself, then the key without a form question's polite start."""
    found = [key]
    for prefix in _QUESTION_PREFIXES:
        if key.startswith(prefix) and len(key) > len(prefix):
            found.append(key[len(prefix) :])
    return found


def template_name(header: str) -> str:
    """The name a column has in templates (`subscriber.<name>`): lowercase words joined by '_'.

    `Favourite Colour` -> `favourite_colour`, `What's up?` -> `whats_up`, `MMERGE5` -> `mmerge5`.
    """
    text = _APOSTROPHES.sub("", unicodedata.normalize("NFC", header).casefold())
    return _NOT_WORD.sub("_", text).strip("_")


def parse_field(name: str) -> Field | None:
    """A field named in schedule.yaml (its own name or a synonym, any case); None if unknown."""
    wanted = name.strip().lower().replace("-", "_").replace(" ", "_")
    if wanted in FIELD_SYNONYMS:
        return FIELD_SYNONYMS[wanted]
    try:
        return Field(wanted)
    except ValueError:
        return None
