"""Russian inflection for rule words, from pymorphy3's dictionary (OpenCorpora). PURE.

A Russian word in a rule names every form of the word it is a form of: `контингент` also
matches `контингента`, `контингентом`, ...; `Путин` matches `Путина`, `Путиным`, but not
`путинизм` (another word). Which word a rule word is a form of is decided once, when the
rules are compiled; matching then looks the forms up like any other word.

Choosing among readings (a form can belong to several words):
- only dictionary readings count; a word the dictionary does not know (a rare surname, a
  transliterated place name: `Пашинян`, `Ханкенди`) stays exact — write `Пашинян*` to
  catch its endings;
- if the word is itself the dictionary form of some reading (`Путин`, `Алиев`), rule
  authors write dictionary forms, so those readings are taken, plus any other reading the
  analyser rates more likely than all of them (`путина` is most often Путин's genitive);
- otherwise every reading rated at least a quarter as likely as the best is taken (`стали`
  → стать; сталь is rated 0.01 against 0.97);
- a reading contributes the forms of its own part of speech only: a verb its finite forms
  and infinitive but not its participles and gerunds, an adjective its full and short
  forms.
Every form is folded (`ё` → `е`, ...), so it compares like any other word.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache, lru_cache
from typing import Any

from watcher.text import fold

__all__ = ["inflections", "is_russian"]

_RUSSIAN_WORD = re.compile("[а-я]+")  # folded: no capitals, ё is е
_SECONDARY = 0.25  # a reading less likely than this share of the best is dropped

# Parts of speech whose forms belong together.
_POS_GROUP = {"INFN": "VERB", "ADJS": "ADJF"}


@cache
def _analyzer() -> Any:
    # Imported here: loading the dictionary takes ~0.2-0.5 s, paid once, only by a
    # process that compiles rules with Russian words in them.
    import pymorphy3

    return pymorphy3.MorphAnalyzer(lang="ru")


def is_russian(word: str) -> bool:
    """Whether a folded word is written in Russian letters only."""
    return _RUSSIAN_WORD.fullmatch(word) is not None


def _group(parse: Any) -> str:
    pos = str(parse.tag.POS)
    return _POS_GROUP.get(pos, pos)


def _chosen(word: str, parses: Iterable[Any]) -> list[Any]:
    """The best parse of each reading of `word` to expand, as the module doc describes."""
    best: dict[tuple[str, str], Any] = {}
    for parse in parses:
        if not parse.is_known:
            continue
        reading = (fold(parse.normal_form), _group(parse))
        if reading not in best or parse.score > best[reading].score:
            best[reading] = parse
    if not best:
        return []
    lemma = [parse for (normal, _), parse in best.items() if normal == word]
    if lemma:
        bar = max(parse.score for parse in lemma)
        return lemma + [p for p in best.values() if p.score > bar and p not in lemma]
    bar = max(parse.score for parse in best.values()) * _SECONDARY
    return [parse for parse in best.values() if parse.score >= bar]


@lru_cache(maxsize=1 << 14)
def inflections(word: str) -> frozenset[str]:
    """Every folded form of the Russian word(s) that folded `word` is a form of, including
    `word` itself; just `{word}` if it is not Russian or not in the dictionary."""
    if not is_russian(word):
        return frozenset((word,))
    forms = {word}
    for parse in _chosen(word, _analyzer().parse(word)):
        group = _group(parse)
        forms.update(fold(form.word) for form in parse.lexeme if _group(form) == group)
    return frozenset(forms)
