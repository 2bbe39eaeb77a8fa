"""Logging set-up: one line per event, `key=value` fields, secrets scrubbed.

On a terminal a line reads `2026-11-28T10:00:00Z INFO logger message`; anywhere else
(journald, a file, a pipe to a collector) each event is one JSON object with `ts`, `level`,
`logger`, `msg`, `exc` for a traceback, and the message's `key=value` pairs as fields of
their own, so logs can be queried without parsing our messages.

Third-party loggers that print request URLs (httpx puts the bot token in every URL) are held
at WARNING, and everything written — messages, tracebacks, every JSON field — is scrubbed
of registered secrets as a second line of defence.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TextIO

_NOISY_LOGGERS = ("httpx", "httpcore", "telegram", "apscheduler", "aiosqlite", "asyncio")
REDACTED = "[REDACTED]"
LogFormat = Literal["auto", "json", "text"]
LOG_FORMATS: tuple[LogFormat, ...] = ("auto", "json", "text")


def log_format(name: str) -> LogFormat | None:
    """The format named `name` (any case), or None if there is none by that name."""
    return next((known for known in LOG_FORMATS if known == name.lower()), None)


# key=value, where the value is a Python repr of a string (our `%r` fields) or runs to
# the next space. The key must follow a space or start the message.
_FIELD = re.compile(
    r"""(?:^|(?<=\s))([a-z_][a-z0-9_]*)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S+)"""
)
_RESERVED = frozenset({"ts", "level", "logger", "msg", "exc", "stack"})
_INTEGER = re.compile(r"-?\d{1,18}")


class RedactingFormatter(logging.Formatter):
    """Formats as `2026-11-28T10:00:00Z INFO logger message` and removes secrets."""

    converter = staticmethod(time.gmtime)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%SZ")
        # Writing to journald's stream: each line starts with its syslog priority ("<4>"),
        # which journald takes (and strips), so `journalctl -p warning` selects by level.
        self.syslog_priority = False
        self._secrets: list[str] = []
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, secret: str) -> None:
        # A very short "secret" would shred ordinary words; real tokens are ~46 characters.
        # As a `%r` field shows it, too: quotes and backslashes escaped.
        candidates = [secret, repr(secret)[1:-1]]
        # A bot token is "<bot id>:<key>"; the key alone is the secret part, and it is what
        # survives when the colon is percent-encoded in a URL.
        bot_id, colon, key = secret.partition(":")
        if colon and bot_id.isdigit():
            candidates.append(key)
        for candidate in candidates:
            if len(candidate) >= 8 and candidate not in self._secrets:
                self._secrets.append(candidate)
        # Longest first: the whole token is replaced before its key alone is looked for.
        self._secrets.sort(key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def format(self, record: logging.LogRecord) -> str:
        return self.prefixed(record, self.redact(super().format(record)))

    def prefixed(self, record: logging.LogRecord, text: str) -> str:
        """`text` with its priority on every line: journald takes each line of a stream for
        an entry of its own (a text traceback is many)."""
        if not self.syslog_priority:
            return text
        prefix = f"<{_syslog_priority(record.levelno)}>"
        return prefix + text.replace("\n", "\n" + prefix)


def _syslog_priority(level: int) -> int:
    """Syslog's number for a logging level: err 3, warning 4, info 6, debug 7."""
    if level >= logging.CRITICAL:
        return 2
    if level >= logging.ERROR:
        return 3
    if level >= logging.WARNING:
        return 4
    if level >= logging.INFO:
        return 6
    return 7


def writes_to_journal(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether `stream` is the journald stream systemd gave the service: $JOURNAL_STREAM
    names its device and inode (a child of the service whose output goes elsewhere
    inherits the variable, so the stream itself is compared)."""
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        status = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # no descriptor (a StringIO), closed
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))


class JsonFormatter(RedactingFormatter):
    """One JSON object per line. Secrets are removed from every value before it is
    serialized: after serializing, JSON's own escapes could hide one from the scrubber."""

    def format(self, record: logging.LogRecord) -> str:
        message = self.redact(record.getMessage())
        event: dict[str, Any] = {
            "ts": _iso_utc_ms(record),
            "level": record.levelname,
            "logger": self.redact(record.name),
            "msg": message,
        }
        for key, value in _fields(message).items():
            # Unquoting a field can undo the escaping that hid a secret from `redact`.
            event.setdefault(key, self.redact(value) if isinstance(value, str) else value)
        if record.exc_info and not record.exc_text:
            # Formatted once and cached on the record, as logging.Formatter does.
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            event["exc"] = self.redact(record.exc_text)
        if record.stack_info:
            event["stack"] = self.redact(self.formatStack(record.stack_info))
        # Non-ASCII stays readable (Russian, Azerbaijani and Armenian titles); a line
        # separator inside a value is escaped, so one event is always one line.
        return self.prefixed(record, json.dumps(event, ensure_ascii=False, default=str))


def _iso_utc_ms(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _fields(message: str) -> dict[str, Any]:
    """`poll feed=apa status=200 error='timed out'` → {"feed": "apa", "status": 200,
    "error": "timed out"}. Integers become numbers, `-` null, quoted values are unquoted;
    the names of the event's own fields are never taken."""
    fields: dict[str, Any] = {}
    for key, raw in _FIELD.findall(message):
        if key in _RESERVED or key in fields:
            continue
        fields[key] = _value(raw)
    return fields


def _value(raw: str) -> Any:
    if raw[:1] in ("'", '"'):
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return raw
        return value if isinstance(value, str) else raw
    if raw == "-":  # our "no value" (status=- when there was no response)
        return None
    raw = raw.rstrip(",;:") or raw  # "new_url=https://x/rss: update its url" ends a clause
    if _INTEGER.fullmatch(raw):
        return int(raw)
    return raw


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or already closed
        return False


def make_formatter(
    fmt: LogFormat, stream: TextIO, secrets: Iterable[str] = ()
) -> RedactingFormatter:
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    if fmt == "text" or (fmt == "auto" and _is_terminal(stream)):
        return RedactingFormatter(secrets)
    return JsonFormatter(secrets)


def setup_logging(
    level: str = "INFO",
    *,
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
    fmt: LogFormat = "auto",
    environ: Mapping[str, str] | None = None,
) -> RedactingFormatter:
    """Configure the root logger; return the formatter so secrets can be added later.
    `fmt="auto"`: readable lines on a terminal, JSON lines otherwise; on journald's
    stream (`environ`, by default the process's), each line carries its priority."""
    out = stream or sys.stderr
    formatter = make_formatter(fmt, out, secrets)
    formatter.syslog_priority = writes_to_journal(out, os.environ if environ is None else environ)
    handler = logging.StreamHandler(out)
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
