"""What static-site generators add to a Markdown post, undone before the Markdown is read.

A post taken from a blog's repository carries its generator's syntax, which no Markdown
parser knows and which would reach the emails as text:

- Hugo shortcodes: `{{< figure src="…" caption="…" >}}` becomes an image (its caption as
  the alt text); paired ones (`{{< notice >}}…{{< /notice >}}`) keep what they wrap; the
  rest (`{{< youtube … >}}`, `{{< toc >}}`) go.
- Jekyll's Liquid: `{% highlight ruby %}…{% endhighlight %}` becomes a code fence,
  `{% comment %}…{% endcomment %}` goes with what it holds, other tags go
  (`{% include … %}`, `{% post_url … %}`); `{{ site.baseurl }}` objects go, a quoted
  string with filters keeps the string; kramdown's `{:toc}` and `{: .class}` go.
- MDX: `import`/`export` statements and `{/* comments */}` go (components are HTML and
  are reduced to their text like any other tag).
- Admonitions: GitHub's `> [!NOTE]` becomes a bold "Note:"; `:::tip` fences go, their
  text stays.

Code (fenced, indented by four, or in backticks) is left as written: a post about Hugo
shows shortcodes on purpose. Line numbers do not move: a removed line becomes blank.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_HUGO = re.compile(r"\{\{([<%])\s*(/?)\s*([\w./-]+)(.*?)\s*/?\s*[>%]\}\}")
_LIQUID_TAG = re.compile(r"\{%-?\s*(\w+)(.*?)-?%\}")
_LIQUID_OBJECT = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")
_QUOTED = re.compile(r"""^(["'])(.*?)\1""")
_ATTRIBUTE = re.compile(r"""(\w+)\s*=\s*(?:"([^"]*)"|'([^']*)'|(\S+))""")
_IAL = re.compile(r"\{:\s*[^}]*\}")
_MDX_STATEMENT = re.compile(
    r"(?:import\s.*(?:from\s+)?['\"]|export\s+(?:const|let|var|default|function|async)\b)"
)
_MDX_COMMENT = re.compile(r"\{/\*.*?\*/\}")
_ALERT = re.compile(r"^(\s*>\s*)\[!(NOTE|TIP|IMPORTANT|WARNING|CAUTION)\]\s*$", re.IGNORECASE)
_ADMONITION = re.compile(r"^\s*:::\s*[\w-]*.*$")
_BACKTICKS = re.compile(r"`+[^`]*`+")
_TOC_BULLET = re.compile(r"^\s*[*+-]\s+(?:TOC|Table of Contents)\s*$", re.IGNORECASE)
# Shortcodes whose output is an image; of the rest, the paired ones keep what they wrap.
_FIGURES = frozenset(("figure", "img", "image", "picture"))
_FENCED_LIQUID = frozenset(("highlight",))
_CLOSES_FENCE = frozenset(("endhighlight",))


@dataclass
class Untemplated:
    """The lines with the generator's syntax undone, and what was dropped (line, tag)."""

    lines: list[str]
    dropped: list[tuple[int, str]] = field(default_factory=list)


def untemplate(lines: list[str], start: int = 0) -> Untemplated:
    """Undo Hugo, Liquid, kramdown and MDX syntax in `lines[start:]` (front matter above)."""
    out = Untemplated(list(lines))
    fence = ""
    liquid_fence = False  # the open fence is a {% highlight %}, closed by {% endhighlight %}
    in_comment = False
    in_export = False
    for index in range(start, len(lines)):
        line = out.lines[index]
        number = index + 1
        match = _FENCE.match(line)
        if liquid_fence:
            if re.fullmatch(r"\s*\{%-?\s*endhighlight\s*-?%\}\s*", line):
                out.lines[index] = "```"
                liquid_fence = False
            continue
        if fence:
            if match and match[1][0] == fence[0] and len(match[1]) >= len(fence):
                fence = ""
            continue
        if match:
            fence = match[1]
            continue
        if line.startswith(("    ", "\t")) and not line.lstrip().startswith(("{{", "{%")):
            continue
        if in_comment:
            if re.search(r"\{%-?\s*endcomment\s*-?%\}", line):
                in_comment = False
            out.lines[index] = ""
            continue
        if in_export:
            in_export = bool(line.strip())
            out.lines[index] = ""
            continue
        stripped = line.strip()
        if _MDX_STATEMENT.match(line):
            out.dropped.append((number, stripped))
            out.lines[index] = ""
            # A statement over several lines (an object literal) runs to the blank line.
            in_export = not stripped.endswith((";", "'", '"')) or stripped.endswith("{")
            continue
        if (
            _TOC_BULLET.match(line)
            and index + 1 < len(lines)
            and _IAL.fullmatch(lines[index + 1].strip())
        ):
            out.dropped.append((number, stripped))
            out.lines[index] = ""
            continue
        liquid = _LIQUID_TAG.fullmatch(stripped)
        if liquid is not None:
            name = liquid[1].lower()
            if name in _FENCED_LIQUID:
                language = liquid[2].split()[0] if liquid[2].split() else ""
                out.lines[index] = f"```{language}"
                liquid_fence = True
                continue
            if name == "comment":
                in_comment = not re.search(r"\{%-?\s*endcomment", line[liquid.end() :])
            if name not in _CLOSES_FENCE:
                out.dropped.append((number, stripped))
            out.lines[index] = ""
            continue
        alert = _ALERT.match(line)
        if alert is not None:
            out.lines[index] = f"{alert[1]}**{alert[2].capitalize()}:**"
            continue
        if _ADMONITION.fullmatch(line) and stripped.startswith(":::"):
            out.lines[index] = ""
            continue
        out.lines[index] = _inline(line, number, out.dropped)
    return out


def _inline(line: str, number: int, dropped: list[tuple[int, str]]) -> str:
    """Shortcodes, Liquid tags and objects, attribute lists and MDX comments in one line;
    code spans are kept as written."""
    if "{" not in line:
        return line
    pieces: list[str] = []
    position = 0
    for code in _BACKTICKS.finditer(line):
        pieces.append(_inline_text(line[position : code.start()], number, dropped))
        pieces.append(code[0])
        position = code.end()
    pieces.append(_inline_text(line[position:], number, dropped))
    result = "".join(pieces)
    # A line that held only tags is blank now, not a paragraph of spaces.
    return result if result.strip() or not line.strip() else ""


def _inline_text(text: str, number: int, dropped: list[tuple[int, str]]) -> str:
    if "{" not in text:
        return text

    def hugo(match: re.Match[str]) -> str:
        closing, name, arguments = match[2], match[3].lower(), match[4]
        if name in _FIGURES and not closing:
            attributes = {
                key.lower(): next(v for v in values if v is not None)
                for key, *values in _ATTRIBUTE.findall(arguments)
            }
            src = attributes.get("src", "")
            if src:
                alt = (
                    attributes.get("alt")
                    or attributes.get("caption")
                    or attributes.get("title", "")
                )
                return f"![{_escape(alt)}]({src})"
        if not closing and name not in ("ref", "relref"):
            dropped.append((number, match[0]))
        return ""

    def liquid(match: re.Match[str]) -> str:
        dropped.append((number, match[0]))
        return ""

    def liquid_object(match: re.Match[str]) -> str:
        quoted = _QUOTED.match(match[1])
        return quoted[2] if quoted else ""

    text = _HUGO.sub(hugo, text)
    text = _LIQUID_TAG.sub(liquid, text)
    text = _LIQUID_OBJECT.sub(liquid_object, text)
    text = _MDX_COMMENT.sub("", text)
    return _IAL.sub("", text)


def _escape(text: str) -> str:
    return text.replace("[", "\\[").replace("]", "\\]")
