"""Compiled rules: every rule's phrases in one index, matched in one pass per field. PURE.

Compiling gives each distinct phrase (a tuple of folded words) one id, whichever rules and
actors use it, and indexes the phrases by their first word. Matching an entry walks the
words of each field once, looking each word up in that index and checking the candidates'
following words; only the rules whose phrases occurred then evaluate their boolean logic.
The cost is one pass over the text plus work proportional to what occurred, not to the
number of rules.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from watcher.errors import RuleError
from watcher.model import Hit, RuleDef, Span
from watcher.rules.syntax import Actor, And, Node, Or, Phrase, parse_query
from watcher.text import words

__all__ = ["Matcher", "compile_rules"]

# Fields in the order spans are reported.
_FIELDS = ("title", "summary")


@dataclass(frozen=True, slots=True)
class _Occurrence:
    """Where one phrase occurred: field index, first/last word index, text offsets."""

    field: int
    first_word: int
    last_word: int
    start: int
    end: int


_Found = Mapping[int, list[_Occurrence]]  # phrase id → its occurrences in the entry


# Compiled boolean expressions over phrase ids. NOT, NEAR and field scopes will join these
# (they need the occurrences' fields and word positions, which is why those are kept).
@dataclass(frozen=True, slots=True)
class _AnyPhrase:
    """A phrase or an actor: true if any of its phrases occurred."""

    phrase_ids: frozenset[int]

    def holds(self, found: _Found) -> bool:
        return not found.keys().isdisjoint(self.phrase_ids)


@dataclass(frozen=True, slots=True)
class _All:
    children: tuple[_Expr, ...]

    def holds(self, found: _Found) -> bool:
        return all(child.holds(found) for child in self.children)


@dataclass(frozen=True, slots=True)
class _Any:
    children: tuple[_Expr, ...]

    def holds(self, found: _Found) -> bool:
        return any(child.holds(found) for child in self.children)


_Expr = _AnyPhrase | _All | _Any


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    name: str
    expr: _Expr
    positive_ids: frozenset[int]  # phrases whose occurrences are reported as spans


class Matcher:
    """All rules, compiled once. `match` is pure and safe to call from any thread."""

    __slots__ = ("_by_first_word", "_rules", "_rules_by_phrase")

    def __init__(
        self,
        rules: Sequence[_CompiledRule],
        phrases: Sequence[tuple[str, ...]],
    ) -> None:
        self._rules = tuple(rules)
        by_first_word: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        for pid, phrase in enumerate(phrases):
            by_first_word.setdefault(phrase[0], []).append((phrase[1:], pid))
        # first folded word → (remaining words, phrase id) for each phrase starting with it
        self._by_first_word = {word: tuple(cands) for word, cands in by_first_word.items()}
        rules_by_phrase: list[set[int]] = [set() for _ in phrases]
        for index, rule in enumerate(self._rules):
            for pid in rule.positive_ids:
                rules_by_phrase[pid].add(index)
        self._rules_by_phrase = tuple(frozenset(s) for s in rules_by_phrase)

    @property
    def rule_names(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self._rules)

    def match(self, title: str, summary: str) -> list[Hit]:
        """The rules that match an entry's displayed title and summary, in rule order.

        Each hit's spans are every occurrence of every phrase of the rule, sorted title
        first, then by position. A phrase never spans the two fields."""
        texts = (title, summary)
        found: dict[int, list[_Occurrence]] = {}
        for field_index, text in enumerate(texts):
            self._find_phrases(field_index, text, found)
        if not found:
            return []
        candidates: set[int] = set()
        for pid in found:
            candidates |= self._rules_by_phrase[pid]
        hits: list[Hit] = []
        for index in sorted(candidates):
            rule = self._rules[index]
            if rule.expr.holds(found):
                hits.append(Hit(rule.name, _spans(rule, found, texts)))
        return hits

    def _find_phrases(self, field: int, text: str, found: dict[int, list[_Occurrence]]) -> None:
        if not text:
            return
        text_words = words(text)
        folded = tuple(w.folded for w in text_words)
        by_first_word = self._by_first_word
        for i, word in enumerate(folded):
            candidates = by_first_word.get(word)
            if candidates is None:
                continue
            for rest, pid in candidates:
                last = i + len(rest)
                if rest and folded[i + 1 : last + 1] != rest:
                    continue
                occurrence = _Occurrence(field, i, last, text_words[i].start, text_words[last].end)
                found.setdefault(pid, []).append(occurrence)


def _spans(rule: _CompiledRule, found: _Found, texts: tuple[str, str]) -> tuple[Span, ...]:
    places = {(o.field, o.start, o.end) for pid in rule.positive_ids for o in found.get(pid, ())}
    return tuple(
        Span(_FIELDS[field], start, end, texts[field][start:end])
        for field, start, end in sorted(places)
    )


def _any_of(children: tuple[_Expr, ...]) -> _Expr:
    # "a OR b OR @actor" is one set test rather than one test per term.
    ids = frozenset().union(*(c.phrase_ids for c in children if isinstance(c, _AnyPhrase)))
    rest = tuple(c for c in children if not isinstance(c, _AnyPhrase))
    if not ids:
        return _Any(rest)
    if not rest:
        return _AnyPhrase(ids)
    return _Any((_AnyPhrase(ids), *rest))


class _Compiler:
    def __init__(self, actors: Mapping[str, Sequence[str]]) -> None:
        # Actor names may be given with or without their "@".
        self.actors = {name.removeprefix("@"): aliases for name, aliases in actors.items()}
        self.phrase_ids: dict[tuple[str, ...], int] = {}
        self.actor_ids: dict[str, tuple[int, ...]] = {}

    def phrase_id(self, phrase: tuple[str, ...]) -> int:
        return self.phrase_ids.setdefault(phrase, len(self.phrase_ids))

    def rule(self, rule: RuleDef) -> _CompiledRule:
        positive: set[int] = set()
        expr = self.expr(parse_query(rule.query, rule=rule.name), rule.name, positive)
        return _CompiledRule(rule.name, expr, frozenset(positive))

    def expr(self, node: Node, rule: str, positive: set[int]) -> _Expr:
        if isinstance(node, Phrase):
            pid = self.phrase_id(node.words)
            positive.add(pid)
            return _AnyPhrase(frozenset((pid,)))
        if isinstance(node, Actor):
            ids = self.actor(node, rule)
            positive.update(ids)
            return _AnyPhrase(frozenset(ids))
        children = tuple(self.expr(child, rule, positive) for child in node.children)
        if isinstance(node, And):
            return _All(children)
        if isinstance(node, Or):
            return _any_of(children)
        raise AssertionError(f"unhandled node {node!r}")  # pragma: no cover

    def actor(self, node: Actor, rule: str) -> tuple[int, ...]:
        ids = self.actor_ids.get(node.name)
        if ids is not None:
            return ids
        aliases = self.actors.get(node.name)
        if aliases is None:
            raise RuleError(self.unknown_actor(node.name), rule=rule, column=node.column)
        if isinstance(aliases, str):
            aliases = (aliases,)  # a lone alias where a list was meant
        phrases: list[int] = []
        for alias in aliases:
            folded = tuple(w.folded for w in words(alias))
            if not folded:
                raise RuleError(
                    f"actor @{node.name} has an alias with no words: {alias!r}",
                    rule=rule,
                    column=node.column,
                )
            phrases.append(self.phrase_id(folded))
        if not phrases:
            raise RuleError(f"actor @{node.name} has no aliases", rule=rule, column=node.column)
        ids = tuple(dict.fromkeys(phrases))
        self.actor_ids[node.name] = ids
        return ids

    def unknown_actor(self, name: str) -> str:
        message = f"unknown actor @{name}"
        if not self.actors:
            return message + "; no actors are defined"
        close = difflib.get_close_matches(name, self.actors, n=1)
        if close:
            return message + f"; did you mean @{close[0]}?"
        return message


def compile_rules(rules: Sequence[RuleDef], actors: Mapping[str, Sequence[str]]) -> Matcher:
    """Compile every rule once. Raises RuleError for a bad query, an unknown actor or a
    duplicate rule name."""
    compiler = _Compiler(actors)
    compiled: list[_CompiledRule] = []
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise RuleError("duplicate rule name", rule=rule.name)
        seen.add(rule.name)
        compiled.append(compiler.rule(rule))
    return Matcher(compiled, list(compiler.phrase_ids))
