"""watcher.text: HTML → displayed text, folding, words with offsets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.text import Word, fold, html_to_text, words

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
        ("", ""),
    ],
)
def test_fold(text: str, expected: str) -> None:
    assert fold(text) == expected


_TRICKY = "İIıiЁёе\u0307\u0308\u0301\u0345\u0399\u1fbe\u00ad\u200b\u00a0´`’«ßẞﬁＡᾈƏ"


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
