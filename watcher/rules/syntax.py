"""Rule query syntax: text → tokens → AST. PURE.

Grammar (binding tightest first: NOT, NEAR, AND, OR; writing terms side by side is AND):

    query     := or_expr END
    or_expr   := and_expr ("OR" and_expr)*
    and_expr  := near_expr (["AND"] near_expr)*
    near_expr := unary [NEAR unary]           NEAR, NEAR/n; not chained
    unary     := "NOT" unary | primary
    primary   := [SCOPE] (TERM | ACTOR | "(" or_expr ")")
    SCOPE     := "title:" | "summary:"
    TERM      := WORD | ["="] PHRASE

- PHRASE is `"..."`: its words must appear consecutively, in order. Each of its
  space-separated chunks may carry `=` in front (this form only) and `*` at the end (any
  word starting so); `="..."` makes every word exact.
- WORD is any other run of characters up to a space, a parenthesis or a quote, read as a
  one-chunk phrase: `Nagorno-Karabakh` is the phrase "nagorno karabakh", `=Путин` one exact
  word, `sülhməramlı*` a prefix.
- ACTOR is `@name`: any of the actor's alias phrases.
- Operators are uppercase only: "and", "or", "not", "near" are ordinary words.
- NEAR's operands are terms, actors, or parenthesised groups of them joined by OR.

Words are stored folded (`watcher.text`), an exact word as "=word" and a prefix as
"word*": `str()` of a tree is a query that parses back to the same tree.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum

from watcher.errors import RuleError
from watcher.text import words

__all__ = [
    "DEFAULT_NEAR",
    "FIELDS",
    "MAX_NEAR",
    "MIN_PREFIX",
    "Actor",
    "And",
    "Near",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "Scope",
    "parse_query",
    "phrase_words",
]

FIELDS = ("title", "summary")  # what `title:` and `summary:` scope to, in span order
DEFAULT_NEAR = 5  # plain NEAR is NEAR/5
MAX_NEAR = 100
MIN_PREFIX = 3  # letters before a "*": "ab*" would match too much


# --- AST ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phrase:
    """Consecutive words, folded; "=word" is one exact form, "word*" a prefix. One word is
    a phrase of length one."""

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
        return " AND ".join(_grouped(c, (Or, And)) for c in self.children)


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]

    def __str__(self) -> str:
        return " OR ".join(_grouped(c, (Or,)) for c in self.children)


@dataclass(frozen=True, slots=True)
class Not:
    child: Node
    column: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return "NOT " + _grouped(self.child, (And, Or, Near))


@dataclass(frozen=True, slots=True)
class Near:
    """Some match of `left` and some match of `right` in one field, with at most
    `distance` words between them, in either order."""

    left: Node
    right: Node
    distance: int = DEFAULT_NEAR
    column: int = field(default=0, compare=False)  # of the NEAR operator

    def __str__(self) -> str:
        near = f"NEAR/{self.distance}"
        return f"{_grouped(self.left, (Or,))} {near} {_grouped(self.right, (Or,))}"


@dataclass(frozen=True, slots=True)
class Scope:
    """`child` looked for in one field only."""

    field: str  # one of FIELDS
    child: Node
    column: int = dataclasses.field(default=0, compare=False)

    def __str__(self) -> str:
        return f"{self.field}:" + _grouped(self.child, (And, Or, Not, Near, Scope))


Node = Phrase | Actor | And | Or | Not | Near | Scope


def _grouped(node: Node, kinds: tuple[type, ...]) -> str:
    return f"({node})" if isinstance(node, kinds) else str(node)


# --- tokens -------------------------------------------------------------------------------


class _Kind(Enum):
    LPAREN = "("
    RPAREN = ")"
    AND = "AND"
    OR = "OR"
    NOT = "NOT"
    NEAR = "NEAR"
    SCOPE = "scope"
    PHRASE = "phrase"
    WORD = "word"
    ACTOR = "actor"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _Kind
    text: str  # as written (a phrase without its quotes; an actor without "@")
    column: int  # 1-based
    distance: int = 0  # NEAR
    exact: bool = False  # PHRASE written ="..."

    def describe(self) -> str:
        if self.kind is _Kind.PHRASE:
            return ('="' if self.exact else '"') + self.text + '"'
        if self.kind is _Kind.ACTOR:
            return "@" + self.text
        if self.kind is _Kind.WORD:
            return self.text
        if self.kind is _Kind.SCOPE:
            return f'"{self.text}:"'
        if self.kind is _Kind.NEAR:
            return f'"{self.text}"'
        return f'"{self.kind.value}"'


_BARE_END = re.compile(r'[\s()"]')
_SCOPE_PREFIX = re.compile(r"(title|summary):", re.IGNORECASE)
_LIKE_A_SCOPE = re.compile(r"([A-Za-z]{3,}):")  # "summry:" is a slip, not a phrase
_NEAR = re.compile(r"NEAR(?:/(\d*))?")
_TYPOGRAPHIC_QUOTES = "“”„«»‹›"


class _Tokenizer:
    def __init__(self, query: str, rule: str) -> None:
        self.query = query
        self.rule = rule
        self.tokens: list[_Token] = []
        self.exact_phrase_at: int | None = None  # column of a "=" right before a quote

    def error(self, message: str, column: int) -> RuleError:
        return RuleError(message, rule=self.rule, column=column)

    def run(self) -> list[_Token]:
        query, i, n = self.query, 0, len(self.query)
        while i < n:
            ch = query[i]
            if ch.isspace():
                i += 1
            elif ch in "()":
                self.tokens.append(_Token(_Kind(ch), ch, i + 1))
                i += 1
            elif ch == '"':
                close = query.find('"', i + 1)
                if close < 0:
                    raise self.error("unclosed quote", i + 1)
                column = i + 1 if self.exact_phrase_at is None else self.exact_phrase_at
                exact = self.exact_phrase_at is not None
                self.tokens.append(_Token(_Kind.PHRASE, query[i + 1 : close], column, exact=exact))
                self.exact_phrase_at = None
                i = close + 1
            else:
                end_match = _BARE_END.search(query, i)
                end = end_match.start() if end_match else n
                self.bare(query[i:end], i + 1, query[end : end + 1])
                i = end
        return self.tokens

    def bare(self, text: str, column: int, after: str) -> None:
        """One run of characters up to a space, a parenthesis or a quote (`after`)."""
        if text in ("AND", "OR", "NOT"):
            self.tokens.append(_Token(_Kind(text), text, column))
            return
        near = _NEAR.fullmatch(text)
        if near is not None:
            self.tokens.append(
                _Token(_Kind.NEAR, text, column, distance=self.distance(near, column))
            )
            return
        if text.startswith("NEAR/"):
            raise self.error(f'expected a number of words after "NEAR/", found "{text}"', column)
        scope = _SCOPE_PREFIX.match(text)
        if scope is not None:
            self.tokens.append(_Token(_Kind.SCOPE, scope.group(1).lower(), column))
            if len(text) > scope.end():
                self.bare(text[scope.end() :], column + scope.end(), after)
            return
        misspelt = _LIKE_A_SCOPE.match(text)
        if misspelt is not None:
            close = difflib.get_close_matches(misspelt.group(1).lower(), FIELDS, n=1)
            if close:
                raise self.error(
                    f'unknown field "{misspelt.group(0)}"; did you mean "{close[0]}:"?', column
                )
        if text.startswith("@"):
            if len(text) == 1:
                raise self.error('expected an actor name after "@"', column)
            self.tokens.append(_Token(_Kind.ACTOR, text[1:], column))
            return
        if text == "=":
            if after != '"':
                raise self.error('expected a word or a "phrase" right after "="', column)
            self.exact_phrase_at = column
            return
        if text[0] in _TYPOGRAPHIC_QUOTES:
            raise self.error(
                f'typographic quote {text[0]}: write a phrase in straight quotes "..."', column
            )
        self.tokens.append(_Token(_Kind.WORD, text, column))

    def distance(self, near: re.Match[str], column: int) -> int:
        digits = near.group(1)
        if digits is None:
            return DEFAULT_NEAR
        if not digits:
            raise self.error('expected a number of words after "NEAR/"', column)
        value = int(digits)
        if value > MAX_NEAR:
            raise self.error(
                f"NEAR/{value}: at most {MAX_NEAR} words apart; use AND for anywhere in the entry",
                column,
            )
        return value


def _term_words(text: str, column: int, exact_all: bool, rule: str) -> tuple[str, ...]:
    """The folded words of a term: a bare word, or a phrase's text starting at `column`."""
    found: list[str] = []
    for chunk_match in re.finditer(r"\S+", text):
        chunk = chunk_match.group()
        at = column + chunk_match.start()
        exact = exact_all
        if chunk.startswith("="):
            exact = True
            chunk = chunk[1:]
            at += 1
            if chunk.startswith("="):
                raise RuleError('one "=" is enough', rule=rule, column=at)
        prefix = chunk.endswith("*")
        if prefix:
            chunk = chunk[:-1]
        star = chunk.find("*")
        if star >= 0:
            raise RuleError('a wildcard "*" goes at the end of a word', rule=rule, column=at + star)
        folded = [word.folded for word in words(chunk)]
        if prefix and (not folded or len(folded[-1]) < MIN_PREFIX):
            raise RuleError(
                f'a wildcard needs at least {MIN_PREFIX} letters before "*"', rule=rule, column=at
            )
        if prefix:
            folded[-1] += "*"
        found.extend("=" + word if exact else word for word in folded)
    return tuple(found)


# --- parser -------------------------------------------------------------------------------

_TERM_START = frozenset(
    {_Kind.PHRASE, _Kind.WORD, _Kind.ACTOR, _Kind.LPAREN, _Kind.NOT, _Kind.SCOPE}
)
_PRIMARY_START = frozenset({_Kind.PHRASE, _Kind.WORD, _Kind.ACTOR, _Kind.LPAREN})
# Parentheses, NOTs and scopes inside one another, at most: the parser and the compiler
# recurse once per level, and a query nested a few hundred deep would exhaust the stack.
MAX_NESTING = 50


class _Parser:
    def __init__(self, query: str, rule: str) -> None:
        self.query = query
        self.rule = rule
        self.tokens = _Tokenizer(query, rule).run()
        self.pos = 0
        self.depth = 0  # open parentheses
        self.nesting = 0  # open parentheses, NOTs and scopes
        self.scope: str | None = None  # the field scope we are inside, if any

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
        children = [self.near_expr()]
        while (token := self.peek()) is not None:
            if token.kind is _Kind.AND:
                self.pos += 1
            elif token.kind not in _TERM_START:
                break
            children.append(self.near_expr())
        return children[0] if len(children) == 1 else And(tuple(children))

    def near_expr(self) -> Node:
        left_token = self.peek()
        left = self.unary()
        near = self.peek()
        if near is None or near.kind is not _Kind.NEAR:
            return left
        self.pos += 1
        right_token = self.peek()
        right = self.unary()
        assert left_token is not None and right_token is not None  # unary() consumed them
        self.check_near_operand(left, left_token, near)
        self.check_near_operand(right, right_token, near)
        again = self.peek()
        if again is not None and again.kind is _Kind.NEAR:
            raise self.error(
                "NEAR joins two operands; to chain, write (a NEAR b) AND (b NEAR c)",
                again.column,
            )
        return Near(left, right, near.distance, near.column)

    def check_near_operand(self, node: Node, first: _Token, near: _Token) -> None:
        problem = _near_operand_problem(node)
        if problem is None:
            return
        hint = ""
        if isinstance(node, Not):
            hint = f"; to exclude the pair, write NOT (a {near.text} b)"
        raise self.error(
            f"{near.text} joins terms, phrases, actors or groups of them joined by OR; "
            f"found {problem}{hint}",
            first.column,
        )

    @contextmanager
    def level(self, token: _Token) -> Iterator[None]:
        """One more level of nesting, opened by `token`, while the block runs."""
        if self.nesting >= MAX_NESTING:
            raise self.error(
                f"nested more than {MAX_NESTING} deep (parentheses, NOT and scopes)",
                token.column,
            )
        self.nesting += 1
        try:
            yield
        finally:
            self.nesting -= 1

    def unary(self) -> Node:
        token = self.peek()
        if token is not None and token.kind is _Kind.NOT:
            self.pos += 1
            with self.level(token):
                return Not(self.unary(), token.column)
        return self.primary()

    def primary(self) -> Node:
        token = self.peek()
        if token is not None and token.kind is _Kind.SCOPE:
            self.pos += 1
            if self.scope is not None and self.scope != token.text:
                raise self.error(
                    f"{token.text}: inside {self.scope}: can never match", token.column
                )
            outer, self.scope = self.scope, token.text
            try:
                with self.level(token):
                    child = self.primary()
            finally:
                self.scope = outer
            return Scope(token.text, child, token.column)
        if token is None or token.kind not in _PRIMARY_START:
            raise self.missing_term(token)
        self.pos += 1
        if token.kind is _Kind.LPAREN:
            self.depth += 1
            with self.level(token):
                node = self.or_expr()
            closing = self.peek()
            if closing is None or closing.kind is not _Kind.RPAREN:
                raise self.error('unclosed "("', token.column)
            self.pos += 1
            self.depth -= 1
            return node
        if token.kind is _Kind.ACTOR:
            return Actor(token.text, token.column)
        return self.term(token)

    def term(self, token: _Token) -> Phrase:
        text = token.text
        if token.kind is _Kind.PHRASE:
            # columns inside the quotes: after '"' (and after '=' for ="...")
            start = token.column + (2 if token.exact else 1)
            folded = _term_words(text, start, token.exact, self.rule)
            if not folded:
                raise self.error(
                    f"empty phrase: nothing to match in {token.describe()}", token.column
                )
        else:
            folded = _term_words(text, token.column, False, self.rule)
            if not folded:
                raise self.error(f"no words: nothing to match in {text}", token.column)
        return Phrase(folded, text, token.column)

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


def _near_operand_problem(node: Node) -> str | None:
    """Why `node` cannot be an operand of NEAR, or None if it can."""
    if isinstance(node, Phrase | Actor):
        return None
    if isinstance(node, Scope):
        return _near_operand_problem(node.child)
    if isinstance(node, Or):
        for child in node.children:
            problem = _near_operand_problem(child)
            if problem is not None:
                return problem
        return None
    if isinstance(node, Not):
        return "NOT"
    if isinstance(node, And):
        return "a group with AND"
    return "a group with NEAR"


def _true_without_terms(node: Node) -> Not | None:
    """The NOT that makes `node` true of an entry containing none of its terms, if any."""
    if isinstance(node, Phrase | Actor | Near):
        return None
    if isinstance(node, Scope):
        return _true_without_terms(node.child)
    if isinstance(node, Not):
        return node if _true_without_terms(node.child) is None else None
    if isinstance(node, Or):
        for child in node.children:
            culprit = _true_without_terms(child)
            if culprit is not None:
                return culprit
        return None
    culprits = [_true_without_terms(child) for child in node.children]
    if all(culprit is not None for culprit in culprits):
        return culprits[0]
    return None


def phrase_words(text: str, *, rule: str, column: int = 1) -> tuple[str, ...]:
    """The folded words of a phrase written without its quotes (an actor's alias): chunks
    may carry "=" and "*" as inside quotes. Raises RuleError for a misplaced wildcard."""
    return _term_words(text, column, False, rule)


def parse_query(query: str, *, rule: str) -> Node:
    """Parse one rule's query into its AST. Raises RuleError (with a 1-based column) for a
    syntax error, and for a query that would match an entry containing none of its terms
    (`NOT x`, `a OR NOT b`): a rule must look for something."""
    tree = _Parser(query, rule).parse()
    culprit = _true_without_terms(tree)
    if culprit is not None:
        raise RuleError(
            f"NOT only excludes: this rule would match every entry without {culprit.child}; "
            f'add a term the entry must contain, e.g. "Karabakh AND NOT ..."',
            rule=rule,
            column=culprit.column,
        )
    return tree
