"""Compiled rules: every term of every rule in one Aho-Corasick automaton. PURE.

Keys. Each distinct phrase (a tuple of folded words: "=word" exact, "word*" a prefix) gets
one pattern id, whichever rules and actors use it, and automaton keys over the scan lines
of `watcher.text`, where each separator is a space:

- a phrase whose words have few form combinations has one key per combination,
  " w1 w2 " (" w1 pre" if it ends in a prefix): it occurs where that key does. Where more
  than one character separates two of its words ("w1, w2"), a *gap key* " w1  " (or
  " w1 w2  ", ...) asks for the phrase to be verified word by word;
- any other phrase (two inflected Russian words have ~150 combinations; a prefix may come
  before the last word) has keys for as many leading words as stay under the limit and the
  next word's stem (" российские миротвор"), which ask for it to be verified, and gap keys.
  Few places have such a key and the next word of one of the phrases it asks for.

Selecting rules. An *event* is a pattern occurring anywhere, or in the title or the summary
only. A rule needs one event of each of a few sets (its *clauses*: its terms outside NOT,
and the feeds and languages it takes), and for most rules that is enough, bar some events
that must not occur (its NOTs). Each clause has a bit in one big integer, each rule's bits
side by side and followed by a spare bit (and a NOT bit if it has NOTs); each key carries
the bits of the clauses and NOTs its events touch. Matching an entry ORs the bits of the
keys found in it and adds one at each rule's lowest bit: the carry reaches a rule's spare
bit exactly when all its clauses hold. So a few integer operations select the rules that
hold, whatever their number; only those that also need positions (NEAR, or terms combined
in ways clauses cannot say) are evaluated further, and only rules that hit have their
spans worked out, shared among rules hitting on the same terms.

Two engines. Everything above is the Python engine: the reference, and the fallback. Where
the C module was built, `Matcher.match` first asks the C engine (`watcher.rules.native`),
which runs the same compiled phrases, events and expression trees (`_CompiledRule.expr`)
over an entry in one pass; it hands back the entries it cannot fold character by
character, and the Python engine matches those.
"""

from __future__ import annotations

import difflib
import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import lru_cache, reduce
from itertools import chain, compress, product
from operator import itemgetter, or_
from typing import Any, Final

import ahocorasick

from watcher.errors import RuleError
from watcher.model import Hit, RuleDef, Span
from watcher.rules import expressions as exprs
from watcher.rules.expressions import Occurrence
from watcher.rules.native import CEngine, available, build_engine
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
from watcher.text import ScanLine, scan_line

__all__ = ["Matcher", "compile_rules"]

_ALL_FIELDS = (1 << len(FIELDS)) - 1
_TOKEN = re.compile(r"\S+")  # a word of a scan line (or its field break)
_FIELD_BIT = {name: 1 << index for index, name in enumerate(FIELDS)}
# A phrase is keyed by the combinations of forms of as many leading words as stay at or
# below this (two inflected Russian words have ~13 x 12).
_MAX_KEYS_PER_PHRASE = 64
_VERIFY = 1  # bit 0 of a key's bits: a phrase is to be verified where the key occurred

# An automaton value: per field (title, summary) the key's bits and events; then how far
# back from the end of a match its first letter is, whether the match ends inside a word
# (a prefix), and the phrases to verify where it occurred, if any.
_Value = tuple[int, int, tuple[int, ...], tuple[int, ...], int, bool, "_Asked | None"]
_BACK: Final = 4
_PREFIX: Final = 5
_ASKED: Final = 6
_VALUE = itemgetter(1)  # of an automaton match (end, value)
_BITS = (itemgetter(0), itemgetter(1))  # of a value, per field
_EVENTS = (itemgetter(2), itemgetter(3))
_ASKED_OF = itemgetter(_ASKED)

# Where a pattern occurred is an `Occurrence`: (field index, line position of its first
# letter, line position just after its last letter).
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


@dataclass(frozen=True, slots=True, eq=False)
class _Asked:
    """The phrases a gap or stem key asks to verify, by the word that tells them apart: the
    one after the run of spaces a gap key ends with, or the one a stem key ends inside."""

    stem: int  # how many letters of that word the key ends with (0: it follows the key)
    by_form: dict[str, tuple[int, ...]]  # that word's forms → phrase ids
    by_prefix: tuple[tuple[str, tuple[int, ...]], ...]  # for a prefix there

    def candidates(self, line: str, end: int) -> tuple[int, ...]:
        """The phrases the word after a match of the key ending at `end` may belong to."""
        if self.stem:
            position = end - self.stem + 1
        else:
            position = end + 1
            size = len(line)
            while position < size and line[position] == " ":
                position += 1
            if position == size:
                return ()
        word = line[position : line.find(" ", position)]
        found = self.by_form.get(word, ())
        for prefix, phrases in self.by_prefix:
            if word.startswith(prefix):
                found += phrases
        return found


def _verify(line: str, start: int, words: tuple[_WordSpec, ...]) -> int:
    """Where the phrase's last word ends if its words start at `start` of the scan line,
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
    """One entry being matched, once some rule may hold: its scan line and automaton
    matches, the phrases verified, where events occurred, and the spans of hits (shared by
    rules hitting on the same terms)."""

    __slots__ = (
        "_places",
        "_span_at",
        "_verified",
        "_word_starts",
        "found",
        "known_spans",
        "line",
        "matches",
        "texts",
    )

    def __init__(
        self,
        texts: tuple[str, str],
        line: ScanLine,
        matches: tuple[list[tuple[int, _Value]], list[tuple[int, _Value]]],
    ) -> None:
        self.texts = texts
        self.line = line
        self.matches = matches  # per field
        # Verified phrases: (field, events, first letter, end of last word)
        self._verified: list[tuple[int, tuple[int, ...], int, int]] = []
        self.found: dict[int, list[Occurrence]] = {}  # by event, once `index` ran
        self._places: dict[int, list[_Place]] = {}  # by event
        self.known_spans: dict[int | frozenset[int], tuple[Span, ...]] = {}  # by event(s)
        self._span_at: dict[_Place, Span] = {}
        self._word_starts: list[int] | None = None  # where each word of the line starts

    def word_number(self, position: int) -> int:
        """How many words of the scan line start before `position` (the field break counts
        as one: NEAR never pairs occurrences of two fields)."""
        starts = self._word_starts
        if starts is None:
            starts = self._word_starts = [m.start() for m in _TOKEN.finditer(self.line.line)]
        return bisect_left(starts, position)

    def verify(self, phrases: Sequence[_Verifiable]) -> int:
        """Verify the phrases keys asked for; the bits of the events of those that occur."""
        bits = 0
        line = self.line.line
        seen: set[tuple[int, int]] = set()
        for field, matches in enumerate(self.matches):
            for end, value in compress(matches, map(_ASKED_OF, map(_VALUE, matches))):
                asked = value[_ASKED]
                assert asked is not None  # compress() picked it
                start = end - value[_BACK]
                for pid in asked.candidates(line, end):
                    if (pid, start) in seen:
                        continue
                    seen.add((pid, start))
                    phrase = phrases[pid]
                    stop = _verify(line, start, phrase.words)
                    if stop >= 0:
                        bits |= phrase.bits[field]
                        self._verified.append((field, phrase.events[field], start, stop))
        return bits

    def index(self) -> dict[int, list[Occurrence]]:
        """`found`: where each event that occurred did, in line order."""
        found = self.found
        line = self.line.line
        for field, matches in enumerate(self.matches):
            events_of = _EVENTS[field]
            for end, value in matches:
                events = events_of(value)
                if events:
                    place = (
                        field,
                        end - value[_BACK],
                        line.find(" ", end + 1) if value[_PREFIX] else end,
                    )
                    for event in events:
                        if event in found:
                            found[event].append(place)
                        else:
                            found[event] = [place]
        for field, verified, start, stop in self._verified:
            for event in verified:
                found.setdefault(event, []).append((field, start, stop))
                found[event].sort()
        return found

    def occurrences(self, events: Iterable[int]) -> list[Occurrence]:
        """Where these events occurred, each place once, in line order."""
        found = self.found
        return sorted({place for event in found.keys() & events for place in found[event]})

    def spans(self, present: AbstractSet[int], more: Iterable[Occurrence] = ()) -> tuple[Span, ...]:
        """Spans of where these events (that occurred) and `more` did, overlapping ones of a
        field merged, in field order. Rules hitting one entry often share terms."""
        if more:
            return self._merged([*self._displayed(more), *chain(*map(self.places, present))])
        known = self.known_spans
        if len(present) == 1:
            [key] = present
            spans = known.get(key)
            if spans is None:
                occurrences = self.found[key]
                if len(occurrences) == 1:
                    _, start, stop = occurrences[0]
                    spans = (self._span(*self.line.displayed(start, stop)),)
                else:
                    spans = self._merged(self.places(key))
                known[key] = spans
            return spans
        events = frozenset(present)
        spans = known.get(events)
        if spans is None:
            spans = known[events] = self._merged([*chain(*map(self.places, events))])
        return spans

    def places(self, event: int) -> list[_Place]:
        """Where an event that occurred did, in the displayed text."""
        places = self._places.get(event)
        if places is None:
            places = self._places[event] = self._displayed(self.found[event])
        return places

    def _displayed(self, occurrences: Iterable[Occurrence]) -> list[_Place]:
        displayed = self.line.displayed
        return [displayed(start, stop) for _, start, stop in occurrences]

    def _merged(self, places: list[_Place]) -> tuple[Span, ...]:
        if len(places) == 1:
            return (self._span(*places[0]),)
        ordered = sorted(set(places))
        if not ordered:
            return ()
        spans: list[Span] = []
        field, start, end = ordered[0]
        for next_field, next_start, next_end in ordered[1:]:
            if next_field == field and next_start < end:  # overlapping phrases: one span
                if next_end > end:
                    end = next_end
            else:
                spans.append(self._span(field, start, end))
                field, start, end = next_field, next_start, next_end
        spans.append(self._span(field, start, end))
        return tuple(spans)

    def _span(self, field: int, start: int, end: int) -> Span:
        span = self._span_at.get((field, start, end))
        if span is None:  # rules hitting one entry share spans: build each once
            span = Span(FIELDS[field], start, end, self.texts[field][start:end])
            self._span_at[field, start, end] = span
        return span


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    # Its terms outside NOT that clauses alone decide: their events make its spans.
    events: frozenset[int]
    # The rest, if any: true, given the clauses, only if these hold too.
    rest: tuple[exprs.Expr, ...]


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
    excluding: int  # the spare bits of rules with NOTs: their NOT bit is just above
    feeds: dict[str | None, int]  # feed → the filter bits of the rules that take it
    languages: dict[str | None, int]  # primary language subtag → likewise
    filtered: bool  # whether any rule has a feeds or languages filter


class Matcher:
    """All rules, compiled once. `match` is pure and safe to call from any thread."""

    __slots__ = ("_automaton", "_names", "_native", "_phrases", "_rules", "_selection")

    def __init__(
        self,
        names: tuple[str, ...],
        rules: dict[int, _Rule],
        selection: _Selection,
        phrases: tuple[_Verifiable, ...],
        automaton: Any,
        native: CEngine | None = None,
    ) -> None:
        self._names = names  # in configuration order
        self._rules = rules  # by the position of its spare bit, in the order of hits
        self._selection = selection
        self._phrases = phrases  # by pattern id (only those keys ask to verify matter)
        self._automaton = automaton  # None if no rule has a term
        self._native = native  # the C engine (watcher.rules.native), if built and wanted

    @property
    def native(self) -> bool:
        """Whether the C engine matches entries (the Python engine those it cannot)."""
        return self._native is not None

    @property
    def engine(self) -> str:
        """Which engine matches entries, as the logs name it: "c" or "python"."""
        return "c" if self._native is not None else "python"

    def native_answer(
        self, title: str, summary: str, *, feed: str | None = None, language: str | None = None
    ) -> list[Hit] | None:
        """What the C engine answers for an entry, as `match`; None if it leaves the entry
        to the Python engine (or there is no C engine)."""
        native = self._native
        if native is None:
            return None
        return native.engine.match(
            title,
            summary,
            -1 if feed is None else native.feed_ids.get(feed, -1),
            native.language_ids.get(_language_code(language) or "", -1),
        )

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
        answer = self.native_answer(title, summary, feed=feed, language=language)
        if answer is not None:
            return answer
        line = scan_line(title, summary)
        scanned = list(automaton.iter(line.line))
        if not scanned:
            return []
        middle = bisect_left(scanned, (line.breaks[0],))
        matches = (scanned[:middle], scanned[middle:])
        bits = reduce(or_, map(_BITS[0], map(_VALUE, matches[0])), 0) | reduce(
            or_, map(_BITS[1], map(_VALUE, matches[1])), 0
        )
        entry = None
        if bits & _VERIFY:
            entry = _Entry((title, summary), line, matches)
            bits |= entry.verify(self._phrases)
        selection = self._selection
        if selection.filtered:
            bits |= selection.feeds.get(feed, 0)
            bits |= selection.languages.get(_language_code(language), 0)
        holding = (bits + selection.lowest) & selection.spare
        if holding and selection.excluding:
            holding &= ~((bits >> 1) & selection.excluding)
        if not holding:
            return []
        if entry is None:
            entry = _Entry((title, summary), line, matches)
        holds: list[_Rule] = []
        rules = self._rules
        while holding:
            top = holding.bit_length()
            holding ^= 1 << (top - 1)
            holds.append(rules[top])
        found = entry.index()
        hits: list[Hit] = []
        known = entry.known_spans
        for rule in reversed(holds):  # found highest bit first
            present = rule.events.intersection(found)
            if not rule.rest:
                # Most hits are of one term, often shared by other rules.
                spans = known.get(next(iter(present))) if len(present) == 1 else None
                if spans is None:
                    spans = entry.spans(present)
            elif all(expr.holds(entry) for expr in rule.rest):
                more: list[Occurrence] = []
                for expr in rule.rest:
                    expr.collect(entry, more)
                spans = entry.spans(present, more)
            else:
                continue
            hits.append(Hit(rule.name, spans))
        return hits


# --- compiling ----------------------------------------------------------------------------


@dataclass(slots=True)
class _CompiledRule:
    rule: _Rule
    expr: exprs.Expr  # the whole query: true exactly where the rule holds, filters aside
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
        self.key_patterns: dict[str, list[int]] = {}  # automaton key → the patterns it is
        # automaton key → the phrases it asks to verify, the words it covers before the word
        # that tells them apart, and how many letters of that word it ends with
        self.key_phrases: dict[str, tuple[list[int], int, int]] = {}
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
                self.verify_key(" " + " ".join(words) + "  ", pid, gap, 0)
        heads = [" " + " ".join(words) + " " for words in product(*forms[:keyed])]
        if not keyed:  # a phrase starting with a prefix
            heads = [" "]
        if keyed == count:
            for head in heads:
                self.pattern_key(head, pid)
            return
        prefix = specs[keyed][1]
        stem = prefix or _common_prefix(forms[keyed])
        # A phrase ending in a prefix, keyed up to it, needs no verifying.
        whole = bool(prefix) and keyed == count - 1
        for head in heads:
            if whole:
                self.pattern_key(head + stem, pid)
            else:
                self.verify_key(head + stem, pid, keyed, len(stem))

    def pattern_key(self, key: str, pid: int) -> None:
        patterns = self.key_patterns.setdefault(key, [])
        if pid not in patterns:
            patterns.append(pid)

    def verify_key(self, key: str, pid: int, skip: int, stem: int) -> None:
        phrases, *where = self.key_phrases.setdefault(key, ([], skip, stem))
        # The words before the key's last space, and the letters after it: the same for
        # every phrase a key asks for.
        assert where == [skip, stem], key
        if pid not in phrases:
            phrases.append(pid)

    def asked(self, phrases: Iterable[int], skip: int, stem: int) -> _Asked:
        """What a key that covers `skip` words of these phrases (and `stem` letters of the
        next) asks for."""
        by_form: dict[str, list[int]] = {}
        by_prefix: dict[str, list[int]] = {}
        for pid in sorted(phrases):
            forms, prefix = self.patterns[pid][skip]
            if prefix:
                by_prefix.setdefault(prefix, []).append(pid)
            else:
                for form in forms:
                    by_form.setdefault(form, []).append(pid)
        return _Asked(
            stem,
            {form: tuple(pids) for form, pids in by_form.items()},
            tuple((prefix, tuple(pids)) for prefix, pids in by_prefix.items()),
        )

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
        rest: list[exprs.Expr] = []
        for conjunct in exprs.conjuncts(expr):
            if isinstance(conjunct, exprs.Atom):
                positive |= conjunct.events
                clauses.append(conjunct.events)
            elif isinstance(conjunct, exprs.Not) and isinstance(conjunct.child, exprs.Atom):
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
            expr,
            list(dict.fromkeys(clauses)),
            frozenset(forbidden),
            frozenset(rule.feeds) if rule.feeds else None,
            languages,
            rule.priority,
        )

    def expr(self, node: Node, fields: int, rule: str) -> exprs.Expr:
        if isinstance(node, Phrase):
            return exprs.Atom(frozenset((self.event(self.pattern(node.words), fields),)))
        if isinstance(node, Actor):
            return exprs.Atom(frozenset(self.event(pid, fields) for pid in self.actor(node, rule)))
        if isinstance(node, Scope):
            return self.expr(node.child, fields & _FIELD_BIT[node.field], rule)
        if isinstance(node, Not):
            return exprs.negated(self.expr(node.child, fields, rule))
        if isinstance(node, Near):
            left = self.expr(node.left, fields, rule)
            right = self.expr(node.right, fields, rule)
            # The parser allows only terms, actors and OR-groups of them: atoms.
            assert isinstance(left, exprs.Atom) and isinstance(right, exprs.Atom)
            return exprs.Near(left, right, node.distance)
        children = tuple(self.expr(child, fields, rule) for child in node.children)
        if isinstance(node, And):
            return exprs.All(children)
        return exprs.any_of(children)

    def requirements(self, expr: exprs.Expr) -> list[frozenset[int]]:
        """Sets of events such that, in every entry `expr` is true of, one event of each
        set occurred. None from under NOT: what must be absent names nothing to look for."""
        if isinstance(expr, exprs.Atom):
            return [expr.events]
        if isinstance(expr, exprs.Not):
            return []
        if isinstance(expr, exprs.AnyOf):
            options = [self.requirements(child) for child in expr.children]
            if not all(options):
                return []
            return [frozenset().union(*(min(option, key=self.cost) for option in options))]
        if isinstance(expr, exprs.Near):
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

    def matcher(
        self, names: tuple[str, ...], compiled: list[_CompiledRule], native: bool
    ) -> Matcher:
        # Hits are reported by priority, then in configuration order (sorted() is stable),
        # which is the order of the rules' bits.
        ordered = sorted(compiled, key=lambda item: -item.priority)
        event_bits = [0] * len(self.events)
        lowest = spare = 0
        feeds: dict[str | None, int] = {}
        languages: dict[str | None, int] = {}
        rules: dict[int, _Rule] = {}
        position = 1  # bit 0 is _VERIFY
        excluding = 0
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
            position += 1
            if item.forbidden:
                excluding |= 1 << (position - 1)
                for event in item.forbidden:
                    event_bits[event] |= 1 << position
                position += 1
        selection = _Selection(
            lowest,
            spare,
            excluding,
            feeds,
            languages,
            any(item.feeds is not None or item.languages is not None for item in compiled),
        )
        automaton = self.automaton(event_bits)
        engine = None
        if native and available():
            engine = build_engine(
                self.patterns,
                self.field_events(),
                len(self.events),
                ordered,
                # one clause per rule, the rarest: where the rule holds, one of its events
                # occurred, so the rules worth evaluating are found from the events
                [min(item.clauses, key=self.cost) for item in ordered],
            )
        return Matcher(names, rules, selection, self.verifiable(event_bits), automaton, engine)

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
        if not (self.key_patterns or self.key_phrases):
            return None
        field_events = self.field_events()
        bits: dict[tuple[tuple[int, ...], bool], int] = {}  # one int object for equal bits
        values: dict[tuple[Any, ...], _Value] = {}  # and one value for equal values
        asked: dict[tuple[frozenset[int], int, int], _Asked] = {}
        automaton = ahocorasick.Automaton()
        for key in chain(self.key_patterns, self.key_phrases.keys() - self.key_patterns.keys()):
            patterns = self.key_patterns.get(key, ())
            events = tuple(
                tuple(sorted({e for pid in patterns for e in field_events[pid][field]}))
                for field in range(len(FIELDS))
            )
            verify: _Asked | None = None
            if key in self.key_phrases:  # the forms of a phrase's first words ask alike
                phrases, skip, stem = self.key_phrases[key]
                ask = (frozenset(phrases), skip, stem)
                verify = asked.get(ask)
                if verify is None:
                    verify = asked[ask] = self.asked(phrases, skip, stem)
            back, prefix = len(key) - 2, not key.endswith(" ")
            value = values.get((events, back, prefix, verify))
            if value is None:
                field_bits: list[int] = []
                for in_field in events:
                    found = bits.get((in_field, verify is not None))
                    if found is None:
                        flag = _VERIFY if verify is not None else 0
                        found = reduce(or_, (event_bits[e] for e in in_field), flag)
                        bits[in_field, verify is not None] = found
                    field_bits.append(found)
                title_bits, summary_bits = field_bits
                title_events, summary_events = events
                value = (
                    title_bits,
                    summary_bits,
                    title_events,
                    summary_events,
                    back,
                    prefix,
                    verify,
                )
                values[events, back, prefix, verify] = value
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
    """The folded forms a phrase word stands for, or its prefix. "=" before a prefix changes
    nothing: a prefix is matched as written, never inflected."""
    if word.endswith("*"):
        prefix = word[:-1].removeprefix("=")
        return frozenset((prefix,)), prefix
    if word.startswith("="):
        return frozenset((word[1:],)), ""
    return inflections(word), ""


def compile_rules(
    rules: Sequence[RuleDef],
    actors: Mapping[str, Sequence[str]],
    *,
    native: bool = True,
) -> Matcher:
    """Compile every rule once. Raises RuleError for a bad query, an unknown actor or a
    duplicate rule name. `native`: whether entries are matched by the C engine where it
    was built (the default); the answers are the same."""
    compiler = _Compiler(actors)
    compiled: list[_CompiledRule] = []
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise RuleError("duplicate rule name", rule=rule.name)
        seen.add(rule.name)
        compiled.append(compiler.rule(rule))
    return compiler.matcher(tuple(rule.name for rule in rules), compiled, native)
