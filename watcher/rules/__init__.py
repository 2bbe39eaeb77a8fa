"""PURE rule language: query syntax → AST (`syntax`) → one compiled matcher (`matcher`).

    matcher = compile_rules(rule_defs, actors)   # once, at start-up or reload
    hits = matcher.match(entry.title, entry.summary, feed=feed.name, language=feed.language)

Rule language reference
-----------------------

    Write                           Matches
    peacekeepers                    the word (whole words; case and spelling variants fold)
    "peacekeeping contingent"       these words next to each other, in this order
    sülhməramlı*                    any word starting so; at least 3 letters before the *
    "ռուս խաղաղապահ*"               a wildcard on any word of a phrase
    =Путин   ="Путин Алиев"         this form only: no Russian inflection (still folded)
    @russian_peacekeepers           any name of the actor: [actors.russian_peacekeepers]
                                    names = [...]; names are phrases, may use * and =
    A B     A AND B                 both
    A OR B                          either
    NOT A   A NOT B                 A absent
    A NEAR/5 B                      a match of A and one of B in the same field with at most
                                    5 words between them, in either order; NEAR is NEAR/5,
                                    NEAR/0 means adjacent, at most NEAR/100
    ( ... )                         grouping
    title:X   summary:X             X in that field only (X: a term, an actor or a group);
                                    otherwise terms are looked for in both

Operators are uppercase: "and", "or", "not", "near" are ordinary words. Precedence, tightest
first: NOT, NEAR, AND, OR; `a OR b c NOT d` is `a OR (b AND c AND (NOT d))`. NEAR joins
terms, actors, or parenthesised groups of them joined by OR (`(a OR "b c") NEAR/3 @x`); it
is not chained, and `NOT a NEAR b` is refused (write `NOT (a NEAR b)`). A rule must look
for something: `NOT x` or `a OR NOT b` would match every entry without x, and is refused.
There are no regular expressions: no rule can slow the matcher down.

Words. Letters and digits of any script make words; hyphens, apostrophes and punctuation
separate them: "Nagorno-Karabakh" holds "Karabakh", "Russia's" holds "Russia", and the
query word `Nagorno-Karabakh` is the phrase "Nagorno Karabakh". A word never matches
inside a longer word (`Putin` misses "Putinism"). A phrase's words may be separated by any
spaces and punctuation but never span title and summary.

Folding (both sides alike): case; Unicode compatibility forms (NFKC: "ﬁ", full-width
letters); Azerbaijani/Turkish I (İ ı I i are one letter); Russian ё = е and stress marks
ignored; Armenian և = եւ = եվ (ԵՎ in capitals); soft hyphens, zero-width characters and
bidi marks ignored; every kind of space a space; typographic quotes and apostrophes plain.

Languages.
- Russian: a word matches every inflected form of the same word and nothing else:
  `миротворческий контингент` matches "миротворческого контингента", `трехстороннее
  заявление` "трёхсторонним заявлением", `Путин` "Путиным" and "Путина" but not
  "путинизм". Words the dictionary does not know (`Пашинян`, `Ханкенди`) match exactly:
  write `Пашинян*`. `=Путин` matches "Путин" only. See `russian.py` for which readings of
  an ambiguous word are taken.
- Azerbaijani, Armenian, English: exact words; endings need a wildcard: `sülhməramlı*`
  matches "sülhməramlılarının", `խաղաղապահ*` "խաղաղապահների", `peacekeep*` "peacekeeping".

Examples:

    "peacekeeping contingent" OR @russian_peacekeepers
    (миротвор* OR @russian_peacekeepers) AND (Лачин* OR Ханкенди) NOT учения
    title:(sülhməramlı* OR "üçtərəfli bəyanat") NOT idman
    @aliyev NEAR/5 (Putin OR Путин* OR Պուտին*)
    "ռուս խաղաղապահ*" AND (Ստեփանակերտ OR Լաչին*)

Per rule (RuleDef): `feeds` (only entries of these feeds), `languages` (only entries
whose language is given and is one of these, compared by primary subtag, case-insensitively:
"ru-RU" is "ru"), `priority` (higher first when several rules hit one entry; then
configuration order).

Hits carry spans (field, start, end, text) into the displayed text of the terms that made
the rule true (a NEAR's near pairs, an OR's true branches, nothing under NOT), overlapping
spans of one field merged, title first.

Errors are RuleError(message, rule=..., column=...): a syntax error names the column and
what was expected; an unknown actor suggests the closest name.
"""

from watcher.rules.matcher import Matcher, compile_rules
from watcher.rules.syntax import (
    Actor,
    And,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Scope,
    parse_query,
    phrase_words,
)

__all__ = [
    "Actor",
    "And",
    "Matcher",
    "Near",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "Scope",
    "compile_rules",
    "parse_query",
    "phrase_words",
]
