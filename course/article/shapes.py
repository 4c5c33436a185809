"""What the words of an article say about its structure: item markers, counts, kind words.

Pure string tests, shared by the plain-text and the Markdown readers and the structure.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from functools import cache

from course.content import Kind

# Nouns an item line may open with ("Step 1:", "Tip #2 –"); the heading's own noun is added.
ITEM_NOUNS: tuple[str, ...] = (
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
# Nouns of numbered lines that may head groups of items ("Part 1:", "Chapter 2:").
_GROUPING = (
    "part",
    "chapter",
    "section",
    "phase",
    "stage",
    "module",
    "unit",
    "level",
    "week",
    "teil",
    "kapitel",
    "partie",
    "chapitre",
    "parte",
    "capítulo",
    "capitulo",
)
GROUPING_NOUNS = frozenset(_GROUPING)
# All but "part" also number items of their own ("Chapter 3:", "Week 2:").
ITEM_NOUNS += _GROUPING[1:]
# Item nouns of other languages: "Tipp 1:", "Astuce n°1 :", "Consejo 1:", "Passo 1:".
ITEM_NOUNS += (
    "tipp",
    "schritt",
    "grund",
    "fehler",
    "regel",
    "gewohnheit",
    "idee",
    "astuce",
    "conseil",
    "étape",
    "etape",
    "erreur",
    "raison",
    "règle",
    "habitude",
    "consejo",
    "paso",
    "truco",
    "razón",
    "razon",
    "error",
    "regla",
    "hábito",
    "consiglio",
    "passo",
    "motivo",
    "regola",
    "errore",
    "dica",
)
# Three digits at most, so a year standing alone ("2019.") is never taken for an item.
_NUMBER = r"(?P<number>\d{1,3})"
_DASH = r"[–—-]"
# Spelled-out numbers after a noun ("Step One:"), and Roman numerals up to twenty ("II.").
_WORDS = [
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
]
WORD_NUMBERS = {word: index for index, word in enumerate(_WORDS, start=1)}
ROMAN_NUMBERS = {
    numeral: index
    for index, numeral in enumerate(
        [
            "I",
            "II",
            "III",
            "IV",
            "V",
            "VI",
            "VII",
            "VIII",
            "IX",
            "X",
            "XI",
            "XII",
            "XIII",
            "XIV",
            "XV",
            "XVI",
            "XVII",
            "XVIII",
            "XIX",
            "XX",
        ],
        start=1,
    )
}
_CJK_DIGITS = {c: i for i, c in enumerate("一二三四五六七八九", start=1)}
_BARE = re.compile(rf"\(?{_NUMBER}(?P<delimiter>[.):])(?=\s)\s*")
# A thread's posts: "1/ Title", "1/10 Title".
_THREAD = re.compile(rf"{_NUMBER}/(?:\d{{1,3}})?(?=\s)\s*")
# "1 – Title", "1 - Title": a dash, then a word (not "2 - 3 cups").
_DASHED = re.compile(rf"{_NUMBER}\s*(?P<dash>[–—]|-(?=\s))\s*(?=[^\W\d_])")
_HASH = re.compile(rf"#{_NUMBER}(?:(?P<delimiter>[.):])|\s+(?P<dash>{_DASH}))?(?=\s)\s*")
# "Step 1:", "Tip #2 –", "Astuce n°3 :", "Tipp Nr. 4:", "Step One:".
_NOUN = re.compile(
    rf"(?P<noun>[^\W\d_]+)\.?\s*(?:#\s*|n[°º]\s*|nr\.?\s*|no\.\s*)?"
    rf"(?:{_NUMBER}|(?P<word>{'|'.join(_WORDS)})\b)"
    rf"(?:\s?(?P<delimiter>[.):])|\s+(?P<dash>{_DASH}))(?=\s)\s*",
    re.IGNORECASE,
)
# "II. Title" (not an initial: "V. S. Naipaul").
_ROMAN = re.compile(r"(?P<roman>[IVX]{1,5})(?P<delimiter>[.):])\s+(?![A-Z]\.)(?=\S)")
# A question of a Q&A: "Q: …", "Q. …", "Q1: …", "Question 2: …" (its answer: "A: …").
_QUESTION = re.compile(r"(?:Q|Question)\s*(?P<number>\d{1,3})?\s*[.:)]\s+(?=\S)")
ANSWER = re.compile(r"(?:A|Answer)\s*\d{0,3}\s*[.:)]\s+(?=\S)")
UNNUMBERED = 0  # the number of an item marker that has none ("Q:"); numbered in order
# Keycap digits: "1️⃣ Title", "🔟 Title".
_KEYCAP = re.compile(r"(?P<keycap>(?:\d\ufe0f?\u20e3)+|\U0001f51f)\s*(?=\S)")
# Chinese and Japanese: "1、", "１．", "（1）", "一、", "第一步：" (no space after them).
_CJK = re.compile(
    r"(?:[（(](?P<paren>\d{1,3}|[一二三四五六七八九十]{1,3})[）)]|第?(?P<cjk>\d{1,3}|[一二三四五六七八九十]{1,3})"
    r"(?:[步点條条个個章部]分?)?(?P<delimiter>[、．.：:，,）)]))\s*(?=\S)"
)
_COUNTED_NOUNS = (
    "reasons|signs|ways|things|steps|tips|tricks|strategies|mistakes|habits|secrets|questions"
    "|rules|lessons|ideas|facts|traits|methods|keys|truths|stages|phrases|examples|causes"
    "|symptoms|hacks|benefits|myths|options|exercises|flags|behaviors|behaviours|actions"
    "|tactics|points|books|tools|places|foods|apps|quotes|words|lies|types|red flags"
    # German, French, Spanish, Italian, Portuguese: counted for the count check; the label
    # stays "Lesson" (the emails' own words are English).
    "|tipps|gründe|fehler|schritte|regeln|ideen|wege|gewohnheiten|anzeichen|astuces|conseils"
    "|raisons|erreurs|étapes|règles|idées|façons|habitudes|signes|consejos|razones|errores"
    "|pasos|reglas|formas|maneras|hábitos|señales|trucos|consigli|motivi|errori|passi|regole"
    "|modi|dicas|motivos|erros|passos"
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
    r"(?:post|article)|tl;?dr|(?:key )?takeaways|summary|quick summary|at a glance)\b",
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
    r"share your|pick one|start with one|follow (?:me|us)\b|if (?:this|you found this) "
    r"(?:was|is) (?:useful|helpful)|try (?:one|them|these)|enjoy(?:!| your| the results)|"
    r"viel (?:erfolg|spaß|glück)|buena suerte|¡buena suerte|bonne (?:chance|nuit)|"
    r"bon courage)\b"
    r"|\b(?:in the comments|(?:these|those) (?:tips|tricks|ideas|ways|habits|steps|hacks|"
    r"strategies|rules)\b|this (?:list|article|post)\b|for more (?:tips|ideas|advice))"
    r"|^希望(?:这些|這些|以上|本文)",
    re.IGNORECASE,
)
SIGN_OFF_MAX_WORDS = 30
SENTENCE_END = ".!…:;,。！：；，、"
CLOSING_MARKS = "”’\"')]»*_」』）"
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
    """The item marker that `text` opens with, if it is followed by a title. Emoji before
    the number ("🔥 1. Title") belong to the marker."""
    lead = 0 if text[:1].isascii() else _emoji_lead(text)
    rest = text[lead:]
    marker = _marker(rest, nouns)
    if marker is None or not rest[marker.length :].strip():
        return None
    return replace(marker, length=marker.length + lead) if lead else marker


def _marker(text: str, nouns: tuple[str, ...]) -> Marker | None:
    first = text[:1]
    if first.isdigit() or first in "(#（":
        for pattern in (_BARE, _HASH):
            match = pattern.match(text)
            if match is not None:
                groups = match.groupdict()
                delimiter = groups.get("delimiter") or ("–" if groups.get("dash") else "")
                if text.startswith("(") and delimiter != ")":
                    continue
                return Marker(int(groups["number"]), match.end(), delimiter, "", pattern is _HASH)
        match = _DASHED.match(text)
        if match is not None:
            return Marker(int(match["number"]), match.end(), "–", "", False)
        match = _THREAD.match(text)
        if match is not None:
            return Marker(int(match["number"]), match.end(), "/", "", False)
        match = _KEYCAP.match(text)
        if match is not None:
            return Marker(_keycap_number(match["keycap"]), match.end(), "⃣", "", False)
    if first in "IVX":
        match = _ROMAN.match(text)
        if match is not None and match["roman"] in ROMAN_NUMBERS:
            return Marker(ROMAN_NUMBERS[match["roman"]], match.end(), match["delimiter"], "", False)
    if first == "\U0001f51f":
        match = _KEYCAP.match(text)
        if match is not None:
            return Marker(10, match.end(), "⃣", "", False)
    if first == "Q":
        match = _QUESTION.match(text)
        if match is not None:
            number = int(match["number"]) if match["number"] else UNNUMBERED
            return Marker(number, match.end(), ":", "q", False)
    if first.isalpha():
        match = _NOUN.match(text)
        if match is not None:
            noun = match["noun"].lower()
            if noun in ITEM_NOUNS or noun in nouns:
                number = (
                    int(match["number"]) if match["number"] else WORD_NUMBERS[match["word"].lower()]
                )
                delimiter = match["delimiter"] or "–"
                return Marker(number, match.end(), delimiter, noun, False)
    if first.isdigit() or first in "第一二三四五六七八九十（(":
        match = _CJK.match(text)
        if match is not None and (match["paren"] or _cjk_follows(match, text)):
            value = match["paren"] or match["cjk"]
            delimiter = ")" if match["paren"] else "、"
            return Marker(_cjk_number(value), match.end(), delimiter, "", False)
    return None


def _emoji_lead(text: str) -> int:
    """How many characters of emoji (and the space after them) open the text."""
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace() and index:
            index += 1
            continue
        if char in "\ufe0f\u200d" or (unicodedata.category(char) == "So" and char != "\U0001f51f"):
            index += 1
            continue
        break
    return index if index and index < len(text) else 0


def _cjk_follows(match: re.Match[str], text: str) -> bool:
    """A full-width delimiter, or an ASCII one with Chinese or Japanese right after it
    ("1.一次", never "1.5 cups")."""
    if match["delimiter"] not in ".:,)":
        return True
    after = text[match.end() : match.end() + 1]
    return bool(after) and "\u2e80" <= after <= "\u9fff"


def _keycap_number(keycaps: str) -> int:
    if keycaps == "\U0001f51f":
        return 10
    return int("".join(char for char in keycaps if char.isdigit()))


def _cjk_number(value: str) -> int:
    if value.isdigit():
        return int(value)
    if "十" not in value:
        return _CJK_DIGITS.get(value, 0)
    tens, _, ones = value.partition("十")
    return _CJK_DIGITS.get(tens, 1) * 10 + _CJK_DIGITS.get(ones, 0)


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
    """The kind an item noun names: "step" -> step, "Q" -> question."""
    noun = noun.lower()
    return Kind.QUESTION if noun == "q" else _SINGULAR_KINDS.get(noun)


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
    return last != "" and (last in "?？" or last not in SENTENCE_END)


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


# Chinese and Japanese write without spaces: each ideograph or kana counts as a word.
_CJK_CHARS = "\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff"


@cache
def _words_of() -> re.Pattern[str]:
    # Compiled on first use: Western articles never need it.
    return re.compile(rf"[{_CJK_CHARS}]|[^\s{_CJK_CHARS}]+")


def count_words(text: str) -> int:
    """Words in the text; in Chinese and Japanese, characters."""
    if text.isascii() or not any("\u3040" <= char <= "\ufaff" for char in text):
        return len(text.split())
    return len(_words_of().findall(text))


def is_sign_off(text: str) -> bool:
    """A short paragraph that closes the article, not its last item."""
    return count_words(text) <= SIGN_OFF_MAX_WORDS and SIGN_OFF.search(text.strip()) is not None


def quote(text: str, limit: int = 80) -> str:
    """Source text for an error message: one line, at most `limit` characters, in backticks."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return f"`{flat}`"
