"""Logging set-up: one line per event, `key=value` fields, secrets scrubbed.

Third-party loggers that print request URLs (httpx puts the bot token in every URL) are held
at WARNING, and every formatted line — exceptions included — is scrubbed of registered
secrets as a second line of defence.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import TextIO

_NOISY_LOGGERS = ("httpx", "httpcore", "telegram", "apscheduler", "aiosqlite", "asyncio")
REDACTED = "[REDACTED]"


class RedactingFormatter(logging.Formatter):
    """Formats as `2026-11-28T10:00:00Z INFO logger message` and removes secrets."""

    converter = staticmethod(time.gmtime)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%SZ")
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, secret: str) -> None:
        # A very short "secret" would shred ordinary words; real tokens are ~46 characters.
        if len(secret) >= 8:
            self._secrets.add(secret)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        for secret in self._secrets:
            line = line.replace(secret, REDACTED)
        return line


def setup_logging(
    level: str = "INFO", *, stream: TextIO | None = None, secrets: Iterable[str] = ()
) -> RedactingFormatter:
    """Configure the root logger; return the formatter so secrets can be added later."""
    formatter = RedactingFormatter(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # PTB logs a failed request (with the server's whole error page) before raising; the
    # delivery loop logs the same failure as one line with what it will do about it.
    logging.getLogger("telegram.request").setLevel(logging.CRITICAL)
    return formatter
