"""What the words of an article say about its structure: item markers, counts, kind words.

Pure string tests, shared by the plain-text and the Markdown readers and the structure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from course.content import Kind

# Nouns an item line may open with ("Step 1:", "Tip #2 –"); the heading's own noun is added.
ITEM_NOUNS = (
    "step",
    "tip",
    "sign",
    "way",
    "reason",
    "mistake",
    "habit",
    "idea",
    "question",
    "rule",
    "secret",
    "strategy",
    "myth",
    "trick",
    "lesson",
    "day",
    "part",
    "chapter",
    "point",
    "number",
    "no",
    "item",
    "hack",
    "fact",
    "thing",
    "tactic",
    "method",
    "benefit",
)
# Three digits at most, so a year standing alone ("2019.") is never taken for an item.
_NUMBER = r"(?P<number>\d{1,3})"
_DASH = r"[–—-]"
_BARE = re.compile(rf"\(?{_NUMBER}(?P<delimiter>[.):])(?=\s)\s*")
_HASH = re.compile(rf"#{_NUMBER}(?:(?P<delimiter>[.):])|\s+(?P<dash>{_DASH}))?(?=\s)\s*")
_NOUN = re.compile(
    rf"(?P<noun>[^\W\d_]+)\.?\s*(?:#\s*)?{_NUMBER}"
    rf"(?:(?P<delimiter>[.):])|\s+(?P<dash>{_DASH}))(?=\s)\s*",
)
_COUNTED_NOUNS = (
    "reasons|signs|ways|things|steps|tips|tricks|strategies|mistakes|habits|secrets|questions"
    "|rules|lessons|ideas|facts|traits|methods|keys|truths|stages|phrases|examples|causes"
    "|symptoms|hacks|benefits|myths|options|exercises|flags|behaviors|behaviours|actions"
    "|tactics|points|books|tools|places|foods|apps|quotes|words|lies|types|red flags"
)
# "11 reasons", "7 warning signs", "10 simple ways", "Top 5 Tips": a number before a listicle
# noun, with at most two words between; "what to do in 24 hours" is no count.
COUNT = re.compile(
    rf"\b(?P<count>\d{{1,3}})\s+(?:[^\W\d_][\w’'-]*\s+){{0,2}}?(?P<noun>{_COUNTED_NOUNS})\b",
    re.IGNORECASE,
)
_KIND_WORDS = {
    Kind.REASON: ("reasons", "why"),
    Kind.SIGN: ("signs", "red flags", "symptoms", "clues"),
    Kind.TIP: ("tips",),
    Kind.WAY: ("ways",),
    Kind.MISTAKE: ("mistakes",),
    Kind.STEP: ("steps",),
    Kind.HABIT: ("habits",),
    Kind.IDEA: ("ideas",),
    Kind.QUESTION: ("questions",),
    Kind.RULE: ("rules",),
    Kind.SECRET: ("secrets",),
    Kind.STRATEGY: ("strategies",),
    Kind.MYTH: ("myths",),
    Kind.TRICK: ("tricks", "hacks"),
    Kind.LESSON: ("lessons",),
}
_SINGULAR_KINDS = {kind.value: kind for kind in Kind if kind is not Kind.ACTION}
_KIND_PATTERN = re.compile(
    r"\b(" + "|".join(w for words in _KIND_WORDS.values() for w in words) + r")\b",
    re.IGNORECASE,
)
_WORD_TO_KIND = {w: kind for kind, words in _KIND_WORDS.items() for w in words}
# Headings that end the items or open the article, never items themselves.
CLOSING_WORDS = re.compile(
    r"^(?:in\s+)?(?:conclusion|final thoughts?|final words?|summary|to sum up|in summary|"
    r"wrapping up|wrap-?up|the bottom line|bottom line|takeaways?|key takeaways|the takeaway|"
    r"over to you|next steps|resources|further reading|references|sources|related(?: posts| "
    r"articles)?|about the author|faqs?|frequently asked questions|comments?|leave a reply|"
    r"share this|one last thing|the verdict|closing thoughts)\b",
    re.IGNORECASE,
)
OPENING_WORDS = re.compile(
    r"^(?:introduction|intro|overview|background|table of contents|contents|in this "
    r"(?:post|article)|tl;?dr)\b",
    re.IGNORECASE,
)
# A paragraph that signs off the whole article rather than saying more about its last item:
# "That's it!", "Which of these will you try first?", "Let us know in the comments".
SIGN_OFF = re.compile(
    r"^(?:that[’']s (?:it|all)|that is all|there you (?:have it|go)|happy \w+ing\b|good luck|"
    r"thanks? (?:you )?for reading|hope (?:this|these|that) help|i hope (?:this|these|you)|"
    r"hopefully,? (?:this|these)|now (?:it[’']s|it is) your turn|over to you|your turn|"
    r"let (?:me|us) know|which (?:of these|one|\w+ (?:works|will|do))|what do you think|"
    r"what about you|have i missed|did i miss|do you have (?:any )?(?:other|more)|"
    r"share your|pick one|start with one|try (?:one|them|these)|"
    r"viel (?:erfolg|spaß|glück)|buena suerte|¡buena suerte|bonne (?:chance|nuit)|"
    r"bon courage)\b"
    r"|\b(?:in the comments|(?:these|those) (?:tips|tricks|ideas|ways|habits|steps|hacks|"
    r"strategies|rules)\b|this (?:list|article|post)\b|for more (?:tips|ideas|advice))",
    re.IGNORECASE,
)
SIGN_OFF_MAX_WORDS = 30
SENTENCE_END = ".!…:;,"
CLOSING_MARKS = "”’\"')]»*_"
QUOTE_PAIRS = (("“", "”"), ('"', '"'), ("„", "“"), ("«", "»"))
MAX_HEADING_CHARS = 120


@dataclass(frozen=True)
class Marker:
    """The number at the start of an item line, as written."""

    number: int
    length: int  # characters of the marker, including the space after it
    delimiter: str  # ".", ")", ":", "–", or "" for "#1 Title"
    noun: str  # "step" for "Step 1:", else ""
    hashed: bool  # "#1"

    @property
    def style(self) -> tuple[str, str, bool]:
        """What must match for two items to belong to one list."""
        return (self.noun, self.delimiter if self.delimiter in ".):" else "–", self.hashed)


def item_marker(text: str, nouns: tuple[str, ...] = ()) -> Marker | None:
    """The item marker that `text` opens with, if it is followed by a title."""
    for pattern in (_BARE, _HASH, _NOUN):
        match = pattern.match(text)
        if match is None or not text[match.end() :].strip():
            continue
        groups = match.groupdict()
        noun = (groups.get("noun") or "").lower()
        if pattern is _NOUN and noun not in ITEM_NOUNS and noun not in nouns:
            continue
        delimiter = groups.get("delimiter") or ("–" if groups.get("dash") else "")
        if text.startswith("(") and delimiter != ")":
            continue
        return Marker(int(groups["number"]), match.end(), delimiter, noun, pattern is _HASH)
    return None


def count_of(text: str) -> tuple[int, str] | None:
    """(11, "reasons") for a heading that states a count."""
    match = COUNT.search(text)
    return (int(match["count"]), match["noun"]) if match else None


def kind_of(text: str) -> Kind | None:
    """The kind a heading names: "11 reasons why…" -> reason; "Why?" -> reason."""
    counted = COUNT.search(text)
    if counted:
        kind = _WORD_TO_KIND.get(counted["noun"].lower())
        if kind:
            return kind
    match = _KIND_PATTERN.search(text)
    if match:
        word = match[1].lower()
        # "why" names reasons only as a question that stands alone ("Why?", "Why it happens").
        if word != "why" or text.rstrip().endswith("?") or text.lower().startswith("why"):
            return _WORD_TO_KIND[word]
    return None


def kind_of_noun(noun: str) -> Kind | None:
    """The kind an item noun names: "step" -> step."""
    return _SINGULAR_KINDS.get(noun.lower())


def announces(text: str) -> bool:
    """Whether a heading announces a list: a count, a kind word, or a question."""
    if CLOSING_WORDS.match(text.strip()):
        return False
    return count_of(text) is not None or kind_of(text) is not None or text.rstrip().endswith("?")


def reads_as_heading(text: str) -> bool:
    """Short, not a quotation or a link, and ends in "?" or in no sentence punctuation."""
    text = text.strip()
    if not text or len(text) > MAX_HEADING_CHARS or is_wrapped_quote(text) or "://" in text:
        return False
    last = text.rstrip(CLOSING_MARKS)[-1:]
    return last == "?" or (last != "" and last not in SENTENCE_END)


def is_wrapped_quote(text: str) -> bool:
    """Whether one pair of quotation marks wraps the whole text."""
    return any(
        len(text) > 1
        and text.startswith(opening)
        and text.endswith(closing)
        # “A,” he said, “b.” opens and closes with quotation marks but is no quotation.
        and closing not in text[1:-1]
        for opening, closing in QUOTE_PAIRS
    )


def is_closing_heading(text: str) -> bool:
    return CLOSING_WORDS.match(text.strip()) is not None


def is_sign_off(text: str) -> bool:
    """A short paragraph that closes the article, not its last item."""
    return len(text.split()) <= SIGN_OFF_MAX_WORDS and SIGN_OFF.search(text.strip()) is not None


def quote(text: str, limit: int = 80) -> str:
    """Source text for an error message: one line, at most `limit` characters, in backticks."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return f"`{flat}`"
