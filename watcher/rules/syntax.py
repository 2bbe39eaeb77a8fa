"""Rule query syntax: text → tokens → AST. PURE.

Grammar (AND binds tighter than OR; writing terms side by side means AND):

    query    := or_expr END
    or_expr  := and_expr ("OR" and_expr)*
    and_expr := primary (["AND"] primary)*
    primary  := PHRASE | WORD | ACTOR | "(" or_expr ")"

- PHRASE is `"..."`: its words must appear consecutively, in order.
- WORD is any other run of characters up to a space, a parenthesis or a quote. It is
  split into words like text is, so `Nagorno-Karabakh` is the phrase "nagorno karabakh".
- ACTOR is `@name`: any of the actor's alias phrases.
- Only uppercase AND / OR are operators; "and" and "or" are ordinary words.

Syntax kept for later (NOT, NEAR/n, `word*`, `title:`, `=exact`) is rejected now rather
than read as words, so that no rule changes meaning when the language grows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from watcher.errors import RuleError
from watcher.text import words

__all__ = ["Actor", "And", "Node", "Or", "Phrase", "parse_query"]


# --- AST ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phrase:
    """Consecutive words, folded. One word is a phrase of length one."""

    words: tuple[str, ...]
    text: str = field(default="", compare=False)  # as written, without quotes
    column: int = field(default=0, compare=False)  # 1-based, in the query

    def __str__(self) -> str:
        return '"' + " ".join(self.words) + '"'


@dataclass(frozen=True, slots=True)
class Actor:
    """A reference to a named group of alias phrases, resolved when rules are compiled."""

    name: str
    column: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return "@" + self.name


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]

    def __str__(self) -> str:
        return " AND ".join(f"({c})" if isinstance(c, Or) else str(c) for c in self.children)


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]

    def __str__(self) -> str:
        return " OR ".join(str(c) for c in self.children)


Node = Phrase | Actor | And | Or


# --- tokens -------------------------------------------------------------------------------


class _Kind(Enum):
    LPAREN = "("
    RPAREN = ")"
    AND = "AND"
    OR = "OR"
    PHRASE = "phrase"
    WORD = "word"
    ACTOR = "actor"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _Kind
    text: str  # as written (a phrase without its quotes; an actor without "@")
    column: int  # 1-based

    def describe(self) -> str:
        if self.kind is _Kind.PHRASE:
            return f'"{self.text}"'
        if self.kind is _Kind.ACTOR:
            return "@" + self.text
        if self.kind is _Kind.WORD:
            return self.text
        return f'"{self.kind.value}"'


_BARE_END = re.compile(r'[\s()"]')
_RESERVED_FIELD = re.compile(r"(?:title|summary):", re.IGNORECASE)
_TYPOGRAPHIC_QUOTES = "“”„«»‹›"


def _reserved(text: str) -> str | None:
    """Why a bare token cannot be read as words yet, or None."""
    if text == "NOT":
        return '"NOT" is reserved for a later version; quote it ("NOT") to match the word'
    if text == "NEAR" or text.startswith("NEAR/"):
        return f'"{text}" (proximity) is not supported yet'
    if text.endswith("*"):
        return f'"{text}": prefix wildcards (*) are not supported yet'
    if text.startswith("="):
        return f'"{text}": exact matching (=) is not supported yet'
    if _RESERVED_FIELD.match(text):
        return f'"{text}": field scope (title:, summary:) is not supported yet'
    if text[0] in _TYPOGRAPHIC_QUOTES:
        return f'typographic quote {text[0]}: write a phrase in straight quotes "..."'
    return None


def _tokenize(query: str, rule: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        column = i + 1
        if ch.isspace():
            i += 1
        elif ch == "(":
            tokens.append(_Token(_Kind.LPAREN, ch, column))
            i += 1
        elif ch == ")":
            tokens.append(_Token(_Kind.RPAREN, ch, column))
            i += 1
        elif ch == '"':
            close = query.find('"', i + 1)
            if close < 0:
                raise RuleError("unclosed quote", rule=rule, column=column)
            tokens.append(_Token(_Kind.PHRASE, query[i + 1 : close], column))
            i = close + 1
        else:
            end_match = _BARE_END.search(query, i)
            end = end_match.start() if end_match else n
            text = query[i:end]
            i = end
            if text in ("AND", "OR"):
                tokens.append(_Token(_Kind(text), text, column))
            elif text.startswith("@"):
                if len(text) == 1:
                    raise RuleError('expected an actor name after "@"', rule=rule, column=column)
                tokens.append(_Token(_Kind.ACTOR, text[1:], column))
            else:
                problem = _reserved(text)
                if problem is not None:
                    raise RuleError(problem, rule=rule, column=column)
                tokens.append(_Token(_Kind.WORD, text, column))
    return tokens


# --- parser -------------------------------------------------------------------------------

_TERM_KINDS = frozenset({_Kind.PHRASE, _Kind.WORD, _Kind.ACTOR, _Kind.LPAREN})


class _Parser:
    def __init__(self, query: str, rule: str) -> None:
        self.query = query
        self.rule = rule
        self.tokens = _tokenize(query, rule)
        self.pos = 0
        self.depth = 0  # open parentheses

    def error(self, message: str, column: int) -> RuleError:
        return RuleError(message, rule=self.rule, column=column)

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def previous(self) -> _Token | None:
        return self.tokens[self.pos - 1] if self.pos > 0 else None

    def parse(self) -> Node:
        if not self.tokens:
            raise self.error("empty query: nothing to match", 1)
        node = self.or_expr()
        token = self.peek()
        if token is not None:  # only a ")" can stop or_expr early
            raise self.error('unbalanced ")"', token.column)
        return node

    def or_expr(self) -> Node:
        children = [self.and_expr()]
        while (token := self.peek()) is not None and token.kind is _Kind.OR:
            self.pos += 1
            children.append(self.and_expr())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_expr(self) -> Node:
        children = [self.primary()]
        while (token := self.peek()) is not None:
            if token.kind is _Kind.AND:
                self.pos += 1
            elif token.kind not in _TERM_KINDS:
                break
            children.append(self.primary())
        return children[0] if len(children) == 1 else And(tuple(children))

    def primary(self) -> Node:
        token = self.peek()
        if token is None or token.kind not in _TERM_KINDS:
            raise self.missing_term(token)
        self.pos += 1
        if token.kind is _Kind.LPAREN:
            self.depth += 1
            node = self.or_expr()
            closing = self.peek()
            if closing is None or closing.kind is not _Kind.RPAREN:
                raise self.error('unclosed "("', token.column)
            self.pos += 1
            self.depth -= 1
            return node
        if token.kind is _Kind.ACTOR:
            return Actor(token.text, token.column)
        folded = tuple(w.folded for w in words(token.text))
        if not folded:
            what = "empty phrase" if token.kind is _Kind.PHRASE else "no words"
            raise self.error(f"{what}: nothing to match in {token.describe()}", token.column)
        return Phrase(folded, token.text, token.column)

    def missing_term(self, found: _Token | None) -> RuleError:
        before = self.previous()
        if found is None:
            assert before is not None  # parse() has rejected an empty query
            what = "the end of the query"
            return self.error(
                f"expected a term after {before.describe()}, found {what}", len(self.query) + 1
            )
        if found.kind is _Kind.RPAREN:
            if self.depth == 0:
                return self.error('unbalanced ")"', found.column)
            if before is not None and before.kind is _Kind.LPAREN:
                return self.error('empty parentheses "()"', before.column)
        elif before is None or before.kind is _Kind.LPAREN:
            # An operator where the first term of the query or of a group belongs.
            return self.error(f"expected a term before {found.describe()}", found.column)
        assert before is not None
        return self.error(
            f"expected a term after {before.describe()}, found {found.describe()}", found.column
        )


def parse_query(query: str, *, rule: str) -> Node:
    """Parse one rule's query into its AST. Raises RuleError (with a 1-based column)."""
    return _Parser(query, rule).parse()
