"""What the HTML part links to, which images lack alt text, and its heading outline."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

from course.checks.contrast import inline_style


@dataclass
class Heading:
    """One `<h1>`…`<h6>`: its level, text, and whether it is styled inline."""

    level: int
    text: str = ""
    styled: bool = False


@dataclass
class Markup:
    hrefs: list[str] = field(default_factory=list)
    images_without_alt: list[str] = field(default_factory=list)
    headings: list[Heading] = field(default_factory=list)


class _Scanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found = Markup()
        self._open: Heading | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if "href" in found and tag in ("a", "area"):
            self.found.hrefs.append((found["href"] or "").strip())
        if tag == "img" and "alt" not in found:
            self.found.images_without_alt.append(found.get("src") or "(no src)")
        if len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            style = inline_style(found.get("style"))
            # Without <style>, a heading keeps the browser's huge default size and margins
            # unless its own style attribute sets them.
            styled = {"font-size", "margin"} <= style.keys()
            self._open = Heading(int(tag[1]), styled=styled)
            self.found.headings.append(self._open)

    def handle_endtag(self, tag: str) -> None:
        if self._open is not None and tag == f"h{self._open.level}":
            self._open.text = " ".join(self._open.text.split())
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.text += data


def scan_html(html: str) -> Markup:
    scanner = _Scanner()
    scanner.feed(html)
    scanner.close()
    return scanner.found
