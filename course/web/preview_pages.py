"""The preview's HTML: one Jinja environment with autoescaping always on, and its helpers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlencode

import jinja2
from starlette.responses import HTMLResponse

from course.render import CLIP_LIMIT_BYTES, WARN_BYTES
from course.web.preview_inbox import SCAN_LIMIT

TABS = {"html": "HTML", "text": "Text", "headers": "Headers", "raw": "Source"}
WIDTHS = {"phone": 375, "tablet": 768, "desktop": 1024}


@dataclass(frozen=True)
class View:
    """How the operator looks at a message: whom it is rendered for, which tab, how wide."""

    as_email: str = ""
    tab: str = "html"
    width: str = ""  # "": not chosen, so the page fits the screen (phone on a phone)

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> View:
        return cls(
            as_email=query.get("as", "").strip(),
            tab=pick(query.get("tab"), TABS, "html"),
            width=pick(query.get("width"), WIDTHS, ""),
        )

    def params(self) -> dict[str, str]:
        return {"as": self.as_email, "tab": self.tab, "width": self.width}


@dataclass(frozen=True)
class Notice:
    """A one-line message at the top of a page."""

    level: Literal["ok", "error"]
    text: str


class Pages:
    """Renders the templates in course/web/templates/preview into responses."""

    def __init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("course", "web/templates/preview"),
            autoescape=True,  # every page shows CSV values; none may become markup
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(
            url=url,
            TABS=TABS,
            WIDTHS=WIDTHS,
            clip_limit=CLIP_LIMIT_BYTES,
            warn_bytes=WARN_BYTES,
            scan_limit=SCAN_LIMIT,
        )
        self.env.filters.update(kb=kb, moment=moment)

    def render(self, name: str, context: Mapping[str, object], status: int = 200) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(name).render(context), status_code=status)


def pick(value: str | None, options: Mapping[str, object], default: str) -> str:
    return value if value is not None and value in options else default


def url(path: str, params: Mapping[str, object] | None = None, **changes: object) -> str:
    """`path` with a query of `params` updated by `changes`; empty values are left out."""
    merged = {**(params or {}), **changes}
    query = urlencode({k: v for k, v in merged.items() if v not in ("", None)})
    return f"{path}?{query}" if query else path


MAX_NUMBER = 999_999_999


def whole_number(text: str) -> int:
    """Plain ASCII digits, 0 to MAX_NUMBER; ValueError for anything else.

    The length is checked before int(): Python refuses to convert 4,300 digits or more.
    """
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(MAX_NUMBER))):
        raise ValueError(f"not a whole number from 0 to {MAX_NUMBER}")
    return int(text)


def positive_int(text: str | None) -> int | None:
    """None for an absent or empty value; ValueError unless a whole number from 1."""
    if not text:
        return None
    number = whole_number(text)
    if number < 1:
        raise ValueError(f"not a whole number from 1 to {MAX_NUMBER}")
    return number


def kb(size: int) -> str:
    return f"{size / 1000:.1f} KB"


def moment(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC"
