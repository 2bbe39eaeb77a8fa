"""watcher.text: HTML → displayed text, folding, words with offsets, word lines."""

from __future__ import annotations

import re
import time
import unicodedata
from itertools import pairwise

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from watcher.text import (
    _CODEC_CHARACTERS,
    _CODEC_SEPARATORS,
    FIELD_BREAK,
    ScanLine,
    Word,
    WordLine,
    _codecs,
    _exact_word_line,
    _fast_tables,
    _fold_by_codec,
    _fold_fast,
    fold,
    html_to_text,
    scan_line,
    word_line,
    words,
)

# --- html_to_text -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("plain text", "plain text"),
        ("", ""),
        ("Tom &amp; Jerry", "Tom & Jerry"),
        # Decoded once: an escaped entity stays an entity, escaped markup stays text.
        ("a &amp;amp; b", "a &amp; b"),
        ("&lt;b&gt;bold&lt;/b&gt;", "<b>bold</b>"),
        ("&#8217;&#x2019;&copy; &eacute;", "’’© é"),
        ("<p>Karabakh</p><p>Russia</p>", "Karabakh Russia"),
        ("<li>one</li><li>two</li>", "one two"),
        ("<h2>Head</h2>body<div>x</div>", "Head body x"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b c"),
        ("line1<br>line2<br/>line3<BR />line4", "line1 line2 line3 line4"),
        # Inline tags do not split a word.
        ("pea<b>ce</b>keepers", "peacekeepers"),
        ('<a href="x>y">link</a> text', "link text"),
        ("<script>var s = '<p>no</p>';</script>after", "after"),
        ("<style>p { color: red }</style>text", "text"),
        ("before<script>unclosed <b>script</b> eats the rest", "before"),
        ("<p>unclosed <b>tags", "unclosed tags"),
        ("</p>stray end</div>", "stray end"),
        ("5 < 6 and 7 > 3", "5 < 6 and 7 > 3"),
        ("a <b", "a <b"),
        ("text <", "text <"),
        ("<!-- comment -->text<!---->", "text"),
        ("<![CDATA[hello]]> world", "hello world"),
        ("<!DOCTYPE html><html><body><p>x</p></body></html>", "x"),
        ("<![if !supportLists]>•<![endif]>item", "•item"),
        # html.parser asserts on this declaration; the fallback still drops scripts.
        ("<![foo[bar]]>text <script>x</script>more", "text more"),
        ("  lots \n\t of   space&nbsp;&nbsp;here ", "lots of space here"),
        ("peace&shy;keepers", "peace\u00adkeepers"),
    ],
)
def test_html_to_text(markup: str, expected: str) -> None:
    assert html_to_text(markup) == expected


@given(st.text(alphabet=st.sampled_from(list("<>/!-[]&;#ab pxCDATAscript\"'= \n"))))
def test_html_to_text_never_raises_and_collapses_whitespace(markup: str) -> None:
    text = html_to_text(markup)
    assert text == text.strip()
    assert "  " not in text
    assert "\n" not in text


# --- fold ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Peacekeepers", "peacekeepers"),
        ("İLHAM ƏLİYEV", "ilham əliyev"),
        ("İlham Əliyev", "ilham əliyev"),
        ("ILHAM", "ilham"),
        ("ılham", "ilham"),
        ("I\u0307lham", "ilham"),  # decomposed İ
        ("i\u0307lham", "ilham"),  # what "İ".casefold() gives
        ("I\u0307\u0307", "i"),  # NFKC composes the first dot into İ, leaving the second
        ("Трёхстороннее", "трехстороннее"),
        ("ЁЛКА", "елка"),
        ("е\u0308лка", "елка"),  # decomposed ё
        ("Straße STRAẞE", "strasse strasse"),
        ("ՌՈՒՍ ԽԱՂԱՂԱՊԱՀՆԵՐ", "ռուս խաղաղապահներ"),
        ("peace\u00adkeepers", "peacekeepers"),
        ("a\u200bb\u200cc\u200dd\u2060e\ufefff", "abcdef"),
        ("a\u00a0b\u2003c\u202fd\u205fe\u3000f\tg\nh\u2009i", "a b c d e f g h i"),
        ("Russia’s ‘x’ ʼy` ´z", "russia's 'x' 'y' 'z"),
        ("“a” «b» „c“", '"a" "b" "c"'),
        ("ﬁnance ＰＵＴＩＮ", "finance putin"),
        # Russian stress marks and a stray dot above go; composed accents stay.
        ("замо\u0301к", "замок"),
        ("Пу\u0301тин", "путин"),
        ("e\u0301te\u0301", "été"),
        ("б\u0307", "б"),  # no precomposed letter: a stray dot ("x\u0307" is "ẋ")
        # Armenian yev, in the reformed and the classical spelling, either case
        ("Երևան ԵՐԵՎԱՆ Երեւան ԵՐԵՒԱՆ", "երեվան երեվան երեվան երեվան"),
        ("և ԵՎ Եվ եւ ու ՈՒ", "եվ եվ եվ եվ ու ու"),
        # bidi marks and embeddings are invisible
        ("\u200eKarabakh\u200f \u202aБаку\u202c \u2066x\u2069", "karabakh баку x"),
        ("", ""),
    ],
)
def test_fold(text: str, expected: str) -> None:
    assert fold(text) == expected


_TRICKY = "İIıiЁёе\u0307\u0308\u0301\u0345\u0399\u1fbe\u00ad\u200b\u200e\u00a0´`’«ßẞﬁＡᾈƏև"


@given(st.text() | st.text(alphabet=st.sampled_from(list(_TRICKY + "ae "))))
def test_fold_is_idempotent(text: str) -> None:
    once = fold(text)
    assert fold(once) == once


# --- words --------------------------------------------------------------------------------


def _folded(text: str) -> list[str]:
    return [w.folded for w in words(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Nagorno-Karabakh", ["nagorno", "karabakh"]),
        ("Russia's", ["russia", "s"]),
        ("Russia’s", ["russia", "s"]),
        ("Russiaʼs", ["russia", "s"]),  # U+02BC is a letter to Unicode, an apostrophe here
        ("Putinism", ["putinism"]),
        ("snake_case", ["snake", "case"]),
        ("and/or, (x); «y» — z.", ["and", "or", "x", "y", "z"]),
        ("in 2025: 3rd", ["in", "2025", "3rd"]),
        ("peace\u00adkeepers", ["peacekeepers"]),
        ("peace\u200bkeepers", ["peacekeepers"]),
        ("е\u0308лка", ["елка"]),
        ("İLHAM ƏLİYEV", ["ilham", "əliyev"]),
        ("ռուս խաղաղապահներ", ["ռուս", "խաղաղապահներ"]),
        ("трёхстороннее заявление", ["трехстороннее", "заявление"]),
        ("😀Putin😀", ["putin"]),
        ("𝐏𝐮𝐭𝐢𝐧", ["putin"]),  # mathematical bold, one astral word
        ("Երևան", ["երեվան"]),  # the ligature և folds to two letters
        ("peace\u200ekeepers", ["peacekeepers"]),  # a bidi mark does not split a word
        ("a \u0301 b", ["a", "b"]),  # a lone stress mark is no word
        ("", []),
        (" ,.- ", []),
    ],
)
def test_words_split(text: str, expected: list[str]) -> None:
    assert _folded(text) == expected


def test_words_offsets_point_into_displayed_text() -> None:
    text = "Straße İLHAM\u00a0Əliyev, peace\u00adkeepers! 😀Putin"
    assert words(text) == [
        Word("strasse", 0, 6),
        Word("ilham", 7, 12),
        Word("əliyev", 13, 19),
        Word("peacekeepers", 21, 34),
        Word("putin", 37, 42),
    ]
    assert [text[w.start : w.end] for w in words(text)] == [
        "Straße",
        "İLHAM",
        "Əliyev",
        "peace\u00adkeepers",
        "Putin",
    ]


def test_ignorables_at_word_edges_stay_outside_the_span() -> None:
    assert words("\u200bKarabakh\u00ad") == [Word("karabakh", 1, 9)]


@given(st.text())
def test_words_are_folded_slices_in_order(text: str) -> None:
    previous_end = 0
    for word in words(text):
        assert previous_end <= word.start < word.end
        assert word.folded == fold(text[word.start : word.end])
        previous_end = word.end


_ALPHABET = st.sampled_from(list("ab Iİıß-'_’ʼ\u00ad\u200b\u0301\u00a0.Яё😀𝐏"))


@given(st.text(alphabet=_ALPHABET) | st.text())
def test_fast_path_agrees_with_exact_path(text: str) -> None:
    # An underscore or an astral character anywhere sends the text down the exact (slow)
    # pattern; neither adds a word, so the words must be the same.
    assert words(text + " _") == words(text)
    assert words(text + " 😀") == words(text)


# --- word lines ---------------------------------------------------------------------------


def _spans_of_words(line: WordLine) -> list[tuple[int, int, int]]:
    return [line.displayed(m.start(), m.end()) for m in re.finditer(r"[^ \x00]+", line.line)]


def _words_of_fields(*fields: str) -> list[tuple[int, int, int]]:
    return [(i, w.start, w.end) for i, text in enumerate(fields) for w in words(text)]


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        (
            ("Peacekeepers, a tool", "On March 7, the Ministry"),
            " peacekeepers a tool \x00 on march 7 the ministry ",
        ),
        (("", ""), " \x00 "),
        (("a",), " a "),
        (("«Миротворцы» — Ёлка!", "İLHAM ƏLİYEV"), " миротворцы елка \x00 ilham əliyev "),
        (("Straße և Երևան", "x\x00y"), " strasse եվ երեվան \x00 x y "),
        (("peace\u00adkeepers", "е\u0308лка"), " peacekeepers \x00 елка "),  # exact path
    ],
)
def test_word_line(fields: tuple[str, ...], line: str) -> None:
    built = word_line(*fields)
    assert built.line == line
    assert built.breaks == [i for i, ch in enumerate(line) if ch == FIELD_BREAK]
    assert _spans_of_words(built) == _words_of_fields(*(f.replace("\x00", " ") for f in fields))


def test_word_line_maps_phrases_and_fields() -> None:
    title, summary = "STRAẞE, İlham\u00a0Əliyev", "Երևան — «Ханкенди-Халфали»"
    built = word_line(title, summary)
    assert built.line == " strasse ilham əliyev \x00 երեվան ханкенди халфали "
    phrase = built.line.index(" ilham əliyev ")
    assert built.displayed(phrase + 1, phrase + len(" ilham əliyev")) == (0, 8, 20)
    assert title[8:20] == "İlham\u00a0Əliyev"
    place = built.line.index(" ханкенди халфали ")
    assert built.displayed(place + 1, place + len(" ханкенди халфали")) == (1, 9, 25)
    assert summary[9:25] == "Ханкенди-Халфали"
    assert built.field_of(phrase) == 0
    assert built.field_of(place) == 1


_LINE_ALPHABET = st.sampled_from(
    list(
        "abc ABC İIıiЁёжЖ ռուսԽև ßẞ əƏ 07 ,.-«»—'’_\u00a0\u2009\u00ad\u200b\u200e\u0301\u0308😀𝐏ﬁ²"
    )
)


@given(st.lists(st.text(alphabet=_LINE_ALPHABET) | st.text(), min_size=1, max_size=3))
@example(["Straße, ßß", "«Ё» ß"])
@example(["և ok", "ԵՒ և"])
def test_fast_word_line_agrees_with_the_word_by_word_definition(fields: list[str]) -> None:
    fast, exact = word_line(*fields), _exact_word_line(fields)
    assert fast.line == exact.line
    assert fast.breaks == exact.breaks
    assert _spans_of_words(fast) == _spans_of_words(exact)
    assert _spans_of_words(fast) == _words_of_fields(*(f.replace("\x00", " ") for f in fields))
    # Runs of words map to the first word's start and the last word's end.
    for m in re.finditer(r"[^ \x00]+ [^ \x00]+", fast.line):
        assert fast.displayed(m.start(), m.end()) == exact.displayed(m.start(), m.end())


@given(st.text(alphabet=_LINE_ALPHABET))
def test_word_line_words_are_the_folded_words(text: str) -> None:
    assert word_line(text).line.split() == [w.folded for w in words(text)]


def test_fast_path_letters() -> None:
    tables = _fast_tables()
    search = tables.special.search
    # Letters of the region's scripts, both cases, go the fast way...
    for letters in ("ABCxyz", "АБВЁабвё", "ԱԲԳաբգև", "ƏəĞğİıŞşÇçÖöÜü", "ßẞ", "0123456789"):
        assert search(letters) is None, letters
    # ...combining marks, ignorables and compatibility letters are found and sent the exact way.
    for special in ("\u0301", "\u0308", "\u00ad", "\u200b", "\u200e", "²", "ﬁ", "ĳ", "ŉ"):
        assert search(special) is not None, repr(special)
    assert tables.added == {ch: len(fold(ch)) - 1 for ch in tables.added}
    assert {"ß", "ẞ", "և"} <= set(tables.added)
    assert all(unicodedata.category(ch)[0] == "L" for ch in tables.added)


# --- scan lines ---------------------------------------------------------------------------


def _scanned_words(line: ScanLine) -> list[tuple[int, int, int]]:
    return [line.displayed(m.start(), m.end()) for m in re.finditer(r"[^ \x00]+", line.line)]


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        # one space per separator: runs stay (the matcher copes with them)
        (
            ("Peacekeepers, a tool", "On March 7, the Ministry"),
            " peacekeepers  a tool \x00 on march 7  the ministry ",
        ),
        (("", ""), "  \x00  "),
        (("a",), " a "),
        (("«Миротворцы» — Ёлка!", "İLHAM ƏLİYEV"), "  миротворцы    елка  \x00 ilham əliyev "),
        # letters that fold to two; a field break inside a field is a separator
        (("Straße և Երևան", "x\x00y"), " strasse եվ երեվան \x00 x y "),
        (("Ελλάδα, ok", "b"), " ελλάδα  ok \x00 b "),  # no codec has Greek: casefold path
        (("peace\u00adkeepers", "е\u0308лка"), " peacekeepers \x00 елка "),  # word by word
    ],
)
def test_scan_line(fields: tuple[str, ...], line: str) -> None:
    built = scan_line(*fields)
    assert built.line == line
    assert built.breaks == [i for i, ch in enumerate(line) if ch == FIELD_BREAK]
    plain = [text.replace(FIELD_BREAK, " ") for text in fields]
    assert _scanned_words(built) == _words_of_fields(*plain)


def test_scan_line_maps_phrases_and_fields() -> None:
    title, summary = "STRAẞE, İlham\u00a0Əliyev", "Երևան — «Ханкенди-Халфали»"
    built = scan_line(title, summary)
    phrase = built.line.index(" ilham əliyev ")
    assert built.displayed(phrase + 1, phrase + len(" ilham əliyev")) == (0, 8, 20)
    place = built.line.index(" ханкенди халфали ")
    assert built.displayed(place + 1, place + len(" ханкенди халфали")) == (1, 9, 25)
    assert summary[9:25] == "Ханкенди-Халфали"
    assert built.field_of(phrase) == 0
    assert built.field_of(place) == 1


@given(st.lists(st.text(alphabet=_LINE_ALPHABET) | st.text(), min_size=1, max_size=3))
@example(["Straße, ßß", "«Ё» ß"])
@example(["և ok", "ԵՒ և"])
@example(["x\x00y", ""])
def test_scan_line_has_the_words_and_maps_them_back(fields: list[str]) -> None:
    built = scan_line(*fields)
    plain = [text.replace(FIELD_BREAK, " ") for text in fields]
    assert _scanned_words(built) == _words_of_fields(*plain)
    # The same words as the word line, whose runs of spaces are collapsed.
    assert re.sub(" +", " ", built.line) == word_line(*fields).line
    # Runs of words of one field map to the first word's start and the last word's end.
    places = [(m.start(), m.end()) for m in re.finditer(r"[^ \x00]+", built.line)]
    for (start, end), (next_start, next_end) in pairwise(places):
        if FIELD_BREAK not in built.line[end:next_start]:
            first, last = built.displayed(start, end), built.displayed(next_start, next_end)
            assert built.displayed(start, next_end) == (first[0], first[1], last[2])


_CODEC_TEXT = st.text(
    alphabet=st.sampled_from(sorted(set("".join(_CODEC_CHARACTERS) + _CODEC_SEPARATORS)))
)


@given(_CODEC_TEXT | st.text(alphabet=_LINE_ALPHABET) | st.text())
def test_codec_folding_is_the_casefold_path(text: str) -> None:
    folded = _fold_by_codec(text)
    assert folded is None or folded == _fold_fast(text)


@pytest.mark.parametrize(
    "text",
    [
        "Ilham Aliyev, “quoted” — 7%",
        "İlham Əliyev: Qarabağ, Şuşa (ölkə)",
        "Ильхам Алиев — «Ханкенди», ЁЛКА",
        "Երևան, Ստեփանակերտ։ ԵՎ և եւ",
        "Straße, Łódź, Çanakkale",
        "Київ, Қазақстан",
    ],
)
def test_the_regions_text_takes_a_codec(text: str) -> None:
    assert _fold_by_codec(text) == _fold_fast(text)


def test_every_codec_letter_made_it_into_a_codec() -> None:
    all_codecs, codec_of = _codecs()
    assert len(all_codecs) == len(_CODEC_CHARACTERS)
    for own in _CODEC_CHARACTERS:
        for ch in own:
            assert ch in codec_of, ch
            assert _fold_by_codec(ch) == _fold_fast(ch), ch


@pytest.mark.parametrize("unfinished", ["<a b='", "<a", "<!--", "<![x"])
def test_markup_full_of_unfinished_tags_is_read_in_linear_time(unfinished: str) -> None:
    # html.parser's close() (this Python) scans the rest again for every unfinished tag:
    # about 200 s for one summary of the 200,000 characters parse allows. Generous bound:
    # only that fails it.
    markup = "Karabakh " + unfinished * (200_000 // len(unfinished))
    started = time.perf_counter()
    text = html_to_text(markup)
    assert time.perf_counter() - started < 10
    assert text.startswith("Karabakh")


def test_what_an_unfinished_tag_leaves_is_text_less_whole_tags() -> None:
    assert html_to_text("a <b") == "a <b"
    assert html_to_text("<p>Peacekeepers</p> leave <a href='x <i>Lachin</i> &amp; more") == (
        "Peacekeepers leave <a href='x Lachin & more"
    )
    assert html_to_text("before<script>unclosed script eats the rest") == "before"
