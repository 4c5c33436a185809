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

from course.subscribers.statuses import RuleKind, Standing, StatusRule


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

# Google Forms' first column, as its response sheets name it in each language.
FORM_TIMESTAMPS: Final = (
    "timestamp",
    "zeitstempel",
    "horodateur",
    "marcatemporal",
    "informazionicronologiche",
    "carimbodedatahora",
    "tijdstempel",
    "sygnaturaczasowa",
    "tidsstämpel",
    "tidsstempel",
    "aikaleima",
    "časováznačka",
    "časovérazítko",
    "отметкавремени",
    "позначкачасу",
    "zamandamgası",
    "dấuthờigian",
    "marcadetemps",
    "タイムスタンプ",
    "时间戳记",
    "时间戳",
    "時間戳記",
    "타임스탬프",
)

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
        "adresseélectronique",
        "courriel",
        "correo",
        "correoelectronico",
        "correoelectrónico",
        "direccióndecorreo",
        "direccióndecorreoelectrónico",
        "direcciondecorreoelectronico",
        "emailadres",
        "indirizzoemail",
        "postaelettronica",
        "endereçodeemail",
        "enderecodeemail",
        "adresemail",
        "epost",
        "epostadress",
        "epostadresse",
        "emailadresa",
        "sähköposti",
        "sähköpostiosoite",
        "メールアドレス",
        "电子邮件地址",
        "电子邮件",
        "이메일주소",
        "이메일",
        "адресэлектроннойпочты",
        "электроннаяпочта",
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
        "voornaam",
        "primeironome",
        "primernombre",
        "imię",
        "imie",
        "förnamn",
        "fornavn",
        "etunimi",
        "jméno",
        "keresztnév",
        "prenume",
        "имя",
        # Often the whole name in Spanish and Portuguese forms: read as a full name when the
        # file has no last-name column (see layout).
        "nombre",
        "nome",
    ),
    Field.LAST_NAME: (
        "lastname",
        "lname",
        "surname",
        "familyname",
        "last",
        "nachname",
        "familienname",
        "nom",
        "nomdefamille",
        "apellido",
        "apellidos",
        "achternaam",
        "cognome",
        "sobrenome",
        "nazwisko",
        "efternamn",
        "etternavn",
        "efternavn",
        "sukunimi",
        "příjmení",
        "vezetéknév",
        "фамилия",
    ),
    Field.FULL_NAME: (
        "fullname",
        "name",
        "displayname",
        "subscribername",
        "contactname",
        "membername",
        "customername",
        "vollständigername",
        "vorundnachname",
        "nomcomplet",
        "nometprénom",
        "prénometnom",
        "nombrecompleto",
        "nombreyapellidos",
        "nomecompleto",
        "naam",
        "volledigenaam",
        "navn",
        "namn",
        "nimi",
        "imięinazwisko",
        "фио",
        "お名前",
        "名前",
        "氏名",
        "姓名",
        "名字",
        "이름",
        "성명",
    ),
    Field.TIMEZONE: (
        "timezone",
        "tz",
        "timezonename",
        "timezoneid",
        "ianatimezone",
        "usertimezone",
        "subscribertimezone",
        "localtimezone",
        "zeitzone",
        "fuseauhoraire",
        "zonahoraria",
        "husohorario",
        "fusohorário",
        "fusohorario",
        "fusoorario",
        "tijdzone",
        "strefaczasowa",
        "tidszon",
        "tidssone",
        "tidszone",
        "aikavyöhyke",
        "часовойпояс",
        "タイムゾーン",
        "时区",
        "시간대",
        "tzid",
    ),
    Field.JOINED_AT: (
        "subscribedat",
        "subscribedon",
        "subscribed",
        "subscribedate",
        "subscriptiondate",
        "datesubscribed",
        "datesubscribe",
        "confirmtime",
        "confirmedat",
        "confirmationdate",
        "confirmationtimestamp",
        "optintime",
        "optindate",
        "optedinat",
        "signedup",
        "signedupat",
        "signupdate",
        "signuptimestamp",
        "joinedat",
        "joined",
        "datejoined",
        "joindate",
        "dateadded",
        "addedat",
        "addedon",
        "addedtime",
        "registeredat",
        "registered",
        "registrationdate",
        "createdat",
        "created",
        "createdon",
        "datecreated",
        "createdate",
        "creationdate",
        "timestamp",
        *FORM_TIMESTAMPS[1:],
        "anmeldedatum",
        "registriertam",
        "eintragsdatum",
        "dateinscription",
        "datedinscription",
        "fechadealta",
        "fechaalta",
        "fechaderegistro",
        "dataiscrizione",
        "datadiiscrizione",
        "datadeinscrição",
        "aanmelddatum",
    ),
    Field.ATTRIBUTES: (
        "attributes",
        "metadata",
        "customfields",
    ),
}
# Headers that name the first name in one language and the whole name in another: read as a
# full name unless the file also has a last-name column.
FIRST_OR_FULL: Final = frozenset({"nombre", "nome"})
# A joining-date header that says its times are UTC (`Created at (UTC)`): its times without
# an offset are UTC, not the subscriber's own clock.
UTC_SUFFIXES: Final = ("utc", "gmt")

_VALUES = StatusRule(RuleKind.KNOWN_VALUES)
_CONSENT = StatusRule(RuleKind.CONSENT)
_UNSUBSCRIBED = StatusRule.opt_out(Standing.UNSUBSCRIBED)
_BOUNCED = StatusRule.opt_out(Standing.BOUNCED)
_DELETED = StatusRule.opt_out(Standing.INACTIVE)

# Columns that say whether the row is subscribed, by header key, and how each reads (see
# statuses.RuleKind): a status word, a yes that consents, or a yes/date that opts out. Every
# row these say is not subscribed is skipped, whatever else the row holds.
STATUS_HEADERS: Final[dict[str, StatusRule]] = {
    **dict.fromkeys(
        (
            "status",
            "subscriptionstatus",
            "subscriberstatus",
            "subscribertype",  # Buttondown
            "subscriptionstate",  # Steady
            "emailstatus",
            "contactstatus",
            "memberstatus",
            "emailmarketingstatus",
            "marketingstatus",
            "emailmarketingconsent",  # Klaviyo
            "emailconsentstatus",
            "consentstatus",
            "optinstatus",
            "liststatus",
            "newsletterstatus",
            "emailsubscriptionstatus",
            "emailpermissionstatus",  # Constant Contact
            "permissionstatus",
            "marketingcontactstatus",  # HubSpot
            "statut",
            "abostatus",
            "abonnementstatus",
            "estadodesuscripción",
            "estadodelasuscripción",
            "statoiscrizione",
        ),
        _VALUES,
    ),
    **dict.fromkeys(
        (
            "subscribedtoemails",  # Ghost
            "subscribedtoemail",
            "acceptsemailmarketing",  # Shopify
            "acceptsmarketing",
            "acceptsemail",
            "emailmarketing",
            "marketingemails",
            "emailoptin",
            "emailoptedin",
            "optedin",
            "marketingoptin",
            "emailmarketingoptin",
            "newsletteroptin",
            "marketingconsent",
            "emailconsent",
            "newsletterconsent",
            "gdprconsent",
            "issubscribed",
            "emailsubscribed",
            "subscribedtonewsletter",
            "newslettersubscribed",
            "wantsnewsletter",
            "einwilligung",
            "newslettereinwilligung",
            "consentement",
            "consentimiento",
        ),
        _CONSENT,
    ),
    **dict.fromkeys(
        (
            "unsubscribed",
            "isunsubscribed",
            "unsubscribedfromallemail",  # HubSpot
            "unsubscribedfromall",
            "unsubscribedfromemails",
            "globalunsubscribe",
            "globalunsubscribed",
            "emailoptout",  # Zoho, Salesforce
            "emailoptedout",
            "hasoptedoutofemail",
            "optedout",
            "optedoutofemail",
            "optout",
            "donotemail",
            "donotcontact",
            "donotmail",
            "donotsend",
            "blacklisted",
            "emailblacklisted",  # Brevo
            "blocklisted",
            "emailblocklisted",
            "suppressed",
            "emailsuppressed",
            "emailsuppressions",
            "complained",
            "markedasspam",
            "spamcomplaint",
            "unsubscribedat",
            "unsubscribedon",
            "unsubscribedate",
            "unsubscribedtime",
            "unsubscribetime",
            "unsubscriptiondate",
            "dateunsubscribed",
            "dateunsubscribe",  # MailerLite classic
            "unsubtime",  # Mailchimp
            "unsubreason",
            "unsubscribereason",
            "optoutdate",
            "optouttime",
            "optoutat",
            "optedoutat",
            "complainedat",
            "blocklistedat",
            "blacklistedat",
            "suppressedat",
            "abgemeldetam",
            "abmeldedatum",
        ),
        _UNSUBSCRIBED,
    ),
    **dict.fromkeys(
        (
            "bounced",
            "isbounced",
            "hardbounced",
            "hardbounce",
            "emailbounced",
            "bouncedat",
            "bouncedate",
            "cleanedat",
            "cleantime",  # Mailchimp
        ),
        _BOUNCED,
    ),
    **dict.fromkeys(("deleted", "isdeleted", "deletedat", "archivedat", "removedat"), _DELETED),
}
# Headers whose column may hold statuses, or something else under the same name: a US state,
# a joining date, a newsletter's name. A pass over the file decides: the column is read as a
# status only if most of its values are words a status column holds.
WEAK_STATUS_HEADERS: Final[dict[str, StatusRule]] = {
    **dict.fromkeys(("state", "estado", "stato", "état", "etat"), _VALUES),
    **dict.fromkeys(
        (
            "subscribed",
            "active",
            "isactive",
            "newsletter",
            "optin",
            "consent",
            "subscription",
            "abonniert",
            "abonnement",
        ),
        _CONSENT,
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

# Words that name a field inside a longer header (see _within); never for the email, whose
# column is found by its values when no header names it.
_NAME_PARTS: Final = {
    Field.FIRST_NAME: ("firstname", "givenname", "vorname", "prénom", "voornaam"),
    Field.LAST_NAME: ("lastname", "surname", "familyname", "nachname", "nomdefamille"),
    Field.TIMEZONE: (
        "timezone",
        "zeitzone",
        "fuseauhoraire",
        "zonahoraria",
        "fusohorário",
        "fusoorario",
        "tijdzone",
    ),
}
_WITHIN_RANK: Final = 1_000
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
    stem = says_utc(key)
    if stem and _BY_KEY.get(stem) is Field.JOINED_AT:
        return Field.JOINED_AT, _RANK[stem]
    return _within(key)


def _within(key: str) -> tuple[Field, int] | None:
    """A form question that names its field inside a longer sentence: `In welcher Zeitzone
    lebst du?`, `Your first name (so we can greet you)`. Ranked below every exact alias."""
    first = any(part in key for part in _NAME_PARTS[Field.FIRST_NAME])
    last = any(part in key for part in _NAME_PARTS[Field.LAST_NAME])
    if first or last:
        if first and last:
            return Field.FULL_NAME, _WITHIN_RANK
        return (Field.FIRST_NAME if first else Field.LAST_NAME), _WITHIN_RANK
    if any(part in key for part in _NAME_PARTS[Field.TIMEZONE]):
        return Field.TIMEZONE, _WITHIN_RANK
    return None


def says_utc(key: str) -> str:
    """For `createdatutc` (`Created at (UTC)`), the key without the zone; else ''."""
    for suffix in UTC_SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)]
    return ""


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
