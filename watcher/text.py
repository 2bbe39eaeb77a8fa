"""PURE text handling: HTML → displayed text, Unicode folding, and word splitting.

Three forms of text meet here:
- *displayed* text: what a subscriber reads (HTML stripped, entities decoded, whitespace
  collapsed). Entries carry it and spans point into it.
- *folded* text: what rules compare (`fold`): NFKC, casefold, the region's letter quirks.
- *words*: runs of letters and digits of the displayed text, each with its folded form and
  its offsets in the displayed text (`words`). Rules match whole words, so "Putin" never
  matches "Putinism" and the offsets stay exact even where folding changes a word's length
  ("Straße" → "strasse", "İ" → "i").
"""

from __future__ import annotations

import html
import re
import unicodedata
from functools import lru_cache
from html.parser import HTMLParser
from typing import NamedTuple

__all__ = ["Word", "fold", "html_to_text", "words"]

# --- HTML → displayed text ----------------------------------------------------------------

# Tags after which a browser starts a new line or cell: they must separate words, or
# "<p>Karabakh</p><p>Russia</p>" would read as one word.
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "caption", "dd", "div", "dl",
        "dt", "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "img", "li", "main", "nav", "ol", "p", "pre", "section", "table",
        "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
# Their content is code, not text; the parser already treats it as opaque.
_HIDDEN_TAGS = frozenset({"script", "style"})

_WHITESPACE_RUN = re.compile(r"\s+")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden_depth += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.parts.append(data)

    def unknown_decl(self, data: str) -> None:
        # <![CDATA[...]]> inside an HTML fragment holds text.
        if data.startswith("CDATA[") and not self._hidden_depth:
            self.parts.append(html.unescape(data[len("CDATA[") :]))


_HIDDEN_ELEMENT = re.compile(r"<(script|style)\b.*?(?:</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_ANY_TAG = re.compile(r"<[^>]*>?")


def _strip_tags_crudely(markup: str) -> str:
    return html.unescape(_ANY_TAG.sub(" ", _HIDDEN_ELEMENT.sub(" ", markup)))


def html_to_text(markup: str) -> str:
    """Displayed text of an HTML fragment (or of plain text, which passes through).

    Tags are dropped (block tags become a space), <script>/<style> content is dropped,
    entities are decoded once, runs of whitespace (NBSP included) become one space.
    Never raises on malformed markup.
    """
    if "<" not in markup:
        text = html.unescape(markup) if "&" in markup else markup
    else:
        extractor = _TextExtractor()
        try:
            extractor.feed(markup)
            extractor.close()
            text = "".join(extractor.parts)
        except AssertionError:
            # html.parser asserts on some declarations (e.g. "<![foo[") instead of
            # recovering; a crude strip still yields the words.
            text = _strip_tags_crudely(markup)
    return _WHITESPACE_RUN.sub(" ", text).strip()


# --- folding ------------------------------------------------------------------------------

# Invisible characters that may sit inside a word (hyphenation points, joiners, BOM).
_IGNORABLE = "\u00ad\u200b\u200c\u200d\u2060\ufeff"
# Every whitespace character Python knows is at or below U+3000.
_SPACES = "".join(ch for ch in map(chr, range(0x3001)) if ch.isspace() and ch != " ")
_APOSTROPHES = "\u2019\u2018\u02bc`\u00b4\u201a\u201b\u2032\u2039\u203a"
_DOUBLE_QUOTES = "\u201c\u201d\u00ab\u00bb\u201e\u201f\u2033"

_FOLD_TABLE: dict[int, str | None] = {
    **dict.fromkeys(map(ord, _IGNORABLE)),
    **dict.fromkeys(map(ord, _SPACES), " "),
    **dict.fromkeys(map(ord, _APOSTROPHES), "'"),
    **dict.fromkeys(map(ord, _DOUBLE_QUOTES), '"'),
    # Azerbaijani/Turkish: dotted capital and dotless small I fold with plain i, since
    # sources spell the same name either way (and Python casefolds "İ" to "i" + U+0307).
    ord("\u0130"): "i",
    ord("\u0131"): "i",
    # Russian: ё is optional in print; "трёхсторонний" and "трехсторонний" are one word.
    ord("\u0451"): "\u0435",
    ord("\u0401"): "\u0435",
}


_DOTTED_I = re.compile("i\u0307+")


def _fold_once(text: str) -> str:
    # Translate before NFKC too: NFKC turns "´" into " " + U+0301, and dropping a soft
    # hyphen can join a letter to a combining mark that NFKC must then compose.
    folded = unicodedata.normalize("NFKC", text.translate(_FOLD_TABLE)).casefold()
    folded = folded.translate(_FOLD_TABLE)
    if "i\u0307" in folded:
        folded = _DOTTED_I.sub("i", folded)
    return folded


def fold(text: str) -> str:
    """The form rules compare: NFKC, casefold, I-family → i, ё → е, no soft hyphens or
    zero-width characters, every space a plain space, typographic quotes plain.
    Idempotent: fold(fold(x)) == fold(x)."""
    folded = _fold_once(text)
    # Casefolding and the replacements above can leave text that NFKC would change again
    # (e.g. "i" + U+0307 + U+0301 → "i" + U+0301 → "í"); repeat until stable.
    for _ in range(4):
        if unicodedata.is_normalized("NFKC", folded):
            break
        folded = _fold_once(folded)
    return folded


# --- words --------------------------------------------------------------------------------


class Word(NamedTuple):
    """A word of displayed text: `text[start:end]` folded is `folded`."""

    folded: str
    start: int
    end: int


def _mark_ranges() -> tuple[str, str]:
    """Character-class ranges of every combining mark (Mn, Mc, Me): (BMP, astral)."""
    category = unicodedata.category
    # No combining mark lies outside these planes (checked against Unicode 14/15).
    candidates = [*range(0x20000), *range(0xE0000, 0xE1000)]
    ranges: list[list[int]] = []
    for code in candidates:
        if category(chr(code))[0] == "M":
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    bmp = "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in ranges if hi <= 0xFFFF)
    astral = "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges if lo > 0xFFFF)
    return bmp, astral


_BMP_MARKS, _ASTRAL_MARKS = _mark_ranges()
# \w also matches these, but they separate words: "_" is not a letter, and U+02BC
# (modifier letter apostrophe, a "letter" to Unicode) is an apostrophe like "'".
_WORD_CHARS_SPLITTING = "_\u02bc"


def _word_pattern(letter: str) -> re.Pattern[str]:
    # Ignorables only between letters, so a span never starts or ends on one.
    return re.compile(f"{letter}+(?:[{_IGNORABLE}]+{letter}+)*")


# The exact definition of a word character: a letter or digit of any script (\w without
# the splitting characters) or a combining mark (which \w lacks: "е" + U+0308 is "ё").
_WORD_EXACT = _word_pattern(f"(?:[^\\W{_WORD_CHARS_SPLITTING}]|[{_BMP_MARKS}{_ASTRAL_MARKS}])")
# Three times faster, and the same on text with no astral character and none of the
# splitting characters, which is nearly all news text: one class, one bitmap lookup.
_WORD_FAST = _word_pattern(f"[\\w{_BMP_MARKS}]")


def _fits_fast_pattern(text: str) -> bool:
    if any(ch in text for ch in _WORD_CHARS_SPLITTING):
        return False
    # A str holding an astral character takes 4 UTF-16 bytes for it, every other 2.
    return len(text.encode("utf-16-le", "surrogatepass")) == 2 * len(text)


@lru_cache(maxsize=1 << 16)
def _fold_word(word: str) -> str:
    return fold(word)


def words(text: str) -> list[Word]:
    """The words of displayed `text`, in order, with offsets into `text`.

    Letters, digits and combining marks of any script make words; everything else
    (spaces, hyphens, apostrophes, punctuation) separates them. Soft hyphens and
    zero-width characters inside a word do not split it."""
    pattern = _WORD_FAST if _fits_fast_pattern(text) else _WORD_EXACT
    found: list[Word] = []
    append = found.append
    for match in pattern.finditer(text):
        word = match.group()
        # ASCII letters and digits fold by lower() alone.
        folded = word.lower() if word.isascii() else _fold_word(word)
        append(Word(folded, match.start(), match.end()))
    return found
