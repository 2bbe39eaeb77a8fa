"""PURE text handling: HTML → displayed text, Unicode folding, and word splitting.

Five forms of text meet here:
- *displayed* text: what a subscriber reads (HTML stripped, entities decoded, whitespace
  collapsed). Entries carry it and spans point into it.
- *folded* text: what rules compare (`fold`): NFKC, casefold, the region's letter quirks.
- *words*: runs of letters, digits and combining marks of the displayed text, each with its
  folded form and its offsets in the displayed text (`words`). Rules match whole words, so
  "Putin" never matches "Putinism", and offsets stay exact even where folding changes a
  word's length ("Straße" → "strasse", "և" → "եվ").
- a *word line* (`word_line`): the folded words of an entry's fields as one string,
  " w1 w2 \\x00 w3 "; it maps positions in the line back to displayed offsets, lazily,
  for the few words a rule hit.
- a *scan line* (`scan_line`): the same, but with one space for each separator of the
  displayed text (" w1  w2 \\x00 w3 " for "w1, w2" and "w3"), which costs a fraction of
  a word line to build (two C-speed codec passes for the region's scripts); the rule
  matcher scans it in one pass.
"""

from __future__ import annotations

import codecs
import html
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from functools import cache, lru_cache
from html.parser import HTMLParser
from typing import Any, NamedTuple

# AFTER_NFKC_TABLE, ARMENIAN_YEV, IGNORABLE_CHARS and is_word_char are how `fold` and
# `words` decide; watcher.rules.native builds the C engine's character table from them.
__all__ = [
    "AFTER_NFKC_TABLE",
    "ARMENIAN_YEV",
    "FIELD_BREAK",
    "IGNORABLE_CHARS",
    "ScanLine",
    "Word",
    "WordLine",
    "fold",
    "html_to_text",
    "is_word_char",
    "scan_line",
    "word_line",
    "words",
]

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
_WHOLE_TAG = re.compile(r"<[^<>]*>")


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
            # Not close(): on this Python it scans what is left again for every tag left
            # unfinished ("<a b='" repeated: minutes for one summary). What feed() left, an
            # unfinished tag and all after it or text held back for a character reference,
            # is text as close() would show it, less the whole tags in it; the rest of a
            # <script> is hidden.
            rest = extractor.rawdata
            if extractor.cdata_elem:
                rest = ""
            elif rest:
                rest = html.unescape(_WHOLE_TAG.sub(" ", rest))
            text = "".join(extractor.parts) + rest
        except AssertionError:
            # html.parser asserts on some declarations (e.g. "<![foo[") instead of
            # recovering; a crude strip still yields the words.
            text = _strip_tags_crudely(markup)
    return _WHITESPACE_RUN.sub(" ", text).strip()


# --- folding ------------------------------------------------------------------------------

# Characters that may sit inside a word and are no part of it: hyphenation points, joiners,
# BOM, the bidirectional marks and embeddings that editors of mixed-script text leave
# behind, and Armenian's emphasis, exclamation and question marks, written over a vowel of
# the word they mark ("Պուտի՞նը" is "Պուտինը" asked about).
IGNORABLE_CHARS = (
    "\u00ad\u061c\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2066\u2067\u2068\u2069\ufeff\u055b\u055c\u055e"
)
# Every whitespace character Python knows is at or below U+3000.
_SPACES = "".join(ch for ch in map(chr, range(0x3001)) if ch.isspace() and ch != " ")
_APOSTROPHES = "\u2019\u2018\u02bc`\u00b4\u201a\u201b\u2032\u2039\u203a"
_DOUBLE_QUOTES = "\u201c\u201d\u00ab\u00bb\u201e\u201f\u2033"

_FOLD_TABLE: dict[int, str | None] = {
    **dict.fromkeys(map(ord, IGNORABLE_CHARS)),
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
# After NFKC has composed what it can, an acute (U+0301) or a dot above (U+0307) that is
# still loose is a Russian stress mark or the dot of a decomposed "İ": neither tells words
# apart. Dropping them before NFKC would turn a decomposed "é" into "e".
AFTER_NFKC_TABLE: dict[int, str | None] = {**_FOLD_TABLE, 0x0301: None, 0x0307: None}


# Armenian "և" (yev) is written "ԵՎ"/"Եվ"/"եվ" in the reformed spelling of Armenia and
# "եւ" in the classical one, and Unicode folds the ligature to "եւ": all become "եվ" (the
# pair "եւ" occurs in no other word: "ւ" is otherwise only the second letter of "ու").
ARMENIAN_YEV = ("\u0565\u0582", "\u0565\u057e")


def _fold_once(text: str) -> str:
    # Translate before NFKC too: NFKC turns "´" into " " + U+0301, and dropping a soft
    # hyphen can join a letter to a combining mark that NFKC must then compose.
    folded = unicodedata.normalize("NFKC", text.translate(_FOLD_TABLE)).casefold()
    folded = folded.translate(AFTER_NFKC_TABLE)
    if "\u0582" in folded:
        folded = folded.replace(*ARMENIAN_YEV)
    return folded


def fold(text: str) -> str:
    """The form rules compare: NFKC, casefold, I-family → i, ё → е, Armenian և/եւ → եվ,
    no soft hyphens, zero-width characters or bidi marks, no loose stress accents (U+0301)
    or dots above (U+0307), every space a plain space, typographic quotes plain.
    Idempotent: fold(fold(x)) == fold(x)."""
    folded = _fold_once(text)
    # Casefolding and the replacements above can leave text that NFKC would change again
    # (e.g. "е" + U+0301 + U+0308 → "е" + U+0308 → "ё"); repeat until stable.
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


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "M"


def _mark_ranges() -> tuple[str, str]:
    """Character-class ranges of every combining mark (Mn, Mc, Me): (BMP, astral)."""
    # No combining mark lies outside these planes (checked against Unicode 14/15).
    candidates = [*range(0x20000), *range(0xE0000, 0xE1000)]
    bmp = _class_ranges(c for c in candidates if c <= 0xFFFF and _is_mark(chr(c)))
    astral = _class_ranges(c for c in candidates if c > 0xFFFF and _is_mark(chr(c)))
    return bmp, astral


def _class_ranges(codes: Iterable[int]) -> str:
    """A regex character-class body for these code points (ascending)."""
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "".join(
        re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"
        for lo, hi in ranges
    )


_BMP_MARKS, _ASTRAL_MARKS = _mark_ranges()
# \w also matches these, but they separate words: "_" is not a letter, and U+02BC
# (modifier letter apostrophe, a "letter" to Unicode) is an apostrophe like "'".
_WORD_CHARS_SPLITTING = "_\u02bc"


def is_word_char(ch: str) -> bool:
    """A letter or digit of any script, or a combining mark ("е" + U+0308 is "ё")."""
    return (ch.isalnum() or _is_mark(ch)) and ch not in _WORD_CHARS_SPLITTING


def _word_pattern(letter: str) -> re.Pattern[str]:
    # Ignorables only between letters, so a span never starts or ends on one.
    return re.compile(f"{letter}+(?:[{IGNORABLE_CHARS}]+{letter}+)*")


# The exact definition of a word character, as is_word_char: a letter or digit of any
# script (\w without the splitting characters) or a combining mark (which \w lacks).
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
    # A few compatibility letters fold to several words (U+FDFA is a whole Arabic
    # phrase); as one word of displayed text they stay one word here.
    return fold(word).replace(" ", "")


def words(text: str) -> list[Word]:
    """The words of displayed `text`, in order, with offsets into `text`.

    Letters, digits and combining marks of any script make words; everything else
    (spaces, hyphens, apostrophes, punctuation) separates them. Soft hyphens, zero-width
    characters and bidi marks inside a word do not split it. A word whose folded form is
    empty (a lone stress mark) is no word."""
    pattern = _WORD_FAST if _fits_fast_pattern(text) else _WORD_EXACT
    found: list[Word] = []
    append = found.append
    for match in pattern.finditer(text):
        word = match.group()
        # ASCII letters and digits fold by lower() alone.
        folded = word.lower() if word.isascii() else _fold_word(word)
        if folded:
            append(Word(folded, match.start(), match.end()))
    return found


# --- the word line: what the rule matcher scans -------------------------------------------

FIELD_BREAK = "\x00"
_FIELD_JOIN = " " + FIELD_BREAK + " "


class _ExactMap:
    """Line positions → displayed offsets, recorded word by word (the exact path)."""

    __slots__ = ("_ends", "_starts")

    def __init__(self, starts: dict[int, tuple[int, int]], ends: dict[int, int]) -> None:
        self._starts = starts  # line position of a word's first letter → (field, offset)
        self._ends = ends  # line position just after a word → displayed end offset

    def displayed(self, start: int, end: int) -> tuple[int, int, int]:
        field, first = self._starts[start]
        return field, first, self._ends[end]


class _Lengthening:
    """Positions in a folded text → positions in the text it was folded from, where folding
    kept every character's place except that some letters grew ("ß" → "ss", "և" → "եվ")."""

    __slots__ = ("_added", "_image_ends")

    def __init__(self, original: str) -> None:
        image_ends: list[int] = []  # where each lengthened letter's image ends
        added: list[int] = []  # characters added up to and including that letter
        total = 0
        tables = _fast_tables()
        for letter in tables.lengthening.finditer(original):
            total += tables.added[letter.group()]
            image_ends.append(letter.start() + total + 1)
            added.append(total)
        self._image_ends = image_ends
        self._added = added

    def original(self, position: int) -> int:
        """`position` is a boundary of a folded character's image, never inside one."""
        before = bisect_right(self._image_ends, position)
        return position - (self._added[before - 1] if before else 0)


class _FastMap:
    """Line positions → displayed offsets for a line built by whole-string operations.

    The line is the joined fields, casefolded (which lengthens a few letters: "ß" → "ss",
    "և" → "եվ"), with every separator replaced by a space (length kept), padded by a space
    at each end, and with runs of spaces collapsed. Both length changes are undone here,
    lazily: most entries are never asked."""

    __slots__ = ("_bases", "_expanded", "_joined", "_lengthening", "_line", "_padded")

    def __init__(
        self, fields: Sequence[str], joined: str, padded: str, line: str, expanded: bool
    ) -> None:
        bases: list[int] = []
        base = 0
        for text in fields:
            bases.append(base)
            base += len(text) + len(_FIELD_JOIN)
        self._bases = bases  # where each field starts in `joined`
        self._joined = joined
        self._padded = padded  # the line before runs of spaces were collapsed
        self._line = line
        self._expanded = expanded
        self._lengthening: _Lengthening | None = None

    def displayed(self, start: int, end: int) -> tuple[int, int, int]:
        first = self._joined_position(self._padded_position(start, True) - 1)
        last = self._joined_position(self._padded_position(end, False) - 1)
        field = bisect_right(self._bases, first) - 1
        base = self._bases[field]
        return field, first - base, last - base

    def _padded_position(self, position: int, word_start: bool) -> int:
        # The line and the padded line hold the same non-space characters in the same
        # order: find the first place in the padded line with as many before it. It is the
        # least p with p = before + spaces(padded[:p]); iterating from below reaches it in a
        # few steps, each counting the spaces of a shorter stretch at C speed.
        padded = self._padded
        before = position - self._line.count(" ", 0, position)
        found = position
        spaces = padded.count(" ", 0, found)
        while (further := before + spaces) != found:
            spaces += padded.count(" ", found, further)
            found = further
        if word_start:  # past the run of spaces the word follows
            while padded[found] == " ":
                found += 1
        return found

    def _joined_position(self, position: int) -> int:
        if not self._expanded:
            return position
        if self._lengthening is None:
            self._lengthening = _Lengthening(self._joined)
        return self._lengthening.original(position)


class WordLine:
    """The folded words of an entry's fields as one string: each word preceded and
    followed by exactly one space, fields separated by FIELD_BREAK (" w1 w2 \\x00 w3 ").

    A search for " word " (or " prefix") therefore finds whole words only, a phrase key
    " w1 w2 " finds consecutive words whatever separated them in the displayed text, no
    match crosses a field break, and the number of words between two places is the number
    of spaces between them. `displayed` maps a run of whole words back to the field and
    the offsets of the displayed text."""

    __slots__ = ("breaks", "line", "mapping")

    def __init__(self, line: str, mapping: _ExactMap | _FastMap) -> None:
        self.line = line
        self.mapping = mapping
        breaks: list[int] = []
        at = line.find(FIELD_BREAK)
        while at >= 0:
            breaks.append(at)
            at = line.find(FIELD_BREAK, at + 1)
        self.breaks = breaks

    def field_of(self, position: int) -> int:
        """The index of the field a line position lies in."""
        return bisect_right(self.breaks, position)

    def displayed(self, start: int, end: int) -> tuple[int, int, int]:
        """(field index, start, end) in that field's displayed text of the words in
        `line[start:end]`, where `start` is a word's first letter and `end` the space
        after a word of the same field."""
        return self.mapping.displayed(start, end)


def word_line(*fields: str) -> WordLine:
    """The word line of these fields of displayed text (e.g. an entry's title and summary).

    Its words are exactly `words(field)` folded. Nearly all text takes a fast path of
    whole-string operations (casefold, replace); text with a character whose folding is not
    a simple per-letter casefold (a combining mark, a soft hyphen, a compatibility letter,
    an astral letter) is split word by word instead, with the same result."""
    if any(FIELD_BREAK in text for text in fields):
        fields = tuple(text.replace(FIELD_BREAK, " ") for text in fields)
    joined = _FIELD_JOIN.join(fields)
    if joined.isascii():
        folded = joined.lower().translate(_ASCII_SEPARATORS)
    else:
        fast = _fold_fast(joined)
        if fast is None:
            return _exact_word_line(fields)
        folded = fast
    padded = " " + folded + " "
    line = padded
    while "  " in line:
        line = line.replace("  ", " ")
    expanded = len(folded) != len(joined)
    return WordLine(line, _FastMap(fields, joined, padded, line, expanded))


def _exact_word_line(fields: Sequence[str]) -> WordLine:
    """The word line built word by word from `words`: the definition `word_line` follows."""
    parts = [" "]
    position = 1
    starts: dict[int, tuple[int, int]] = {}
    ends: dict[int, int] = {}
    for index, text in enumerate(fields):
        if index:
            parts.append(FIELD_BREAK + " ")
            position += 2
        for word in words(text.replace(FIELD_BREAK, " ")):
            starts[position] = (index, word.start)
            parts.append(word.folded)
            position += len(word.folded)
            ends[position] = word.end
            parts.append(" ")
            position += 1
    return WordLine("".join(parts), _ExactMap(starts, ends))


_ASCII_SEPARATORS = str.maketrans(
    {ch: " " for ch in map(chr, range(128)) if not ch.isalnum() and ch not in " " + FIELD_BREAK}
)


def _fold_fast(joined: str) -> str | None:
    """`joined` with separators as spaces and letters casefolded as `fold` would fold each
    word, keeping each character's place except for lengthened letters; None if some
    character needs the exact path."""
    tables = _fast_tables()
    search = tables.special.search
    text = joined
    position = 0
    # Each round replaces every occurrence of one separator: a text holds few kinds.
    while (found := search(text, position)) is not None:
        ch = found.group()
        if not _is_separator(ch):
            return None
        position = found.start()
        text = text.replace(ch, " ")
    if "\u0130" in text:
        text = text.replace("\u0130", "I")
    folded = text.casefold()
    if "\u0451" in folded:
        folded = folded.replace("\u0451", "\u0435")
    if "\u0131" in folded:
        folded = folded.replace("\u0131", "i")
    if "\u0582" in folded:
        folded = folded.replace(*ARMENIAN_YEV)
    return folded


def _fast_fold_letter(ch: str) -> str:
    folded = ("I" if ch == "\u0130" else ch).casefold()
    return folded.replace("\u0451", "\u0435").replace("\u0131", "i").replace(*ARMENIAN_YEV)


@lru_cache(maxsize=4096)
def _is_separator(ch: str) -> bool:
    return not is_word_char(ch) and ch not in IGNORABLE_CHARS


class _FastTables(NamedTuple):
    special: re.Pattern[str]  # a character other than a space, a field break or a safe letter
    lengthening: re.Pattern[str]  # a safe letter that casefolds to several characters
    added: dict[str, int]  # how many characters each of those adds


# Letters below this code point are checked one by one for the fast path (that covers
# Latin, Greek, Cyrillic, Armenian, Georgian, and the punctuation and symbol blocks).
_FAST_LIMIT = 0x3000
_HANGUL_JAMO = range(0x1100, 0x1200)  # compose with each other under NFKC


@cache
def _fast_tables() -> _FastTables:
    """Which letters the fast path may casefold as a whole string: those whose casefold
    (after the İ, ё and ı replacements) is their `fold`, made of letters that compose with
    nothing. Combining marks and ignorables never qualify. Built once (~40 ms)."""
    safe: list[int] = []
    added: dict[str, int] = {}
    for code in range(_FAST_LIMIT):
        ch = chr(code)
        if code in _HANGUL_JAMO or not is_word_char(ch) or _is_mark(ch):
            continue
        image = _fast_fold_letter(ch)
        if image != fold(ch).replace(" ", "") or not all(
            is_word_char(part) and not _is_mark(part) for part in image
        ):
            continue
        safe.append(code)
        if len(image) > 1:
            added[ch] = len(image) - 1
    special = re.compile(f"[^ {re.escape(FIELD_BREAK)}{_class_ranges(safe)}]")
    lengthening = re.compile(f"[{_class_ranges(sorted(map(ord, added)))}]")
    return _FastTables(special, lengthening, added)


# --- scan lines: what the rule matcher scans ----------------------------------------------


class ScanLine:
    """The folded words of an entry's fields as one string, for the rule matcher to scan:
    " w1 w2  w3 \\x00 w4 ".

    Like a word line (`word_line`) but with runs of spaces left as they are, since
    collapsing them costs as much as folding itself: each separator of the displayed text
    is usually one space ("a, b" → " a  b "). Words are separated by one
    space or more, consecutive words are those with only spaces between them, and a search
    for " word " (or " prefix") finds whole words only. No word touches a field break.
    `displayed` maps a run of whole words back to the field and its displayed offsets."""

    __slots__ = ("_bases", "_exact", "_joined", "_lengthening", "_plain", "breaks", "line")

    def __init__(
        self, line: str, joined: str, fields: Sequence[str], exact: _ExactMap | None = None
    ) -> None:
        self.line = line
        self._joined = joined  # " " + the fields joined by " \x00 " + " "
        self._exact = exact  # for a line built word by word
        bases = [1]  # where each field starts in `joined`
        for text in fields[:-1]:
            bases.append(bases[-1] + len(text) + len(_FIELD_JOIN))
        self._bases = bases
        # Folding kept every character's place, as it does for nearly all text.
        self._plain = exact is None and len(line) == len(joined)
        if self._plain:
            self.breaks = [base - 2 for base in bases[1:]]
        else:
            self.breaks = []
            at = line.find(FIELD_BREAK)
            while at >= 0:
                self.breaks.append(at)
                at = line.find(FIELD_BREAK, at + 1)
        self._lengthening: _Lengthening | None = None

    def field_of(self, position: int) -> int:
        """The index of the field a line position lies in."""
        return bisect_right(self.breaks, position)

    def displayed(self, start: int, stop: int) -> tuple[int, int, int]:
        """(field index, start, end) in that field's displayed text of the words in
        `line[start:stop]`, where `start` is a word's first letter and `stop` the end of a
        word of the same field."""
        if not self._plain:
            if self._exact is not None:
                return self._exact.displayed(start, stop)
            if self._lengthening is None:
                self._lengthening = _Lengthening(self._joined)
            start = self._lengthening.original(start)
            stop = self._lengthening.original(stop)
        field = bisect_right(self._bases, start) - 1
        base = self._bases[field]
        return field, start - base, stop - base


def scan_line(*fields: str) -> ScanLine:
    """The scan line of these fields of displayed text (an entry's title and summary).

    Text in the region's scripts takes two C-speed steps: an 8-bit codec maps each of its
    characters to one byte and each byte back to its folded form (a separator to a space).
    Other text takes the casefold-and-replace path of `word_line`; text that needs NFKC or
    has invisible characters inside words is split word by word (`words`)."""
    joined = " " + _FIELD_JOIN.join(fields) + " "
    folded = _fold_by_codec(joined, len(fields) - 1, fields[0][:1] if fields else "")
    if folded is None:
        if any(FIELD_BREAK in text for text in fields):
            fields = tuple(text.replace(FIELD_BREAK, " ") for text in fields)
            joined = " " + _FIELD_JOIN.join(fields) + " "
        folded = _fold_fast(joined)
        if folded is None:
            exact = _exact_word_line(fields)
            assert isinstance(exact.mapping, _ExactMap)
            return ScanLine(exact.line, joined, fields, exact.mapping)
    return ScanLine(folded, joined, fields)


# The codecs: each maps up to 256 characters to bytes, and each byte back to the folded
# form of its character. Each takes the letters of some of the region's scripts, in both
# cases (folding by codec is cheaper than casefolding first), then separators in this order
# until it is full. A text with a character no one codec has takes the slower paths.
_ASCII_ALNUM = "".join(chr(c) for c in range(0x80) if chr(c).isalnum())
_TURKIC = "ƏəĞğİıŞş"
_CODEC_CHARACTERS = (
    # Latin: English, Azerbaijani, Turkish, and the letters of western Europe, Poland,
    # Czechia and Romania (ß: "ss")
    _ASCII_ALNUM
    + "".join(chr(c) for c in range(0xC0, 0x100) if chr(c) not in "×÷ÐðÞþ")
    + _TURKIC
    + "ĄąĆćĘęŁłŃńŚśŹźŻżČčĚěŇňŘřŠšŤťŮůŽžĂăȘșȚțŒœ",
    # Cyrillic: Russian, Ukrainian, Belarusian, Kazakh
    _ASCII_ALNUM
    + "".join(map(chr, range(0x410, 0x450)))
    + "ЁёЄєІіЇїҐґЎўӘәҒғҚқҢңӨөҰұҮүҺһ"
    + _TURKIC
    + "ÇçÖöÜüÉé",
    # Armenian, with its punctuation (և: "եվ"), but the marks written inside words (՛ ՜ ՞),
    # which are dropped: a codec maps each character to one
    _ASCII_ALNUM
    + "".join(map(chr, [*range(0x531, 0x557), 0x559, *range(0x561, 0x588)]))
    + "՚՝՟։֊֏"
    + _TURKIC
    + "ÇçÖöÜü",
)
_CODEC_SEPARATORS = (
    " \t\n\r\x0b\x0c"
    + "".join(chr(c) for c in range(0x21, 0x7F) if not chr(c).isalnum())
    + "\xa0«»–—‘’“”„…•°§©®·№€₽₼\u2009\u202f‹›‚′″±−‐‑‒―‛‟†‡‰⁄×÷¬¶¡¿´£¥™"
    + "\u2002\u2003\u200a\u205f\u3000\u2028\u2029\x85←↑→↓₸₴₾¢¤¦¨¯¸"
    + "\u2000\u2001\u2004\u2005\u2006\u2007\u2008\x1c\x1d\x1e\x1f"
)


class _Codec(NamedTuple):
    encoding: Any  # codecs.EncodingMap: character → byte
    decoding: str  # byte → folded character: a space for a separator
    # Letters that fold to several: decoded as themselves, then replaced in the whole text
    # if this byte occurs ("ß" → "ss"; Armenian "և", and "եւ" if "ւ" or "Ւ" occurs, → "եվ").
    replacements: tuple[tuple[bytes, str, str], ...]


@cache
def _codecs() -> tuple[tuple[_Codec, ...], dict[str, int]]:
    """The codecs, and for each character the first codec that has it. Each character is
    checked against `fold` when the codecs are built; those that fail are left out."""
    built: list[_Codec] = []
    codec_of: dict[str, int] = {}
    for index, own in enumerate(_CODEC_CHARACTERS):
        characters = [FIELD_BREAK]  # the encoding map must send NUL to byte 0
        decoded = [FIELD_BREAK]
        for ch in dict.fromkeys(own + _CODEC_SEPARATORS):
            if len(characters) == 256:
                break
            image = _codec_image(ch)
            if image is not None:
                characters.append(ch)
                decoded.append(image)
        free = 256 - len(characters)
        encoding = codecs.charmap_build("".join(characters) + "\ufffe" * free)
        byte = {ch: bytes((position,)) for position, ch in enumerate(characters)}
        replacements = tuple(
            (byte[trigger], old, new)
            for trigger, old, new in (
                ("ß", "ß", "ss"),
                ("և", "և", "եվ"),
                ("ւ", *ARMENIAN_YEV),
                ("Ւ", *ARMENIAN_YEV),
            )
            if trigger in byte
        )
        built.append(_Codec(encoding, "".join(decoded) + "\ufffe" * free, replacements))
        for ch in characters:
            codec_of.setdefault(ch, index)
    return tuple(built), codec_of


def _codec_image(ch: str) -> str | None:
    """What a codec decodes `ch` to, or None if a codec cannot take it."""
    if _is_separator(ch):
        return " "
    if ch in IGNORABLE_CHARS or _is_mark(ch) or not is_word_char(ch):
        return None
    image = _fast_fold_letter(ch)
    if image != fold(ch) or not all(is_word_char(c) and not _is_mark(c) for c in image):
        return None
    if len(image) == 1:
        return image
    return ch if ch in "ßև" else None


def _fold_by_codec(text: str, breaks: int = 0, first: str = "") -> str | None:
    """What `_fold_fast` makes of `text`, if one codec has all its characters and it has
    this many field breaks. `first` is the first character of its first field."""
    all_codecs, codec_of = _codecs()
    index = codec_of.get(first or text[:1], 0)  # the first letter tells the script, mostly
    tried = 0
    while True:
        codec = all_codecs[index]
        try:
            encoded = codecs.charmap_encode(text, "strict", codec.encoding)[0]
        except UnicodeEncodeError as error:
            tried |= 1 << index
            index = codec_of.get(error.object[error.start], -1)
            if index < 0 or tried >> index & 1:
                return None
            continue
        if breaks == 1:  # an entry: title and summary (one find costs less than a count)
            at = encoded.find(b"\x00")
            if at < 0 or encoded.find(b"\x00", at + 1) >= 0:
                return None
        elif encoded.count(b"\x00") != breaks:
            return None
        folded: str = codecs.charmap_decode(encoded, "strict", codec.decoding)[0]
        for trigger, old, new in codec.replacements:
            if trigger in encoded:
                folded = folded.replace(old, new)
        return folded
