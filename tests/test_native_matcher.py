"""The C rule engine (watcher/rules/_native.c) answers exactly what the Python engine does.

The Python matcher is the reference: the same rules compiled for both engines must give
equal hits (rules, order, spans) for every entry, and the C engine must answer every entry
whose characters fold one by one. Its character table must fold as `watcher.text` does,
and malformed tables must be refused, not crash the process.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import threading
import time
import unicodedata
from array import array
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.config import compiled_rules, load_config
from watcher.errors import RuleError
from watcher.model import Hit, RuleDef, Span
from watcher.rules import Matcher, compile_rules
from watcher.rules.native import (
    COMPLEX,
    ENGINE_VERSION,
    IGNORABLE,
    SEPARATOR,
    TABLE_NAMES,
    available,
    character_tables,
)
from watcher.rules.syntax import FIELDS
from watcher.text import _fold_word, fold

ACTORS = {
    "peacekeepers": ["Russian peacekeepers", "российские миротворцы", "ռուս խաղաղապահ*"],
    "aliyev": ["İlham Əliyev", "Ilham Aliyev", "Ильхам Алиев"],
    "city": ["Xankəndi", "Ханкенди", "Ստեփանակերտ", "Stepanakert"],
}

# Words of the region's scripts, with the folding quirks both engines must agree on:
# Turkic I, ё, Armenian և/եւ/ԵՎ, ß, a ligature, full-width letters, digits.
VOCABULARY = [
    "peacekeepers", "peacekeeping", "contingent", "Russian", "Russia", "Karabakh",
    "Nagorno", "Lachin", "corridor", "Ilham", "İLHAM", "Aliyev", "Əliyev", "ALIYEV",
    "миротворцы", "миротворческого", "контингента", "российские", "Российские", "Путин",
    "Путиным", "Путина", "путинизм", "трёхсторонним", "трехстороннее", "заявлением",
    "Ильхам", "Алиев", "Ханкенди", "Лачинский", "sülhməramlı", "sülhməramlıların",
    "SÜLHMƏRAMLI", "Xankəndi", "Şuşa", "ıslah", "ռուս", "Ռուս", "խաղաղապահ",
    "խաղաղապահների", "Ստեփանակերտ", "ԵՎ", "և", "եւ", "Straße", "strasse", "ﬁnal",
    "ＡＢＣ", "abc", "2020", "10", "Stepanakert", "Putin", "NEAR", "and", "or", "not",
]  # fmt: skip
SEPARATORS = [" ", " ", " ", ", ", " - ", "-", "'", "’", ". ", "\n", "\xa0", " «", "» ", "\x00"]
INSIDE_WORDS = ["\u00ad", "\u200b", "\u200d", "\u055e"]  # ignorable within a word
# Characters the C engine leaves to the Python engine, or that test its edges
ODD = ["\u0301", "\u0308", "é", "🙂", "❤️", "\U0001d400", "가", "ᄀ", "ﾡ", "\ufdfa", "ǅ", "ﬀ"]

FEEDS = ["apa", "tass", "armenpress"]
LANGUAGES = ["en", "ru", "az", "hy", "ru-RU"]

ROOT = Path(__file__).resolve().parent.parent
NATIVE = pytest.mark.skipif(not available(), reason="built without a C compiler")


def _can_build() -> bool:
    """Whether setup.py can build the C engine here: a C compiler (the one setuptools
    takes: $CC, else Python's own) and Python's headers."""
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return shutil.which(compiler) is not None and headers.is_file()


def test_the_c_engine_is_built_wherever_it_can_be() -> None:
    rules = [RuleDef("r", "Karabakh")]
    if _can_build():
        assert available(), (
            "a C compiler and Python's headers are here, but watcher.rules._native was not "
            "built (or is of other source): `rm .venv/.installed && make install`, with -v "
            "added to its pip line to see the compiler's error"
        )
        assert compile_rules(rules, {}).native
    else:  # the Python engine alone, with the same answers
        assert not available()
        assert not compile_rules(rules, {}).native
    assert compile_rules(rules, {}).match("Karabakh", "") == [
        Hit("r", (Span("title", 0, 8, "Karabakh"),))
    ]


def test_a_matcher_without_rules_says_which_engine_would_match() -> None:
    # The daemon's start line names the engine even before any rule is configured.
    assert compile_rules([], {}).native is available()
    assert compile_rules([], {}).match("Karabakh", "") == []
    assert not compile_rules([], {}, native=False).native


@pytest.mark.parametrize(
    ("setting", "native"), [("python", False), (" Python ", False), ("c", True), ("", True)]
)
def test_watcher_matcher_python_turns_the_c_engine_off(
    monkeypatch: pytest.MonkeyPatch, setting: str, native: bool
) -> None:
    monkeypatch.setenv("WATCHER_MATCHER", setting)
    settings = load_config(ROOT / "config" / "watcher.toml")
    assert compiled_rules(settings).native is (native and available())
    assert not [warning for warning in settings.warnings if "WATCHER_MATCHER" in warning]


def test_a_misspelt_watcher_matcher_is_a_config_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHER_MATCHER", "pyhton")
    settings = load_config(ROOT / "config" / "watcher.toml")
    assert compiled_rules(settings).native is available()
    assert any("WATCHER_MATCHER='pyhton'" in warning for warning in settings.warnings)
    assert not compile_rules([RuleDef("r", "Karabakh")], {}, native=False).native


# --- the character table ------------------------------------------------------------------


def _table() -> tuple[array[int], array[int]]:
    table, pool = array("i"), array("I")
    table.frombytes(character_tables()[0])
    pool.frombytes(character_tables()[1])
    return table, pool


def _image(value: int, pool: array[int]) -> str:
    if value & 7 == 1:
        return chr(value >> 3)
    return "".join(map(chr, pool[value >> 3 : (value >> 3) + (value & 7)]))


def test_every_foldable_character_folds_as_watcher_text_folds_a_word() -> None:
    table, pool = _table()
    kinds = {COMPLEX: 0, SEPARATOR: 0, IGNORABLE: 0, "word": 0}
    for code in range(0x10000):
        value = table[code]
        if value >= 0:
            kinds["word"] += 1
            assert _image(value, pool) == _fold_word(chr(code)), hex(code)
        else:
            kinds[value] += 1
    # The region's letters all fold alone; marks, Hangul and their kin do not.
    for ch in "aZəƏıİşŞçÇöÖüÜğĞйЙёЁщЩաԱևՎßﬁＡ":
        assert table[ord(ch)] >= 0, ch
    for ch in "\u0301\u0308\u0306가ᄀﾡ\ufdfa":
        assert table[ord(ch)] == COMPLEX, hex(ord(ch))
    assert table[ord("\u00ad")] == table[ord("\u200b")] == IGNORABLE
    assert table[ord(" ")] == table[ord("-")] == table[ord("_")] == SEPARATOR
    assert kinds["word"] > 30_000 and kinds[COMPLEX] > 1_000  # most letters fold alone


def _foldable() -> list[str]:
    table, _ = _table()
    return [chr(code) for code in range(0x10000) if table[code] >= 0]


FOLDABLE = _foldable()
REGION = [ch for ch in FOLDABLE if ord(ch) < 0x600 or ch in "ﬁＡ"]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(REGION) | st.sampled_from(FOLDABLE), min_size=2, max_size=8))
def test_a_run_of_foldable_characters_folds_as_each_does_alone(letters: list[str]) -> None:
    table, pool = _table()
    joined = "".join(_image(table[ord(ch)], pool) for ch in letters)
    joined = joined.replace("\u0565\u0582", "\u0565\u057e")  # what the C engine does too
    assert _fold_word("".join(letters)) == joined


def test_characters_before_and_after_every_composing_one_are_not_foldable() -> None:
    """NFKC composes a base with a following mark or jamo: such seconds must be COMPLEX."""
    table, _ = _table()
    for code in range(0x10000):
        decomposition = unicodedata.decomposition(chr(code))
        if decomposition and not decomposition.startswith("<"):
            parts = decomposition.split()
            if len(parts) == 2:
                assert table[int(parts[1], 16)] in (COMPLEX, SEPARATOR, IGNORABLE), parts


# --- the two engines agree ----------------------------------------------------------------


def _term(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 9))
    word = fold(draw(st.sampled_from(VOCABULARY)))
    if kind <= 3:
        return word
    if kind == 4 and len(word) >= 4:
        return word[: draw(st.integers(3, len(word)))] + "*"
    if kind == 5:
        return "=" + word
    if kind == 6:
        return "@" + draw(st.sampled_from(sorted(ACTORS)))
    size = draw(st.integers(2, 3))
    words = [fold(draw(st.sampled_from(VOCABULARY))) for _ in range(size)]
    if draw(st.booleans()) and len(words[-1]) >= 4:
        words[-1] = words[-1][:3] + "*"
    return '"' + " ".join(words) + '"'


def _operand(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 3)) == 0:
        return "(" + " OR ".join(_term(draw) for _ in range(draw(st.integers(2, 3)))) + ")"
    return _term(draw)


@st.composite
def queries(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.integers(0, 7 if depth < 2 else 2))
    if kind <= 2:
        term = _operand(draw)
    elif kind == 3:
        term = f"{_operand(draw)} NEAR/{draw(st.integers(0, 4))} {_operand(draw)}"
    elif kind == 4:
        term = f"({draw(queries(depth + 1))} OR {draw(queries(depth + 1))})"
    elif kind == 5:
        term = f"{draw(queries(depth + 1))} {draw(queries(depth + 1))}"
    elif kind == 6:
        term = f"{draw(queries(depth + 1))} NOT {_operand(draw)}"
    else:
        term = f"NOT (NOT {_operand(draw)} OR NOT {_operand(draw)})"
    scope = draw(st.sampled_from(["", "", "", "title:", "summary:"]))
    return f"{scope}({term})" if scope else term


@st.composite
def rule_sets(draw: st.DrawFn) -> list[RuleDef]:
    rules = []
    for index in range(draw(st.integers(1, 6))):
        feeds = tuple(draw(st.lists(st.sampled_from(FEEDS), max_size=2, unique=True)))
        languages = tuple(draw(st.lists(st.sampled_from(["en", "RU", "hy"]), max_size=2)))
        rules.append(
            RuleDef(
                f"rule{index}",
                draw(queries()),
                feeds=feeds if draw(st.integers(0, 4)) == 0 else (),
                languages=languages if draw(st.integers(0, 4)) == 0 else (),
                priority=draw(st.integers(0, 2)),
            )
        )
    return rules


@st.composite
def texts(draw: st.DrawFn, odd: bool = False) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 30))):
        word = draw(st.sampled_from(VOCABULARY))
        if draw(st.integers(0, 9)) == 0 and len(word) > 1:  # an ignorable inside it
            cut = draw(st.integers(1, len(word) - 1))
            word = word[:cut] + draw(st.sampled_from(INSIDE_WORDS)) + word[cut:]
        if odd and draw(st.integers(0, 9)) == 0:
            word += draw(st.sampled_from(ODD))
        parts.append(word)
        parts.append(draw(st.sampled_from(SEPARATORS)))
    return "".join(parts).strip(" ")


def _both(rules: list[RuleDef]) -> tuple[Matcher, Matcher]:
    python = compile_rules(rules, ACTORS, native=False)
    native = compile_rules(rules, ACTORS, native=True)
    assert native.native and not python.native
    return python, native


def _compiled(rules: list[RuleDef]) -> tuple[Matcher, Matcher] | None:
    try:
        return _both(rules)
    except RuleError:  # a generated rule the language refuses (e.g. `NOT (... NEAR ...)`)
        return None


@NATIVE
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rule_sets(),
    st.lists(st.tuples(texts(), texts(), st.sampled_from([*FEEDS, None]),
                       st.sampled_from([*LANGUAGES, None])), min_size=1, max_size=6),
)  # fmt: skip
def test_the_engines_agree_and_the_c_engine_answers_itself(
    rules: list[RuleDef], entries: list[tuple[str, str, str | None, str | None]]
) -> None:
    engines = _compiled(rules)
    if engines is None:
        return
    python, native = engines
    for title, summary, feed, language in entries:
        expected = python.match(title, summary, feed=feed, language=language)
        assert native.match(title, summary, feed=feed, language=language) == expected
        # Text of the region's scripts never needs the Python engine.
        answered = native.native_answer(title, summary, feed=feed, language=language)
        assert answered == expected


@NATIVE
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_sets(), texts(odd=True), texts(odd=True))
def test_the_engines_agree_on_text_the_c_engine_leaves_to_python(
    rules: list[RuleDef], title: str, summary: str
) -> None:
    engines = _compiled(rules)
    if engines is None:
        return
    python, native = engines
    assert native.match(title, summary) == python.match(title, summary)


@NATIVE
@pytest.mark.parametrize(
    ("title", "answered"),
    [
        ("Karabakh", True),
        ("Karabakh e\u0301", False),  # a combining mark: composed by NFKC with its base
        ("Karabakh 🙂", True),  # an emoji separates words, as in Python
        ("Karabakh ❤️ Putin", True),  # U+FE0F: a mark NFKC neither moves nor composes
        ("Karabakh \U0001d400", False),  # a letter beyond the BMP
        ("Karabakh \U00020000", False),
        ("Karabakh 가", False),  # Hangul composes algorithmically
        ("Karabakh\u00adnews Karabakh", True),
    ],
)
def test_which_entries_the_c_engine_leaves_to_python(title: str, answered: bool) -> None:
    matcher = compile_rules([RuleDef("r", "Karabakh")], {}, native=True)
    result = matcher.native_answer(title, "")
    assert (result is not None) is answered
    assert matcher.match(title, "") == compile_rules(
        [RuleDef("r", "Karabakh")], {}, native=False
    ).match(title, "")


@NATIVE
def test_the_c_engine_builds_spans_and_hits_that_are_the_model_classes() -> None:
    matcher = compile_rules([RuleDef("r", '"peacekeeping contingent" OR Lachin')], {}, native=True)
    assert matcher._native is not None and matcher._native.engine.builds_directly()
    [hit] = matcher.match("Lachin: the peacekeeping contingent", "via Lachin")
    assert type(hit) is Hit and all(type(span) is Span for span in hit.spans)
    assert hit == Hit(
        "r",
        (
            Span("title", 0, 6, "Lachin"),
            Span("title", 12, 35, "peacekeeping contingent"),
            Span("summary", 4, 10, "Lachin"),
        ),
    )


@dataclass(frozen=True, slots=True)
class _CheckedSpan:
    field: str
    start: int
    end: int
    text: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", self.text.upper())


class _PlainSpan:
    def __init__(self, field: str, start: int, end: int, text: str) -> None:
        self.where = (field, start, end, text)


@NATIVE
@pytest.mark.parametrize("span_type", [_CheckedSpan, _PlainSpan, os.DirEntry])
def test_a_span_class_that_is_not_a_plain_slotted_dataclass_is_called(span_type: type) -> None:
    native = compile_rules([RuleDef("r", "Lachin")], {}, native=True)._native
    assert native is not None
    engine = native.engine
    other = type(engine)(engine.tables, engine.names, FIELDS, span_type, Hit)
    assert not other.builds_directly()
    if span_type is os.DirEntry:  # cannot be instantiated: an error, not a crash
        with pytest.raises(TypeError):
            other.match("Lachin", "", -1, -1)
        return
    [hit] = other.match("via Lachin", "", -1, -1)  # type: ignore[misc]
    [span] = hit.spans
    assert type(span) is span_type
    if isinstance(span, _CheckedSpan):
        assert span.text == "LACHIN"  # its __post_init__ ran
    else:
        assert span.where == ("title", 4, 10, "Lachin")


@NATIVE
def test_a_word_starting_more_rule_prefixes_than_the_c_engine_takes_goes_to_python() -> None:
    rules = [RuleDef(f"p{k}", "a" * k + "*") for k in range(3, 71)]  # aaa*, aaaa*, ... a{70}*
    python, native = _both(rules)
    assert native.native_answer("a" * 80, "") is None
    assert len(native.match("a" * 80, "")) == 68
    assert native.match("a" * 80, "") == python.match("a" * 80, "")
    assert native.native_answer("a" * 40, "") == python.match("a" * 40, "")


@NATIVE
def test_a_module_built_from_other_source_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import watcher.rules.native as native_module
    from watcher.rules import _native

    monkeypatch.setattr(_native, "VERSION", ENGINE_VERSION - 1)
    try:
        reloaded = importlib.reload(native_module)
        assert not reloaded.available()
    finally:
        monkeypatch.undo()
        importlib.reload(native_module)
    assert native_module.available()


@NATIVE
def test_a_huge_entry_full_of_near_pairs_gets_the_same_thousands_of_spans() -> None:
    # Thousands of spans once took the C engine quadratic time (0.14 s now, 5 s then, for
    # four times this text); the spans stay the Python engine's.
    rules = [RuleDef("near", "Putin NEAR/3 (Aliyev OR Алиев)"), RuleDef("w", "Aliyev")]
    python, native = _both(rules)
    summary = "Putin met Aliyev, Алиев and Putin again. " * 5_000  # 205 KB
    hits = native.match("", summary)
    assert [len(hit.spans) for hit in hits] == [20_000, 5_000]
    assert hits == python.match("", summary)


@dataclass(frozen=True)
class _YieldingSpan:
    """A span whose construction hands the GIL to another thread: matches interleave."""

    field: str
    start: int
    end: int
    text: str

    def __post_init__(self) -> None:
        time.sleep(0)


@NATIVE
def test_matching_from_several_threads_at_once_gives_the_same_hits() -> None:
    rules = [
        RuleDef("a", "@peacekeepers NEAR/5 @city"),
        RuleDef("b", '"трёхсторонним заявлением" OR sülhməramlı*'),
        RuleDef("c", "(Putin OR Путин) NOT путинизм", priority=2),
    ]
    native = compile_rules(rules, ACTORS, native=True)._native
    assert native is not None
    # The same tables, with spans built by calling a class that lets other threads in
    # between two spans of one entry: each thread's matching state must be its own.
    engine = type(native.engine)(
        native.engine.tables, native.engine.names, FIELDS, _YieldingSpan, Hit
    )
    assert not engine.builds_directly()
    entries = [
        (f"Russian peacekeepers {i} Stepanakert", f"Путин трехстороннее sülhməramlıların {i}")
        for i in range(300)
    ]
    expected = [engine.match(title, summary, -1, -1) for title, summary in entries]
    assert all(hits and len(hits) == 3 for hits in expected)
    failures: list[int] = []
    switches = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:

        def work() -> None:
            for i, (title, summary) in enumerate(entries):
                if engine.match(title, summary, -1, -1) != expected[i]:
                    failures.append(i)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switches)
    assert not failures


# --- malformed tables are refused ---------------------------------------------------------


def _ints(values: list[int]) -> bytes:
    return array("i", values).tobytes()


@NATIVE
@pytest.mark.parametrize(
    ("table", "corrupt"),
    [
        ("char_table", lambda b: b[:-4]),  # one short
        ("char_table", lambda b: _ints([1 << 30 | 2]) + b[4:]),  # folds to beyond the pool
        ("astral", lambda b: b[:4] + _ints([8]) + b[8:]),  # an astral character folding
        ("astral", lambda b: _ints([0x41]) + b[4:]),  # the astral range in the BMP
        ("trie_parent", lambda b: _ints([5]) + b[4:]),  # a transition from a node not made yet
        ("node_form", lambda b: _ints([10**6]) + b[4:]),  # a form id out of range
        ("atoms", lambda b: _ints([10**6, 0])),  # more forms than the tables hold
        ("single", lambda b: _ints([10**6]) + b[4:]),  # a phrase id out of range
        ("pair_first", lambda b: _ints([-1]) + b[4:]),  # an atom out of range
        ("pair_second", lambda b: b[:-4]),  # pairs of different lengths
        ("node_kind", lambda b: _ints([9]) + b[4:]),  # an unknown expression node kind
        ("node_pool", lambda b: _ints([10**6]) + b[4:]),  # an event or node out of range
        ("rule_root", lambda b: _ints([-1]) + b[4:]),  # a rule root out of range
        ("rule_filter", lambda b: b[:-4]),  # one filter short
        ("rule_root", lambda b: b[:4] * (len(b) // 4)),  # rules sharing one tree
        ("event_rules", lambda b: b + b"\x00"),  # not a whole number of int32
    ],
)
def test_malformed_tables_are_refused(table: str, corrupt: object) -> None:
    matcher = compile_rules(
        [
            RuleDef("r", '@aliyev NEAR/2 "Putin"'),
            RuleDef("s", "Lachin NOT corridor"),
            RuleDef("t", '"Lachin corridor"'),
        ],
        ACTORS,
        native=True,
    )
    assert matcher._native is not None
    engine = matcher._native.engine
    tables = list(engine.tables)
    engine_type = type(engine)
    engine_type(tuple(tables), engine.names, FIELDS, Span, Hit)  # as built: accepted
    assert callable(corrupt)
    index = TABLE_NAMES.index(table)
    tables[index] = corrupt(tables[index])
    with pytest.raises(ValueError, match="native matcher tables"):
        engine_type(tuple(tables), engine.names, FIELDS, Span, Hit)
