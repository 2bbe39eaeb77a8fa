"""Compiled rules: every term of every rule in one Aho-Corasick automaton. PURE.

Compiling gives each distinct phrase (a tuple of folded words: "=word" exact, "word*" a
prefix) one pattern id, whichever rules and actors use it, and turns it into automaton keys
over the field lines of `watcher.text` (folded words with one space for each separator):

- a phrase whose words have few form combinations is one key per combination,
  " w1 w2 " (" w1 pre" if it ends in a prefix), matching it where its words are separated
  by one character; and a *gap key* " w1  ", " w1 w2  ", ... for each place where more
  separate them ("w1, w2"), which asks for the phrase to be verified word by word there;
- any other phrase (two inflected Russian words have ~150 combinations, a prefix may come
  before the last word) is keyed by as many leading words as stay under the limit followed
  by the next word's stem (" российские миротвор"), plus gap keys, and verified.

What a field must contain for a rule to hold is a set of *events*, a pattern occurring
(anywhere, or in the title or summary only). Each rule needs one event of each of a few
sets (its *clauses*: its terms outside NOT, the feeds and languages it takes) and for most
rules that is also enough, bar a few events that must be absent (its NOTs). Every clause
of every rule has one bit of one big integer, each rule's bits side by side, each rule's
followed by a spare bit; each key carries the bits of the clauses its events satisfy, and
of the NOTs they break, further up. Matching an entry folds and scans its two fields,
ORs the bits of the keys found, and adds one to each rule's lowest bit: the carry reaches
a rule's spare bit exactly when all its clauses hold. A few integer operations therefore
select the rules that hold, whatever their number; only those that also need positions
(NEAR, or terms combined in ways clauses cannot say) are evaluated, and only rules that hit
have their spans worked out.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, reduce
from itertools import chain, product
from operator import itemgetter, or_
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
from watcher.text import FieldLine, field_line

__all__ = ["Matcher", "compile_rules"]

_ALL_FIELDS = (1 << len(FIELDS)) - 1
_FIELD_BIT = {name: 1 << index for index, name in enumerate(FIELDS)}
# A phrase is keyed by the combinations of forms of as many leading words as stay at or
# below this (two inflected Russian words have ~13 x 12).
_MAX_KEYS_PER_PHRASE = 64
_VERIFY = 1  # bit 0 of a key's bits: a phrase is to be verified where the key occurred

# An automaton value: per field (title, summary) the key's bits and events; then how far
# back from the end of a match its first letter is, whether the match ends inside a word
# (a prefix), and the phrases to verify where it occurred.
_Value = tuple[int, int, tuple[int, ...], tuple[int, ...], int, bool, tuple[int, ...]]
_BACK, _PREFIX, _PHRASES = 4, 5, 6
_VALUE = itemgetter(1)  # of an automaton match (end, value)
_BITS = (itemgetter(0), itemgetter(1))  # of a value, per field
_EVENTS = (itemgetter(2), itemgetter(3))

# Where a pattern occurred: (field index, line position of its first letter, line
# position just after its last letter).
_Occurrence = tuple[int, int, int]
# Where it is shown: (field index, start, end) in the field's displayed text.
_Place = tuple[int, int, int]
# A phrase word: its folded forms, or (if a prefix) no forms and the prefix.
_WordSpec = tuple[frozenset[str], str]


@dataclass(frozen=True, slots=True)
class _Verifiable:
    """A phrase that gap and stem keys ask to have verified where they occurred."""

    words: tuple[_WordSpec, ...]
    bits: tuple[int, int]  # per field: the bits of its events there
    events: tuple[tuple[int, ...], tuple[int, ...]]  # per field


def _verify(line: str, start: int, words: tuple[_WordSpec, ...]) -> int:
    """Where the phrase's last word ends if its words start at `start` of the field line,
    separated only by spaces; -1 if they do not."""
    position = start
    end = -1
    size = len(line)
    for forms, prefix in words:
        if end >= 0:  # skip the run of spaces after the previous word
            position = end + 1
            while position < size and line[position] == " ":
                position += 1
            if position == size:
                return -1
        end = line.find(" ", position)
        word = line[position:end]
        if not (word.startswith(prefix) if prefix else word in forms):
            return -1
    return end


class _Entry:
    """One entry being matched: its field lines and automaton matches, with what rules
    that hit ask for (events, occurrences, displayed places, spans) worked out lazily."""

    __slots__ = (
        "_found",
        "_occurred",
        "_places",
        "_spans",
        "_verified",
        "lines",
        "matches",
        "texts",
    )

    def __init__(
        self,
        texts: tuple[str, str],
        lines: tuple[FieldLine, FieldLine],
        matches: tuple[list[tuple[int, _Value]], list[tuple[int, _Value]]],
    ) -> None:
        self.texts = texts
        self.lines = lines
        self.matches = matches
        self._verified: list[tuple[int, tuple[int, ...], int, int]] = []  # field, events, ...
        self._occurred: set[int] | None = None
        self._found: list[dict[int, list[_Occurrence]]] | None = None
        self._places: dict[int, list[_Place]] = {}
        self._spans: dict[_Place, Span] = {}

    def verify(self, phrases: Sequence[_Verifiable]) -> int:
        """Verify the phrases keys asked for; the bits of the events of those that occur."""
        bits = 0
        seen: set[tuple[int, int, int]] = set()
        for field, (line, matches) in enumerate(zip(self.lines, self.matches, strict=True)):
            text = line.line
            for end, value in matches:
                asked = value[_PHRASES]
                if not asked:
                    continue
                start = end - value[_BACK]
                for pid in asked:
                    if (pid, field, start) in seen:
                        continue
                    seen.add((pid, field, start))
                    phrase = phrases[pid]
                    stop = _verify(text, start, phrase.words)
                    if stop >= 0:
                        bits |= phrase.bits[field]
                        self._verified.append((field, phrase.events[field], start, stop))
        return bits

    @property
    def occurred(self) -> set[int]:
        """The events that occurred."""
        occurred = self._occurred
        if occurred is None:
            occurred = self._occurred = set()
            for events_of, matches in zip(_EVENTS, self.matches, strict=True):
                occurred.update(chain.from_iterable(map(events_of, map(_VALUE, matches))))
            for _, events, _, _ in self._verified:
                occurred.update(events)
        return occurred

    def occurrences(self, events: Iterable[int]) -> list[_Occurrence]:
        """Where these events occurred, in field and line order, each place once."""
        found = self._found
        if found is None:
            found = self._found = [self._occurrences(field) for field in range(len(FIELDS))]
        places: set[_Occurrence] = set()
        for event in self.occurred.intersection(events):
            for in_field in found:
                places.update(in_field.get(event, ()))
        return sorted(places)

    def _occurrences(self, field: int) -> dict[int, list[_Occurrence]]:
        found: dict[int, list[_Occurrence]] = {}
        line = self.lines[field].line
        events_of = _EVENTS[field]
        for end, value in self.matches[field]:
            events = events_of(value)
            if events:
                start = end - value[_BACK]
                stop = line.find(" ", end + 1) if value[_PREFIX] else end
                for event in events:
                    found.setdefault(event, []).append((field, start, stop))
        for in_field, events, start, stop in self._verified:
            if in_field == field:
                for event in events:
                    found.setdefault(event, []).append((field, start, stop))
        return found

    def places(self, occurrences: Iterable[_Occurrence]) -> list[_Place]:
        lines = self.lines
        return [(f, *lines[f].displayed(start, stop)) for f, start, stop in occurrences]

    def spans(self, places: Iterable[_Place]) -> tuple[Span, ...]:
        """Spans of these places, overlapping ones of a field merged, in field order."""
        merged: list[list[int]] = []
        for field, start, end in sorted(set(places)):
            last = merged[-1] if merged else None
            if last is not None and last[0] == field and start < last[2]:
                last[2] = max(last[2], end)  # overlapping phrases: one span
            else:
                merged.append([field, start, end])
        spans: list[Span] = []
        cache = self._spans
        for field, start, end in merged:
            span = cache.get((field, start, end))
            if span is None:  # rules hitting one entry share spans: build each once
                span = Span(FIELDS[field], start, end, self.texts[field][start:end])
                cache[field, start, end] = span
            spans.append(span)
        return tuple(spans)


# --- compiled expressions (for the rules clauses cannot decide) ---------------------------


@dataclass(frozen=True, slots=True, eq=False)
class _Atom:
    """Terms (a phrase, an actor's aliases, an OR of them): true if one of its events
    occurred."""

    events: frozenset[int]

    def holds(self, entry: _Entry) -> bool:
        return not entry.occurred.isdisjoint(self.events)

    def collect(self, entry: _Entry, out: list[_Occurrence]) -> None:
        out.extend(entry.occurrences(self.events))


@dataclass(frozen=True, slots=True)
class _Not:
    child: _Expr

    def holds(self, entry: _Entry) -> bool:
        return not self.child.holds(entry)

    def collect(self, entry: _Entry, out: list[_Occurrence]) -> None:
        pass  # what is absent has no place


@dataclass(frozen=True, slots=True)
class _All:
    children: tuple[_Expr, ...]

    def holds(self, entry: _Entry) -> bool:
        return all(child.holds(entry) for child in self.children)

    def collect(self, entry: _Entry, out: list[_Occurrence]) -> None:
        for child in self.children:
            child.collect(entry, out)


@dataclass(frozen=True, slots=True)
class _Any:
    children: tuple[_Expr, ...]

    def holds(self, entry: _Entry) -> bool:
        return any(child.holds(entry) for child in self.children)

    def collect(self, entry: _Entry, out: list[_Occurrence]) -> None:
        for child in self.children:  # only the branches that made it true
            if child.holds(entry):
                child.collect(entry, out)


@dataclass(frozen=True, slots=True)
class _Near:
    left: _Atom
    right: _Atom
    distance: int

    def pairs(self, entry: _Entry) -> Iterable[tuple[_Occurrence, _Occurrence]]:
        limit = self.distance
        right = entry.occurrences(self.right.events)
        lines = entry.lines
        for a in entry.occurrences(self.left.events):
            for b in right:
                if a[0] != b[0] or a == b:  # one field; two matches, not one twice
                    continue
                if a[2] <= b[1]:
                    between = lines[a[0]].line[a[2] : b[1]].split()
                elif b[2] <= a[1]:
                    between = lines[a[0]].line[b[2] : a[1]].split()
                else:
                    between = []  # they overlap
                if len(between) <= limit:
                    yield a, b

    def holds(self, entry: _Entry) -> bool:
        if not (self.left.holds(entry) and self.right.holds(entry)):
            return False
        return next(iter(self.pairs(entry)), None) is not None

    def collect(self, entry: _Entry, out: list[_Occurrence]) -> None:
        for a, b in self.pairs(entry):
            out.append(a)
            out.append(b)


_Expr = _Atom | _Not | _All | _Any | _Near


def _any_of(children: tuple[_Expr, ...]) -> _Expr:
    # "a OR b OR @actor" is one atom rather than one test per term.
    events = frozenset().union(*(c.events for c in children if isinstance(c, _Atom)))
    rest = tuple(child for child in children if not isinstance(child, _Atom))
    if not events:
        return _Any(rest)
    if not rest:
        return _Atom(events)
    return _Any((_Atom(events), *rest))


def _negated(expr: _Expr) -> _Expr:
    """NOT expr, with the NOT pushed down to terms and NEARs (De Morgan): then every rule
    `parse_query` accepts has clauses (`_Compiler.requirements`), and
    `NOT (NOT a OR NOT b)` reports the spans of a and b."""
    if isinstance(expr, _Not):
        return expr.child
    if isinstance(expr, _All):
        return _any_of(tuple(_negated(child) for child in expr.children))
    if isinstance(expr, _Any):
        return _All(tuple(_negated(child) for child in expr.children))
    return _Not(expr)


def _conjuncts(expr: _Expr) -> list[_Expr]:
    if isinstance(expr, _All):
        return [c for child in expr.children for c in _conjuncts(child)]
    return [expr]


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    # Its terms outside NOT that clauses alone decide: their events make its spans.
    events: frozenset[int]
    # The rest, if any: true, given the clauses, only if these hold too.
    rest: tuple[_Expr, ...]


@lru_cache(maxsize=256)
def _language_code(language: str | None) -> str | None:
    """ "ru-RU", "ru_ru", " RU " → "ru"."""
    if language is None:
        return None
    code = language.strip().lower().replace("_", "-").split("-")[0]
    return code or None


# --- the matcher --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Selection:
    """The integers that select the rules whose clauses hold (see the module doc)."""

    lowest: int  # each rule's lowest clause bit
    spare: int  # each rule's spare bit, just above its clause bits
    shift: int  # how far above its spare bit a rule's NOT bit is
    feeds: dict[str | None, int]  # feed → the filter bits of the rules that take it
    languages: dict[str | None, int]  # primary language subtag → likewise
    filtered: bool  # whether any rule has a feeds or languages filter


class Matcher:
    """All rules, compiled once. `match` is pure and safe to call from any thread."""

    __slots__ = ("_automaton", "_names", "_phrases", "_rules", "_selection")

    def __init__(
        self,
        names: tuple[str, ...],
        rules: dict[int, _Rule],
        selection: _Selection,
        phrases: tuple[_Verifiable, ...],
        automaton: Any,
    ) -> None:
        self._names = names  # in configuration order
        self._rules = rules  # by the position of its spare bit, in the order of hits
        self._selection = selection
        self._phrases = phrases  # by pattern id (only those keys ask to verify matter)
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
        automaton = self._automaton
        if automaton is None:
            return []
        lines = (field_line(title), field_line(summary))
        matches = (list(automaton.iter(lines[0].line)), list(automaton.iter(lines[1].line)))
        if not (matches[0] or matches[1]):
            return []
        bits = reduce(or_, map(_BITS[0], map(_VALUE, matches[0])), 0) | reduce(
            or_, map(_BITS[1], map(_VALUE, matches[1])), 0
        )
        entry = None
        if bits & _VERIFY:
            entry = _Entry((title, summary), lines, matches)
            bits |= entry.verify(self._phrases)
        selection = self._selection
        if selection.filtered:
            bits |= selection.feeds.get(feed, 0)
            bits |= selection.languages.get(_language_code(language), 0)
        holding = (bits + selection.lowest) & selection.spare
        if holding:
            holding &= ~(bits >> selection.shift)
        if not holding:
            return []
        if entry is None:
            entry = _Entry((title, summary), lines, matches)
        hits: list[Hit] = []
        rules = self._rules
        while holding:
            spare = holding & -holding
            holding ^= spare
            rule = rules[spare.bit_length()]
            if rule.rest and not all(expr.holds(entry) for expr in rule.rest):
                continue
            occurrences = entry.occurrences(rule.events)
            for expr in rule.rest:
                expr.collect(entry, occurrences)
            hits.append(Hit(rule.name, entry.spans(entry.places(occurrences))))
        return hits


# --- compiling ----------------------------------------------------------------------------


@dataclass(slots=True)
class _CompiledRule:
    rule: _Rule
    clauses: list[frozenset[int]]  # event sets; filters are added as bits
    forbidden: frozenset[int]  # events that must not occur
    feeds: frozenset[str] | None
    languages: frozenset[str] | None
    priority: int


class _Compiler:
    def __init__(self, actors: Mapping[str, Sequence[str]]) -> None:
        # Actor names may be given with or without their "@".
        self.actors = {name.removeprefix("@"): aliases for name, aliases in actors.items()}
        self.pattern_ids: dict[tuple[str, ...], int] = {}
        self.patterns: list[tuple[_WordSpec, ...]] = []  # by pattern id
        self.pattern_words: list[tuple[str, ...]] = []  # by pattern id
        self.events: dict[tuple[int, int], int] = {}  # (pattern id, fields) → event id
        self.event_patterns: list[int] = []  # by event id
        # automaton key → (patterns it is, phrases it asks to verify)
        self.keys: dict[str, tuple[set[int], set[int]]] = {}
        self.actor_ids: dict[str, tuple[int, ...]] = {}

    def pattern(self, words: tuple[str, ...]) -> int:
        pid = self.pattern_ids.get(words)
        if pid is not None:
            return pid
        pid = len(self.patterns)
        specs = tuple(_spec(word) for word in words)
        self.patterns.append(specs)
        self.pattern_words.append(words)
        self.pattern_ids[words] = pid
        self.add_keys(pid, specs)
        return pid

    def add_keys(self, pid: int, specs: tuple[_WordSpec, ...]) -> None:
        """The automaton keys of a phrase (see the module doc)."""
        forms = [sorted(word_forms) for word_forms, _ in specs]
        count = len(specs)
        keyed, combinations = 0, 1  # the leading words keyed by all their forms
        while keyed < count and not specs[keyed][1]:
            if keyed and combinations * len(forms[keyed]) > _MAX_KEYS_PER_PHRASE:
                break
            combinations *= len(forms[keyed])
            keyed += 1
        for gap in range(1, min(keyed, count - 1) + 1):
            for words in product(*forms[:gap]):
                self.key(" " + " ".join(words) + "  ", verify=pid)
        heads = [" " + " ".join(words) + " " for words in product(*forms[:keyed])]
        if not keyed:  # a phrase starting with a prefix
            heads = [" "]
        if keyed == count:
            for head in heads:
                self.key(head, pattern=pid)
            return
        prefix = specs[keyed][1]
        stem = prefix or _common_prefix(forms[keyed])
        # A phrase ending in a prefix, keyed up to it, needs no verifying.
        whole = bool(prefix) and keyed == count - 1
        for head in heads:
            if whole:
                self.key(head + stem, pattern=pid)
            else:
                self.key(head + stem, verify=pid)

    def key(self, key: str, *, pattern: int | None = None, verify: int | None = None) -> None:
        patterns, phrases = self.keys.setdefault(key, (set(), set()))
        if pattern is not None:
            patterns.add(pattern)
        if verify is not None:
            phrases.add(verify)

    def event(self, pid: int, fields: int) -> int:
        event = self.events.get((pid, fields))
        if event is None:
            event = self.events[pid, fields] = len(self.event_patterns)
            self.event_patterns.append(pid)
        return event

    def rule(self, rule: RuleDef) -> _CompiledRule:
        tree = parse_query(rule.query, rule=rule.name)
        expr = self.expr(tree, _ALL_FIELDS, rule.name)
        positive: set[int] = set()
        clauses: list[frozenset[int]] = []
        forbidden: set[int] = set()
        rest: list[_Expr] = []
        for conjunct in _conjuncts(expr):
            if isinstance(conjunct, _Atom):
                positive |= conjunct.events
                clauses.append(conjunct.events)
            elif isinstance(conjunct, _Not) and isinstance(conjunct.child, _Atom):
                forbidden |= conjunct.child.events
            else:
                rest.append(conjunct)
                clauses.extend(self.requirements(conjunct))
        # parse_query refuses a rule true of an entry without its terms: it requires some.
        assert clauses, rule
        languages = None
        if rule.languages:
            languages = frozenset(c for c in map(_language_code, rule.languages) if c)
        return _CompiledRule(
            _Rule(rule.name, frozenset(positive), tuple(rest)),
            list(dict.fromkeys(clauses)),
            frozenset(forbidden),
            frozenset(rule.feeds) if rule.feeds else None,
            languages,
            rule.priority,
        )

    def expr(self, node: Node, fields: int, rule: str) -> _Expr:
        if isinstance(node, Phrase):
            return _Atom(frozenset((self.event(self.pattern(node.words), fields),)))
        if isinstance(node, Actor):
            return _Atom(frozenset(self.event(pid, fields) for pid in self.actor(node, rule)))
        if isinstance(node, Scope):
            return self.expr(node.child, fields & _FIELD_BIT[node.field], rule)
        if isinstance(node, Not):
            return _negated(self.expr(node.child, fields, rule))
        if isinstance(node, Near):
            left = self.expr(node.left, fields, rule)
            right = self.expr(node.right, fields, rule)
            # The parser allows only terms, actors and OR-groups of them: atoms.
            assert isinstance(left, _Atom) and isinstance(right, _Atom)
            return _Near(left, right, node.distance)
        children = tuple(self.expr(child, fields, rule) for child in node.children)
        if isinstance(node, And):
            return _All(children)
        return _any_of(children)

    def requirements(self, expr: _Expr) -> list[frozenset[int]]:
        """Sets of events such that, in every entry `expr` is true of, one event of each
        set occurred. None from under NOT: what must be absent names nothing to look for."""
        if isinstance(expr, _Atom):
            return [expr.events]
        if isinstance(expr, _Not):
            return []
        if isinstance(expr, _Any):
            options = [self.requirements(child) for child in expr.children]
            if not all(options):
                return []
            return [frozenset().union(*(min(option, key=self.cost) for option in options))]
        if isinstance(expr, _Near):
            return [expr.left.events, expr.right.events]
        return [required for child in expr.children for required in self.requirements(child)]

    def cost(self, events: frozenset[int]) -> float:
        """How often one of these events may be expected to occur, roughly: a phrase is
        rarer than a word, a prefix commoner, a long word rarer than a short one."""
        total = 0.0
        for event in events:
            words = self.pattern_words[self.event_patterns[event]]
            if len(words) > 1:
                total += 0.1
            else:
                word = words[0]
                total += (2.0 if word.endswith("*") else 1.0) * 8 / max(len(word.strip("=*")), 4)
        return total

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

    def matcher(self, names: tuple[str, ...], compiled: list[_CompiledRule]) -> Matcher:
        # Hits are reported by priority, then in configuration order (sorted() is stable),
        # which is the order of the rules' bits.
        ordered = sorted(compiled, key=lambda item: -item.priority)
        event_bits = [0] * len(self.events)
        lowest = spare = 0
        feeds: dict[str | None, int] = {}
        languages: dict[str | None, int] = {}
        rules: dict[int, _Rule] = {}
        position = 1  # bit 0 is _VERIFY
        not_bits: list[tuple[int, frozenset[int]]] = []
        for item in ordered:
            lowest |= 1 << position
            for clause in item.clauses:
                for event in clause:
                    event_bits[event] |= 1 << position
                position += 1
            if item.feeds is not None:
                for feed in item.feeds:
                    feeds[feed] = feeds.get(feed, 0) | 1 << position
                position += 1
            if item.languages is not None:
                for code in item.languages:
                    languages[code] = languages.get(code, 0) | 1 << position
                position += 1
            spare |= 1 << position
            rules[position + 1] = item.rule  # int.bit_length() of the spare bit
            not_bits.append((position, item.forbidden))
            position += 1
        shift = position
        for spare_position, forbidden in not_bits:
            for event in forbidden:
                event_bits[event] |= 1 << (spare_position + shift)
        selection = _Selection(
            lowest,
            spare,
            shift,
            feeds,
            languages,
            any(item.feeds is not None or item.languages is not None for item in compiled),
        )
        return Matcher(
            names, rules, selection, self.verifiable(event_bits), self.automaton(event_bits)
        )

    def field_events(self) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """Per pattern id, per field: the events an occurrence there is."""
        found: list[tuple[list[int], list[int]]] = [([], []) for _ in self.patterns]
        for (pid, fields), event in self.events.items():
            for field in range(len(FIELDS)):
                if fields >> field & 1:
                    found[pid][field].append(event)
        return [(tuple(title), tuple(summary)) for title, summary in found]

    def verifiable(self, event_bits: list[int]) -> tuple[_Verifiable, ...]:
        phrases: list[_Verifiable] = []
        for specs, events in zip(self.patterns, self.field_events(), strict=True):
            bits = (
                reduce(or_, (event_bits[e] for e in events[0]), 0),
                reduce(or_, (event_bits[e] for e in events[1]), 0),
            )
            phrases.append(_Verifiable(specs, bits, events))
        return tuple(phrases)

    def automaton(self, event_bits: list[int]) -> Any:
        if not self.keys:
            return None
        field_events = self.field_events()
        shared: dict[tuple[Any, ...], _Value] = {}  # keys alike but in length share a value
        automaton = ahocorasick.Automaton()
        for key, (patterns, phrases) in self.keys.items():
            events = (
                tuple(sorted({e for pid in patterns for e in field_events[pid][0]})),
                tuple(sorted({e for pid in patterns for e in field_events[pid][1]})),
            )
            verify = tuple(sorted(phrases))
            back, prefix = len(key) - 2, not key.endswith(" ")
            value = shared.get((events, verify, back, prefix))
            if value is None:
                flag = _VERIFY if verify else 0
                value = (
                    reduce(or_, (event_bits[e] for e in events[0]), flag),
                    reduce(or_, (event_bits[e] for e in events[1]), flag),
                    events[0],
                    events[1],
                    back,
                    prefix,
                    verify,
                )
                shared[events, verify, back, prefix] = value
            automaton.add_word(key, value)
        automaton.make_automaton()
        return automaton


def _common_prefix(forms: Sequence[str]) -> str:
    first, last = min(forms), max(forms)
    size = 0
    while size < len(first) and first[size] == last[size]:
        size += 1
    return first[:size]


def _spec(word: str) -> _WordSpec:
    """The folded forms a phrase word stands for, or its prefix."""
    if word.endswith("*"):
        return frozenset((word[:-1],)), word[:-1]
    if word.startswith("="):
        return frozenset((word[1:],)), ""
    return inflections(word), ""


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
    return compiler.matcher(tuple(rule.name for rule in rules), compiled)
