"""Counting the parse's feedparser runs: how a test sees which items a parse read."""

from __future__ import annotations

from typing import Any

import pytest

import watcher.parse


def count_feedparser_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on in the test, how many entries each feedparser run of the parse gave,
    in order."""
    read: list[int] = []
    real = watcher.parse._feedparser

    def counting(body: bytes, headers: dict[str, str]) -> Any:
        document = real(body, headers)
        read.append(len(document.entries))
        return document

    monkeypatch.setattr(watcher.parse, "_feedparser", counting)
    return read
