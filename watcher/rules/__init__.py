"""PURE rule language: query syntax → AST (`syntax`) → one compiled matcher (`matcher`).

matcher = compile_rules(rule_defs, actors)   # once, at start-up or reload
hits = matcher.match(entry.title, entry.summary)
"""

from watcher.rules.matcher import Matcher, compile_rules
from watcher.rules.syntax import Actor, And, Node, Or, Phrase, parse_query

__all__ = ["Actor", "And", "Matcher", "Node", "Or", "Phrase", "compile_rules", "parse_query"]
