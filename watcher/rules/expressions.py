"""A rule's query compiled to a tree over events, evaluated for one entry. PURE.

An *event* is a term (phrase, prefix or actor alias) occurring in a field. The compiler
(watcher.rules.matcher) turns each query into one of these trees; the Python engine evaluates
it over an entry's occurrences, and the C engine (watcher.rules.native) is given the same
tree as tables, so the two cannot disagree on what a query says.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "All",
    "AnyOf",
    "Atom",
    "Expr",
    "Near",
    "Not",
    "Occurrence",
    "Occurrences",
    "any_of",
    "conjuncts",
    "negated",
]

# Where an event occurred: (field, start, end) in the entry's scan line.
Occurrence = tuple[int, int, int]


class Occurrences(Protocol):
    """What an expression reads of the entry being matched."""

    @property
    def found(self) -> dict[int, list[Occurrence]]:
        """Where each event that occurred did, by event."""

    def occurrences(self, events: Iterable[int]) -> list[Occurrence]:
        """Where these events occurred, each place once, in line order."""

    def word_number(self, position: int) -> int:
        """How many words of the scan line start before `position`."""


@dataclass(frozen=True, slots=True, eq=False)
class Atom:
    """Terms (a phrase, an actor's aliases, an OR of them): true if one of its events
    occurred."""

    events: frozenset[int]

    def holds(self, entry: Occurrences) -> bool:
        return not entry.found.keys().isdisjoint(self.events)

    def collect(self, entry: Occurrences, out: list[Occurrence]) -> None:
        out.extend(entry.occurrences(self.events))


@dataclass(frozen=True, slots=True)
class Not:
    child: Expr

    def holds(self, entry: Occurrences) -> bool:
        return not self.child.holds(entry)

    def collect(self, entry: Occurrences, out: list[Occurrence]) -> None:
        pass  # what is absent has no place


@dataclass(frozen=True, slots=True)
class All:
    children: tuple[Expr, ...]

    def holds(self, entry: Occurrences) -> bool:
        return all(child.holds(entry) for child in self.children)

    def collect(self, entry: Occurrences, out: list[Occurrence]) -> None:
        for child in self.children:
            child.collect(entry, out)


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Expr, ...]

    def holds(self, entry: Occurrences) -> bool:
        return any(child.holds(entry) for child in self.children)

    def collect(self, entry: Occurrences, out: list[Occurrence]) -> None:
        for child in self.children:  # only the branches that made it true
            if child.holds(entry):
                child.collect(entry, out)


@dataclass(frozen=True, slots=True)
class Near:
    left: Atom
    right: Atom
    distance: int

    def pairs(self, entry: Occurrences) -> Iterable[tuple[Occurrence, Occurrence]]:
        """The pairs of an occurrence of each side, in one field, with at most `distance`
        words between them (either order; overlapping ones have none between).

        By word numbers: A's words i0..i1 and B's j0..j1 have at most d words between
        them exactly when j0 <= i1 + d + 1 and i0 <= j1 + d + 1. With B's occurrences by
        j0, each of A's looks only at those that can be that near: linear in the
        occurrences and the pairs, where comparing each with each, with the line between
        them split, took minutes on a long summary full of both terms."""
        reach = self.distance + 1
        number = entry.word_number
        by_field: dict[int, list[tuple[int, int, Occurrence]]] = {}
        for b in entry.occurrences(self.right.events):  # in line order: by j0 in a field
            by_field.setdefault(b[0], []).append((number(b[1]), number(b[2]) - 1, b))
        if not by_field:
            return
        longest = max(j1 - j0 for group in by_field.values() for j0, j1, _ in group)
        firsts = {field: [j0 for j0, _, _ in group] for field, group in by_field.items()}
        for a in entry.occurrences(self.left.events):
            group = by_field.get(a[0])
            if group is None:
                continue
            i0, i1 = number(a[1]), number(a[2]) - 1
            k = bisect_left(firsts[a[0]], i0 - reach - longest)
            while k < len(group) and group[k][0] <= i1 + reach:
                _, j1, b = group[k]
                if j1 >= i0 - reach and b != a:  # two matches, not one twice
                    yield a, b
                k += 1

    def holds(self, entry: Occurrences) -> bool:
        if not (self.left.holds(entry) and self.right.holds(entry)):
            return False
        return next(iter(self.pairs(entry)), None) is not None

    def collect(self, entry: Occurrences, out: list[Occurrence]) -> None:
        for a, b in self.pairs(entry):
            out.append(a)
            out.append(b)


Expr = Atom | Not | All | AnyOf | Near


def any_of(children: tuple[Expr, ...]) -> Expr:
    # "a OR b OR @actor" is one atom rather than one test per term.
    events = frozenset().union(*(c.events for c in children if isinstance(c, Atom)))
    rest = tuple(child for child in children if not isinstance(child, Atom))
    if not events:
        return AnyOf(rest)
    if not rest:
        return Atom(events)
    return AnyOf((Atom(events), *rest))


def negated(expr: Expr) -> Expr:
    """NOT expr, with the NOT pushed down to terms and NEARs (De Morgan): then every rule
    `parse_query` accepts has clauses (`_Compiler.requirements` in watcher.rules.matcher),
    and `NOT (NOT a OR NOT b)` reports the spans of a and b."""
    if isinstance(expr, Not):
        return expr.child
    if isinstance(expr, All):
        return any_of(tuple(negated(child) for child in expr.children))
    if isinstance(expr, AnyOf):
        return All(tuple(negated(child) for child in expr.children))
    return Not(expr)


def conjuncts(expr: Expr) -> list[Expr]:
    """The parts of a conjunction, nested ones flattened."""
    if isinstance(expr, All):
        return [c for child in expr.children for c in conjuncts(child)]
    return [expr]
