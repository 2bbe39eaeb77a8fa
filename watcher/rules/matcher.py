"""Compiled rules: every term of every rule in one Aho-Corasick automaton. PURE.

Compiling gives each distinct phrase (a tuple of folded words: "=word" exact, "word*" a
prefix) one pattern id, whichever rules and actors use it, and turns it into automaton keys
over the word line of `watcher.text`: " w1 w2 " for a phrase, " w1 pre" for one ending in
a prefix, one key per combination of its Russian words' forms. A phrase with too many
combinations (two inflected Russian words make ~150) or a prefix before its last word is a
*chain* of shorter phrases, joined after the scan by position.

Matching an entry folds its title and summary into one word line and runs the automaton
over it once. Each rule is indexed under a set of key patterns one of which occurs in every
entry it holds for (the rarest-looking such set among its terms outside NOT; `parse_query`
refuses a rule true of an entry with none of its terms); only rules indexed under a pattern
that occurred are candidates, set tests of their other such sets turn most of them away,
and the rest are evaluated. The cost is one pass over the text plus work proportional to
what occurred, not to the number of rules. Positions, chains, NEAR distances and spans are
worked out only when a candidate asks.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, product, repeat
from operator import itemgetter
from typing import Any

import ahocorasick

from watcher.errors import RuleError
from watcher.model import Hit, RuleDef, Span
from watcher.rules.russian import inflections
from watcher.rules.syntax import (
    FIELDS,
    Actor,
    And,
    Near,
    Node,
    Not,
    Phrase,
    Scope,
    parse_query,
    phrase_words,
)
from watcher.text import WordLine, word_line

__all__ = ["Matcher", "compile_rules"]

_ALL_FIELDS = (1 << len(FIELDS)) - 1
_FIELD_BIT = {name: 1 << index for index, name in enumerate(FIELDS)}
# A phrase whose words have more form combinations than this is matched as a chain of
# shorter phrases (two inflected Russian words have ~13 x 12 combinations).
_MAX_KEYS_PER_PHRASE = 64

_VALUE = itemgetter(1)  # of an automaton match (end, value)
_PIDS = itemgetter(2)  # of a value (key length, is a prefix, pattern ids)

# Where a pattern occurred: (field index, line position of the space before its first
# word, line position of the space after its last word).
_Occurrence = tuple[int, int, int]


class _Scan:
    """One entry's word line and automaton matches, with positions worked out lazily."""

    __slots__ = (
        "_by_pattern",
        "_chains",
        "_found",
        "_places",
        "_spans",
        "line",
        "matches",
        "occurred",
        "text",
    )

    def __init__(
        self,
        line: WordLine,
        matches: list[tuple[int, tuple[int, bool, tuple[int, ...]]]],
        occurred: set[int],
        chains: Sequence[tuple[int, ...] | None],
    ) -> None:
        self.line = line
        self.text = line.line
        self.matches = matches
        self.occurred = occurred  # ids of the (non-chain) patterns the automaton found
        self._chains = chains
        self._found: dict[int, list[_Occurrence]] = {}
        self._by_pattern: dict[int, list[tuple[int, int, bool]]] | None = None
        self._places: dict[tuple[int, int], tuple[int, int, int]] = {}
        self._spans: dict[tuple[int, int, int], Span] = {}

    def occurrences(self, pid: int) -> list[_Occurrence]:
        found = self._found.get(pid)
        if found is None:
            parts = self._chains[pid]
            if parts is not None:
                found = self._chain(parts) if self.occurred.issuperset(parts) else []
            elif pid in self.occurred:
                found = self._occurrences(pid)
            else:
                found = []
            self._found[pid] = found
        return found

    def has(self, pid: int, fields: int) -> bool:
        parts = self._chains[pid]
        if parts is None:
            if pid not in self.occurred:
                return False
            if fields == _ALL_FIELDS:
                return True
        elif not self.occurred.issuperset(parts):
            return False
        return any(fields >> field & 1 for field, _, _ in self.occurrences(pid))

    def _occurrences(self, pid: int) -> list[_Occurrence]:
        by_pattern = self._by_pattern
        if by_pattern is None:
            by_pattern = self._by_pattern = {}
            for end, (length, prefix, pids) in self.matches:
                for each in pids:
                    by_pattern.setdefault(each, []).append((end, length, prefix))
        found: list[_Occurrence] = []
        text = self.text
        field_of = self.line.field_of
        for end, length, prefix in by_pattern[pid]:
            start = end - length + 1
            # A prefix key stops inside a word: the word runs on to the next space.
            stop = text.find(" ", end + 1) if prefix else end
            found.append((field_of(start), start, stop))
        return found

    def displayed(self, start: int, stop: int) -> tuple[int, int, int]:
        """(field, start, end) in the displayed text of an occurrence; rules that hit one
        entry often share occurrences, so each is mapped once."""
        place = self._places.get((start, stop))
        if place is None:
            place = self._places[start, stop] = self.line.displayed(start + 1, stop)
        return place

    def _chain(self, parts: tuple[int, ...]) -> list[_Occurrence]:
        # Word i+1 starts at the space where word i ends: the line has single spaces.
        following = [{start: stop for _, start, stop in self.occurrences(p)} for p in parts[1:]]
        found: list[_Occurrence] = []
        for field, start, stop in self.occurrences(parts[0]):
            end = stop
            for starts in following:
                next_end = starts.get(end)
                if next_end is None:
                    break
                end = next_end
            else:
                found.append((field, start, end))
        return found

    def spans(self, expr: _Expr, texts: Sequence[str]) -> tuple[Span, ...]:
        occurrences: list[_Occurrence] = []
        expr.collect(self, occurrences)
        displayed = self.displayed
        places = sorted({displayed(start, stop) for _, start, stop in occurrences})
        merged: list[list[int]] = []
        for field, start, end in places:
            last = merged[-1] if merged else None
            if last is not None and last[0] == field and start < last[2]:
                last[2] = max(last[2], end)  # overlapping phrases: one span
            else:
                merged.append([field, start, end])
        spans: list[Span] = []
        for field, start, end in merged:
            span = self._spans.get((field, start, end))
            if span is None:  # rules hitting one entry share spans: build each once
                span = Span(FIELDS[field], start, end, texts[field][start:end])
                self._spans[field, start, end] = span
            spans.append(span)
        return tuple(spans)


# --- compiled expressions -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class _Atom:
    """Terms (a phrase, an actor's aliases, an OR of them): true if one of its patterns
    occurred in one of the fields allowed for it."""

    refs: tuple[tuple[int, int], ...]  # (pattern id, bit mask of fields)
    anywhere: frozenset[int]  # the refs' key patterns looked for in every field: one set test
    # The rest (chains, and patterns looked for in some fields only), by a key pattern each
    # needs: most entries have none of those keys, which one set test tells.
    others: dict[int, tuple[tuple[int, int], ...]]
    other_keys: frozenset[int]

    def holds(self, scan: _Scan) -> bool:
        occurred = scan.occurred
        if not occurred.isdisjoint(self.anywhere):
            return True
        if occurred.isdisjoint(self.other_keys):
            return False
        for key in occurred.intersection(self.other_keys):
            for pid, fields in self.others[key]:
                if scan.has(pid, fields):
                    return True
        return False

    def occurrences(self, scan: _Scan) -> list[_Occurrence]:
        found: list[_Occurrence] = []
        occurred = scan.occurred
        for pid in occurred.intersection(self.anywhere):
            found.extend(scan.occurrences(pid))
        for key in occurred.intersection(self.other_keys):
            for pid, fields in self.others[key]:
                found.extend(o for o in scan.occurrences(pid) if fields >> o[0] & 1)
        return found

    def collect(self, scan: _Scan, out: list[_Occurrence]) -> None:
        out.extend(self.occurrences(scan))


def _atom(refs: Iterable[tuple[int, int]], chains: Sequence[tuple[int, ...] | None]) -> _Atom:
    refs = tuple(dict.fromkeys(refs))
    anywhere = frozenset(pid for pid, fields in refs if fields == _ALL_FIELDS and not chains[pid])
    others: dict[int, list[tuple[int, int]]] = {}
    for pid, fields in refs:
        if pid not in anywhere:
            parts = chains[pid]
            others.setdefault(pid if parts is None else parts[0], []).append((pid, fields))
    return _Atom(
        refs,
        anywhere,
        {key: tuple(group) for key, group in others.items()},
        frozenset(others),
    )


@dataclass(frozen=True, slots=True)
class _Not:
    child: _Expr

    def holds(self, scan: _Scan) -> bool:
        return not self.child.holds(scan)

    def collect(self, scan: _Scan, out: list[_Occurrence]) -> None:
        pass  # what is absent has no place


@dataclass(frozen=True, slots=True)
class _All:
    children: tuple[_Expr, ...]

    def holds(self, scan: _Scan) -> bool:
        return all(child.holds(scan) for child in self.children)

    def collect(self, scan: _Scan, out: list[_Occurrence]) -> None:
        for child in self.children:
            child.collect(scan, out)


@dataclass(frozen=True, slots=True)
class _Any:
    children: tuple[_Expr, ...]

    def holds(self, scan: _Scan) -> bool:
        return any(child.holds(scan) for child in self.children)

    def collect(self, scan: _Scan, out: list[_Occurrence]) -> None:
        for child in self.children:  # only the branches that made it true
            if child.holds(scan):
                child.collect(scan, out)


@dataclass(frozen=True, slots=True)
class _Near:
    left: _Atom
    right: _Atom
    distance: int

    def pairs(self, scan: _Scan) -> Iterable[tuple[_Occurrence, _Occurrence]]:
        count = scan.text.count
        limit = self.distance
        right = self.right.occurrences(scan)
        for a in self.left.occurrences(scan):
            for b in right:
                if a[0] != b[0] or a == b:  # one field; two matches, not one twice
                    continue
                # Words between = spaces between the end of one and the start of the other.
                if a[2] <= b[1]:
                    between = count(" ", a[2], b[1])
                elif b[2] <= a[1]:
                    between = count(" ", b[2], a[1])
                else:
                    between = 0  # they overlap
                if between <= limit:
                    yield a, b

    def holds(self, scan: _Scan) -> bool:
        if not (self.left.holds(scan) and self.right.holds(scan)):
            return False
        return next(iter(self.pairs(scan)), None) is not None

    def collect(self, scan: _Scan, out: list[_Occurrence]) -> None:
        for a, b in self.pairs(scan):
            out.append(a)
            out.append(b)


_Expr = _Atom | _Not | _All | _Any | _Near


def _any_of(children: tuple[_Expr, ...], chains: Sequence[tuple[int, ...] | None]) -> _Expr:
    # "a OR b OR @actor" is one atom rather than one test per term.
    refs = [ref for child in children if isinstance(child, _Atom) for ref in child.refs]
    rest = tuple(child for child in children if not isinstance(child, _Atom))
    if not refs:
        return _Any(rest)
    if not rest:
        return _atom(refs, chains)
    return _Any((_atom(refs, chains), *rest))


def _negated(expr: _Expr, chains: Sequence[tuple[int, ...] | None]) -> _Expr:
    """NOT expr, with the NOT pushed down to terms and NEARs (De Morgan): then every rule
    `parse_query` accepts names terms one of which it needs (`_Compiler.requirements`),
    and `NOT (NOT a OR NOT b)` reports the spans of a and b."""
    if isinstance(expr, _Not):
        return expr.child
    if isinstance(expr, _All):
        return _any_of(tuple(_negated(child, chains) for child in expr.children), chains)
    if isinstance(expr, _Any):
        return _All(tuple(_negated(child, chains) for child in expr.children))
    return _Not(expr)


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    expr: _Expr
    # Sets of key patterns each of which must have one occur for the rule to hold, rarest
    # first: the rule is indexed under the first; set tests of the others turn most
    # candidates away before any evaluation.
    requirements: tuple[frozenset[int], ...]
    feeds: frozenset[str] | None  # None: every feed
    languages: frozenset[str] | None  # primary language subtags; None: any language

    @property
    def checks(self) -> tuple[frozenset[int], ...]:
        return self.requirements[1:]  # not the first: the rule is indexed under it


def _language_code(language: str | None) -> str | None:
    """ "ru-RU", "ru_ru", " RU " → "ru"."""
    if language is None:
        return None
    code = language.strip().lower().replace("_", "-").split("-")[0]
    return code or None


# --- the matcher --------------------------------------------------------------------------


class Matcher:
    """All rules, compiled once. `match` is pure and safe to call from any thread."""

    __slots__ = ("_automaton", "_chains", "_checks", "_names", "_rules", "_rules_by_pattern")

    def __init__(
        self,
        names: tuple[str, ...],
        rules: tuple[_Rule, ...],
        rules_by_pattern: dict[int, tuple[int, ...]],
        chains: tuple[tuple[int, ...] | None, ...],
        automaton: Any,
    ) -> None:
        self._names = names  # in configuration order
        self._rules = rules  # in the order hits are reported: priority, then configuration
        self._checks = tuple(rule.checks for rule in rules)
        self._rules_by_pattern = rules_by_pattern  # pattern id → indexes into _rules
        self._chains = chains  # pattern id → its word patterns if it is a chain, else None
        self._automaton = automaton  # None if no rule has a term

    @property
    def rule_names(self) -> tuple[str, ...]:
        return self._names

    def match(
        self,
        title: str,
        summary: str,
        *,
        feed: str | None = None,
        language: str | None = None,
    ) -> list[Hit]:
        """The rules that match an entry's displayed title and summary.

        A rule with a feeds filter matches only entries of those feeds, one with a
        languages filter only entries whose `language` is given and in it (compared by
        primary subtag, case-insensitively: "ru-RU" is "ru"). Hits come by priority, higher
        first, then in configuration order; each carries the spans of the terms that made
        its rule true, overlapping spans of a field merged, title first."""
        if self._automaton is None:
            return []
        line = word_line(title, summary)
        matches = list(self._automaton.iter(line.line))
        if not matches:
            return []
        occurred = set(chain.from_iterable(map(_PIDS, map(_VALUE, matches))))
        by_pattern = self._rules_by_pattern.get
        candidates = set(chain.from_iterable(map(by_pattern, occurred, repeat(()))))
        if not candidates:
            return []
        scan = _Scan(line, matches, occurred, self._chains)
        code = _language_code(language)
        texts = (title, summary)
        hits: list[Hit] = []
        rules = self._rules
        checks = self._checks
        isdisjoint = occurred.isdisjoint
        for index in sorted(candidates):
            for required in checks[index]:
                if isdisjoint(required):
                    break
            else:
                rule = rules[index]
                if rule.feeds is not None and feed not in rule.feeds:
                    continue
                if rule.languages is not None and code not in rule.languages:
                    continue
                if rule.expr.holds(scan):
                    hits.append(Hit(rule.name, scan.spans(rule.expr, texts)))
        return hits


# --- compiling ----------------------------------------------------------------------------


class _Compiler:
    def __init__(self, actors: Mapping[str, Sequence[str]]) -> None:
        # Actor names may be given with or without their "@".
        self.actors = {name.removeprefix("@"): aliases for name, aliases in actors.items()}
        self.pattern_ids: dict[tuple[str, ...], int] = {}
        self.pattern_words: list[tuple[str, ...]] = []  # by pattern id
        self.chains: list[tuple[int, ...] | None] = []  # by pattern id
        self.anchors: list[int] = []  # by pattern id: a key pattern that must occur for it
        self.keys: dict[str, set[int]] = {}  # automaton key → pattern ids
        self.actor_ids: dict[str, tuple[int, ...]] = {}

    def pattern(self, words: tuple[str, ...]) -> int:
        pid = self.pattern_ids.get(words)
        if pid is not None:
            return pid
        forms = [_forms(word) for word in words]
        segments = _segments(forms)
        if len(segments) > 1:
            parts = tuple(self.pattern(words[start:end]) for start, end in segments)
            pid = len(self.chains)  # after the parts took theirs
            self.chains.append(parts)
            # Index under the segment with the most words: likely the rarest.
            longest = max(range(len(parts)), key=lambda i: segments[i][1] - segments[i][0])
            self.anchors.append(self.anchors[parts[longest]])
        else:
            pid = len(self.chains)
            self.chains.append(None)
            self.anchors.append(pid)
            tail = "" if forms[-1][1] else " "
            for combination in product(*(choices for choices, _ in forms)):
                self.keys.setdefault(" " + " ".join(combination) + tail, set()).add(pid)
        self.pattern_words.append(words)
        self.pattern_ids[words] = pid
        return pid

    def rule(self, rule: RuleDef) -> tuple[_Rule, frozenset[int]]:
        """The compiled rule, and the key patterns to index it under."""
        tree = parse_query(rule.query, rule=rule.name)
        expr = self.expr(tree, _ALL_FIELDS, rule.name)
        feeds = frozenset(rule.feeds) if rule.feeds else None
        languages = None
        if rule.languages:
            languages = frozenset(c for c in map(_language_code, rule.languages) if c)
        requirements = sorted(set(self.requirements(expr)), key=self.cost)
        # parse_query refuses a rule true of an entry without its terms: it requires some.
        assert requirements, rule
        compiled = _Rule(rule.name, expr, tuple(requirements), feeds, languages)
        return compiled, requirements[0]

    def expr(self, node: Node, fields: int, rule: str) -> _Expr:
        if isinstance(node, Phrase):
            return _atom([(self.pattern(node.words), fields)], self.chains)
        if isinstance(node, Actor):
            return _atom([(pid, fields) for pid in self.actor(node, rule)], self.chains)
        if isinstance(node, Scope):
            return self.expr(node.child, fields & _FIELD_BIT[node.field], rule)
        if isinstance(node, Not):
            return _negated(self.expr(node.child, fields, rule), self.chains)
        if isinstance(node, Near):
            left = self.expr(node.left, fields, rule)
            right = self.expr(node.right, fields, rule)
            # The parser allows only terms, actors and OR-groups of them: atoms.
            assert isinstance(left, _Atom) and isinstance(right, _Atom)
            return _Near(left, right, node.distance)
        children = tuple(self.expr(child, fields, rule) for child in node.children)
        if isinstance(node, And):
            return _All(children)
        return _any_of(children, self.chains)

    def requirements(self, expr: _Expr) -> list[frozenset[int]]:
        """Sets of key patterns such that, in every entry `expr` is true of, one pattern of
        each set occurred. None from under NOT: what must be absent names nothing to look for."""
        if isinstance(expr, _Atom):
            required = [frozenset(self.anchors[pid] for pid, _ in expr.refs)]
            parts = self.chains[expr.refs[0][0]] if len(expr.refs) == 1 else None
            if parts is not None:  # a lone chain needs every one of its parts
                required.extend(frozenset((part,)) for part in parts)
            return required
        if isinstance(expr, _Not):
            return []
        if isinstance(expr, _Any):
            options = [self.requirements(child) for child in expr.children]
            if not all(options):
                return []
            return [frozenset().union(*(min(option, key=self.cost) for option in options))]
        if isinstance(expr, _Near):
            return self.requirements(expr.left) + self.requirements(expr.right)
        return [required for child in expr.children for required in self.requirements(child)]

    def cost(self, patterns: frozenset[int]) -> float:
        return sum(map(self.commonness, patterns))

    def commonness(self, pid: int) -> float:
        """How often a key pattern may be expected to occur, roughly: a phrase key is rarer
        than a word, a prefix commoner, a long word rarer than a short one."""
        words = self.pattern_words[pid]
        if len(words) > 1:
            return 0.1
        word = words[0]
        return (2.0 if word.endswith("*") else 1.0) * 8 / max(len(word.strip("=*")), 4)

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
            try:
                folded = phrase_words(alias, rule=rule)
            except RuleError as exc:
                raise RuleError(
                    f"actor @{node.name}, name {alias!r}: {exc.message}",
                    rule=rule,
                    column=node.column,
                ) from None
            if not folded:
                raise RuleError(
                    f"actor @{node.name} has an alias with no words: {alias!r}",
                    rule=rule,
                    column=node.column,
                )
            phrases.append(self.pattern(folded))
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

    def automaton(self) -> Any:
        if not self.keys:
            return None
        automaton = ahocorasick.Automaton()
        for key, pids in self.keys.items():
            value = (len(key), not key.endswith(" "), tuple(sorted(pids)))
            automaton.add_word(key, value)
        automaton.make_automaton()
        return automaton


def _segments(forms: Sequence[tuple[Sequence[str], bool]]) -> list[tuple[int, int]]:
    """Split a phrase into runs of words that each become automaton keys: a run ends at a
    prefix word (a key can only end with one) or before its keys would exceed the limit."""
    segments: list[tuple[int, int]] = []
    start, combinations = 0, 1
    for index, (choices, prefix) in enumerate(forms):
        if index > start and combinations * len(choices) > _MAX_KEYS_PER_PHRASE:
            segments.append((start, index))
            start, combinations = index, 1
        combinations *= len(choices)
        if prefix:
            segments.append((start, index + 1))
            start, combinations = index + 1, 1
    if start < len(forms):
        segments.append((start, len(forms)))
    return segments


def _forms(word: str) -> tuple[Sequence[str], bool]:
    """The folded forms a phrase word stands for, and whether it is a prefix."""
    if word.endswith("*"):
        return (word[:-1],), True
    if word.startswith("="):
        return (word[1:],), False
    return sorted(inflections(word)), False


def compile_rules(rules: Sequence[RuleDef], actors: Mapping[str, Sequence[str]]) -> Matcher:
    """Compile every rule once. Raises RuleError for a bad query, an unknown actor or a
    duplicate rule name."""
    compiler = _Compiler(actors)
    compiled: list[tuple[_Rule, frozenset[int], int]] = []
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise RuleError("duplicate rule name", rule=rule.name)
        seen.add(rule.name)
        expr, anchors = compiler.rule(rule)
        compiled.append((expr, anchors, rule.priority))
    # Hits are reported by priority, then in configuration order (sorted() is stable).
    ordered = sorted(compiled, key=lambda item: -item[2])
    rules_by_pattern: dict[int, list[int]] = {}
    for index, (_, anchors, _) in enumerate(ordered):
        for pid in anchors:
            rules_by_pattern.setdefault(pid, []).append(index)
    return Matcher(
        names=tuple(rule.name for rule in rules),
        rules=tuple(expr for expr, _, _ in ordered),
        rules_by_pattern={pid: tuple(ids) for pid, ids in rules_by_pattern.items()},
        chains=tuple(compiler.chains),
        automaton=compiler.automaton(),
    )
