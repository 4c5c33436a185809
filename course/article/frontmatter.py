"""Front matter: a YAML (`---`) or TOML (`+++`) block at the very top of a Markdown post.

It gives the course its title and description and never reaches an email. The Markdown
reader finds the YAML block with mdit-py-plugins' front_matter rule; TOML has no rule there,
so its `+++` block is cut off by hand, the same way.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from course.article.chunks import Notes

_DESCRIPTION_KEYS = ("description", "summary", "excerpt", "subtitle", "metaDescription", "lead")


@dataclass(frozen=True)
class FrontMatter:
    title: str = ""
    description: str = ""


def front_matter_lines(lines: list[str]) -> tuple[int, str]:
    """(how many lines the block spans, its delimiter), or (0, "") when there is none."""
    if not lines or lines[0].rstrip() not in ("---", "+++"):
        return 0, ""
    delimiter = lines[0].rstrip()
    for index in range(1, len(lines)):
        if lines[index].rstrip() in (delimiter, "..." if delimiter == "---" else delimiter):
            return index + 1, delimiter
    return 0, ""


def parse_front_matter(content: str, toml: bool, notes: Notes) -> FrontMatter:
    """The title and description the block names; a block that does not parse is a note."""
    import yaml

    try:
        data: Any = tomllib.loads(content) if toml else yaml.safe_load(content)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        kind = "TOML" if toml else "YAML"
        notes.add(1, f"the front matter is not valid {kind} ({_first_line(error)}); ignored")
        return FrontMatter()
    if not isinstance(data, dict):
        return FrontMatter()
    return FrontMatter(_text(data.get("title")), _description(data))


def _description(data: dict[str, Any]) -> str:
    for key in _DESCRIPTION_KEYS:
        value = _text(data.get(key))
        if value:
            return value
    return ""


def _text(value: object) -> str:
    return " ".join(str(value).split()) if isinstance(value, str | int | float) else ""


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
