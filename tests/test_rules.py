"""watcher.rules: query syntax, errors, compiled matching, Russian inflection, spans."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import watcher.rules
from watcher.errors import RuleError
from watcher.model import Hit, RuleDef, Span
from watcher.rules import (
    Actor,
    And,
    Matcher,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Scope,
    compile_rules,
    parse_query,
)
from watcher.rules.native import available
from watcher.rules.russian import inflections
from watcher.rules.syntax import FIELDS, phrase_words
from watcher.text import html_to_text, words

ACTORS = {
    "russian_peacekeepers": [
        "Russian peacekeepers",
        "Russian peacekeeping contingent",
        "российские миротворцы",
        "Rusiya sülhməramlı*",
        "ռուս խաղաղապահ*",
    ],
    "aliyev": ["İlham Əliyev", "Ilham Aliyev", "Ильхам Алиев"],
    "mod_az": ["Ministry of Defense of Azerbaijan", "Министерство обороны Азербайджана"],
}


@pytest.fixture(autouse=True, scope="module", params=["c", "python"] if available() else ["python"])
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test here runs with each engine: the C one (where it was built) and the Python
    one; tests/test_native_matcher.py holds them equal over generated rules and entries."""
    with pytest.MonkeyPatch.context() as patch:
        compiler = partial(watcher.rules.compile_rules, native=request.param == "c")
        assert compiler([RuleDef("r", "x")], {}).native is (request.param == "c")
        patch.setitem(globals(), "compile_rules", compiler)
        yield request.param


def P(*words: str) -> Phrase:
    return Phrase(tuple(words))


def matcher_for(*queries: str) -> Matcher:
    rules = [RuleDef(f"r{i}", query) for i, query in enumerate(queries)]
    return compile_rules(rules, ACTORS)


def matches(query: str, title: str, summary: str = "") -> bool:
    hits = matcher_for(query).match(title, summary)
    assert [hit.rule for hit in hits] in ([], ["r0"])
    return bool(hits)


def span_texts(query: str, title: str, summary: str = "") -> list[str]:
    [hit] = matcher_for(query).match(title, summary)
    return [span.text for span in hit.spans]


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
        ("a or b not c near", And((P("a"), P("or"), P("b"), P("not"), P("c"), P("near")))),
        ('"A OR B"', P("a", "or", "b")),
        ("A OR B C", Or((P("a"), And((P("b"), P("c")))))),
        ("A B OR C", Or((And((P("a"), P("b"))), P("c")))),
        ("(A OR B) C", And((Or((P("a"), P("b"))), P("c")))),
        ("A AND(B OR C)", And((P("a"), Or((P("b"), P("c")))))),
        ("((A))", P("a")),
        ("ТРЁХСТОРОННЕЕ", P("трехстороннее")),
        # NOT binds tightest, then NEAR, then AND, then OR
        ("a NOT b", And((P("a"), Not(P("b"))))),
        ("NOT b a", And((Not(P("b")), P("a")))),
        ("a AND NOT b OR c", Or((And((P("a"), Not(P("b")))), P("c")))),
        ("NOT NOT a", Not(Not(P("a")))),
        ("a NEAR/3 b", Near(P("a"), P("b"), 3)),
        ("a NEAR b", Near(P("a"), P("b"), 5)),
        ("a NEAR/0 b", Near(P("a"), P("b"), 0)),
        ("a NEAR/2 b c", And((Near(P("a"), P("b"), 2), P("c")))),
        ("x a NEAR/2 b OR c", Or((And((P("x"), Near(P("a"), P("b"), 2))), P("c")))),
        (
            '(a OR "b c") NEAR/4 @aliyev',
            Near(Or((P("a"), P("b", "c"))), Actor("aliyev"), 4),
        ),
        # field scopes
        ("title:Karabakh", Scope("title", P("karabakh"))),
        ('summary:"a b"', Scope("summary", P("a", "b"))),
        ("TITLE:(a OR b)", Scope("title", Or((P("a"), P("b"))))),
        ("title: a", Scope("title", P("a"))),
        ("title:@aliyev", Scope("title", Actor("aliyev"))),
        ("NOT title:x y", And((Not(Scope("title", P("x"))), P("y")))),
        ("title:a NEAR b", Near(Scope("title", P("a")), P("b"))),
        ("note:a", P("note", "a")),  # only title: and summary: are scopes
        # exact forms and wildcards
        ("=Путин", P("=путин")),
        ('="Путин Алиев"', P("=путин", "=алиев")),
        ('"=Путин встреча"', P("=путин", "встреча")),
        ("title:=Путин", Scope("title", P("=путин"))),
        ("sülhməramlı*", P("sülhməramli*")),
        ('"ռուս խաղաղապահ*"', P("ռուս", "խաղաղապահ*")),
        ("Nagorno-Kara*", P("nagorno", "kara*")),
        ('"миротвор* контингент"', P("миротвор*", "контингент")),
    ],
)
def test_parse(query: str, tree: Node) -> None:
    assert parse_query(query, rule="r") == tree


@pytest.mark.parametrize(
    "query",
    [
        "A OR B C",
        "(a OR b) (c OR d) e",
        '@aliyev "x y" OR z',
        "a AND (b OR (c d))",
        "a OR (b OR c)",
        "(a b) (c d)",
        "a NOT (b OR c) NOT NOT d",
        '(a OR "b c") NEAR/4 @aliyev x',
        "title:(a OR b) summary:c NOT title:(d NEAR/1 e)",
        '=Путин "ռուս խաղաղապահ*" sülhməramlı*',
    ],
)
def test_str_of_a_tree_parses_back_to_the_same_tree(query: str) -> None:
    tree = parse_query(query, rule="r")
    assert parse_query(str(tree), rule="r") == tree


def test_a_query_nested_50_deep_compiles_and_matches() -> None:
    query = "(" * 19 + "NOT (" * 15 + "title:karabakh" + ")" * 34 + " AND road"  # 50 levels
    matcher = compile_rules([RuleDef("deep", query)], {})
    assert not matcher.match("Karabakh road", "")
    assert [hit.rule for hit in matcher.match("The road", "")] == ["deep"]


def test_nodes_keep_their_column_and_source_text() -> None:
    tree = parse_query('x OR "peacekeeping  contingent" OR a NEAR/2 NOT_b', rule="r")
    assert isinstance(tree, Or)
    phrase = tree.children[1]
    assert isinstance(phrase, Phrase)
    assert (phrase.column, phrase.text) == (6, "peacekeeping  contingent")
    near = tree.children[2]
    assert isinstance(near, Near)
    assert near.column == 38


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
        ("a NOT", 'expected a term after "NOT", found the end of the query', 6),
        ("a NOT OR b", 'expected a term after "NOT", found "OR"', 7),
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
        ("«миротворцы»", "straight quotes", 1),
        # NEAR
        ("Aliyev NEAR", 'expected a term after "NEAR", found the end', 12),
        ("NEAR/2 Putin", 'expected a term before "NEAR/2"', 1),
        ("a NEAR/ b", 'expected a number of words after "NEAR/"', 3),
        ("a NEAR/x b", 'expected a number of words after "NEAR/", found "NEAR/x"', 3),
        ("a NEAR/500 b", "at most 100 words apart", 3),
        ("a NEAR/2 b NEAR/2 c", "NEAR joins two operands", 12),
        ("(a b) NEAR/2 c", "found a group with AND", 1),
        ("a NEAR/2 (b OR (c NOT d))", "found a group with AND", 10),
        ("NOT a NEAR/2 b", "found NOT; to exclude the pair, write NOT (a NEAR/2 b)", 1),
        ("a NEAR/3 (b NEAR c)", "found a group with NEAR", 10),
        # scopes
        ("title:", 'expected a term after "title:", found the end of the query', 7),
        ("title:OR x", 'expected a term after "title:", found "OR"', 7),
        ("title:(summary:x)", "summary: inside title: can never match", 8),
        # exact forms and wildcards
        ("= Путин", 'expected a word or a "phrase" right after "="', 1),
        ("==Путин", 'one "=" is enough', 2),
        ("миро*творцы", 'a wildcard "*" goes at the end of a word', 5),
        ('"ab* c"', 'a wildcard needs at least 3 letters before "*"', 2),
        ("*", 'a wildcard needs at least 3 letters before "*"', 1),
        ("Az*", 'a wildcard needs at least 3 letters before "*"', 1),
        ("x**", 'a wildcard "*" goes at the end of a word', 2),
        # nesting: 51 levels of parentheses, NOTs or scopes
        ("(" * 51 + "x" + ")" * 51, "nested more than 50 deep", 51),
        ("a AND " + "NOT " * 51 + "b", "nested more than 50 deep", 7 + 50 * 4),
        ("x " + "(title:" * 26 + "y" + ")" * 26, "nested more than 50 deep", 3 + 25 * 7),
    ],
)
def test_syntax_errors_say_what_and_where(query: str, message: str, column: int) -> None:
    with pytest.raises(RuleError) as caught:
        parse_query(query, rule="bad")
    assert message in caught.value.message
    assert caught.value.column == column
    assert caught.value.rule == "bad"


@pytest.mark.parametrize(
    ("query", "column"),
    [
        ("NOT peacekeepers", 1),
        ("NOT a OR NOT b", 1),
        ("a OR NOT b", 6),
        ("(NOT a) (NOT b)", 2),
        ("title:(NOT x)", 8),
        ("a OR (b OR NOT c)", 12),
    ],
)
def test_a_rule_true_without_any_of_its_terms_is_refused(query: str, column: int) -> None:
    with pytest.raises(RuleError, match="NOT only excludes") as caught:
        parse_query(query, rule="bad")
    assert caught.value.column == column


@pytest.mark.parametrize(
    ("query", "hits"),
    [
        # What each matches, of the texts "a", "a b", "b", "a c", "b c", "c".
        ("a NOT b", ["a", "a c"]),
        ("NOT b a", ["a", "a c"]),
        ("NOT NOT a", ["a", "a b", "a c"]),
        ("NOT (NOT a OR NOT b)", ["a b"]),
        ("(a OR NOT b) c", ["a c", "c"]),
    ],
)
def test_a_rule_with_a_term_to_look_for_is_accepted(query: str, hits: list[str]) -> None:
    parse_query(query, rule="ok")
    matcher = compile_rules([RuleDef("ok", query)], {})
    texts = ["a", "a b", "b", "a c", "b c", "c"]
    assert [text for text in texts if matcher.match(text, "")] == hits


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
    with pytest.raises(RuleError, match=r"actor @odd, name 'a\*b': a wildcard") as caught:
        compile_rules([RuleDef("r", "x @odd")], {"odd": ["a*b"]})
    assert caught.value.column == 3


def test_duplicate_rule_names_are_refused() -> None:
    with pytest.raises(RuleError, match="duplicate rule name") as caught:
        compile_rules([RuleDef("a", "x"), RuleDef("a", "y")], {})
    assert caught.value.rule == "a"


# --- matching, operator by operator, in the region's four languages -----------------------

EN, RU, AZ, HY = "en", "ru", "az", "hy"


@pytest.mark.parametrize(
    ("language", "query", "title", "summary", "expected"),
    [
        # one word: whole words, case-insensitive
        (EN, "Putin", "Putin met Aliyev", "", True),
        (EN, "Putin", "PUTIN", "", True),
        (EN, "Putin", "Putinism on the rise", "", False),
        (EN, "Putin", "", "antiPutin", False),
        (EN, "Karabakh", "Nagorno-Karabakh talks", "", True),
        (EN, "Russia", "Russia's position", "", True),
        (EN, "Russia", "Russian position", "", False),
        (RU, "Карабах", "В Карабахе", "", True),  # Russian: every form of the word
        (RU, "Карабах", "Карабахский", "", False),  # another word
        (AZ, "Qarabağ", "QARABAĞ", "", True),
        (AZ, "Qarabağ", "Qarabağda", "", False),  # Azerbaijani: exact unless a wildcard
        (HY, "Ղարաբաղ", "ՂԱՐԱԲԱՂ", "", True),
        (HY, "Ղարաբաղ", "Ղարաբաղում", "", False),  # Armenian: exact unless a wildcard
        # phrase: consecutive words in order, whatever separates them
        (EN, '"peacekeeping contingent"', "the peacekeeping contingent left", "", True),
        (EN, '"peacekeeping contingent"', "contingent peacekeeping", "", False),
        (EN, '"peacekeeping contingent"', "peacekeeping and contingent", "", False),
        (EN, '"peacekeeping contingent"', "peacekeeping\u00a0contingent", "", True),
        (EN, '"peacekeeping contingent"', "peacekeeping\u202f\u2009contingent", "", True),
        (EN, '"peacekeeping contingent"', "peace\u00adkeeping con\u200btingent", "", True),
        (EN, '"peacekeeping contingent"', "peacekeeping-contingent", "", True),
        (EN, '"peacekeeping contingent"', "peacekeeping", "contingent", False),
        (EN, "Nagorno-Karabakh", "Nagorno Karabakh", "", True),
        (EN, "Nagorno-Karabakh", "Karabakh, Nagorno", "", False),
        (RU, '"миротворческий контингент"', "", "миротворческого контингента", True),
        (RU, '"миротворческий контингент"', "", "контингента миротворческого", False),
        (RU, '"трехстороннее заявление"', "", "трёхсторонним заявлением", True),
        (RU, '"трёхстороннее заявление"', "", "трехстороннее, заявление", True),
        (AZ, '"İlham Əliyev"', "İLHAM ƏLİYEV", "", True),
        (AZ, '"İlham Əliyev"', "ilham əliyev", "", True),
        (AZ, '"İlham Əliyev"', "Ilham Aliyev", "", False),
        (HY, '"ռուս խաղաղապահներ"', "", "ՌՈՒՍ ԽԱՂԱՂԱՊԱՀՆԵՐ", True),
        (HY, '"ռուս խաղաղապահներ"', "", "Ռուս խաղաղապահները", False),
        # AND (juxtaposition too); a phrase never spans the two fields, but AND does
        (EN, "peacekeeping contingent", "peacekeeping", "contingent", True),
        (EN, "war and peace", "war and peace", "", True),
        (EN, "war and peace", "war, peace", "", False),
        (RU, "Путин AND Алиев", "Путин и Алиев", "", True),
        (RU, "Путин Алиев", "Путин", "", False),
        (AZ, "Putin Əliyev", "Əliyev", "Putin", True),
        (HY, "Պուտին Ալիև", "Պուտին", "", False),
        # OR, and AND binding tighter
        (EN, "war or peace", "war", "", False),  # lowercase "or" is a word
        (EN, "A OR B C", "a", "", True),
        (EN, "A OR B C", "b", "", False),
        (EN, "A OR B C", "c b", "", True),
        (EN, "(A OR B) C", "a", "", False),
        (EN, "(A OR B) C", "b", "c", True),
        (RU, "Баку OR Ереван", "", "в Ереване", True),
        (AZ, "Bakı OR İrəvan", "", "Tiflis", False),
        (HY, "Բաքու OR Երևան", "", "ԵՐԵՎԱՆ", True),  # և is եւ, in either case
        # NOT
        (EN, "Karabakh NOT football", "Karabakh", "", True),
        (EN, "Karabakh NOT football", "Karabakh", "football", False),
        (EN, "Karabakh AND NOT (football OR chess)", "Karabakh chess", "", False),
        (RU, "Карабах NOT футбол", "Карабах", "о футболе", False),  # NOT sees every form
        (AZ, "Qarabağ NOT futbol", "Qarabağ", "futbolçu", True),  # another word
        (HY, "Ղարաբաղ NOT ֆուտբոլ", "Ղարաբաղ", "ֆուտբոլ", False),
        (EN, "NOT (NOT a OR NOT b)", "a b", "", True),
        (EN, "NOT (NOT a OR NOT b)", "a", "", False),
        # NEAR (in one field, either order)
        (EN, "Aliyev NEAR/2 Putin", "Aliyev met with Putin", "", True),
        (EN, "Aliyev NEAR/2 Putin", "Putin and Aliyev", "", True),
        (EN, "Aliyev NEAR/2 Putin", "Aliyev met today with Putin", "", False),
        (EN, "Aliyev NEAR/2 Putin", "Aliyev", "Putin", False),
        (EN, "Aliyev NEAR Putin", "Aliyev a b c d e Putin", "", True),
        (EN, "Aliyev NEAR Putin", "Aliyev a b c d e f Putin", "", False),
        (RU, "Алиев NEAR/1 Путиным", "", "Алиева с Путиным", True),
        (RU, "Алиев NEAR/1 Путиным", "", "Алиева вчера встретил Путин", False),
        (AZ, "Əliyev NEAR/3 sülhməramlı*", "", "Əliyev rus sülhməramlılarının", True),
        (HY, "@aliyev NEAR/3 Պուտին", "", "Ալիևը և Պուտինը", False),  # Ալիևը: not exact
        (HY, "Ալիև* NEAR/3 Պուտին*", "", "Ալիևը և Պուտինը", True),
        # field scope
        (EN, "title:Karabakh", "Karabakh", "", True),
        (EN, "title:Karabakh", "", "Karabakh", False),
        (EN, "summary:Karabakh", "", "Karabakh", True),
        (EN, "summary:Karabakh", "Karabakh", "", False),
        (RU, "title:(Баку OR Ереван) Путин", "В Баку", "Путин", True),
        (RU, "title:(Баку OR Ереван) Путин", "Путин", "В Баку", False),
        (AZ, "Qarabağ NOT title:futbol", "Qarabağ", "futbol", True),
        (AZ, "Qarabağ NOT title:futbol", "futbol", "Qarabağ", False),
        (HY, "title:@russian_peacekeepers", "Ռուս խաղաղապահները", "", True),
        # =exact: this form only
        (RU, "=Путин", "Путин", "", True),
        (RU, "=Путин", "Путина", "", False),
        (RU, '"=Путин встреча"', "Путин: встречи", "", True),
        (RU, '"=Путин встреча"', "Путина встречи", "", False),
        (RU, '="Путин встреча"', "Путин встречи", "", False),
        (EN, "=Russia", "RUSSIA", "", True),  # still folded: case and quotes do not count
        # wildcard: any word starting so
        (AZ, "sülhməramlı*", "", "Rusiya sülhməramlılarının", True),
        (AZ, "sülhməramlı*", "", "SÜLHMƏRAMLI", True),
        (AZ, "sülhməramlı*", "", "qeyri-sülhməramlı", True),  # a word of its own
        (AZ, "sülhməramlı*", "", "sülh məramlı", False),
        (HY, '"ռուս խաղաղապահ*"', "", "Ռուս խաղաղապահների", True),
        (HY, '"ռուս խաղաղապահ*"', "", "ռուսական խաղաղապահներ", False),
        (RU, "миротвор*", "", "Миротворческие силы", True),
        (RU, '"миротвор* контингент"', "", "миротворческого контингента", True),
        (EN, "peacekeep*", "", "peacekeeping", True),
        (EN, "peacekeep*", "", "peace keeping", False),
        # actors: any alias, in any language
        (EN, "@russian_peacekeepers", "", "Russian peacekeeping contingent", True),
        (EN, "@russian_peacekeepers", "", "Russian peacekeeping", False),
        (RU, "@russian_peacekeepers", "", "российских миротворцев", True),
        (AZ, "@russian_peacekeepers", "", "Rusiya sülhməramlıları", True),
        (HY, "@russian_peacekeepers", "", "ռուս խաղաղապահները", True),
        (RU, "@aliyev Путин", "Ильхам Алиев и Путин", "", True),
        (RU, "@mod_az", "", "министерству обороны Азербайджана", True),
        (RU, "@mod_az", "", "министерства иностранных дел", False),
        # text as it comes out of html_to_text
        (EN, "Tom Jerry", html_to_text("Tom &amp; Jerry"), "", True),
    ],
)
def test_match(language: str, query: str, title: str, summary: str, expected: bool) -> None:
    assert matches(query, title, summary) is expected


@pytest.mark.parametrize(
    ("query", "title", "summary", "expected"),
    [
        # phrases matched word by word (a wildcard before the last word, many forms)
        ('"sülh* kontingent"', "sülhməramlı kontingent", "", True),
        ('"sülh* kontingent"', "sülhməramlı, kontingent!", "", True),
        ('"sülh* kontingent"', "sülhməramlı yeni kontingent", "", False),
        ('"sülh* kontingent"', "sülhməramlı", "kontingent", False),
        ('title:"миротворческий контингент"', "Миротворческим контингентом", "", True),
        ('title:"миротворческий контингент"', "", "миротворческого контингента", False),
        ('"миротворческий контингент" NEAR/1 Лачин*', "", "Лачин: миротворческий контингент", True),
        ('"российские миротворцы вчера"', "российских миротворцев вчера", "", True),
        ('"российские миротворцы вчера"', "российских миротворцев сегодня", "", False),
        # NEAR needs two matches, not one match twice
        ("Aliyev NEAR/3 Aliyev", "Aliyev", "", False),
        ("Aliyev NEAR/3 Aliyev", "Aliyev and Aliyev", "", True),
        ('peacekeeping NEAR/0 "peacekeeping contingent"', "peacekeeping contingent", "", True),
        # several separators between a phrase's words: the phrase is verified there
        ('"Russian peacekeepers"', "Russian, peacekeepers", "", True),
        ('"Russian peacekeepers"', "«Russian» — «peacekeepers»", "", True),
        ('"Russian peacekeepers"', "Russian, Turkish peacekeepers", "", False),
        ('"Russian peacekeepers"', "Russian,", "peacekeepers", False),
        ('"Russian peacekeepers"', "", "the Russian, ", False),
        ('"a b c"', "a b, c", "", True),
        ('"a b c"', "a, b c", "", True),
        ('"a b c"', "a, b. c", "", True),
        ('"a b c"', "a, b. d", "", False),
        ('"российские миротворцы"', "российских — миротворцев", "", True),
        ('"российские миротворцы"', "российских, но не миротворцев", "", False),
        ('"=Путин миротвор*"', "Путин, миротворцы", "", True),
        ('"=Путин миротвор*"', "Путин, мир", "", False),
        # inflected words with many forms: keyed by the first word and the second's stem
        ('"миротворческий контингент"', "миротворческому контингенту", "", True),
        ('"миротворческий контингент"', "миротворческому контингентству", "", False),
        ('"миротворческий контингент"', "миротворческому", "контингенту", False),
    ],
)
def test_match_phrases_word_by_word_and_near_pairs(
    query: str, title: str, summary: str, expected: bool
) -> None:
    assert matches(query, title, summary) is expected


# --- Russian inflection -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "forms", "not_forms"),
    [
        ("путин", {"путина", "путину", "путиным", "путине"}, {"путинизм", "путинский"}),
        ("путина", {"путин", "путиным"}, set()),  # Путин's genitive, and the fishing season
        ("алиев", {"алиева", "алиевым"}, {"алия", "алием"}),  # not the name Алий
        ("миротворческий", {"миротворческого", "миротворческими"}, {"миротворец"}),
        ("трехстороннее", {"трехсторонним", "трехсторонней"}, set()),
        ("заявил", {"заявить", "заявила", "заявят"}, {"заявленный", "заявив"}),
        ("пашинян", {"пашинян"}, {"пашиняна"}),  # not in the dictionary: exact
        ("karabakh", {"karabakh"}, set()),  # not Russian
    ],
)
def test_inflections(word: str, forms: set[str], not_forms: set[str]) -> None:
    found = inflections(word)
    assert word in found
    assert forms <= found
    assert not (not_forms & found)


def test_russian_words_not_in_the_dictionary_can_take_a_wildcard() -> None:
    assert not matches("Пашинян", "Пашиняна")
    assert matches("Пашинян*", "Пашиняна")


# --- filters and order --------------------------------------------------------------------


def test_feed_and_language_filters() -> None:
    rules = [
        RuleDef("any", "Karabakh"),
        RuleDef("turan", "Karabakh", feeds=("turan",)),
        RuleDef("ru", "Karabakh", languages=("RU",)),
        RuleDef("az_ru", "Karabakh", languages=("az", "ru-RU")),
    ]
    matcher = compile_rules(rules, {})

    def names(**where: str | None) -> list[str]:
        return [hit.rule for hit in matcher.match("Karabakh", "", **where)]  # type: ignore[arg-type]

    assert names() == ["any"]
    assert names(feed="turan") == ["any", "turan"]
    assert names(feed="apa", language="ru") == ["any", "ru", "az_ru"]
    assert names(feed="turan", language="ru-RU") == ["any", "turan", "ru", "az_ru"]
    assert names(language="ru_ru") == ["any", "ru", "az_ru"]
    assert names(language="AZ") == ["any", "az_ru"]
    assert names(language="hy") == ["any"]


def test_hits_come_by_priority_then_in_rule_order() -> None:
    matcher = compile_rules(
        [
            RuleDef("zeta", "Karabakh"),
            RuleDef("alpha", "Putin", priority=2),
            RuleDef("mid", "nothing", priority=5),
            RuleDef("beta", "Putin Karabakh", priority=2),
            RuleDef("low", "Karabakh", priority=-1),
        ],
        {},
    )
    assert matcher.rule_names == ("zeta", "alpha", "mid", "beta", "low")
    hits = matcher.match("Putin on Karabakh", "")
    assert [hit.rule for hit in hits] == ["alpha", "beta", "zeta", "low"]
    assert matcher.match("", "") == []


def test_many_rules_with_nots_and_filters_select_exactly() -> None:
    # Rules sit side by side in the selecting integer: a rule's bits, its NOT bit and its
    # filter bits must not leak into its neighbours'.
    rules = []
    for index in range(60):
        query = ["a", "a NOT b", "a b", "title:a", "summary:a NOT title:b", "a NEAR/1 b"][index % 6]
        feeds = ("f",) if index % 7 == 0 else ()
        languages = ("ru",) if index % 5 == 0 else ()
        rules.append(RuleDef(f"r{index}", query, feeds=feeds, languages=languages))
    matcher = compile_rules(rules, {})

    def expected(title: str, summary: str, feed: str | None, language: str | None) -> list[str]:
        a_t, b_t = "a" in title.split(), "b" in title.split()
        a_s, b_s = "a" in summary.split(), "b" in summary.split()
        near = any(
            set(text.split()[i : i + 3]) >= {"a", "b"}
            for text in (title, summary)
            for i in range(9)
        )
        truth = [
            a_t or a_s,
            (a_t or a_s) and not (b_t or b_s),
            (a_t or a_s) and (b_t or b_s),
            a_t,
            a_s and not b_t,
            near,
        ]
        return [
            rule.name
            for index, rule in enumerate(rules)
            if truth[index % 6]
            and (not rule.feeds or feed in rule.feeds)
            and (not rule.languages or language == "ru")
        ]

    for title, summary in [("a", ""), ("a b", ""), ("", "a"), ("b", "a"), ("a x b", "b"), ("", "")]:
        for feed, language in [(None, None), ("f", None), ("g", "ru"), ("f", "ru")]:
            hits = matcher.match(title, summary, feed=feed, language=language)
            assert [hit.rule for hit in hits] == expected(title, summary, feed, language)


def test_no_rules_match_nothing() -> None:
    matcher = compile_rules([], {})
    assert matcher.rule_names == ()
    assert matcher.match("Karabakh", "Putin") == []


# --- spans --------------------------------------------------------------------------------


def test_spans_are_every_occurrence_title_first() -> None:
    [hit] = matcher_for("Karabakh OR Putin").match("Putin: Karabakh", "Karabakh again, and Putin.")
    assert hit.spans == (
        Span("title", 0, 5, "Putin"),
        Span("title", 7, 15, "Karabakh"),
        Span("summary", 0, 8, "Karabakh"),
        Span("summary", 20, 25, "Putin"),
    )


def test_spans_are_of_the_terms_that_made_the_rule_true() -> None:
    # "c" occurred, but its branch was false; "d" is only excluded.
    assert span_texts("a OR (b c) NOT d", "a c", "") == ["a"]
    assert span_texts("(a OR b) NOT d", "a b", "") == ["a", "b"]
    # NEAR reports the pairs that were near enough, not every occurrence.
    assert span_texts("x NEAR/0 y", "x one two y then x y", "y") == ["x", "y"]
    # Either order: this "y" is as near the second "x" as the one after it.
    assert span_texts("x NEAR/1 y", "x one two y, x y", "y") == ["y", "x", "y"]
    assert span_texts("NOT (NOT a OR NOT b)", "a b", "") == ["a", "b"]


def test_overlapping_spans_of_a_field_are_merged() -> None:
    title = "Russian peacekeepers and peacekeepers"
    assert span_texts('"Russian peacekeepers" OR peacekeepers', title) == [
        "Russian peacekeepers",
        "peacekeepers",
    ]
    assert span_texts('"a b" OR "b c"', "a b c d", "b c") == ["a b c", "b c"]


def test_spans_point_into_displayed_text_when_folding_changes_lengths() -> None:
    title = "STRAẞE, İLHAM\u00a0ƏLİYEV и трёх\u00adсторонний, Երևան"
    [hit] = matcher_for('strasse OR "ilham əliyev" OR трехсторонний OR երեւան').match(title, "")
    assert [(s.start, s.end) for s in hit.spans] == [(0, 6), (8, 20), (23, 37), (39, 44)]
    assert [s.text for s in hit.spans] == [
        "STRAẞE",
        "İLHAM\u00a0ƏLİYEV",
        "трёх\u00adсторонний",
        "Երևան",
    ]
    assert all(title[s.start : s.end] == s.text for s in hit.spans)


def test_spans_of_inflected_wildcard_and_chained_phrases() -> None:
    summary = "Министерству обороны Азербайджана; sülhməramlılarının — миротворческого контингента"
    texts = span_texts('@mod_az OR sülhməramlı* OR "миротворческий контингент"', "", summary)
    assert texts == [
        "Министерству обороны Азербайджана",
        "sülhməramlılarının",
        "миротворческого контингента",
    ]


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
    source = _REPO / "seeds" / "turan-peacekeepers.txt"
    lines = [line for line in source.read_text("utf-8").splitlines() if not line.startswith("#")]
    return lines[0], html_to_text("\n".join(lines[1:]))


def test_seed_article_hits_the_peacekeepers_rule_with_exact_spans() -> None:
    title, summary = _seed_article()
    # Expected spans, found independently: every place of each phrase as the article
    # spells it, overlapping places merged.
    places: list[tuple[int, int]] = []
    for phrase in (
        "peacekeeping contingent",
        "Russian peacekeeping contingent",
        "Russian peacekeepers",
    ):
        places += [(m.start(), m.end()) for m in re.finditer(re.escape(phrase), summary)]
        # The article spells them this way only: none is missed by matching case.
        assert len(re.findall(phrase, summary, re.IGNORECASE)) == len(re.findall(phrase, summary))
    merged: list[list[int]] = []
    for start, end in sorted(places):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    expected = tuple(Span("summary", s, e, summary[s:e]) for s, e in merged)
    assert [span.text for span in expected] == [
        "Russian peacekeeping contingent",
        "Russian peacekeepers",
        "Russian peacekeepers",
        "Russian peacekeepers",
    ]

    actors = {"russian_peacekeepers": ["Russian peacekeeping contingent", "Russian peacekeepers"]}
    matcher = compile_rules(
        [
            RuleDef("peacekeepers", '"peacekeeping contingent" OR @russian_peacekeepers'),
            RuleDef("miss", '"peacekeeping forces"'),
            RuleDef("title", "title:peacekeepers NEAR/7 Russia"),  # 7 words between
        ],
        actors,
    )
    hits = matcher.match(title, summary)
    assert [hit.rule for hit in hits] == ["peacekeepers", "title"]
    assert hits[0].spans == expected
    assert [span.text for span in hits[1].spans] == ["Peacekeepers", "Russia"]


# --- properties ---------------------------------------------------------------------------

_LETTERS = "abcxyzQİIıəƏßжЖёЁռուսԽև07"
_WORDS = st.text(alphabet=st.sampled_from(_LETTERS), min_size=1, max_size=8)
_SEPARATORS = st.sampled_from([" ", "\u00a0", "\u2009", " - ", "\n", "  ", ", ", "«"])


@given(
    st.lists(_WORDS, min_size=1, max_size=3),
    st.lists(_SEPARATORS, min_size=2, max_size=2),
    st.text(max_size=30),
    st.text(max_size=30),
)
def test_a_phrase_inserted_into_text_is_always_found(
    phrase_words: list[str], separators: list[str], before: str, after: str
) -> None:
    shown = separators[0].join(phrase_words)
    summary = before + " " + shown + separators[1] + after
    query = '"' + " ".join("=" + word.upper() for word in phrase_words) + '"'
    hits = compile_rules([RuleDef("r", query)], {}).match("", summary)
    start = len(before) + 1
    assert [hit.rule for hit in hits] == ["r"]
    # Its span covers it (merged with any overlapping occurrence).
    assert any(span.start <= start and start + len(shown) <= span.end for span in hits[0].spans)


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
    assert compile_rules([RuleDef("r", "=" + word)], {}).match(glued, glued) == []


@given(st.integers(min_value=0, max_value=12), st.integers(min_value=0, max_value=12))
def test_near_distance_boundary(distance: int, between: int) -> None:
    filler = " ".join(f"w{i}" for i in range(between))
    matcher = compile_rules([RuleDef("r", f"alpha NEAR/{distance} omega")], {})
    for text in (f"alpha {filler} omega", f"omega, {filler} — alpha!"):
        assert bool(matcher.match("", text)) is (between <= distance)


def near_by_hand(words: list[str], left: tuple[str, ...], right: str, distance: int) -> bool:
    """Whether some occurrence of the phrase `left` and of the word `right` have at most
    `distance` words between them, counted on the word list itself."""
    lefts = [
        (i, i + len(left) - 1)
        for i in range(len(words) - len(left) + 1)
        if tuple(words[i : i + len(left)]) == left
    ]
    rights = [(j, j) for j, word in enumerate(words) if word == right]
    for i0, i1 in lefts:
        for j0, j1 in rights:
            if (i0, i1) == (j0, j1):
                continue
            between = j0 - i1 - 1 if j0 > i1 else i0 - j1 - 1 if i0 > j1 else 0
            if between <= distance:
                return True
    return False


@given(
    st.lists(st.sampled_from(["a", "b", "c", "x"]), max_size=24),
    st.sampled_from([("a",), ("a", "c"), ("c", "a", "c")]),
    st.sampled_from(["b", "a"]),
    st.integers(min_value=0, max_value=4),
)
def test_near_agrees_with_counting_by_hand(
    words: list[str], left: tuple[str, ...], right: str, distance: int
) -> None:
    query = f'"{" ".join(left)}" NEAR/{distance} {right}'
    text = ", ".join(words)  # any separator is one
    assert matches(query, text) is near_by_hand(words, left, right, distance)


def test_near_over_a_long_summary_full_of_both_terms() -> None:
    # Each occurrence compared with each, the line between split every time: minutes.
    matcher = compile_rules([RuleDef("r", "Putin NEAR/5 Aliyev")], {})
    apart = "Putin " * 1500 + "x " * 10 + "Aliyev " * 1500
    assert matcher.match("", apart) == []
    together = ("Putin met Aliyev. " * 1200)[:20_000]
    (hit,) = matcher.match("", together)
    assert {span.text for span in hit.spans} == {"Putin", "Aliyev"}
    assert len(hit.spans) == together.count("Putin") + together.count("Aliyev")


@pytest.mark.parametrize(
    ("query", "aliases"),
    [("=abcd*", {}), ('="ռուս խաղաղապահ*"', {}), ("@pk", {"pk": ["=ռուս =խաղաղապահ*"]})],
)
def test_exact_and_prefix_together_is_a_prefix(query: str, aliases: dict[str, list[str]]) -> None:
    # "=" keeps a word from being inflected; a prefix never is: together, just a prefix.
    matcher = compile_rules([RuleDef("r", query)], aliases)
    assert matcher.match("abcdef ռուս խաղաղապահները", "")
    assert not matcher.match("abc ռուսական", "")


def test_the_reference_examples_compile_and_match() -> None:
    import watcher.rules

    doc = watcher.rules.__doc__ or ""
    block = doc.split("Examples:\n\n", 1)[1].split("\n\n", 1)[0]
    examples = [line.strip() for line in block.splitlines()]
    assert len(examples) == 5
    matcher = compile_rules([RuleDef(f"e{i}", q) for i, q in enumerate(examples)], ACTORS)
    entries = [
        ("Russian peacekeeping contingent", ""),
        ("Миротворцы у Лачинского коридора", ""),
        ("Sülhməramlılar haqqında", "siyasət"),
        ("", "Ilham Aliyev met Vladimir Putin"),
        ("Ռուս խաղաղապահները Լաչինի միջանցքում", ""),
    ]
    for index, (title, summary) in enumerate(entries):
        assert f"e{index}" in [hit.rule for hit in matcher.match(title, summary)]
    assert parse_query("a OR b c NOT d", rule="r") == Or(
        (P("a"), And((P("b"), P("c"), Not(P("d")))))
    )


# --- against a reference --------------------------------------------------------------------

_VOCABULARY = ["alpha", "alphas", "beta", "gamma", "контингент", "контингента", "миротворцев"]
_RULE_WORDS = ["alpha", "=alpha", "alph*", "beta", "gamma", "контингент", "миротворец"]
_TEXT_SEPARATORS = [" ", " ", " ", ", ", " — ", "-", " «", "» ", "\u00a0", ". "]
_REFERENCE_ACTORS = {"pair": ["alpha beta", "gamma alph*"], "ru": ["миротворец контингент"]}


def _random_term(rng: random.Random, depth: int) -> str:
    roll = rng.random()
    if depth > 1 or roll < 0.45:
        words = [rng.choice(_RULE_WORDS) for _ in range(rng.choice([1, 1, 2, 3]))]
        term = words[0] if len(words) == 1 else '"' + " ".join(words) + '"'
        return rng.choice(["", "", "", "title:", "summary:"]) + term
    if roll < 0.55:
        return "@" + rng.choice(sorted(_REFERENCE_ACTORS))
    if roll < 0.7:
        left = "(" + " OR ".join(_random_term(rng, 2) for _ in range(2)) + ")"
        return f"{left} NEAR/{rng.randint(0, 3)} {_random_term(rng, 2)}"
    operator = rng.choice([" AND ", " OR ", " ", " AND NOT "])
    return "(" + _random_term(rng, depth + 1) + operator + _random_term(rng, depth + 1) + ")"


def _random_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 9)):
        parts += [rng.choice(_VOCABULARY), rng.choice(_TEXT_SEPARATORS)]
    return "".join(parts)


def _word_matches(spec: str, word: str) -> bool:
    if spec.endswith("*"):
        return word.startswith(spec[:-1])
    if spec.startswith("="):
        return word == spec[1:]
    return word in inflections(spec)


def _reference(node: Node, fields: list[list[str]]) -> bool:
    """Whether a rule's tree is true of these fields' folded words, by its definition."""

    def places(node: Node, allowed: frozenset[int]) -> set[tuple[int, int, int]]:
        if isinstance(node, Scope):
            return places(node.child, allowed & {FIELDS.index(node.field)})
        if isinstance(node, Or):
            return set().union(*(places(child, allowed) for child in node.children))
        if isinstance(node, Actor):
            aliases = [phrase_words(alias, rule="r") for alias in _REFERENCE_ACTORS[node.name]]
            return set().union(*(places(Phrase(words), allowed) for words in aliases))
        assert isinstance(node, Phrase)
        size = len(node.words)
        return {
            (field, start, start + size - 1)
            for field in allowed
            for start in range(len(fields[field]) - size + 1)
            if all(
                _word_matches(spec, fields[field][start + i]) for i, spec in enumerate(node.words)
            )
        }

    def holds(node: Node, allowed: frozenset[int]) -> bool:
        if isinstance(node, Scope):
            return holds(node.child, allowed & {FIELDS.index(node.field)})
        if isinstance(node, Not):
            return not holds(node.child, allowed)
        if isinstance(node, And):
            return all(holds(child, allowed) for child in node.children)
        if isinstance(node, Or):
            return any(holds(child, allowed) for child in node.children)
        if isinstance(node, Near):
            for a in places(node.left, allowed):
                for b in places(node.right, allowed):
                    if a[0] != b[0] or a == b:
                        continue
                    between = max(b[1] - a[2] - 1, a[1] - b[2] - 1, 0)
                    if between <= node.distance:
                        return True
            return False
        return bool(places(node, allowed))

    return holds(node, frozenset(range(len(FIELDS))))


@given(st.randoms(use_true_random=False))
def test_matching_agrees_with_the_definition(rng: random.Random) -> None:
    queries = [_random_term(rng, 0) for _ in range(6)]
    rules = [RuleDef(f"r{i}", q, priority=rng.randint(0, 2)) for i, q in enumerate(queries)]
    try:
        matcher = compile_rules(rules, _REFERENCE_ACTORS)
    except RuleError:
        assume(False)  # e.g. a rule true of an entry without its terms
    for _ in range(4):
        title, summary = _random_text(rng), _random_text(rng)
        fields = [[w.folded for w in words(text)] for text in (title, summary)]
        ordered = sorted(rules, key=lambda rule: -rule.priority)
        expected = [
            r.name for r in ordered if _reference(parse_query(r.query, rule=r.name), fields)
        ]
        hits = matcher.match(title, summary)
        assert [hit.rule for hit in hits] == expected, (queries, title, summary)
        for hit in hits:
            assert hit.spans, hit
            for span in hit.spans:
                text = title if span.field == "title" else summary
                assert text[span.start : span.end] == span.text
                assert [w.folded for w in words(span.text)], span


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("summry:aaa", 'unknown field "summry:"; did you mean "summary:"?'),
        ("Karabakh TITEL:(a OR b)", 'unknown field "TITEL:"; did you mean "title:"?'),
    ],
)
def test_a_misspelt_field_scope_is_an_error_not_a_phrase(query: str, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_query(query, rule="r")
    assert caught.value.message == message
    assert caught.value.column == query.index(message.split('"')[1]) + 1


def test_words_ending_in_a_colon_are_still_words() -> None:
    matcher = compile_rules([RuleDef("r", "Update: Karabakh"), RuleDef("s", "foo:bar")], {})
    assert [hit.rule for hit in matcher.match("Update: Karabakh road", "foo bar")] == ["r", "s"]


def test_armenian_marks_written_inside_a_word_do_not_split_it() -> None:
    # Emphasis, exclamation and question marks sit over a vowel of the word they mark.
    matcher = compile_rules(
        [RuleDef("city", "Ստեփանակերտ*"), RuleDef("putin", "Պուտին*"), RuleDef("why", "ինչու")],
        {},
    )
    title = "Ստեփանակե՛րտում Պուտի՞նը, ինչու՞"
    hits = {hit.rule: [span.text for span in hit.spans] for hit in matcher.match(title, "")}
    assert hits == {"city": ["Ստեփանակե՛րտում"], "putin": ["Պուտի՞նը"], "why": ["ինչու"]}
