"""What schedule.yaml says about reading the list (`subscribers:` in its mapping form)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from course.subscribers.dates import DateOrder
from course.subscribers.fields import Field


class Unconfirmed(StrEnum):
    """What to do with rows whose double opt-in is still pending."""

    SKIP = "skip"
    INCLUDE = "include"


@dataclass(frozen=True)
class StatusColumn:
    """`subscribers.status`: a column and the values that mean subscribed; others are skipped."""

    column: str
    active: tuple[str, ...]


@dataclass(frozen=True)
class ImportOptions:
    """How to read one list export. The defaults read every shape the tables know."""

    default_timezone: str = "UTC"
    # Header as the operator wrote it -> field; matched like any header (case, spaces, dashes
    # and underscores do not matter).
    columns: Mapping[str, Field] = field(default_factory=dict)
    status: StatusColumn | None = None
    date_order: DateOrder = DateOrder.MONTH_FIRST
    unconfirmed: Unconfirmed = Unconfirmed.SKIP
    # Named in the errors about the options above.
    config_source: str = "schedule.yaml"
