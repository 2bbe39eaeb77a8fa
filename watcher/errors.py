"""The exception family. Each carries enough context for an operator to act on it."""

from __future__ import annotations

from pathlib import Path

from watcher.redaction import display_url


class WatcherError(Exception):
    """Base of every error Watcher raises on purpose."""


class ConfigError(WatcherError):
    """A config file is unreadable or invalid.

    The message names the file, the key path (``rules[2].query``) and, where it can be
    found, the line, so the operator can go straight to the mistake.
    """

    def __init__(
        self,
        message: str,
        *,
        file: Path | None = None,
        key: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.message = message
        self.file = file
        # The config files read or tried before the error, set by `load_config`.
        self.files: tuple[Path, ...] = ()
        self.key = key
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        where = str(self.file) if self.file is not None else "<config>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.key:
            where += f": {self.key}"
        return f"{where}: {self.message}"


class RuleError(WatcherError):
    """A rule query cannot be compiled: bad syntax, an unknown actor, nothing to match."""

    def __init__(self, message: str, *, rule: str, column: int | None = None) -> None:
        self.message = message
        self.rule = rule
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        at = f" at column {self.column}" if self.column is not None else ""
        return f"rule {self.rule!r}{at}: {self.message}"


class FetchError(WatcherError):
    """A feed could not be fetched (network, HTTP status, limits)."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.url = url
        self.status = status
        self.retry_after = retry_after  # seconds the server asked us to wait, if it did
        super().__init__(str(self))

    def __str__(self) -> str:
        # Stored with the feed, logged, shown by `watcher status` and told to the admins:
        # never with the credentials a URL may carry.
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{display_url(self.url)}{status}: {self.message}"


class ParseError(WatcherError):
    """A body is not a feed at all (feedparser recovered nothing)."""


class StoreError(WatcherError):
    """The database cannot be used: e.g. it was written by a newer Watcher."""


class NotifyError(WatcherError):
    """An alert could not be delivered."""


class ChatOnHold(WatcherError):
    """Writing to this chat (or to every chat) is on hold for longer than a bot reply may
    wait: Telegram asked for a pause (another request would only draw another 429, which
    Telegram answers with a longer pause), or it rejected the bot's token. `reason` says
    which."""

    def __init__(self, chat_id: int, seconds: float, reason: str = "") -> None:
        self.chat_id = chat_id
        self.seconds = seconds
        self.reason = reason or "Telegram asked for a pause in writing to this chat"
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"chat {self.chat_id} on hold for {self.seconds:.0f} s more: {self.reason}"
