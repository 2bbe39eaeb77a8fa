"""How well does watcher.stories tell "same story" from "different", and how fast is its index?

Two labelled sets of entry pairs:
- georgian: ../shared/data/articles/georgian-headline-pairs/labeled_pairs.csv, 60 pairs of
  real Georgian headlines from five outlets with their real publication times, labelled
  same/different/unsure by a person ("unsure" pairs are left out). No licence: read here at
  run time, never copied; skipped with a message where the folder is absent. Headlines only.
- own: bench/data/story-pairs-en-ru.tsv, 240 pairs of English and Russian feed entries (title
  and a one- or two-sentence summary) written for this benchmark (see its header).

For each set, every entry of the set is put in one StoryIndex (the set plays the window whose
entries weigh the terms), and each pair gets the score the index decides by: the similarity
of the two signatures less the time penalty. Printed:
- precision, recall and F1 of "score ≥ threshold" at the default settings, and a sweep of
  thresholds, with and without the time penalty;
- the same figures with the threshold (and the time penalty) chosen on held-out data: 5-fold
  cross-validation repeated 10 times, and each set's best threshold applied to the other set;
- the index's own decisions: the set's entries added in order of publication to an empty
  index (as the daemon would), a pair counted "same" when both land in one story. Pairs of
  one feed never join there (a story holds one entry per feed), whatever their label.
Then throughput and memory: 10,000 generated entries (50 feeds, 48 hours, a third of them
retellings of an earlier entry) added to one index, and the RSS that index holds.
Ends with one line:
RESULT georgian_precision=… georgian_recall=… georgian_cross_precision=… … add_per_s=… rss_mb=…
for each set: the pairwise figures at the default settings (`<set>_precision`, `_recall`),
the same over the pairs of two different feeds (`<set>_cross_…`: a story never joins two
entries of one feed, so only those pairs are decided by similarity), and the index's own
decisions over every pair (`<set>_index_…`).

    .venv/bin/python bench/stories.py [--entries 10000] [--seed 6]
"""

from __future__ import annotations

import argparse
import csv
import gc
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from watcher.stories import (
    STEM_LENGTH,
    SUMMARY_WORDS,
    Signature,
    StoryIndex,
    StorySettings,
    signature,
)
from watcher.text import html_to_text, words

ROOT = Path(__file__).resolve().parent.parent
GEORGIAN = ROOT.parent / "shared" / "data" / "articles" / "georgian-headline-pairs"
OWN = ROOT / "bench" / "data" / "story-pairs-en-ru.tsv"
THRESHOLDS = [round(0.05 * step, 2) for step in range(1, 13)]
TIME_PENALTIES = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]


@dataclass(frozen=True, slots=True)
class Item:
    key: str
    feed: str
    published: datetime
    title: str
    summary: str


@dataclass(frozen=True, slots=True)
class Pair:
    same: bool
    a: Item
    b: Item
    kind: str


# --- the sets ------------------------------------------------------------------------------


def load_georgian(folder: Path) -> list[Pair] | None:
    path = folder / "labeled_pairs.csv"
    if not path.is_file():
        return None
    pairs = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["label"] not in ("same", "different"):
                continue
            a, b = (
                Item(
                    # One article's URL is written with and without a trailing space:
                    # the daemon's entry identity takes them for one entry, as here.
                    key=row[f"url_{side}"].strip(),
                    feed=row[f"source_{side}"],
                    published=datetime.fromisoformat(row[f"published_{side}"]),
                    title=row[f"headline_{side}"],
                    summary="",
                )
                for side in "ab"
            )
            kind = "same-outlet" if a.feed == b.feed else "cross-outlet"
            pairs.append(Pair(row["label"] == "same", a, b, kind))
    return pairs


def load_own(path: Path) -> list[Pair]:
    with path.open(encoding="utf-8", newline="") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    pairs = []
    for row in csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE):
        a, b = (
            Item(
                key=row[f"entry_{side}"],
                feed=row[f"feed_{side}"],
                published=datetime.fromisoformat(row[f"published_{side}"]),
                title=row[f"title_{side}"],
                summary=row[f"summary_{side}"],
            )
            for side in "ab"
        )
        pairs.append(Pair(row["label"] == "same", a, b, f"{row['lang']}/{row['kind']}"))
    return pairs


def items_of(pairs: Iterable[Pair]) -> list[Item]:
    unique = {item.key: item for pair in pairs for item in (pair.a, pair.b)}
    return sorted(unique.values(), key=lambda item: (item.published, item.key))


# --- pairwise scores ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scored:
    similarity: float
    apart: timedelta
    same: bool


def score_pairs(pairs: Sequence[Pair]) -> list[Scored]:
    """Each pair's similarity as an index holding every entry of the set weighs it."""
    index = StoryIndex()
    signatures: dict[str, Signature] = {}
    for number, item in enumerate(items_of(pairs)):
        signatures[item.key] = signature(item.title, item.summary)
        index.restore(number, item.feed, item.published, signatures[item.key], number)
    return [
        Scored(
            index.similarity(signatures[pair.a.key], signatures[pair.b.key]),
            pair.b.published - pair.a.published,
            pair.same,
        )
        for pair in pairs
    ]


@dataclass(frozen=True, slots=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def text(self) -> str:
        return (
            f"P {self.precision:.3f}  R {self.recall:.3f}  F1 {self.f1:.3f}  "
            f"(tp {self.tp}, fp {self.fp}, fn {self.fn})"
        )


def count(decisions: Iterable[tuple[bool, bool]]) -> Counts:
    tp = fp = fn = 0
    for said, same in decisions:
        tp += said and same
        fp += said and not same
        fn += (not said) and same
    return Counts(tp, fp, fn)


def judge(scored: Sequence[Scored], settings: StorySettings) -> Counts:
    return count(
        (settings.score(s.similarity, s.apart) >= settings.threshold, s.same) for s in scored
    )


def best_settings(scored: Sequence[Scored], penalties: Sequence[float]) -> StorySettings:
    """The threshold (and time penalty) with the best F1 on these pairs; ties: the lower
    penalty, then the higher threshold."""
    positives = sum(s.same for s in scored)
    best: tuple[float, StorySettings] | None = None
    for penalty in penalties:
        base = StorySettings(time_penalty=penalty)
        ranked = sorted(((base.score(s.similarity, s.apart), s.same) for s in scored), reverse=True)
        tp = fp = 0
        for n, (score, same) in enumerate(ranked):
            tp += same
            fp += not same
            if n + 1 < len(ranked) and ranked[n + 1][0] == score:
                continue  # a threshold takes every pair with this score
            f1 = 2 * tp / (tp + fp + positives) if positives else 0.0
            if best is None or f1 > best[0]:
                best = (f1, replace(base, threshold=score))
    assert best is not None
    return best[1]


def cross_validated(
    scored: Sequence[Scored], penalties: Sequence[float], folds: int = 5, repeats: int = 10
) -> Counts:
    """Counts over held-out folds, each judged with the settings best on the other folds."""
    total = Counts()
    for repeat in range(repeats):
        order = list(range(len(scored)))
        random.Random(repeat).shuffle(order)
        for fold in range(folds):
            held = [scored[i] for n, i in enumerate(order) if n % folds == fold]
            rest = [scored[i] for n, i in enumerate(order) if n % folds != fold]
            total += judge(held, best_settings(rest, penalties))
    return total


# --- the index's own decisions ------------------------------------------------------------


def index_said(pairs: Sequence[Pair], settings: StorySettings) -> list[bool]:
    """For each pair, whether the index put its two entries in one story."""
    index = StoryIndex(settings)
    number = {}
    for n, item in enumerate(items_of(pairs)):
        number[item.key] = n
        index.add(n, item.feed, item.published, signature(item.title, item.summary))
    return [index.story_of(number[p.a.key]) == index.story_of(number[p.b.key]) for p in pairs]


def index_decisions(pairs: Sequence[Pair], settings: StorySettings) -> Counts:
    return count(zip(index_said(pairs, settings), (p.same for p in pairs), strict=True))


# --- reports -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetFigures:
    pairwise: Counts  # at the default settings, every pair
    cross: Counts  # the same, pairs of two different feeds (the only ones a story joins)
    index: Counts  # the index's own decisions, every pair


def report_set(name: str, pairs: list[Pair], defaults: StorySettings) -> SetFigures:
    scored = score_pairs(pairs)
    same = sum(p.same for p in pairs)
    print(f"\n== {name}: {len(pairs)} pairs ({same} same), {len(items_of(pairs))} entries")
    at_default = judge(scored, defaults)
    print(
        f"default settings (threshold {defaults.threshold}, time penalty "
        f"{defaults.time_penalty}): {at_default.text()}"
    )
    untimed = replace(defaults, time_penalty=0.0)
    print(f"  same threshold, no time penalty:            {judge(scored, untimed).text()}")
    kinds = sorted({p.kind for p in pairs})
    for kind in kinds:
        subset = [s for s, p in zip(scored, pairs, strict=True) if p.kind == kind]
        print(f"  {kind:24} ({len(subset):3} pairs): {judge(subset, defaults).text()}")
    print("threshold sweep:  pairwise, time penalty |  pairwise, none      |  index decisions")
    print("  threshold    P      R      F1   |    P      R      F1   |    P      R      F1")
    for threshold in THRESHOLDS:
        rows = (
            judge(scored, replace(defaults, threshold=threshold)),
            judge(scored, replace(untimed, threshold=threshold)),
            index_decisions(pairs, replace(defaults, threshold=threshold)),
        )
        print(
            f"  {threshold:9.2f}"
            + "   |".join(f" {c.precision:6.3f} {c.recall:6.3f} {c.f1:6.3f}" for c in rows)
        )
    in_sample = best_settings(scored, TIME_PENALTIES)
    print(
        f"best on this set (in-sample): threshold {in_sample.threshold:.3f}, time penalty "
        f"{in_sample.time_penalty}: {judge(scored, in_sample).text()}"
    )
    print(
        f"5-fold CV x10, threshold and penalty tuned on the other folds: "
        f"{cross_validated(scored, TIME_PENALTIES).text()}"
    )
    print(
        f"5-fold CV x10, threshold tuned, no time penalty:             "
        f"{cross_validated(scored, [0.0]).text()}"
    )
    said = index_said(pairs, defaults)
    index = count(zip(said, (p.same for p in pairs), strict=True))
    print(f"the index's own decisions (entries added in time order):     {index.text()}")
    for kind in kinds:
        chosen = [(s, p.same) for s, p in zip(said, pairs, strict=True) if p.kind == kind]
        print(f"  {kind:24} ({len(chosen):3} pairs): {count(chosen).text()}")
    cross = judge([s for s, p in zip(scored, pairs, strict=True) if p.a.feed != p.b.feed], defaults)
    return SetFigures(at_default, cross, index)


def transfer(sets: dict[str, list[Pair]]) -> None:
    if len(sets) < 2:
        return
    print("\n== threshold tuned on one set, applied to the other (time penalty as default)")
    scored = {name: score_pairs(pairs) for name, pairs in sets.items()}
    penalty = StorySettings().time_penalty
    for source, target in (("georgian", "own"), ("own", "georgian")):
        tuned = best_settings(scored[source], [penalty])
        print(
            f"  {source} → {target}: threshold {tuned.threshold:.3f}: "
            f"{judge(scored[target], tuned).text()}"
        )


# --- the measure against shingle overlap --------------------------------------------------


def shingles(item: Item, size: int, *, stem: bool) -> frozenset[tuple[str, ...]]:
    """The `size`-word shingles of an item's title and of its summary's lead, of folded
    words (cut to the index's stem length if `stem`)."""
    found: set[tuple[str, ...]] = set()
    for text, limit in ((item.title, None), (html_to_text(item.summary), SUMMARY_WORDS)):
        run = [w.folded[:STEM_LENGTH] if stem else w.folded for w in words(text)][:limit]
        found.update(tuple(run[n : n + size]) for n in range(len(run) - size + 1))
    return frozenset(found)


def jaccard_scored(pairs: Sequence[Pair], size: int, *, stem: bool) -> list[Scored]:
    scored = []
    for pair in pairs:
        a, b = shingles(pair.a, size, stem=stem), shingles(pair.b, size, stem=stem)
        union = len(a | b)
        similarity = len(a & b) / union if union else 0.0
        scored.append(Scored(similarity, pair.b.published - pair.a.published, pair.same))
    return scored


def compare_measures(sets: dict[str, list[Pair]]) -> None:
    """The index's measure against the Jaccard similarity of shingles, which MinHash (and
    MinHash LSH) estimate: MinHash can only approximate these figures, never beat them.
    Each measure gets its own threshold and time penalty, tuned on the set itself
    (in-sample, the most favourable) and on held-out folds."""
    measures: dict[str, Callable[[Sequence[Pair]], list[Scored]]] = {
        "weighted cosine of stems (the index)": score_pairs,
        "Jaccard of stems": partial(jaccard_scored, size=1, stem=True),
        "Jaccard of words": partial(jaccard_scored, size=1, stem=False),
        "Jaccard of word 2-shingles": partial(jaccard_scored, size=2, stem=False),
        "Jaccard of word 3-shingles": partial(jaccard_scored, size=3, stem=False),
    }
    print("\n== the index's measure against shingle overlap (what MinHash LSH estimates)")
    print("   F1 with threshold and time penalty tuned in-sample | by 5-fold CV x10")
    print(f"  {'measure':38}" + "".join(f"{name:>22}" for name in sets))
    for label, measure in measures.items():
        cells = []
        for pairs in sets.values():
            scored = measure(pairs)
            in_sample = judge(scored, best_settings(scored, TIME_PENALTIES))
            held_out = cross_validated(scored, TIME_PENALTIES)
            cells.append(f"{in_sample.f1:.3f} | {held_out.f1:.3f}")
        print(f"  {label:38}" + "".join(f"{cell:>22}" for cell in cells))


# --- throughput ----------------------------------------------------------------------------


def rss_mb() -> float:
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def generated_entries(count_: int, seed: int) -> list[tuple[str, datetime, str, str]]:
    """(feed, published, title, summary): words from a Zipf-like vocabulary of 30,000, so a
    few words are in most entries and most in few, as in news text; a third of the entries
    retell an earlier one (most of its words, shuffled, some replaced) from another feed."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocabulary = ["".join(rng.choices(letters, k=rng.randint(3, 10))) for _ in range(30_000)]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    start = datetime(2026, 11, 1, tzinfo=UTC)
    entries: list[tuple[str, datetime, str, str]] = []
    for n in range(count_):
        published = start + timedelta(seconds=n * 48 * 3600 / count_)
        feed = f"feed{rng.randrange(50)}"
        if entries and rng.random() < 1 / 3:
            _, _, title, summary = entries[rng.randrange(max(0, n - 200), n)]
            retold = (title + " " + summary).split()
            rng.shuffle(retold)
            kept = retold[: int(len(retold) * 0.7)]
            kept += rng.choices(vocabulary, weights, k=len(retold) - len(kept))
            entries.append((feed, published, " ".join(kept[:10]), " ".join(kept[10:])))
        else:
            title = " ".join(rng.choices(vocabulary, weights, k=rng.randint(6, 12)))
            summary = " ".join(rng.choices(vocabulary, weights, k=rng.randint(15, 40)))
            entries.append((feed, published, title, summary))
    return entries


def throughput(count_: int, seed: int) -> tuple[float, float]:
    entries = generated_entries(count_, seed)
    gc.collect()
    before = rss_mb()
    index = StoryIndex()
    joined = 0
    signed = added = 0.0
    clock = time.process_time
    # As the daemon does: each entry's signature made just before it is added.
    for n, (feed, published, title, summary) in enumerate(entries):
        started = clock()
        sig = signature(title, summary)
        between = clock()
        joined += index.add(n, feed, published, sig) is not None
        done = clock()
        signed += between - started
        added += done - between
    del sig
    gc.collect()
    held = rss_mb() - before
    print(f"\n== index throughput: {count_} generated entries, 50 feeds, over 48 hours")
    print(f"signature(): {count_ / signed:,.0f} entries/s")
    print(
        f"add() (find the story, then record): {count_ / added:,.0f} entries/s "
        f"({added / count_ * 1e6:.0f} µs each); {joined} joined a story, "
        f"{len(index.stories())} stories"
    )
    print(f"RSS held by the index: {held:.1f} MB (process RSS {rss_mb():.0f} MB)")
    return count_ / added, held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    started = time.monotonic()
    defaults = StorySettings()

    sets: dict[str, list[Pair]] = {}
    georgian = load_georgian(GEORGIAN)
    if georgian is None:
        print(f"georgian: {GEORGIAN} is absent; the Georgian set is skipped")
    else:
        sets["georgian"] = georgian
    sets["own"] = load_own(OWN)
    results = {name: report_set(name, pairs, defaults) for name, pairs in sets.items()}
    transfer(sets)
    compare_measures(sets)
    add_per_s, held = throughput(args.entries, args.seed)
    print(f"\n(took {time.monotonic() - started:.1f} s)")

    figures = []
    for name in ("georgian", "own"):
        for label, kind in (("", "pairwise"), ("cross_", "cross"), ("index_", "index")):
            counts = getattr(results[name], kind) if name in results else None
            for which in ("precision", "recall"):
                value = "skipped" if counts is None else f"{getattr(counts, which):.3f}"
                figures.append(f"{name}_{label}{which}={value}")
    print(f"RESULT {' '.join(figures)} add_per_s={add_per_s:.0f} rss_mb={held:.1f}")


if __name__ == "__main__":
    main()
