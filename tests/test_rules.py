"""watcher.rules: query syntax, errors, compiled matching and spans."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from watcher.errors import RuleError
from watcher.model import Hit, RuleDef, Span
from watcher.rules import Actor, And, Matcher, Node, Or, Phrase, compile_rules, parse_query
from watcher.text import html_to_text

ACTORS = {
    "russian_peacekeepers": [
        "Russian peacekeepers",
        "Russian peacekeeping contingent",
        "российские миротворцы",
        "Rusiya sülhməramlıları",
        "ռուս խաղաղապահներ",
    ],
    "aliyev": ["İlham Əliyev", "Ilham Aliyev", "Ильхам Алиев"],
}


def P(*words: str) -> Phrase:
    return Phrase(tuple(words))


def matcher_for(*queries: str) -> Matcher:
    rules = [RuleDef(f"r{i}", query) for i, query in enumerate(queries)]
    return compile_rules(rules, ACTORS)


def hit_names(query: str, title: str, summary: str = "") -> list[str]:
    return [hit.rule for hit in matcher_for(query).match(title, summary)]


# --- syntax -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("Karabakh", P("karabakh")),
        ('"peacekeeping contingent"', P("peacekeeping", "contingent")),
        ("Nagorno-Karabakh", P("nagorno", "karabakh")),
        ("Russia's", P("russia", "s")),
        ("@russian_peacekeepers", Actor("russian_peacekeepers")),
        ("a AND b", And((P("a"), P("b")))),
        ("a b", And((P("a"), P("b")))),
        ("a and b", And((P("a"), P("and"), P("b")))),
        ("a or b", And((P("a"), P("or"), P("b")))),
        ('"A OR B"', P("a", "or", "b")),
        ("A OR B C", Or((P("a"), And((P("b"), P("c")))))),
        ("A B OR C", Or((And((P("a"), P("b"))), P("c")))),
        ("A AND B OR C AND D", Or((And((P("a"), P("b"))), And((P("c"), P("d")))))),
        ("(A OR B) C", And((Or((P("a"), P("b"))), P("c")))),
        ("A AND(B OR C)", And((P("a"), Or((P("b"), P("c")))))),
        ("((A))", P("a")),
        ('@aliyev "tripartite deal"', And((Actor("aliyev"), P("tripartite", "deal")))),
        ("ТРЁХСТОРОННЕЕ", P("трехстороннее")),
    ],
)
def test_parse(query: str, tree: Node) -> None:
    assert parse_query(query, rule="r") == tree


@pytest.mark.parametrize(
    "query",
    ["A OR B C", "(a OR b) (c OR d) e", '@aliyev "x y" OR z', "a AND (b OR (c d))"],
)
def test_str_of_a_tree_parses_back_to_the_same_tree(query: str) -> None:
    tree = parse_query(query, rule="r")
    assert parse_query(str(tree), rule="r") == tree


def test_nodes_keep_their_column_and_source_text() -> None:
    tree = parse_query('x OR "peacekeeping  contingent"', rule="r")
    assert isinstance(tree, Or)
    phrase = tree.children[1]
    assert isinstance(phrase, Phrase)
    assert (phrase.column, phrase.text) == (6, "peacekeeping  contingent")


@pytest.mark.parametrize(
    ("query", "message", "column"),
    [
        ("", "empty query", 1),
        ("   ", "empty query", 1),
        ("A OR", 'expected a term after "OR", found the end of the query', 5),
        ("A AND", 'expected a term after "AND"', 6),
        ("OR A", 'expected a term before "OR"', 1),
        ("A AND OR B", 'expected a term after "AND", found "OR"', 7),
        ("(OR A)", 'expected a term before "OR"', 2),
        ("(A OR )", 'expected a term after "OR", found ")"', 7),
        ('"peacekeeping contingent', "unclosed quote", 1),
        ('a "b" "c', "unclosed quote", 7),
        ('""', "empty phrase", 1),
        ('" - "', "empty phrase", 1),
        ("A)", 'unbalanced ")"', 2),
        (") A", 'unbalanced ")"', 1),
        ("(A", 'unclosed "("', 1),
        ("x (A OR (B C)", 'unclosed "("', 3),
        ("()", 'empty parentheses "()"', 1),
        ("@", 'expected an actor name after "@"', 1),
        ("a -- b", "no words", 3),
        ("NOT peacekeepers", '"NOT" is reserved', 1),
        ("Aliyev NEAR/5 Putin", "proximity", 8),
        ("миротвор*", "prefix wildcards", 1),
        ("=US", "exact matching", 1),
        ("title:Karabakh", "field scope", 1),
        ("«миротворцы»", "straight quotes", 1),
    ],
)
def test_syntax_errors_say_what_and_where(query: str, message: str, column: int) -> None:
    with pytest.raises(RuleError) as caught:
        parse_query(query, rule="bad")
    assert message in caught.value.message
    assert caught.value.column == column
    assert caught.value.rule == "bad"


def test_unknown_actor_suggests_the_closest_name() -> None:
    with pytest.raises(RuleError) as caught:
        compile_rules([RuleDef("r", "Karabakh @russian_peacekeeper")], ACTORS)
    assert caught.value.message == (
        "unknown actor @russian_peacekeeper; did you mean @russian_peacekeepers?"
    )
    assert (caught.value.rule, caught.value.column) == ("r", 10)


def test_unknown_actor_without_any_close_name() -> None:
    with pytest.raises(RuleError, match=r"unknown actor @nato$"):
        compile_rules([RuleDef("r", "@nato")], ACTORS)
    with pytest.raises(RuleError, match="no actors are defined"):
        compile_rules([RuleDef("r", "@nato")], {})


def test_actor_errors() -> None:
    with pytest.raises(RuleError, match="has no aliases"):
        compile_rules([RuleDef("r", "@empty")], {"empty": []})
    with pytest.raises(RuleError, match="alias with no words"):
        compile_rules([RuleDef("r", "@odd")], {"odd": ["ok", " -- "]})


def test_duplicate_rule_names_are_refused() -> None:
    with pytest.raises(RuleError, match="duplicate rule name") as caught:
        compile_rules([RuleDef("a", "x"), RuleDef("a", "y")], {})
    assert caught.value.rule == "a"


# --- matching -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "title", "summary", "matches"),
    [
        # whole words, case-insensitive
        ("Putin", "Putin met Aliyev", "", True),
        ("Putin", "PUTIN", "", True),
        ("Putin", "Putinism on the rise", "", False),
        ("Putin", "", "antiPutin", False),
        ("Karabakh", "Nagorno-Karabakh talks", "", True),
        ("Russia", "Russia's position", "", True),
        ("Russia", "Russian position", "", False),
        ("Nagorno-Karabakh", "Nagorno Karabakh", "", True),
        ("Nagorno-Karabakh", "Karabakh, Nagorno", "", False),
        # phrases: consecutive words, in order
        ('"peacekeeping contingent"', "the peacekeeping contingent left", "", True),
        ('"peacekeeping contingent"', "contingent peacekeeping", "", False),
        ('"peacekeeping contingent"', "peacekeeping and contingent", "", False),
        ('"peacekeeping contingent"', "peacekeeping\u00a0contingent", "", True),
        ('"peacekeeping contingent"', "peacekeeping\u202f\u2009contingent", "", True),
        ('"peacekeeping contingent"', "peace\u00adkeeping con\u200btingent", "", True),
        ('"peacekeeping contingent"', "peacekeeping-contingent", "", True),
        ('"peacekeeping contingent"', "peacekeeping", "contingent", False),
        # a phrase never spans title and summary, but AND does
        ("peacekeeping contingent", "peacekeeping", "contingent", True),
        # lowercase and/or are words
        ("war and peace", "war and peace", "", True),
        ("war and peace", "war, peace", "", False),
        ("war or peace", "war", "", False),
        # precedence: A OR (B AND C)
        ("A OR B C", "a", "", True),
        ("A OR B C", "b", "", False),
        ("A OR B C", "c b", "", True),
        ("(A OR B) C", "a", "", False),
        ("(A OR B) C", "b", "c", True),
        # Russian: ё/е both ways
        ("трехстороннее", "", "Трёхстороннее заявление", True),
        ('"трёхстороннее заявление"', "", "трехстороннее заявление", True),
        ("Россия", "", "Россияне", False),
        # Azerbaijani: İ/ı/I and Ə
        ('"İlham Əliyev"', "İLHAM ƏLİYEV", "", True),
        ('"İlham Əliyev"', "ilham əliyev", "", True),
        ('"İlham Əliyev"', "Ilham Aliyev", "", False),
        ("sülhməramlıları", "SÜLHMƏRAMLILARI", "", True),
        # Armenian: exact words
        ('"ռուս խաղաղապահներ"', "", "Ռուս խաղաղապահները", False),
        ('"ռուս խաղաղապահներ"', "", "ՌՈՒՍ ԽԱՂԱՂԱՊԱՀՆԵՐ", True),
        # text as it comes out of html_to_text
        ("Tom Jerry", html_to_text("Tom &amp; Jerry"), "", True),
        # actors: any alias
        ("@russian_peacekeepers", "", "российские миротворцы прибыли", True),
        ("@russian_peacekeepers", "", "Russian peacekeeping contingent", True),
        ("@russian_peacekeepers", "", "Rusiya sülhməramlıları", True),
        ("@russian_peacekeepers", "", "Russian peacekeeping", False),
        ("@aliyev Putin", "Ильхам Алиев и Путин", "Putin", True),
    ],
)
def test_match(query: str, title: str, summary: str, matches: bool) -> None:
    assert (hit_names(query, title, summary) == ["r0"]) is matches


def test_hits_come_in_rule_order_with_names() -> None:
    matcher = compile_rules(
        [RuleDef("zeta", "Karabakh"), RuleDef("alpha", "Putin"), RuleDef("mid", "nothing")], {}
    )
    assert matcher.rule_names == ("zeta", "alpha", "mid")
    hits = matcher.match("Putin on Karabakh", "")
    assert [hit.rule for hit in hits] == ["zeta", "alpha"]
    assert matcher.match("", "") == []


def test_spans_are_every_occurrence_title_first() -> None:
    [hit] = matcher_for("Karabakh OR Putin").match("Putin: Karabakh", "Karabakh again, and Putin.")
    assert hit.spans == (
        Span("title", 0, 5, "Putin"),
        Span("title", 7, 15, "Karabakh"),
        Span("summary", 0, 8, "Karabakh"),
        Span("summary", 20, 25, "Putin"),
    )


def test_spans_include_terms_of_every_branch_that_occurred() -> None:
    # "c" occurred although its branch did not match; it is still a positive term.
    [hit] = matcher_for("a OR (b c)").match("a c", "")
    assert [span.text for span in hit.spans] == ["a", "c"]


def test_spans_point_into_displayed_text_when_folding_changes_lengths() -> None:
    title = "STRAẞE, İLHAM\u00a0ƏLİYEV и трёх\u00adсторонний"
    [hit] = matcher_for('strasse OR "ilham əliyev" OR трехсторонний').match(title, "")
    assert [(s.start, s.end) for s in hit.spans] == [(0, 6), (8, 20), (23, 37)]
    assert [s.text for s in hit.spans] == [
        "STRAẞE",
        "İLHAM\u00a0ƏLİYEV",
        "трёх\u00adсторонний",
    ]
    assert all(title[s.start : s.end] == s.text for s in hit.spans)


def test_overlapping_phrases_each_get_a_span() -> None:
    [hit] = matcher_for('"Russian peacekeepers" OR peacekeepers').match("Russian peacekeepers", "")
    assert hit.spans == (
        Span("title", 0, 20, "Russian peacekeepers"),
        Span("title", 8, 20, "peacekeepers"),
    )


def test_rules_share_phrases_and_actors() -> None:
    matcher = matcher_for("@aliyev", "@aliyev Putin", '"Ilham Aliyev"')
    hits = matcher.match("Ilham Aliyev", "")
    assert hits == [
        Hit("r0", (Span("title", 0, 12, "Ilham Aliyev"),)),
        Hit("r2", (Span("title", 0, 12, "Ilham Aliyev"),)),
    ]


def test_actor_keys_may_carry_their_at_sign() -> None:
    matcher = compile_rules([RuleDef("r", "@nato")], {"@nato": ["North Atlantic Alliance"]})
    assert [h.rule for h in matcher.match("the north atlantic alliance", "")] == ["r"]


# --- the seed article ---------------------------------------------------------------------

_REPO = Path(__file__).resolve().parent.parent


def _seed_article() -> tuple[str, str]:
    """(title, summary) of the seed: its first line, and the rest as displayed text."""
    copied = _REPO / "seeds" / "turan-peacekeepers.txt"
    original = _REPO.parent / "shared" / "seeds" / "000_5a259469ce8bbc15.txt"
    source = copied if copied.exists() else original
    lines = [line for line in source.read_text("utf-8").splitlines() if not line.startswith("#")]
    return lines[0], html_to_text("\n".join(lines[1:]))


def test_seed_article_hits_with_exact_spans() -> None:
    title, summary = _seed_article()
    expected = []
    for phrase in ("peacekeeping contingent", "Russian peacekeepers"):
        start = summary.find(phrase)
        while start >= 0:
            expected.append(Span("summary", start, start + len(phrase), phrase))
            start = summary.find(phrase, start + 1)
    expected.sort(key=lambda span: span.start)
    # The article spells them this way only; a differently cased one would be missed above.
    assert len(expected) == len(
        re.findall(r"peacekeeping contingent|russian peacekeepers", summary, re.IGNORECASE)
    )
    assert len(expected) == 4  # one contingent, three "Russian peacekeepers"

    matcher = compile_rules(
        [
            RuleDef("turan", '"peacekeeping contingent" OR "Russian peacekeepers"'),
            RuleDef("actor", "@russian_peacekeepers"),
            RuleDef("miss", '"peacekeeping forces"'),
        ],
        ACTORS,
    )
    hits = matcher.match(title, summary)
    assert [hit.rule for hit in hits] == ["turan", "actor"]
    assert hits[0].spans == tuple(expected)


# --- properties ---------------------------------------------------------------------------

_LETTERS = "abcxyzQİIıəƏßжЖёЁռուսԽ07"
_WORDS = st.text(alphabet=st.sampled_from(_LETTERS), min_size=1, max_size=8)
_SEPARATORS = st.sampled_from([" ", "\u00a0", "\u2009", " - ", "\n", "  "])


@given(
    st.lists(_WORDS, min_size=1, max_size=3),
    st.lists(_SEPARATORS, min_size=2, max_size=2),
    st.text(max_size=30),
    st.text(max_size=30),
)
def test_a_phrase_set_off_by_spaces_is_always_found(
    phrase_words: list[str], separators: list[str], before: str, after: str
) -> None:
    shown = separators[0].join(phrase_words)
    summary = before + " " + shown + separators[1] + after
    query = '"' + " ".join(phrase_words).upper() + '"'
    hits = compile_rules([RuleDef("r", query)], {}).match("", summary)
    start = len(before) + 1
    assert [hit.rule for hit in hits] == ["r"]
    assert Span("summary", start, start + len(shown), shown) in hits[0].spans


@given(
    _WORDS,
    st.text(alphabet=st.sampled_from(_LETTERS), max_size=4),
    st.text(alphabet=st.sampled_from(_LETTERS), max_size=4),
    st.sampled_from(["", "\u00ad", "\u200b"]),
)
def test_a_word_glued_to_letters_never_matches(
    word: str, left: str, right: str, joiner: str
) -> None:
    assume(left or right)
    glued = left + joiner + word + right
    assert compile_rules([RuleDef("r", word)], {}).match(glued, glued) == []
