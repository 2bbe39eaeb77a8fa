# The C part of the rule matcher (watcher/rules/_native.c); built by setup.py where a C
# compiler and Python's headers are present. Tables come from watcher.rules.native.build_engine.
from typing import Any

from watcher.model import Hit

TABLES: int
VERSION: int

class Engine:
    @property
    def tables(self) -> tuple[bytes, ...]: ...
    @property
    def names(self) -> tuple[str, ...]: ...
    def __init__(
        self,
        tables: tuple[bytes, ...],
        names: tuple[str, ...],
        fields: tuple[str, ...],
        span: Any,
        hit: Any,
    ) -> None: ...
    def match(self, title: str, summary: str, feed: int, language: int, /) -> list[Hit] | None: ...
    def builds_directly(self) -> bool: ...
