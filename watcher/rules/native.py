"""Tables for the C matcher (`watcher/rules/_native.c`), built from what the Python matcher
compiled. PURE.

The C engine reads an entry once: it folds each character through a table, splits words,
walks each word through a trie of every folded form and prefix the rules name, finds the
phrases that start at each word, and evaluates the rules one of whose events occurred with
the Python matcher's own expression trees. It answers what `Matcher.match` answers (a test
holds the two engines equal over generated rules and entries); an entry with a character
that cannot be folded alone (see `character_tables`) is left to the Python engine.

Not built (no C compiler), or not asked for (`compile_rules(..., native=False)`; the
daemon's config loader does so for WATCHER_MATCHER=python): the Python engine matches
everything.
"""

from __future__ import annotations

import unicodedata
from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import accumulate, chain
from typing import TYPE_CHECKING, NamedTuple

from watcher.model import Hit, Span
from watcher.rules.expressions import All, AnyOf, Atom, Expr, Near, Not
from watcher.rules.syntax import FIELDS
from watcher.text import (
    AFTER_NFKC_TABLE,
    ARMENIAN_YEV,
    IGNORABLE_CHARS,
    fold,
    is_word_char,
)

if TYPE_CHECKING:
    from watcher.rules._native import Engine
    from watcher.rules.matcher import _CompiledRule

# The version of the tables' meaning this module builds (ENGINE_VERSION in _native.c).
ENGINE_VERSION = 3

try:
    from watcher.rules import _native
except ImportError:  # built without a C compiler: the Python engine does the work
    _native = None  # type: ignore[assignment]
if _native is not None and getattr(_native, "VERSION", None) != ENGINE_VERSION:
    _native = None  # type: ignore[assignment]  # built from other source: unused

__all__ = [
    "TABLE_NAMES",
    "CEngine",
    "available",
    "build_engine",
    "character_tables",
]

# char_table values (as in _native.c); a word character's value is offset << 3 | length
# of what it folds to in fold_pool, or code point << 3 | 1 if it folds to one character
COMPLEX = -1
SEPARATOR = -2
IGNORABLE = -3
_MAX_FOLDED = 7  # characters a letter may fold to in the table (U+FDFA folds to 18)

# The tables Engine() takes, in order (as the T_ enum of _native.c).
TABLE_NAMES = (
    "char_table", "fold_pool", "astral", "trie_parent", "trie_char", "node_form", "node_prefix",
    "atoms", "single_start", "single", "pair_first", "pair_second", "pair_start",
    "pair_phrases", "phrase_words_start", "word_prefix", "word_forms_start", "word_forms",
    "phrase_events_start", "phrase_events", "event_rules_start", "event_rules",
    "node_kind", "node_a", "node_b", "node_c", "node_pool",
    "rule_root", "rule_filter", "rule_feeds_start", "rule_feeds", "rule_languages_start",
    "rule_languages",
)  # fmt: skip

# expression node kinds and rule filters (as in _native.c)
_ATOM, _NOT, _ALL, _ANY, _NEAR = range(5)
_FILTER_FEEDS, _FILTER_LANGUAGES = 1, 2

_HANGUL = (range(0x1100, 0x1200), range(0x3130, 0x3190), range(0xA960, 0xA980),
           range(0xAC00, 0xD7B0), range(0xD7B0, 0xD800))  # fmt: skip


class CEngine(NamedTuple):
    """The C engine for a set of rules, and the ids its `match` takes for feeds and
    languages (-1 for any other)."""

    engine: Engine
    feed_ids: dict[str, int]
    language_ids: dict[str, int]


def available() -> bool:
    """Whether the C engine was built."""
    return _native is not None


# --- characters ---------------------------------------------------------------------------


def _joining() -> frozenset[int]:
    """BMP characters NFKC may join to a neighbour: those of non-zero combining class
    (canonical reordering moves them), the second characters of canonical compositions, and
    Hangul (composed algorithmically). A mark of class 0 that is no second (a variation
    selector, a spacing vowel sign) is a starter NFKC leaves where it is."""
    joining = {code for block in _HANGUL for code in block}
    for code in range(0x10000):
        ch = chr(code)
        if unicodedata.combining(ch):
            joining.add(code)
        decomposition = unicodedata.decomposition(ch)
        if decomposition and not decomposition.startswith("<"):
            parts = decomposition.split()
            if len(parts) == 2:
                joining.add(int(parts[1], 16))
    return frozenset(joining)


def _folds_alone(ch: str, folded: str, joining: frozenset[int]) -> bool:
    """Whether `ch` folds to `folded` next to any other such character: NFKC decomposes it
    to a starter first (its own marks then recompose with its own base, as alone) and
    nothing of what it folds to can join a neighbour, so the folds of a run of such
    characters are the fold of the run."""
    if ord(ch) in joining or ord(unicodedata.normalize("NFKD", ch)[0]) in joining:
        return False
    return folded == ch or not any(
        ord(part) in joining or not is_word_char(part) for part in folded
    )


def _fold_alone(ch: str, changed: frozenset[int]) -> str:
    """`fold` of one word character (as `watcher.text.words` folds a word), quickly for the
    many that fold to themselves: an NFKC-normal character that casefolds to itself and
    that none of fold's tables changes."""
    if ord(ch) not in changed and ch.casefold() == ch and unicodedata.is_normalized("NFKC", ch):
        return ch
    # Not _fold_word: its cache is for the words of entries.
    return fold(ch).replace(" ", "")


@cache
def character_tables() -> tuple[bytes, bytes]:
    """(char_table, fold_pool): per BMP character, what the C engine does with it.

    A word character that folds alone, the same whatever stands next to it, maps to its
    folded form (`fold`, as `words` folds a word); ignorables (soft hyphen, zero-width and
    bidi marks) and separators are marked so. Every other word character is COMPLEX and
    sends its entry to the Python engine: combining marks NFKC may move or compose, Hangul,
    characters that decompose to such a mark first, and the few that fold to more than
    seven. Built once per process (~0.1 s)."""
    joining = _joining()
    # characters `fold` may change even where NFKC and casefolding keep them
    changed = frozenset(AFTER_NFKC_TABLE).union(map(ord, ARMENIAN_YEV[0]))
    ignorable = frozenset(map(ord, IGNORABLE_CHARS))
    table = array("i", [SEPARATOR]) * 0x10000
    pool = array("I")
    images: dict[str, int] = {}
    for code in range(0x10000):
        ch = chr(code)
        if code in ignorable:
            table[code] = IGNORABLE
            continue
        if 0xD800 <= code < 0xE000 or not is_word_char(ch):
            continue
        folded = _fold_alone(ch, changed)
        if len(folded) > _MAX_FOLDED or not _folds_alone(ch, folded, joining):
            table[code] = COMPLEX
            continue
        if len(folded) == 1:
            table[code] = ord(folded) << 3 | 1
            continue
        offset = images.get(folded)
        if offset is None:
            offset = images[folded] = len(pool)
            pool.extend(map(ord, folded))
        table[code] = offset << 3 | len(folded)
    return table.tobytes(), pool.tobytes()


# Emoji and pictographs: separators, like everything else in these blocks, but checked.
_ASTRAL = range(0x1F000, 0x1FB00)


@cache
def astral_table() -> bytes:
    """The first code point of `_ASTRAL`, then per character of it SEPARATOR (or COMPLEX
    for a word character: none in Unicode 15), so that an emoji in an entry does not send it
    to the Python engine; every other character beyond the BMP does."""
    table = array("i", [_ASTRAL.start])
    for code in _ASTRAL:
        table.append(COMPLEX if is_word_char(chr(code)) else SEPARATOR)
    return table.tobytes()


# --- rules --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Trie:
    parents: array[int]  # per node but the root: its parent
    chars: array[int]  # and the code point leading to it
    children: dict[tuple[int, int], int]
    forms: array[int]  # per node: the form id it spells, or -1
    prefixes: array[int]  # per node: the prefix id it spells, or -1

    @classmethod
    def empty(cls) -> _Trie:
        return cls(array("i"), array("i"), {}, array("i", [-1]), array("i", [-1]))

    def node(self, word: str) -> int:
        node = 0
        for ch in word:
            key = (node, ord(ch))
            child = self.children.get(key)
            if child is None:
                child = self.children[key] = len(self.forms)
                self.parents.append(node)
                self.chars.append(ord(ch))
                self.forms.append(-1)
                self.prefixes.append(-1)
            node = child
        return node


def _csr(groups: Sequence[Sequence[int]]) -> tuple[bytes, bytes]:
    """Offsets (one more than groups) and the pool of a list of int groups."""
    starts = array("i", accumulate(map(len, groups), initial=0))
    pool = array("i", chain.from_iterable(groups))
    return starts.tobytes(), pool.tobytes()


class _Expressions:
    """Expression nodes, each before its children (the C engine checks that order)."""

    def __init__(self) -> None:
        self.kind = array("i")
        self.a = array("i")
        self.b = array("i")
        self.c = array("i")
        self.pool = array("i")

    def add(self, expr: Expr) -> int:
        index = len(self.kind)
        self.kind.append(0)
        self.a.append(0)
        self.b.append(0)
        self.c.append(0)
        if isinstance(expr, Atom):
            events = sorted(expr.events)
            self.kind[index], self.a[index], self.b[index] = _ATOM, len(self.pool), len(events)
            self.pool.extend(events)
        elif isinstance(expr, Not):
            self.kind[index], self.a[index] = _NOT, self.add(expr.child)
        elif isinstance(expr, All | AnyOf):
            children = [self.add(child) for child in expr.children]
            kind = _ALL if isinstance(expr, All) else _ANY
            self.kind[index], self.a[index], self.b[index] = kind, len(self.pool), len(children)
            self.pool.extend(children)
        else:
            assert isinstance(expr, Near)
            left, right = self.add(expr.left), self.add(expr.right)
            self.kind[index], self.a[index], self.b[index] = _NEAR, left, right
            self.c[index] = expr.distance
        return index


def _ids(values: Iterable[str]) -> dict[str, int]:
    return {value: index for index, value in enumerate(sorted(set(values)))}


def build_engine(
    phrases: Sequence[tuple[tuple[frozenset[str], str], ...]],
    phrase_events: Sequence[tuple[Sequence[int], Sequence[int]]],
    events: int,
    rules: Sequence[_CompiledRule],
    candidate_clauses: Sequence[frozenset[int]],
) -> CEngine:
    """The C engine for compiled phrases (per phrase id: its words, each its forms and
    prefix as `_WordSpec`), the events of each phrase per field, and rules in hit order,
    each with one clause an event of which occurs wherever it holds."""
    assert _native is not None
    form_ids: dict[str, int] = {}
    prefix_ids: dict[str, int] = {}
    for words in phrases:
        for forms, prefix in words:
            if prefix:
                prefix_ids.setdefault(prefix, len(prefix_ids))
            else:
                for form in sorted(forms):
                    form_ids.setdefault(form, len(form_ids))
    trie = _Trie.empty()
    for form, form_id in form_ids.items():
        trie.forms[trie.node(form)] = form_id
    for prefix, prefix_id in prefix_ids.items():
        trie.prefixes[trie.node(prefix)] = prefix_id

    # A word's atoms: its form's id, and (after the forms) the ids of the prefixes it starts
    # with. A phrase word fits a word that has one of its atoms.
    def atoms(forms: frozenset[str], prefix: str) -> list[int]:
        if prefix:
            return [len(form_ids) + prefix_ids[prefix]]
        return [form_ids[form] for form in forms]

    single: list[list[int]] = [[] for _ in range(len(form_ids) + len(prefix_ids))]
    pairs: defaultdict[int, list[int]] = defaultdict(list)  # by first << 32 | second
    phrase_words: list[int] = []  # per phrase: its number of words
    word_prefix = array("i")
    word_forms: list[list[int]] = []
    for pid, words in enumerate(phrases):
        if len(words) == 1:
            for atom in atoms(*words[0]):
                single[atom].append(pid)
        else:
            seconds = atoms(*words[1])
            for first in atoms(*words[0]):
                high = first << 32
                for second in seconds:
                    pairs[high | second].append(pid)
        phrase_words.append(len(words))
        for forms, prefix in words:
            word_prefix.append(prefix_ids[prefix] if prefix else -1)
            word_forms.append([] if prefix else sorted(form_ids[form] for form in forms))
    phrase_words_start = array("i", [0])
    for count in phrase_words:
        phrase_words_start.append(phrase_words_start[-1] + count)

    feed_ids = _ids(feed for rule in rules for feed in rule.feeds or ())
    language_ids = _ids(code for rule in rules for code in rule.languages or ())
    event_rules: list[list[int]] = [[] for _ in range(events)]
    expressions = _Expressions()
    roots = array("i")
    filters = array("i")
    rule_feeds: list[list[int]] = []
    rule_languages: list[list[int]] = []
    for index, (rule, clause) in enumerate(zip(rules, candidate_clauses, strict=True)):
        for event in clause:
            event_rules[event].append(index)
        roots.append(expressions.add(rule.expr))
        filters.append(
            (_FILTER_FEEDS if rule.feeds is not None else 0)
            | (_FILTER_LANGUAGES if rule.languages is not None else 0)
        )
        rule_feeds.append(sorted(feed_ids[feed] for feed in rule.feeds or ()))
        rule_languages.append(sorted(language_ids[code] for code in rule.languages or ()))

    char_table, fold_pool = character_tables()
    tables = (
        char_table,
        fold_pool,
        astral_table(),
        trie.parents.tobytes(),
        trie.chars.tobytes(),
        trie.forms.tobytes(),
        trie.prefixes.tobytes(),
        array("i", [len(form_ids), len(prefix_ids)]).tobytes(),
        *_csr(single),
        array("i", [key >> 32 for key in pairs]).tobytes(),
        array("i", [key & 0xFFFFFFFF for key in pairs]).tobytes(),
        *_csr(list(pairs.values())),
        phrase_words_start.tobytes(),
        word_prefix.tobytes(),
        *_csr(word_forms),
        *_csr([events_in_field for both in phrase_events for events_in_field in both]),
        *_csr(event_rules),
        expressions.kind.tobytes(),
        expressions.a.tobytes(),
        expressions.b.tobytes(),
        expressions.c.tobytes(),
        expressions.pool.tobytes(),
        roots.tobytes(),
        filters.tobytes(),
        *_csr(rule_feeds),
        *_csr(rule_languages),
    )
    assert len(tables) == len(TABLE_NAMES) == _native.TABLES
    engine = _native.Engine(tables, tuple(rule.rule.name for rule in rules), FIELDS, Span, Hit)
    return CEngine(engine, feed_ids, language_ids)
