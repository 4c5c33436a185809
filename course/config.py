"""schedule.yaml + environment -> one frozen, validated Settings object."""

from __future__ import annotations

import ipaddress
import re
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from email.headerregistry import Address
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import idna
import yaml

from course.errors import ConfigError
from course.subscribers.dates import DateOrder
from course.subscribers.fields import Field, parse_field
from course.subscribers.options import ImportOptions, StatusColumn, Unconfirmed

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
BACKENDS = ("inbox", "file", "memory", "smtp")
SECURITY = ("starttls", "tls", "none")
# A host name (RFC 1123 labels) or an address literal such as [192.0.2.1].
HELO_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?|\[[!-Z^-~]+\]"
)
DEFAULT_SUBJECT = "Day {{ day }} of {{ days }}: {{ lesson.title }}"
# A schedule.yaml is a few dozen values; anchors and aliases that expand to more than this
# are a "billion laughs" document, refused before anything walks (or echoes) the result.
MAX_EXPANDED_NODES = 100_000
# Values echoed in error messages are cut to about this many characters.
ECHO_CHARS = 80
# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: none may reach a
# header (where CR LF starts a new header, e.g. a Bcc) or an SMTP command.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
DOMAIN_PATTERN = re.compile(r"([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z0-9-]{2,}")
SELECTOR_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9][A-Za-z0-9_-]*)*")
DEFAULT_SUBSCRIBERS = "examples/subscribers.csv"

T = TypeVar("T")


@dataclass(frozen=True)
class CourseSettings:
    """What the course is made of."""

    article: Path
    subject: str
    links: Mapping[str, str]
    name: str
    id: str
    templates: Path | None
    # The operator's edits (see course.edits): written inline under course.edits, or in a
    # YAML file it names; read at every build, so the preview sees a saved edits file.
    edits: Mapping[str, Any] | Path | None = None


class DkimAlgorithm(StrEnum):
    """The DKIM signing algorithms a key can be for (the a= tag)."""

    RSA_SHA256 = "rsa-sha256"
    ED25519_SHA256 = "ed25519-sha256"


@dataclass(frozen=True)
class DkimSettings:
    """One DKIM signing key: d=, s=, a= and where the private key is kept."""

    domain: str
    selector: str
    algorithm: DkimAlgorithm
    key_file: Path | None
    key_env: str
    source: Path  # the file and key path that configured it, for error messages
    key: str

    @property
    def where(self) -> str:
        return f"{self.source}: {self.key}"


@dataclass(frozen=True)
class SenderSettings:
    """Who the mail is from, and the postal address the law wants in the footer.

    `return_path` is the envelope sender (MAIL FROM), where bounces go; "" means the From
    address. With `verp`, each message's envelope sender is `local+<token>@domain`, the token
    naming the subscriber and the day (see course.bounces.verp).
    """

    from_name: str
    from_address: str
    postal_address: str
    reply_to: str
    return_path: str = ""
    verp: bool = False
    dkim: tuple[DkimSettings, ...] = ()
    feedback_id: str = ""

    @property
    def domain(self) -> str:
        return self.from_address.rpartition("@")[2]

    @property
    def envelope_sender(self) -> str:
        """The MAIL FROM address before any VERP token is added."""
        return self.return_path or self.from_address


@dataclass(frozen=True)
class ScheduleSettings:
    """When lessons go out, in the subscriber's local time."""

    send_time: time
    timezone: str
    first_lesson: Literal["immediately", "next_send_time"]
    send_days: frozenset[int]
    tick_seconds: int


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the operator's mail server; the password stays in the environment."""

    host: str
    port: int
    security: Literal["starttls", "tls", "none"]
    username: str
    password_env: str
    max_connections: int
    rate_per_second: float
    timeout: float
    helo: str
    ca_file: Path | None
    max_send_errors: int
    pause_minutes: float
    idle_seconds: float = 30.0
    max_bounce_share: float = 0.2


@dataclass(frozen=True)
class RetrySettings:
    """Backoff for temporary failures: first wait, doubling up to a cap, then give up."""

    first: timedelta
    cap: timedelta
    give_up_after: timedelta


@dataclass(frozen=True)
class DeliverySettings:
    """Which backend delivers, and where the embedded ones write."""

    backend: Literal["inbox", "file", "memory", "smtp"]
    inbox: Path
    outbox: Path
    smtp: SmtpSettings
    retry: RetrySettings


@dataclass(frozen=True)
class UnsubscribeSettings:
    """Where the personal unsubscribe links point."""

    base_url: str
    secret_env: str
    mailto: str
    listen: tuple[str, int] | None
    # What `course serve` lets its clients hold (it must stand without a reverse proxy).
    max_connections: int = 4000
    request_seconds: float = 10.0


@dataclass(frozen=True)
class PreviewSettings:
    """The operator's local web preview (always bound to 127.0.0.1)."""

    enabled: bool
    port: int


@dataclass(frozen=True)
class ImapSettings:
    """An IMAP mailbox over TLS: `imaps://user@host[:port]/FOLDER`."""

    host: str
    port: int
    username: str
    folder: str


@dataclass(frozen=True)
class WebhookSettings:
    """Which provider webhooks `course serve` answers, and how each proves who it is.

    A provider's endpoint exists only when its section is configured. Secrets stay in the
    environment; only the names of the variables are here.
    """

    mailgun_signing_key_env: str = ""
    sendgrid_public_key: str = ""  # base64 DER as SendGrid shows it, or PEM
    sendgrid_public_key_file: Path | None = None
    postmark_username: str = ""
    postmark_password_env: str = ""
    postmark_path_secret_env: str = ""
    ses_certificate_file: Path | None = None
    ses_topic_arn: str = ""

    @property
    def mailgun(self) -> bool:
        return bool(self.mailgun_signing_key_env)

    @property
    def sendgrid(self) -> bool:
        return bool(self.sendgrid_public_key or self.sendgrid_public_key_file)

    @property
    def postmark(self) -> bool:
        return bool(self.postmark_password_env or self.postmark_path_secret_env)

    @property
    def ses(self) -> bool:
        return self.ses_certificate_file is not None

    @property
    def any(self) -> bool:
        return self.mailgun or self.sendgrid or self.postmark or self.ses


@dataclass(frozen=True)
class BouncesSettings:
    """Where late bounces and complaints arrive, and how often `course run` reads them."""

    mailbox: str  # as written, for messages
    maildir: Path | None
    imap: ImapSettings | None
    password_env: str
    ca_file: Path | None
    processed_folder: str
    every_minutes: float  # 0: `course run` does not read the mailbox
    timeout: float
    webhooks: WebhookSettings


@dataclass(frozen=True)
class Settings:
    """Everything `schedule.yaml` says, validated once at start-up."""

    source: Path
    base_dir: Path
    course: CourseSettings
    sender: SenderSettings
    schedule: ScheduleSettings
    subscribers: Path
    ledger: str
    delivery: DeliverySettings
    unsubscribe: UnsubscribeSettings
    preview: PreviewSettings
    bounces: BouncesSettings
    warnings: tuple[str, ...] = field(default=())
    # How to read the list (`subscribers:` in its mapping form); the defaults read every
    # shape the tables know.
    list_import: ImportOptions = field(default_factory=ImportOptions)


def load_settings(path: Path, *, given: bool = False) -> Settings:
    """Read and validate a schedule.yaml file; `given`: the operator named it with --config."""
    where = f"--config {path}" if given else str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file (looked for {path.absolute()})") from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: is a folder; expected a schedule.yaml file") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    return parse_settings(text, source=path)


def parse_settings(text: str, *, source: Path) -> Settings:
    """Validate YAML text; relative paths are resolved against the file's folder."""
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader)
    except _TooLarge as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_yaml_problem(exc)}") from None
    # Not resolved: paths stay as the operator wrote them, so messages name them that way.
    reader = _Reader(source, source.parent)
    root = reader.mapping(data if data is not None else {}, "")
    return _settings(reader, root)


class _TooLarge(yaml.YAMLError):
    """The document's aliases expand past MAX_EXPANDED_NODES (or refer to themselves)."""


class _BoundedLoader(yaml.SafeLoader):
    """safe_load, refusing documents whose aliases would expand into a huge value."""

    def compose_document(self) -> yaml.Node | None:
        document: yaml.Node | None = super().compose_document()
        if document is not None:
            _expanded_size(document, {}, set())
        return document


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many nodes `node` stands for once every alias is written out (memoised per node)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise _TooLarge(f"line {node.start_mark.line + 1}: an alias refers to itself")
    size = 1
    if isinstance(node, yaml.CollectionNode):
        open_nodes.add(key)
        children = (
            [item for pair in node.value for item in pair]
            if isinstance(node, yaml.MappingNode)
            else node.value
        )
        for child in children:
            size += _expanded_size(child, sizes, open_nodes)
            if size > MAX_EXPANDED_NODES:
                raise _TooLarge(
                    f"line {node.start_mark.line + 1}: aliases expand this value to more "
                    f"than {MAX_EXPANDED_NODES:,} items; write the values out instead"
                )
        open_nodes.discard(key)
    sizes[key] = size
    return size


def echo(value: object) -> str:
    """`repr(value)` for an error message: bounded work, cut to about ECHO_CHARS characters."""
    return _cut(_ECHO.repr(value))


def _cut(text: str) -> str:
    return text if len(text) <= ECHO_CHARS else text[: ECHO_CHARS - 1] + "…"


_ECHO = reprlib.Repr()
_ECHO.maxlevel = 3
_ECHO.maxstring = ECHO_CHARS + 2
_ECHO.maxother = ECHO_CHARS
for _limit in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset"):
    setattr(_ECHO, _limit, 8)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"line {mark.line + 1}: {problem}" if mark is not None else str(problem)


def _settings(r: _Reader, root: Mapping[str, Any]) -> Settings:
    r.known(
        root,
        "",
        (
            "course",
            "sender",
            "schedule",
            "subscribers",
            "ledger",
            "delivery",
            "unsubscribe",
            "preview",
            "bounces",
        ),
    )
    course = _course(r, r.section(root, "course"))
    sender = _sender(r, r.section(root, "sender"))
    schedule = _schedule(r, r.section(root, "schedule"))
    subscribers, list_import = _subscribers(r, root.get("subscribers"), schedule.timezone)
    settings = Settings(
        source=r.source,
        base_dir=r.base_dir,
        course=course,
        sender=sender,
        schedule=schedule,
        subscribers=subscribers,
        ledger=_ledger_url(r, root),
        delivery=_delivery(r, r.section(root, "delivery"), sender),
        unsubscribe=_unsubscribe(r, r.section(root, "unsubscribe")),
        preview=_preview(r, r.section(root, "preview")),
        bounces=_bounces(r, r.section(root, "bounces")),
        warnings=tuple(r.warnings),
        list_import=list_import,
    )
    _check_compliance(r, settings)
    return settings


def _ledger_url(r: _Reader, root: Mapping[str, Any]) -> str:
    """`ledger`, checked for its shape here so the error names the file and the key.

    SQLAlchemy parses it fully when the ledger opens; importing it here would slow down
    every command that never opens the ledger (`course build`).
    """
    url = r.string(root, "ledger", "sqlite:///state/course.db")
    expected = "expected sqlite:///path/to/file.db or postgresql://user@host/dbname"
    scheme, _, rest = url.partition("://")
    dialect = scheme.partition("+")[0]
    if dialect == "postgres":
        raise r.error("ledger", "expected postgresql://, not postgres://", url)
    if dialect not in ("sqlite", "postgresql") or (dialect == "postgresql" and not rest):
        raise r.error("ledger", expected, url)
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise r.error("ledger", "expected a URL without spaces or control characters", url)
    if dialect == "sqlite" and rest and not rest.startswith("/"):
        raise r.error("ledger", "expected sqlite:/// and then the file's path", url)
    if dialect == "postgresql":
        try:
            urlsplit(url).port  # noqa: B018 (a bad port raises on reading)
        except ValueError:
            raise r.error("ledger", "expected a port number 1-65535 after the host", url) from None
    return url


def _course(r: _Reader, node: Mapping[str, Any]) -> CourseSettings:
    r.known(node, "course", ("article", "subject", "links", "name", "id", "templates", "edits"))
    links = r.mapping(node.get("links") or {}, "course.links")
    for phrase, url in links.items():
        _check_url(r, f"course.links.{phrase}", url)
    name = r.header_text(node, "course.name", "")
    course_id = r.string(node, "course.id", "")
    if course_id and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", course_id):
        raise r.error("course.id", "expected lowercase letters, digits and '-'", course_id)
    return CourseSettings(
        article=r.path(node, "course.article", "examples/why-he-pushes-you-away.txt"),
        subject=r.string(node, "course.subject", DEFAULT_SUBJECT),
        links={str(k): str(v) for k, v in links.items()},
        name=name,
        id=course_id,
        templates=r.path(node, "course.templates", "") if node.get("templates") else None,
        edits=_edits(r, node.get("edits")),
    )


def _subscribers(r: _Reader, node: object, timezone: str) -> tuple[Path, ImportOptions]:
    """`subscribers: list.csv`, or a mapping with the file and how to read it."""
    if node is None or isinstance(node, str):
        path = r.path({"subscribers": node} if node else {}, "subscribers", DEFAULT_SUBSCRIBERS)
        return path, ImportOptions(default_timezone=timezone, config_source=str(r.source))
    section = r.mapping(node, "subscribers")
    r.known(section, "subscribers", ("file", "columns", "status", "date_order", "unconfirmed"))
    path = r.path(section, "subscribers.file", DEFAULT_SUBSCRIBERS)
    date_order = r.choice(
        section, "subscribers.date_order", tuple(DateOrder), DateOrder.MONTH_FIRST
    )
    unconfirmed = r.choice(section, "subscribers.unconfirmed", tuple(Unconfirmed), "skip")
    return path, ImportOptions(
        default_timezone=timezone,
        columns=_columns(r, section.get("columns")),
        status=_status_column(r, section.get("status")),
        date_order=DateOrder(date_order),
        unconfirmed=Unconfirmed(unconfirmed),
        config_source=str(r.source),
    )


def _columns(r: _Reader, node: object) -> dict[str, Field]:
    """`subscribers.columns`: header -> field; an unknown field names both."""
    columns: dict[str, Field] = {}
    for header, name in r.mapping(node or {}, "subscribers.columns").items():
        wanted = parse_field(str(name)) if isinstance(name, str) else None
        if wanted is None:
            raise r.error(
                f"subscribers.columns.{header}",
                f"unknown field for header '{header}'; expected one of " + ", ".join(Field),
                name,
            )
        columns[str(header)] = wanted
    return columns


def _status_column(r: _Reader, node: object) -> StatusColumn | None:
    """`subscribers.status: {column: ..., active: [...]}`."""
    if node is None:
        return None
    section = r.mapping(node, "subscribers.status")
    r.known(section, "subscribers.status", ("column", "active"))
    column = r.string(section, "subscribers.status.column", "")
    active = section.get("active")
    if isinstance(active, str):
        active = [active]
    if not column:
        raise r.error(
            "subscribers.status.column", "expected the header of the status column", column
        )
    if not isinstance(active, list) or not active or not all(isinstance(v, str) for v in active):
        raise r.error(
            "subscribers.status.active",
            "expected the list of values that mean subscribed, such as [active]",
            active,
        )
    return StatusColumn(column, tuple(active))


def _edits(r: _Reader, raw: object) -> Mapping[str, Any] | Path | None:
    """A mapping of edits, or the path of a YAML file holding them (checked at build)."""
    if raw is None:
        return None
    if isinstance(raw, str) and raw.strip():
        return r.base_dir / raw.strip()
    return r.mapping(raw, "course.edits")


def _check_url(r: _Reader, key: str, url: object) -> None:
    if not isinstance(url, str) or not re.match(r"(https?://|mailto:)\S+$", url):
        raise r.error(key, "expected an http(s):// or mailto: URL", url)


def _sender(r: _Reader, node: Mapping[str, Any]) -> SenderSettings:
    r.known(
        node,
        "sender",
        ("from", "postal_address", "reply_to", "return_path", "verp", "dkim", "feedback_id"),
    )
    raw = r.string(node, "sender.from", "Dripcourse <course@example.com>")
    name, address = parseaddr(raw)
    if _CONTROL.search(raw) or "@" not in address:
        raise r.error("sender.from", 'expected "Name <address@domain>"', raw)
    try:
        Address(display_name=name, addr_spec=address)
    except (ValueError, IndexError):
        raise r.error("sender.from", 'expected "Name <address@domain>"', raw) from None
    reply_to = r.header_text(node, "sender.reply_to", "")
    if reply_to and not _is_addr_spec(reply_to):
        raise r.error("sender.reply_to", "expected one email address", reply_to)
    return SenderSettings(
        from_name=name,
        from_address=address,
        postal_address=r.string(node, "sender.postal_address", ""),
        reply_to=reply_to,
        **_return_path(r, node, address),
        dkim=_dkim(r, node.get("dkim"), address.rpartition("@")[2]),
        feedback_id=_feedback_id(r, node),
    )


def _feedback_id(r: _Reader, node: Mapping[str, Any]) -> str:
    """Gmail's feedback loop id: up to four colon-separated fields, the last the sender's."""
    value = r.string(node, "sender.feedback_id", "")
    if value and not re.fullmatch(r"[A-Za-z0-9._-]+(:[A-Za-z0-9._-]+){0,3}", value):
        raise r.error(
            "sender.feedback_id",
            "expected colon-separated ids such as 'lesson:course:dripcourse'",
            value,
        )
    return value


def _dkim(r: _Reader, raw: object, from_domain: str) -> tuple[DkimSettings, ...]:
    """`sender.dkim`: one key, or a list of keys (rsa-sha256 and ed25519-sha256 together
    sign every message twice)."""
    if raw is None:
        return ()
    if isinstance(raw, list):
        if not raw:
            raise r.error("sender.dkim", "expected a key or a list of keys", raw)
        keys = tuple(
            _dkim_key(r, r.mapping(item, f"sender.dkim[{n}]"), f"sender.dkim[{n}]", from_domain)
            for n, item in enumerate(raw)
        )
    else:
        keys = (_dkim_key(r, r.mapping(raw, "sender.dkim"), "sender.dkim", from_domain),)
    names = [(k.domain, k.selector) for k in keys]
    if len(set(names)) != len(names):
        raise r.error("sender.dkim", "expected a different selector for each key", raw)
    return keys


def a_label(domain: str) -> str:
    """An internationalised domain as it appears in DNS and in d= (xn--...)."""
    try:
        return domain if domain.isascii() else idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        return domain  # the check that follows names it


def _dkim_key(r: _Reader, node: Mapping[str, Any], key: str, from_domain: str) -> DkimSettings:
    r.known(node, key, ("domain", "selector", "algorithm", "key_file", "key_env"))
    domain = a_label(r.string(node, f"{key}.domain", from_domain).lower().rstrip("."))
    if not DOMAIN_PATTERN.fullmatch(domain):
        raise r.error(f"{key}.domain", "expected a domain name such as example.com", domain)
    sender_domain = a_label(from_domain.lower())
    if sender_domain != domain and not sender_domain.endswith("." + domain):
        # DMARC passes on DKIM only when d= is the From domain or a parent of it.
        raise r.error(
            f"{key}.domain",
            f"expected the From domain {from_domain} or a parent of it (DMARC alignment)",
            domain,
        )
    selector = r.string(node, f"{key}.selector", "")
    if not SELECTOR_PATTERN.fullmatch(selector):
        raise r.error(
            f"{key}.selector", "expected a selector such as s2026 (letters, digits, -)", selector
        )
    algorithm = r.choice(node, f"{key}.algorithm", tuple(DkimAlgorithm), DkimAlgorithm.RSA_SHA256)
    key_env = r.string(node, f"{key}.key_env", "")
    if key_env and node.get("key_file"):
        raise r.error(key, "expected key_file or key_env, not both", dict(node))
    key_file = None if key_env else r.path(node, f"{key}.key_file", f"state/dkim-{selector}.key")
    return DkimSettings(
        domain=domain,
        selector=selector,
        algorithm=DkimAlgorithm(algorithm),
        key_file=key_file,
        key_env=key_env,
        source=r.source,
        key=key,
    )


def _is_addr_spec(value: str) -> bool:
    """One bare address (no name, list, or URL parameters) that can stand in a header."""
    if "@" not in value or any(ch in value for ch in ' <>,;:?&"()[]\\'):
        return False
    try:
        Address(addr_spec=value)
    except (ValueError, IndexError):
        return False
    return True


# RFC 5321 4.5.3.1.1: a local part is at most 64 octets; a VERP token takes 48 of them.
VERP_TOKEN_CHARS = 48
MAX_LOCAL_PART = 64


def _return_path(r: _Reader, node: Mapping[str, Any], from_address: str) -> dict[str, Any]:
    return_path = r.header_text(node, "sender.return_path", "")
    if return_path and not _is_addr_spec(return_path):
        raise r.error(
            "sender.return_path", "expected a bare address such as bounces@example.com", return_path
        )
    verp = node.get("verp", False)
    if not isinstance(verp, bool):
        raise r.error("sender.verp", "expected true or false", verp)
    if verp:
        local = (return_path or from_address).rpartition("@")[0]
        key = "sender.return_path" if return_path else "sender.from"
        if "+" in local:
            raise r.error(key, "with sender.verp the local part cannot contain '+'", local)
        if len(local.encode()) + 1 + VERP_TOKEN_CHARS > MAX_LOCAL_PART:
            room = MAX_LOCAL_PART - 1 - VERP_TOKEN_CHARS
            raise r.error(
                key, f"with sender.verp the local part can have at most {room} characters", local
            )
    return {"return_path": return_path, "verp": verp}


def _schedule(r: _Reader, node: Mapping[str, Any]) -> ScheduleSettings:
    r.known(
        node, "schedule", ("send_time", "timezone", "first_lesson", "send_days", "tick_seconds")
    )
    first = r.choice(
        node, "schedule.first_lesson", ("immediately", "next_send_time"), "immediately"
    )
    tick = r.integer(node, "schedule.tick_seconds", 60)
    if not 1 <= tick <= 3600:
        raise r.error("schedule.tick_seconds", "expected 1 to 3600 seconds", tick)
    return ScheduleSettings(
        send_time=_send_time(r, node),
        timezone=_timezone(r, node),
        first_lesson=cast(Literal["immediately", "next_send_time"], first),
        send_days=_send_days(r, node),
        tick_seconds=tick,
    )


def _send_time(r: _Reader, node: Mapping[str, Any]) -> time:
    raw = node.get("send_time", "08:00")
    if isinstance(raw, int) and not isinstance(raw, bool):
        # YAML 1.1 reads an unquoted 08:00 as the sexagesimal number 480.
        raw = f"{raw // 60:02d}:{raw % 60:02d}"
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", str(raw))
    if not match:
        raise r.error("schedule.send_time", "expected HH:MM", raw)
    return time(int(match[1]), int(match[2]))


def _timezone(r: _Reader, node: Mapping[str, Any]) -> str:
    name = r.string(node, "schedule.timezone", "UTC")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise r.error(
            "schedule.timezone", "expected an IANA time zone such as Europe/London", name
        ) from None
    return name


def _send_days(r: _Reader, node: Mapping[str, Any]) -> frozenset[int]:
    raw = node.get("send_days", list(WEEKDAYS))
    if not isinstance(raw, list) or not raw:
        raise r.error("schedule.send_days", "expected a list such as [mon, wed, fri]", raw)
    days = set()
    for item in raw:
        name = str(item).strip().lower()[:3]
        if name not in WEEKDAYS:
            raise r.error("schedule.send_days", f"expected day names {', '.join(WEEKDAYS)}", item)
        days.add(WEEKDAYS.index(name))
    return frozenset(days)


def _delivery(r: _Reader, node: Mapping[str, Any], sender: SenderSettings) -> DeliverySettings:
    r.known(node, "delivery", ("backend", "inbox", "file", "smtp", "retry"))
    backend = r.choice(node, "delivery.backend", BACKENDS, "inbox")
    return DeliverySettings(
        backend=cast(Literal["inbox", "file", "memory", "smtp"], backend),
        inbox=r.path(node, "delivery.inbox", "state/inbox"),
        outbox=r.path(node, "delivery.file", "state/outbox"),
        smtp=_smtp(r, r.section(node, "smtp", "delivery.smtp"), sender),
        retry=_retry(r, r.section(node, "retry", "delivery.retry")),
    )


def _retry(r: _Reader, node: Mapping[str, Any]) -> RetrySettings:
    r.known(node, "delivery.retry", ("first_minutes", "max_hours", "give_up_days"))
    first = r.number(node, "delivery.retry.first_minutes", 5.0)
    cap = r.number(node, "delivery.retry.max_hours", 4.0)
    give_up = r.number(node, "delivery.retry.give_up_days", 3.0)
    if first <= 0 or cap <= 0 or give_up <= 0:
        raise r.error("delivery.retry", "expected times greater than 0", dict(node))
    return RetrySettings(timedelta(minutes=first), timedelta(hours=cap), timedelta(days=give_up))


def _smtp(r: _Reader, node: Mapping[str, Any], sender: SenderSettings) -> SmtpSettings:
    r.known(
        node,
        "delivery.smtp",
        (
            "host",
            "port",
            "security",
            "username",
            "password_env",
            "max_connections",
            "rate_per_second",
            "timeout",
            "helo",
            "ca_file",
            "max_send_errors",
            "pause_minutes",
            "idle_seconds",
            "max_bounce_share",
        ),
    )
    port = r.integer(node, "delivery.smtp.port", 587)
    if not 1 <= port <= 65535:
        raise r.error("delivery.smtp.port", "expected a port number 1-65535", port)
    security = r.choice(node, "delivery.smtp.security", SECURITY, "starttls")
    connections = r.integer(node, "delivery.smtp.max_connections", 4)
    if not 1 <= connections <= 64:
        raise r.error("delivery.smtp.max_connections", "expected 1 to 64", connections)
    host = r.header_text(node, "delivery.smtp.host", "127.0.0.1")
    if security == "none" and not _is_this_host(host):
        raise ConfigError(
            f"{r.source}: delivery.smtp.security: 'none' sends the mail and the password "
            "unencrypted, so it is only for a server on this host (127.0.0.0/8, ::1, "
            f"localhost), not {host!r}; use starttls (port 587) or tls (port 465)"
        )
    helo = r.header_text(node, "delivery.smtp.helo", "") or _ascii_domain(sender.domain)
    if not HELO_NAME.fullmatch(helo):
        raise r.error(
            "delivery.smtp.helo", "expected this host's name, such as mail.example.com", helo
        )
    idle = r.number(node, "delivery.smtp.idle_seconds", 30.0)
    if idle <= 0:
        raise r.error("delivery.smtp.idle_seconds", "expected a number of seconds > 0", idle)
    share = r.number(node, "delivery.smtp.max_bounce_share", 0.2)
    if not 0 < share <= 1:
        raise r.error("delivery.smtp.max_bounce_share", "expected a share above 0, up to 1", share)
    return SmtpSettings(
        host=host,
        port=port,
        security=cast(Literal["starttls", "tls", "none"], security),
        username=r.header_text(node, "delivery.smtp.username", ""),
        password_env=r.string(node, "delivery.smtp.password_env", "SMTP_PASSWORD"),
        max_connections=connections,
        rate_per_second=r.number(node, "delivery.smtp.rate_per_second", 0.0),
        timeout=r.number(node, "delivery.smtp.timeout", 30.0),
        helo=helo,
        ca_file=r.path(node, "delivery.smtp.ca_file", "") if node.get("ca_file") else None,
        max_send_errors=max(1, r.integer(node, "delivery.smtp.max_send_errors", 10)),
        pause_minutes=r.number(node, "delivery.smtp.pause_minutes", 15.0),
        idle_seconds=idle,
        max_bounce_share=share,
    )


def _is_this_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: a server no packet leaves this machine to reach."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _ascii_domain(domain: str) -> str:
    """The From domain as the default HELO name: IDNA (xn--) when it is not ASCII."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        return domain  # refused by the HELO check just after, naming the key


def _unsubscribe(r: _Reader, node: Mapping[str, Any]) -> UnsubscribeSettings:
    r.known(
        node,
        "unsubscribe",
        ("base_url", "secret_env", "mailto", "listen", "max_connections", "request_seconds"),
    )
    base_url = r.header_text(node, "unsubscribe.base_url", "http://127.0.0.1:8026")
    # It goes into List-Unsubscribe between angle brackets, after which a comma would start
    # another URL: none of those may appear in it.
    if not re.fullmatch(r"https?://[^\s/?#<>,\"]+(/[^\s?#<>,\"]*)?", base_url):
        raise r.error("unsubscribe.base_url", "expected an http(s) URL without query", base_url)
    mailto = r.header_text(node, "unsubscribe.mailto", "")
    if mailto and not _is_addr_spec(mailto):
        raise r.error("unsubscribe.mailto", "expected one email address", mailto)
    max_connections = r.integer(node, "unsubscribe.max_connections", 4000)
    if not 1 <= max_connections <= 100_000:
        raise r.error("unsubscribe.max_connections", "expected 1 to 100000", max_connections)
    request_seconds = r.number(node, "unsubscribe.request_seconds", 10.0)
    if not 0.1 <= request_seconds <= 300:
        raise r.error("unsubscribe.request_seconds", "expected 0.1 to 300 seconds", request_seconds)
    return UnsubscribeSettings(
        base_url=base_url.rstrip("/"),
        secret_env=r.string(node, "unsubscribe.secret_env", "COURSE_SECRET"),
        mailto=mailto,
        listen=_listen(r, node),
        max_connections=max_connections,
        request_seconds=request_seconds,
    )


def _listen(r: _Reader, node: Mapping[str, Any]) -> tuple[str, int] | None:
    """`host:port` where `course run` serves the unsubscribe endpoints; None: it does not."""
    raw = r.string(node, "unsubscribe.listen", "")
    if not raw:
        return None
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise r.error("unsubscribe.listen", "expected host:port such as 127.0.0.1:8026", raw)
    return host.strip("[]"), int(port)


def _preview(r: _Reader, node: Mapping[str, Any]) -> PreviewSettings:
    r.known(node, "preview", ("enabled", "port"))
    enabled = node.get("enabled", True)
    if not isinstance(enabled, bool):
        raise r.error("preview.enabled", "expected true or false", enabled)
    port = r.integer(node, "preview.port", 8025)
    if not 1 <= port <= 65535:
        raise r.error("preview.port", "expected a port number 1-65535", port)
    return PreviewSettings(enabled=enabled, port=port)


def _bounces(r: _Reader, node: Mapping[str, Any]) -> BouncesSettings:
    r.known(
        node,
        "bounces",
        (
            "mailbox",
            "password_env",
            "ca_file",
            "processed_folder",
            "every_minutes",
            "timeout",
            "webhooks",
        ),
    )
    mailbox = r.header_text(node, "bounces.mailbox", "maildir:state/bounces")
    maildir, imap = _mailbox(r, mailbox)
    timeout = r.number(node, "bounces.timeout", 30.0)
    if timeout <= 0:
        raise r.error("bounces.timeout", "expected seconds greater than 0", timeout)
    return BouncesSettings(
        mailbox=mailbox,
        maildir=maildir,
        imap=imap,
        password_env=r.string(node, "bounces.password_env", "BOUNCES_PASSWORD"),
        ca_file=r.path(node, "bounces.ca_file", "") if node.get("ca_file") else None,
        processed_folder=r.header_text(node, "bounces.processed_folder", "Processed"),
        every_minutes=r.number(node, "bounces.every_minutes", 0.0),
        timeout=timeout,
        webhooks=_webhooks(r, r.section(node, "webhooks", "bounces.webhooks")),
    )


def _mailbox(r: _Reader, mailbox: str) -> tuple[Path | None, ImapSettings | None]:
    expected = "expected maildir:PATH or imaps://user@host[:port]/FOLDER"
    if mailbox.startswith("maildir:"):
        path = mailbox.removeprefix("maildir:")
        if not path:
            raise r.error("bounces.mailbox", expected, mailbox)
        return r.base_dir / path, None
    try:
        url = urlsplit(mailbox)
        port = url.port or 993
    except ValueError:
        raise r.error("bounces.mailbox", expected, mailbox) from None
    if url.scheme != "imaps" or not url.hostname or not url.username or url.query:
        raise r.error("bounces.mailbox", expected, mailbox)
    if url.password is not None:
        raise r.error(
            "bounces.mailbox", "put the password in bounces.password_env, not the URL", "imaps://…"
        )
    folder = unquote(url.path.lstrip("/")) or "INBOX"
    return None, ImapSettings(url.hostname, port, unquote(url.username), folder)


def _webhooks(r: _Reader, node: Mapping[str, Any]) -> WebhookSettings:
    r.known(node, "bounces.webhooks", ("mailgun", "sendgrid", "postmark", "ses"))
    mailgun = r.section(node, "mailgun", "bounces.webhooks.mailgun")
    r.known(mailgun, "bounces.webhooks.mailgun", ("signing_key_env",))
    sendgrid = r.section(node, "sendgrid", "bounces.webhooks.sendgrid")
    r.known(sendgrid, "bounces.webhooks.sendgrid", ("public_key", "public_key_file"))
    postmark = r.section(node, "postmark", "bounces.webhooks.postmark")
    r.known(postmark, "bounces.webhooks.postmark", ("username", "password_env", "path_secret_env"))
    ses = r.section(node, "ses", "bounces.webhooks.ses")
    r.known(ses, "bounces.webhooks.ses", ("certificate_file", "topic_arn"))
    settings = WebhookSettings(
        mailgun_signing_key_env=r.string(
            mailgun,
            "bounces.webhooks.mailgun.signing_key_env",
            "MAILGUN_WEBHOOK_SIGNING_KEY" if "mailgun" in node else "",
        ),
        sendgrid_public_key=r.string(sendgrid, "bounces.webhooks.sendgrid.public_key", ""),
        sendgrid_public_key_file=(
            r.path(sendgrid, "bounces.webhooks.sendgrid.public_key_file", "")
            if sendgrid.get("public_key_file")
            else None
        ),
        postmark_username=r.string(postmark, "bounces.webhooks.postmark.username", ""),
        postmark_password_env=r.string(postmark, "bounces.webhooks.postmark.password_env", ""),
        postmark_path_secret_env=r.string(
            postmark, "bounces.webhooks.postmark.path_secret_env", ""
        ),
        ses_certificate_file=(
            r.path(ses, "bounces.webhooks.ses.certificate_file", "")
            if ses.get("certificate_file")
            else None
        ),
        ses_topic_arn=r.string(ses, "bounces.webhooks.ses.topic_arn", ""),
    )
    if "sendgrid" in node and not settings.sendgrid:
        raise r.error(
            "bounces.webhooks.sendgrid", "expected public_key or public_key_file", dict(sendgrid)
        )
    if "postmark" in node and not settings.postmark:
        raise r.error(
            "bounces.webhooks.postmark",
            "expected username and password_env, or path_secret_env",
            dict(postmark),
        )
    if bool(settings.postmark_username) != bool(settings.postmark_password_env):
        raise r.error(
            "bounces.webhooks.postmark",
            "expected both username and password_env for basic auth",
            dict(postmark),
        )
    if "ses" in node and not settings.ses:
        raise r.error(
            "bounces.webhooks.ses",
            "expected certificate_file (the SNS signing "
            "certificate, saved from its SigningCertURL)",
            dict(ses),
        )
    return settings


def _check_compliance(r: _Reader, settings: Settings) -> None:
    # CAN-SPAM: real mail must carry a postal address; the embedded backends are local only.
    if settings.delivery.backend == "smtp" and not settings.sender.postal_address:
        raise r.error(
            "sender.postal_address",
            "required when delivery.backend is smtp "
            "(CAN-SPAM needs a postal address in every message)",
            "",
        )
    if settings.delivery.backend == "smtp" and not settings.unsubscribe.base_url.startswith(
        "https://"
    ):
        raise r.error(
            "unsubscribe.base_url",
            "must be https:// when delivery.backend is smtp (mailbox providers ignore "
            "one-click unsubscribe over http)",
            settings.unsubscribe.base_url,
        )


class _Reader:
    """Typed access to the YAML tree; every error names the file and the key path."""

    def __init__(self, source: Path, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir
        self.warnings: list[str] = []

    def error(self, key: str, expected: str, got: object) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {expected}, got {echo(got)}")

    def mapping(self, value: object, key: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key or "(top level)", "expected a mapping", value)
        return value

    def section(self, node: Mapping[str, Any], name: str, key: str = "") -> Mapping[str, Any]:
        return self.mapping(node.get(name) or {}, key or name)

    def known(self, node: Mapping[str, Any], where: str, allowed: tuple[str, ...]) -> None:
        for key in node:
            if key not in allowed:
                path = f"{where}.{_cut(str(key))}" if where else _cut(str(key))
                close = [a for a in allowed if a.startswith(str(key)[:3])]
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"{self.source}: {path}: unknown key{hint}")

    def _typed(
        self,
        node: Mapping[str, Any],
        key: str,
        default: T,
        kind: Callable[[Any], bool],
        expected: str,
    ) -> T:
        value = node.get(key.rpartition(".")[2], default)
        if value is None:
            return default
        if not kind(value):
            raise self.error(key, expected, value)
        return cast(T, value)

    def string(self, node: Mapping[str, Any], key: str, default: str) -> str:
        return self._typed(node, key, default, lambda v: isinstance(v, str), "expected text")

    def header_text(self, node: Mapping[str, Any], key: str, default: str) -> str:
        """Text that ends up in a mail header or an SMTP command: no control characters."""
        value = self.string(node, key, default)
        if _CONTROL.search(value):
            raise self.error(key, "expected one line of text without control characters", value)
        return value

    def integer(self, node: Mapping[str, Any], key: str, default: int) -> int:
        return self._typed(
            node,
            key,
            default,
            lambda v: isinstance(v, int) and not isinstance(v, bool),
            "expected a whole number",
        )

    def number(self, node: Mapping[str, Any], key: str, default: float) -> float:
        value = self._typed(
            node,
            key,
            default,
            lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v >= 0,
            "expected a number >= 0",
        )
        return float(value)

    def choice(
        self, node: Mapping[str, Any], key: str, options: tuple[str, ...], default: str
    ) -> str:
        value = self.string(node, key, default)
        if value not in options:
            raise self.error(key, f"expected one of {', '.join(options)}", value)
        return value

    def path(self, node: Mapping[str, Any], key: str, default: str) -> Path:
        return self.base_dir / self.string(node, key, default)


def default_settings(base_dir: Path) -> Settings:
    """The embedded defaults, used when no schedule.yaml exists."""
    return parse_settings("{}", source=base_dir / "schedule.yaml")
