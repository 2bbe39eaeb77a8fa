"""TOML config files → frozen, typed settings.

One entry point, `load_config`, reads the main file and its includes, validates every key and
returns `Settings`. Anything wrong raises `ConfigError` naming the file, the key path as the
operator sees it in `watcher check` (`feeds[3].interval`, indexes counted over the merged list)
and the line in the file where that key was written.

tomllib reports no positions for a valid document, so `_Locator` scans the raw text once more to
map key paths to lines. It trusts the document to be valid TOML (tomllib has accepted it first)
and is best effort: a path it cannot place falls back to its nearest placed parent.
"""

from __future__ import annotations

import bisect
import contextlib
import difflib
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from watcher.errors import ConfigError, RuleError
from watcher.identity import is_tracking_parameter
from watcher.logs import LOG_FORMATS, LogFormat, log_format
from watcher.model import FeedDef, RuleDef
from watcher.redaction import display_url
from watcher.rules import Matcher, compile_rules, phrase_words
from watcher.text import words

DEFAULT_DATABASE = "watcher.db"
DEFAULT_API_BASE_URL = "https://api.telegram.org"
DEFAULT_TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
DEFAULT_INTERVAL = 600
DEFAULT_TIMEOUT = 30
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_CONCURRENCY = 10
DEFAULT_PER_HOST = 2
DEFAULT_FAILING_AFTER = 5
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

T = TypeVar("T")

# The name of the systemd credential holding the bot token (LoadCredential=telegram-token:...).
TOKEN_CREDENTIAL = "telegram-token"


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class StorageSettings:
    path: Path


@dataclass(frozen=True)
class TelegramSettings:
    api_base_url: str = DEFAULT_API_BASE_URL
    token_env: str = DEFAULT_TOKEN_ENV
    token_file: Path | None = None
    admins: tuple[int, ...] = ()
    disable_link_preview: bool = False
    retry_for: int = 24 * 3600  # seconds an alert is retried before it is given up
    max_retry_delay: int = 3600  # the longest wait between two tries of one alert
    max_in_flight: int = 1  # sends at once; a kill -9 may duplicate up to this many
    subscribers: str = "open"  # "open": anyone may follow rules; "allowlist": only `allow`
    allow: tuple[int, ...] = ()  # chat ids allowed to subscribe under "allowlist"
    timezone: str = "UTC"  # IANA name: times in alerts and daily digests use it

    def read_token(self, environ: Mapping[str, str]) -> str | None:
        """The bot token, from the first of: `token_file`; the systemd credential
        `telegram-token` (`LoadCredential=`, found in `$CREDENTIALS_DIRECTORY`); the
        environment variable `token_env`. Surrounding whitespace is dropped; an empty token
        counts as none."""
        if self.token_file is not None:
            return _read_token_file(self.token_file, "telegram.token_file")
        credentials = environ.get("CREDENTIALS_DIRECTORY")
        if credentials:
            credential = Path(credentials) / TOKEN_CREDENTIAL
            if credential.exists():
                return _read_token_file(credential, "telegram (systemd credential)")
        return environ.get(self.token_env, "").strip() or None


def _read_token_file(path: Path, key: str) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the bot token file: {exc.strerror or exc}", file=path, key=key
        ) from None
    except UnicodeDecodeError:
        # The decoder's message quotes bytes of the file: keep them out of logs.
        raise ConfigError("the bot token file is not UTF-8 text", file=path, key=key) from None
    return text.strip() or None


@dataclass(frozen=True)
class PollingSettings:
    interval: int = DEFAULT_INTERVAL
    auto_interval: bool = False  # interval = "auto": adapt each feed to how often it publishes
    min_interval: int = 60  # bounds of "auto" intervals
    max_interval: int = 3600  # bounds of "auto", and of waits servers ask for (max-age, ttl)
    timeout: int = DEFAULT_TIMEOUT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    concurrency: int = DEFAULT_CONCURRENCY
    per_host: int = DEFAULT_PER_HOST  # fetches at once to one host, across all its feeds
    failing_after: int = DEFAULT_FAILING_AFTER  # consecutive failures before "failing"


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "INFO"
    format: LogFormat = "auto"  # "auto": JSON lines unless stderr is a terminal


@dataclass(frozen=True)
class RetentionSettings:
    entries: int = 90 * 86400  # seconds an entry (and its identity for dedupe) is kept
    outbox: int = 30 * 86400  # seconds a sent or dead outbox row is kept


@dataclass(frozen=True)
class StoriesSettings:
    window: int = 48 * 3600  # entries further apart than this never form one story
    threshold: float = 0.16  # the score (0..1) at which an entry joins a story; see README
    realert_on_update: bool = False  # an entry whose text changed alerts again if it hits


@dataclass(frozen=True)
class HttpSettings:
    listen: tuple[str, int] | None = None  # (host, port) for /healthz and /metrics; off if None


@dataclass(frozen=True)
class Settings:
    path: Path
    files: tuple[Path, ...]
    storage: StorageSettings
    telegram: TelegramSettings
    polling: PollingSettings
    feeds: tuple[FeedDef, ...]
    actors: Mapping[str, tuple[str, ...]]
    rules: tuple[RuleDef, ...]
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    stories: StoriesSettings = field(default_factory=StoriesSettings)
    # The rules compiled while validating them: compiling 1,000 rules with Russian forms
    # takes about a second, so nothing compiles them a second time.
    matcher: Matcher | None = field(default=None, compare=False, repr=False)
    # What loads but looks wrong (`watcher check` prints it, the daemon logs it).
    warnings: tuple[str, ...] = field(default=(), compare=False)


# --------------------------------------------------------------------------- durations

_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Ten years: longer is a typo, and far longer overflows the dates it is added to.
MAX_DURATION_S = 3650 * 86400


def parse_duration(value: object) -> int:
    """Seconds in `"90s"`, `"5m"`, `"1h"`, `"1d"` or an integer of seconds; at least 1."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip())):
        seconds = int(match[1]) * _UNIT_SECONDS[match[2]]
    else:
        raise ValueError(f'expected a duration like "5m" or seconds, got {_show(value)}')
    if seconds < 1:
        raise ValueError(f"expected a duration of at least 1 second, got {_show(value)}")
    if seconds > MAX_DURATION_S:
        raise ValueError(f'expected a duration of at most "3650d" (ten years), got {_show(value)}')
    return seconds


# --------------------------------------------------------------------------- loading


def _matcher_setting() -> str:
    return os.environ.get("WATCHER_MATCHER", "").strip().lower()


def native_matching() -> bool:
    """Whether rules are matched by the C engine where it was built: unless the environment
    says WATCHER_MATCHER=python (an operator's way out, should the C engine misbehave)."""
    return _matcher_setting() != "python"


def compiled_rules(settings: Settings) -> Matcher:
    """The settings' rules, compiled (once, when the settings were loaded)."""
    if settings.matcher is not None:
        return settings.matcher
    return compile_rules(settings.rules, settings.actors, native=native_matching())


def load_config(path: Path | str, *, previous: Settings | None = None) -> Settings:
    """Read, merge and validate the config at `path` and the files it includes. With the
    `previous` settings of a reload, rules and actors left as they were keep their compiled
    matcher: compiling thousands of rules is most of a big config's load."""
    main = Path(os.path.normpath(Path(path).absolute()))
    loader = _SourceLoader()
    try:
        return _build(main, loader.load(main), previous)
    except ConfigError as exc:
        # A file an invalid edit brought in is one the operator will fix next: the daemon
        # watches it too.
        exc.files = tuple(loader.attempted)
        raise


@dataclass
class _Source:
    """One config file: its text, what tomllib made of it, and where its keys are."""

    path: Path
    text: str
    data: dict[str, Any]
    _locator: _Locator | None = None

    def position(self, local: tuple[str | int, ...]) -> _Position | None:
        if self._locator is None:
            self._locator = _Locator(self.text)
        return self._locator.find(local)


@dataclass(frozen=True)
class _At:
    """A place in the config: the file and path used to find the line, and the key path
    shown to the operator (whose list indexes count over all files merged)."""

    source: _Source
    local: tuple[str | int, ...]
    shown: str

    def key(self, name: str) -> _At:
        return _At(self.source, (*self.local, name), _join_key(self.shown, name))

    def item(self, local_index: int, shown_index: int | None = None) -> _At:
        shown = local_index if shown_index is None else shown_index
        return _At(self.source, (*self.local, local_index), f"{self.shown}[{shown}]")

    def where(self) -> str:
        position = self.source.position(self.local)
        return f"{self.source.path}:{position.line}" if position else str(self.source.path)

    def error(
        self, message: str, *, column: int | None = None, line: int | None = None
    ) -> ConfigError:
        position = self.source.position(self.local)
        return ConfigError(
            message,
            file=self.source.path,
            key=self.shown or None,
            line=line if line is not None else (position.line if position else None),
            column=column,
        )


class _SourceLoader:
    """Reads the main file and, depth first, the files it includes: each file's own
    entries come before those of its includes."""

    def __init__(self) -> None:
        self.sources: list[_Source] = []
        self.included_at: dict[Path, _At] = {}
        self.attempted: list[Path] = []  # every file read or tried, in order

    def load(self, main: Path) -> list[_Source]:
        self._load(main, via=None, chain=[])
        return self.sources

    def _load(self, path: Path, *, via: _At | None, chain: list[Path]) -> None:
        identity = _identity(path)
        if identity in chain:
            assert via is not None  # the main file cannot be on the chain before it is read
            names = [_short(p, self.sources[0].path) for p in [*chain, identity]]
            raise via.error(f"include cycle: {' → '.join(names)}")
        if identity in self.included_at:
            assert via is not None
            first = self.included_at[identity]
            raise via.error(
                f"{_short(path, via.source.path)} is already included "
                f"(by {first.where()}); include each file once"
            )
        self.attempted.append(path)
        source = self._read(path, via)
        self.sources.append(source)
        if via is not None:
            self.included_at[identity] = via
        top = _At(source, (), "")
        for index, include_path in enumerate(self._includes(source)):
            self._load(include_path, via=top.key("include").item(index), chain=[*chain, identity])

    def _read(self, path: Path, via: _At | None) -> _Source:
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if via is None:
                raise ConfigError(f"cannot read config file: {reason}", file=path) from None
            raise via.error(f"cannot read included file {path}: {reason}") from None
        except UnicodeDecodeError as exc:
            raw = exc.object[: exc.start]
            line = raw.count(b"\n") + 1
            column = exc.start - (raw.rfind(b"\n") + 1) + 1  # in bytes
            raise ConfigError(
                f"not UTF-8 text (byte {exc.object[exc.start]:#04x})",
                file=path,
                line=line,
                column=column,
            ) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise _syntax_error(exc, path, text) from None
        except RecursionError:  # tomllib recurses once per level of nested arrays and tables
            raise ConfigError("arrays or tables nested too deeply", file=path) from None
        return _Source(path, text, data)

    def _includes(self, source: _Source) -> list[Path]:
        at = _At(source, ("include",), "include")
        if "include" not in source.data:
            return []
        names = _list_of(source.data["include"], at, _string, 'file names like ["feeds.toml"]')
        for index, name in enumerate(names):
            _refuse_tokens(name, at.item(index))  # before it is named in a read error
            if "\x00" in name:
                raise at.item(index).error("a file name cannot hold a NUL character")
        return [Path(os.path.normpath(source.path.parent / name)) for name in names]


def _identity(path: Path) -> Path:
    """The same file reached by two spellings (symlinks, `..`) is one file."""
    try:
        return path.resolve()
    except OSError:
        return path


def _short(path: Path, relative_to: Path) -> str:
    try:
        return os.path.relpath(path, relative_to.parent)
    except ValueError:  # another drive on Windows
        return str(path)


_TOML_POSITION = re.compile(r"^(?P<message>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")


def _syntax_error(exc: tomllib.TOMLDecodeError, path: Path, text: str) -> ConfigError:
    message = str(exc)
    line = column = None
    if match := _TOML_POSITION.match(message):
        message, line, column = match["message"], int(match["line"]), int(match["column"])
    elif message.endswith(" (at end of document)"):
        message = message.removesuffix(" (at end of document)") + " at the end of the file"
        line = text.count("\n") + 1
    message = message[:1].lower() + message[1:]
    return ConfigError(f"TOML syntax error: {message}", file=path, line=line, column=column)


# --------------------------------------------------------------------------- validation

_TOP_KEYS = (
    "include",
    "storage",
    "telegram",
    "polling",
    "logging",
    "retention",
    "http",
    "stories",
    "feeds",
    "actors",
    "rules",
)
_SINGLE_TABLES = ("storage", "telegram", "polling", "logging", "retention", "http", "stories")
_STORAGE_KEYS = ("path",)
_TELEGRAM_KEYS = (
    "api_base_url",
    "token_env",
    "token_file",
    "admins",
    "disable_link_preview",
    "retry_for",
    "max_retry_delay",
    "max_in_flight",
    "subscribers",
    "allow",
    "timezone",
)
_POLLING_KEYS = (
    "interval",
    "min_interval",
    "max_interval",
    "timeout",
    "max_body_bytes",
    "concurrency",
    "per_host",
    "failing_after",
)
_LOGGING_KEYS = ("level", "format")
_RETENTION_KEYS = ("entries", "outbox")
_HTTP_KEYS = ("listen",)
_STORIES_KEYS = ("window", "threshold", "realert_on_update")
_FEED_KEYS = ("name", "url", "interval", "language", "tags", "user_agent")
_ACTOR_KEYS = ("names",)
_RULE_KEYS = ("name", "query", "chats", "feeds", "languages", "priority")

# A bot token is "<bot id>:<35 characters>". Seen anywhere in a config file it is a leak.
_TOKEN_SHAPE = re.compile(r"\d{5,}:[A-Za-z0-9_-]{30,}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Actors are written `@name` in queries: keep their names to what a query can spell.
_ACTOR_NAME = re.compile(r"[A-Za-z0-9_]+")
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})*")


def _build(main: Path, sources: list[_Source], previous: Settings | None = None) -> Settings:
    merged_counts = {"feeds": 0, "rules": 0}
    for source in sources:
        top = _At(source, (), "")
        for key, value in source.data.items():
            _refuse_tokens(key, top)  # before the unknown-key message quotes it
            if key in merged_counts and isinstance(value, list):
                for index, item in enumerate(value):
                    _refuse_tokens(item, top.key(key).item(index, merged_counts[key] + index))
                merged_counts[key] += len(value)
            else:
                _refuse_tokens(value, top.key(key))
        _check_keys(source.data, top, _TOP_KEYS, "at the top level")
    tables = _single_tables(sources)

    storage = _storage(tables.get("storage"), main)
    telegram = _telegram(tables.get("telegram"))
    polling = _polling(tables.get("polling"))
    logging = _logging(tables.get("logging"))
    retention = _retention(tables.get("retention"))
    http = _http(tables.get("http"))
    stories = _stories(tables.get("stories"))
    if retention.outbox < stories.window:
        # Later outlets of a story edit its message, which is found through the outbox.
        retention_table = tables.get("retention")
        if retention_table is not None and "outbox" in retention_table[0]:
            at = retention_table[1].key("outbox")
        else:
            at = tables["stories"][1].key("window")
        raise at.error(
            f"[retention] outbox ({retention.outbox}s) must be at least [stories] window "
            f"({stories.window}s): later reports of a story edit the message the outbox keeps"
        )
    warnings: list[str] = []
    if _matcher_setting() not in ("", "c", "python"):
        warnings.append(
            f"WATCHER_MATCHER={os.environ['WATCHER_MATCHER']!r} is neither 'c' nor 'python': "
            "the C engine matches where it was built"
        )
    feeds = _feeds(sources, polling, warnings)
    actors = _actors(sources)
    rules, rule_places = _rules(sources, {feed.name for feed in feeds})
    if (
        previous is not None
        and previous.matcher is not None
        and tuple(rules) == previous.rules
        and actors == dict(previous.actors)
    ):
        matcher = previous.matcher
    else:
        matcher = _compile(rules, rule_places, actors)
    return Settings(
        path=main,
        files=tuple(source.path for source in sources),
        storage=storage,
        telegram=telegram,
        polling=polling,
        feeds=tuple(feeds),
        actors=MappingProxyType(actors),
        rules=tuple(rules),
        logging=logging,
        retention=retention,
        http=http,
        stories=stories,
        matcher=matcher,
        warnings=tuple(warnings),
    )


def _single_tables(sources: list[_Source]) -> dict[str, tuple[dict[str, Any], _At]]:
    """[storage], [telegram], ... may each be set in one file only."""
    found: dict[str, tuple[dict[str, Any], _At]] = {}
    for source in sources:
        for name in _SINGLE_TABLES:
            if name not in source.data:
                continue
            at = _At(source, (name,), name)
            if name in found:
                raise at.error(
                    f"[{name}] is already set in {found[name][1].where()}; "
                    "set each table in one file only"
                )
            found[name] = (_table(source.data[name], at), at)
    return found


def _storage(found: tuple[dict[str, Any], _At] | None, main: Path) -> StorageSettings:
    if found is None:
        return StorageSettings(path=main.parent / DEFAULT_DATABASE)
    table, at = found
    _check_keys(table, at, _STORAGE_KEYS, "in [storage]")
    if "path" not in table:
        return StorageSettings(path=at.source.path.parent / DEFAULT_DATABASE)
    return StorageSettings(path=_file_path(table["path"], at.key("path")))


def _telegram(found: tuple[dict[str, Any], _At] | None) -> TelegramSettings:
    if found is None:
        return TelegramSettings()
    table, at = found
    if "token" in table:
        raise at.key("token").error(
            "never write the bot token in a config file: set token_env to the name of an "
            f"environment variable that holds it (default {DEFAULT_TOKEN_ENV}) or token_file "
            "to a file that holds it (e.g. a systemd credential)"
        )
    _check_keys(table, at, _TELEGRAM_KEYS, "in [telegram]")
    settings = TelegramSettings()
    if "api_base_url" in table:
        settings = replace(settings, api_base_url=_api_base_url(table, at.key("api_base_url")))
    if "token_env" in table:
        key = at.key("token_env")
        name = _string(table["token_env"], key)
        if not _ENV_NAME.fullmatch(name):
            raise key.error(
                f"expected the name of an environment variable like {DEFAULT_TOKEN_ENV}, "
                f"got {_show(name)}"
            )
        settings = replace(settings, token_env=name)
    if "token_file" in table:
        settings = replace(
            settings, token_file=_file_path(table["token_file"], at.key("token_file"))
        )
    if "admins" in table:
        admins = _list_of(table["admins"], at.key("admins"), _user_id, "Telegram user ids")
        settings = replace(settings, admins=tuple(dict.fromkeys(admins)))
    if "disable_link_preview" in table:
        preview = _boolean(table["disable_link_preview"], at.key("disable_link_preview"))
        settings = replace(settings, disable_link_preview=preview)
    if "retry_for" in table:
        settings = replace(settings, retry_for=_duration(table["retry_for"], at.key("retry_for")))
    if "max_retry_delay" in table:
        delay = _duration(table["max_retry_delay"], at.key("max_retry_delay"))
        settings = replace(settings, max_retry_delay=delay)
    if "max_in_flight" in table:
        in_flight = _integer(table["max_in_flight"], at.key("max_in_flight"), 1)
        settings = replace(settings, max_in_flight=in_flight)
    if "subscribers" in table:
        key = at.key("subscribers")
        mode = _string(table["subscribers"], key)
        if mode not in ("open", "allowlist"):
            raise key.error(f'expected "open" or "allowlist", got {_show(mode)}')
        settings = replace(settings, subscribers=mode)
    if "allow" in table:
        allow = _list_of(table["allow"], at.key("allow"), _integer, "chat ids")
        settings = replace(settings, allow=tuple(dict.fromkeys(allow)))
    if "timezone" in table:
        key = at.key("timezone")
        name = _string(table["timezone"], key)
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # "America": a directory
            raise key.error(
                f'expected an IANA time zone like "Asia/Baku" or "UTC", got {_show(name)}'
            ) from None
        settings = replace(settings, timezone=name)
    return settings


def _api_base_url(table: dict[str, Any], at: _At) -> str:
    url = _url(table["api_base_url"], at).rstrip("/")
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise at.error(
            "expected the Bot API server's root URL without ?query or #fragment, got "
            f"{_show(display_url(url))}"
        )
    if parts.path.endswith("/bot"):
        raise at.error(
            f'give the server root without "/bot" (Watcher adds it), got {_show(display_url(url))}'
        )
    return url


def _polling(found: tuple[dict[str, Any], _At] | None) -> PollingSettings:
    if found is None:
        return PollingSettings()
    table, at = found
    _check_keys(table, at, _POLLING_KEYS, "in [polling]")
    defaults = PollingSettings()
    auto, interval = _interval(table.get("interval", defaults.interval), at.key("interval"))
    if auto:
        interval = defaults.interval
    min_interval = _duration(
        table.get("min_interval", defaults.min_interval), at.key("min_interval")
    )
    max_interval = _duration(
        table.get("max_interval", defaults.max_interval), at.key("max_interval")
    )
    if max_interval < min_interval:
        raise at.key("max_interval").error(
            f"must not be shorter than min_interval ({min_interval} s), got {max_interval} s"
        )
    return PollingSettings(
        interval=interval,
        auto_interval=auto,
        min_interval=min_interval,
        max_interval=max_interval,
        timeout=_duration(table.get("timeout", defaults.timeout), at.key("timeout")),
        max_body_bytes=_integer(
            table.get("max_body_bytes", defaults.max_body_bytes), at.key("max_body_bytes"), 1
        ),
        concurrency=_integer(
            table.get("concurrency", defaults.concurrency), at.key("concurrency"), 1
        ),
        per_host=_integer(table.get("per_host", defaults.per_host), at.key("per_host"), 1),
        failing_after=_integer(
            table.get("failing_after", defaults.failing_after), at.key("failing_after"), 1
        ),
    )


def _logging(found: tuple[dict[str, Any], _At] | None) -> LoggingSettings:
    if found is None:
        return LoggingSettings()
    table, at = found
    _check_keys(table, at, _LOGGING_KEYS, "in [logging]")
    level, fmt = LoggingSettings.level, LoggingSettings.format
    if "level" in table:
        key = at.key("level")
        level = _string(table["level"], key).upper()
        if level not in LOG_LEVELS:
            raise key.error(f"expected one of {', '.join(LOG_LEVELS)}, got {_show(table['level'])}")
    if "format" in table:
        key = at.key("format")
        chosen = log_format(_string(table["format"], key))
        if chosen is None:
            raise key.error(
                f"expected one of {', '.join(LOG_FORMATS)}, got {_show(table['format'])}"
            )
        fmt = chosen
    return LoggingSettings(level=level, format=fmt)


def _retention(found: tuple[dict[str, Any], _At] | None) -> RetentionSettings:
    if found is None:
        return RetentionSettings()
    table, at = found
    _check_keys(table, at, _RETENTION_KEYS, "in [retention]")
    values = {key: _duration(table[key], at.key(key)) for key in _RETENTION_KEYS if key in table}
    entries = values.get("entries", RetentionSettings.entries)
    if entries < 86400:
        # Shorter than a day, an entry still in its feed could be forgotten and alerted again.
        raise at.key("entries").error(f"expected at least 1d, got {_show(table['entries'])}")
    return RetentionSettings(entries=entries, outbox=values.get("outbox", RetentionSettings.outbox))


def _http(found: tuple[dict[str, Any], _At] | None) -> HttpSettings:
    if found is None:
        return HttpSettings()
    table, at = found
    _check_keys(table, at, _HTTP_KEYS, "in [http]")
    if "listen" not in table:
        return HttpSettings()
    return HttpSettings(listen=_listen_address(table["listen"], at.key("listen")))


def _stories(found: tuple[dict[str, Any], _At] | None) -> StoriesSettings:
    if found is None:
        return StoriesSettings()
    table, at = found
    _check_keys(table, at, _STORIES_KEYS, "in [stories]")
    window = StoriesSettings.window
    if "window" in table:
        window = _duration(table["window"], at.key("window"))
    threshold = StoriesSettings.threshold
    if "threshold" in table:
        threshold = _fraction(table["threshold"], at.key("threshold"))
    realert = StoriesSettings.realert_on_update
    if "realert_on_update" in table:
        realert = _boolean(table["realert_on_update"], at.key("realert_on_update"))
    return StoriesSettings(window=window, threshold=threshold, realert_on_update=realert)


def _fraction(value: object, at: _At) -> float:
    # TOML integers 0 and 1 are fine too; booleans are ints in Python but not fractions.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise at.error(f"expected a number greater than 0 and at most 1, got {_show(value)}")
    return float(value)


_LISTEN = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]+)):(?P<port>\d{1,5})")


def _listen_address(value: object, at: _At) -> tuple[str, int]:
    text = _text(value, at)
    found = _LISTEN.fullmatch(text)
    port = int(found["port"]) if found else -1
    if found is None or port > 65535:
        raise at.error(
            f'expected "HOST:PORT" such as "127.0.0.1:9464" or "[::1]:9464", got {_show(value)}'
        )
    return (found["v6"] or found["host"], port)


def _feeds(sources: list[_Source], polling: PollingSettings, warnings: list[str]) -> list[FeedDef]:
    feeds: list[FeedDef] = []
    names: dict[str, tuple[str, _At]] = {}
    urls: dict[str, tuple[str, _At]] = {}
    spellings: dict[tuple[str, ...], tuple[str, _At]] = {}
    for table, at in _merged_array(sources, "feeds", "[[feeds]]"):
        _check_keys(table, at, _FEED_KEYS, "in a [[feeds]] entry")
        name = _name(table, at, names, "feed")
        url_at = at.key("url")
        if "url" not in table:
            raise url_at.error("missing: every feed needs a name and a url")
        url = _url(table["url"], url_at)
        if url in urls:
            first_name, first = urls[url]
            raise url_at.error(f"same URL as {first.shown} {_show(first_name)}, at {first.where()}")
        urls[url] = (name, at)
        # Spelt differently, likely one feed twice: whichever polls first owns each item,
        # and a rule filtering on the other's name misses it. A warning, not an error: a
        # config that loaded before must still load (and two accounts may share a URL).
        spelling = _feed_url_key(url)
        if spelling in spellings:
            first_name, first = spellings[spelling]
            warnings.append(
                f"{url_at.where()}: {url_at.shown}: looks like the URL of {first.shown} "
                f"{_show(first_name)} ({first.where()}) spelt another way: one feed twice?"
            )
        spellings[spelling] = (name, at)
        auto, interval = polling.auto_interval, polling.interval
        if "interval" in table:
            auto, interval = _interval(table["interval"], at.key("interval"))
            if auto:
                interval = polling.interval
        language = None
        if "language" in table:
            language = _language(table["language"], at.key("language"))
        tags: tuple[str, ...] = ()
        if "tags" in table:
            tags = tuple(dict.fromkeys(_list_of(table["tags"], at.key("tags"), _text, "tags")))
        user_agent = None
        if "user_agent" in table:
            user_agent = _user_agent(table["user_agent"], at.key("user_agent"))
        feeds.append(
            FeedDef(
                name=name,
                url=url,
                interval=interval,
                language=language,
                auto_interval=auto,
                tags=tags,
                user_agent=user_agent,
            )
        )
    return feeds


def _actors(sources: list[_Source]) -> dict[str, tuple[str, ...]]:
    actors: dict[str, tuple[str, ...]] = {}
    defined_at: dict[str, _At] = {}
    for source in sources:
        if "actors" not in source.data:
            continue
        group_at = _At(source, ("actors",), "actors")
        group = _table(source.data["actors"], group_at)
        for name, value in group.items():
            at = group_at.key(name)
            if not _ACTOR_NAME.fullmatch(name):
                raise at.error(
                    f"actor names are ASCII letters, digits and _ (written @name in queries), "
                    f"got {_show(name)}"
                )
            if name in defined_at:
                raise at.error(
                    f"already defined at {defined_at[name].where()}; define each actor once"
                )
            table = _table(value, at, f"a table like [actors.{name}] with names = [...]")
            _check_keys(table, at, _ACTOR_KEYS, f"in [actors.{name}]")
            if "names" not in table:
                raise at.key("names").error("missing: the names and spellings this actor goes by")
            aliases = _list_of(table["names"], at.key("names"), _alias, "names")
            if not aliases:
                raise at.key("names").error("an actor needs at least one name")
            defined_at[name] = at
            actors[name] = tuple(dict.fromkeys(aliases))
    return actors


def _rules(sources: list[_Source], feed_names: set[str]) -> tuple[list[RuleDef], list[_At]]:
    rules: list[RuleDef] = []
    places: list[_At] = []
    names: dict[str, tuple[str, _At]] = {}
    for table, at in _merged_array(sources, "rules", "[[rules]]"):
        _check_keys(table, at, _RULE_KEYS, "in a [[rules]] entry")
        name = _name(table, at, names, "rule")
        if "query" not in table:
            raise at.key("query").error("missing: every rule needs a name and a query")
        query = _string(table["query"], at.key("query"))  # unstripped: columns stay true
        chats: tuple[int, ...] = ()
        if "chats" in table:
            chats = tuple(
                dict.fromkeys(_list_of(table["chats"], at.key("chats"), _integer, "chat ids"))
            )
        feeds: tuple[str, ...] = ()
        if "feeds" in table:
            feeds = tuple(
                dict.fromkeys(
                    _list_of(table["feeds"], at.key("feeds"), _feed_reference(feed_names), "feeds")
                )
            )
        languages: tuple[str, ...] = ()
        if "languages" in table:
            languages = tuple(
                dict.fromkeys(
                    _list_of(table["languages"], at.key("languages"), _language, "languages")
                )
            )
        priority = 0
        if "priority" in table:
            priority = _integer(table["priority"], at.key("priority"))
        rules.append(
            RuleDef(
                name=name,
                query=query,
                chats=chats,
                feeds=feeds,
                languages=languages,
                priority=priority,
            )
        )
        places.append(at)
    return rules, places


def _compile(
    rules: list[RuleDef], places: list[_At], actors: Mapping[str, Sequence[str]]
) -> Matcher:
    """Compile every query once so a mistake is reported at load time, with its line."""
    try:
        return compile_rules(rules, actors, native=native_matching())
    except RuleError as exc:
        index = next((i for i, rule in enumerate(rules) if rule.name == exc.rule), None)
        if index is None:  # the matcher blamed no rule we know: report it as it came
            raise ConfigError(str(exc), key="rules") from None
        at = places[index].key("query")
        message = f"rule {_show(exc.rule)}: {exc.message}"
        place = None
        if exc.column is not None:
            message += f" (column {exc.column} of the query)"
            place = _query_position(at, rules[index].query, exc.column)
        if place is None:
            raise at.error(message) from None
        raise at.error(message, line=place[0], column=place[1]) from None


def _query_position(at: _At, query: str, query_column: int) -> tuple[int, int] | None:
    """The file line and column of a query column, where each character of the value is
    one character of the file: a one-line string without escapes, or a multi-line literal
    string (three single quotes), whose first newline TOML drops."""
    position = at.source.position(at.local)
    if position is None or position.value is None:
        return None
    start, end = position.value
    text = at.source.text
    raw = text[start:end]
    quote = raw[:1]
    if quote not in ("'", '"'):
        return None
    if raw[:3] == "'''":
        body_start = start + 3
        if text.startswith("\n", body_start):
            body_start += 1
        elif text.startswith("\r\n", body_start):
            body_start += 2
        if text[body_start : end - 3] != query:
            return None
    elif raw[:3] == quote * 3 or raw[1:-1] != query:
        return None
    else:
        body_start = start + 1
    offset = body_start + query_column - 1
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _merged_array(
    sources: list[_Source], name: str, header: str
) -> list[tuple[dict[str, Any], _At]]:
    """The entries of an array of tables over all files, each with its place: shown with
    its index in the merged list, located by its index in its own file."""
    merged: list[tuple[dict[str, Any], _At]] = []
    for source in sources:
        if name not in source.data:
            continue
        array_at = _At(source, (name,), name)
        entries = source.data[name]
        if not isinstance(entries, list):
            raise array_at.error(
                f"expected {header} entries (an array of tables), got {_show(entries)}"
            )
        for local_index, entry in enumerate(entries):
            at = array_at.item(local_index, len(merged))
            merged.append((_table(entry, at), at))
    return merged


def _name(table: dict[str, Any], at: _At, seen: dict[str, tuple[str, _At]], what: str) -> str:
    """A feed's or rule's name: present, without spaces, unique ignoring case."""
    key = at.key("name")
    if "name" not in table:
        raise key.error(f"missing: every {what} needs a unique name")
    name = _text(table["name"], key)
    if not is_name(name):
        raise key.error(
            f'expected a name without spaces (use "-" or "_"; it is typed in commands), '
            f"got {_show(name)}"
        )
    folded = name.casefold()
    if folded in seen:
        first_name, first = seen[folded]
        case = " (names are compared ignoring case)" if first_name != name else ""
        raise key.error(
            f"duplicate {what} name {_show(name)}{case}: "
            f"{first.shown} has it too, at {first.where()}"
        )
    seen[folded] = (name, key)
    return name


def _check_keys(table: dict[str, Any], at: _At, allowed: Sequence[str], where: str) -> None:
    for key in table:
        if key in allowed:
            continue
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        hint = f"did you mean {_show(close[0])}? " if close else ""
        raise at.key(key).error(
            f"unknown key {_show(key)} {where}; {hint}allowed: {', '.join(sorted(allowed))}"
        )


def _refuse_tokens(value: object, at: _At) -> None:
    """Stop a bot token pasted anywhere in a config file, without ever printing it."""
    if isinstance(value, str) and _TOKEN_SHAPE.search(value):
        raise at.error(
            "this looks like a Telegram bot token; never write it in a config file: use "
            "[telegram] token_env (an environment variable) or token_file instead"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_tokens(key, at)  # a key is quoted by the unknown-key message
            _refuse_tokens(item, at.key(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_tokens(item, at.item(index))


# --------------------------------------------------------------------------- value checks


def _table(value: object, at: _At, expected: str = "a table") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise at.error(f"expected {expected}, got {_show(value)}")
    return value


def _string(value: object, at: _At) -> str:
    if not isinstance(value, str):
        raise at.error(f"expected a string, got {_show(value)}")
    if not value.strip():
        raise at.error("must not be empty")
    return value


def _text(value: object, at: _At) -> str:
    """A non-empty string with surrounding whitespace dropped."""
    return _string(value, at).strip()


_MAX_USER_AGENT_CHARS = 512
# What a feed's `user_agent` must be, as an error or an import note says it.
USER_AGENT_RULE = f"one line of printable ASCII, at most {_MAX_USER_AGENT_CHARS} characters"


def is_user_agent(text: str) -> bool:
    """Whether `text` can go out as a feed's User-Agent header as it is (`USER_AGENT_RULE`):
    nothing a header cannot carry, and a length servers accept."""
    return (
        0 < len(text) <= _MAX_USER_AGENT_CHARS
        and text == text.strip()
        and text.isascii()
        and text.isprintable()
    )


def _user_agent(value: object, at: _At) -> str:
    text = _text(value, at)
    if not is_user_agent(text):
        raise at.error(f"{_show(text[:80])} is not a User-Agent: expected {USER_AGENT_RULE}")
    return text


def _alias(value: object, at: _At) -> str:
    """An actor's name: checked here, where it is written, whether or not a rule uses the
    actor yet (a mistake would surface only with the first rule that did, at its line)."""
    alias = _text(value, at)
    if not words(alias):
        raise at.error(f"{_show(alias)} has no letters or digits to match")
    try:
        phrase_words(alias, rule="")
    except RuleError as exc:
        raise at.error(f"{_show(alias)}: {exc.message}") from None
    return alias


def _integer(value: object, at: _At, minimum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise at.error(f"expected an integer, got {_show(value)}")
    if minimum is not None and value < minimum:
        raise at.error(f"expected an integer of at least {minimum}, got {value}")
    return value


def _user_id(value: object, at: _At) -> int:
    user_id = _integer(value, at)
    if user_id <= 0:
        raise at.error(f"Telegram user ids are positive integers, got {user_id}")
    return user_id


def _boolean(value: object, at: _At) -> bool:
    if not isinstance(value, bool):
        raise at.error(f"expected true or false, got {_show(value)}")
    return value


def _duration(value: object, at: _At) -> int:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise at.error(str(exc)) from None


def parse_interval(value: object) -> tuple[bool, int]:
    """A polling interval: a duration, or "auto" (returned as (True, 0)). Raises
    ValueError, saying what was expected."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return True, 0
    try:
        return False, parse_duration(value)
    except ValueError as exc:
        raise ValueError(str(exc).replace(" or seconds,", ', seconds or "auto",')) from None


def _interval(value: object, at: _At) -> tuple[bool, int]:
    try:
        return parse_interval(value)
    except ValueError as exc:
        raise at.error(str(exc)) from None


def is_name(text: str) -> bool:
    """Whether `text` can name a feed or a rule: no spaces (it is typed in commands)."""
    return bool(text) and not any(char.isspace() or not char.isprintable() for char in text)


def is_feed_url(url: str) -> bool:
    """An http(s) URL with a host, a valid port if any, and no spaces (`[[feeds]] url`)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not any(char.isspace() for char in url)
    )


def is_language_code(code: str) -> bool:
    """A lowercase code such as "en", "ru", "az", "hy-am" (`language` keys)."""
    return _LANGUAGE.fullmatch(code) is not None


def _url(value: object, at: _At) -> str:
    url = _text(value, at)
    if not is_feed_url(url):
        raise at.error(f"expected an http:// or https:// URL, got {_show(display_url(url))}")
    return url


def _feed_url_key(url: str) -> tuple[str, ...]:
    """What two spellings of one feed's URL share: the scheme (http or https), host case,
    `www.`, a trailing slash and tracking parameters aside. Not `canonical_url`, which is
    for articles (it folds AMP paths and drops who is signed in)."""
    parts = urlsplit(url.strip())
    userinfo, _, hostport = parts.netloc.rpartition("@")
    hostport = hostport.lower().removeprefix("www.")
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if not is_tracking_parameter(key)
    ]
    return (userinfo, hostport, parts.path.rstrip("/"), urlencode(sorted(query)))


def _language(value: object, at: _At) -> str:
    language = _text(value, at).lower()
    if not is_language_code(language):
        raise at.error(
            f'expected a language code like "en", "ru", "az", "hy", "ka", got {_show(value)}'
        )
    return language


def _feed_reference(feed_names: set[str]) -> Callable[[object, _At], str]:
    """A check for a feed name in a rule's `feeds`: it must name a configured feed."""

    def check(value: object, at: _At) -> str:
        name = _text(value, at)
        if name not in feed_names:
            close = difflib.get_close_matches(name, sorted(feed_names), n=1, cutoff=0.6)
            hint = f"; did you mean {_show(close[0])}?" if close else ""
            raise at.error(f"no feed is named {_show(name)}{hint}")
        return name

    return check


def _file_path(value: object, at: _At) -> Path:
    """A path; a relative one is relative to the folder of the file that sets it."""
    path = Path(_string(value, at))
    if not path.is_absolute():
        path = Path(os.path.normpath(at.source.path.parent / path))
    return path


def _list_of(value: object, at: _At, check: Callable[[object, _At], T], what: str) -> list[T]:
    if not isinstance(value, list):
        raise at.error(f"expected an array of {what}, got {_show(value)}")
    return [check(item, at.item(index)) for index, item in enumerate(value)]


def _show(value: object) -> str:
    """A value as it would be written in TOML, cut short: messages quote what was written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = json.dumps(value if len(value) <= 60 else value[:57] + "...", ensure_ascii=False)
        return shown
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _join_key(prefix: str, name: str) -> str:
    part = name if _BARE_KEY.fullmatch(name) else json.dumps(name, ensure_ascii=False)
    return f"{prefix}.{part}" if prefix else part


# --------------------------------------------------------------------------- locator


@dataclass(frozen=True)
class _Position:
    line: int
    column: int
    value: tuple[int, int] | None = None  # offsets of the value's text, for key/value pairs


class _Locator:
    """Where each key, table and array element of a valid TOML text is written.

    Paths are tuples of keys and 0-based indexes as tomllib's result would be walked:
    `("rules", 2, "query")` for the `query` of the third `[[rules]]` of this text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.found: dict[tuple[str | int, ...], _Position] = {}
        self._line_starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
        self._i = 0
        self._table: tuple[str | int, ...] = ()
        self._array_tables: dict[tuple[str | int, ...], int] = {}
        # Best effort: keep what was placed before the scanner got lost.
        with contextlib.suppress(IndexError, ValueError, tomllib.TOMLDecodeError):
            self._document()

    def find(self, path: tuple[str | int, ...]) -> _Position | None:
        """The position of `path`, or of its nearest placed parent."""
        for end in range(len(path), 0, -1):
            if (position := self.found.get(path[:end])) is not None:
                return position
        return None

    # The scanner proper. Each step consumes at least one character or stops.

    def _document(self) -> None:
        text = self.text
        while True:
            self._skip_blank(newlines=True)
            if self._i >= len(text):
                return
            start = self._i
            if text.startswith("[[", start):
                self._i += 2
                parts = self._key()
                self._expect("]]")
                parent = (*self._resolve(parts[:-1]), parts[-1])
                index = self._array_tables.get(parent, 0)
                self._array_tables[parent] = index + 1
                self._table = (*parent, index)
                self._place_with_parents(self._table, start)
            elif text[start] == "[":
                self._i += 1
                parts = self._key()
                self._expect("]")
                self._table = self._resolve(parts)
                self._place_with_parents(self._table, start)
            else:
                self._key_value(self._table)

    def _resolve(self, parts: tuple[str, ...]) -> tuple[str | int, ...]:
        """A header's path, with the current index of each array of tables on the way."""
        path: tuple[str | int, ...] = ()
        for part in parts:
            path = (*path, part)
            if path in self._array_tables:
                path = (*path, self._array_tables[path] - 1)
        return path

    def _key_value(self, table: tuple[str | int, ...]) -> None:
        start = self._i
        parts = self._key()
        path = (*table, *parts)
        self._place_with_parents(path[:-1], start)  # dotted keys define their parents
        self._skip_blank(newlines=False)
        self._expect("=")
        self._skip_blank(newlines=False)
        value_start = self._i
        self._value(path)
        self._place(path, start, (value_start, self._i))

    def _key(self) -> tuple[str, ...]:
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            char = self.text[self._i]
            if char in "\"'":
                start = self._i
                self._string()
                parts.append(tomllib.loads("k = " + self.text[start : self._i])["k"])
            else:
                match = _BARE_KEY.match(self.text, self._i)
                if match is None:
                    raise ValueError("not a key")
                parts.append(match[0])
                self._i = match.end()
            self._skip_blank(newlines=False)
            if self.text[self._i] != ".":
                return tuple(parts)
            self._i += 1

    def _value(self, path: tuple[str | int, ...]) -> None:
        char = self.text[self._i]
        if char in "\"'":
            self._string()
        elif char == "[":
            self._i += 1
            index = 0
            while True:
                self._skip_blank(newlines=True)
                if self.text[self._i] == "]":
                    self._i += 1
                    return
                start = self._i
                self._value((*path, index))
                self._place((*path, index), start, (start, self._i))
                self._skip_blank(newlines=True)
                if self.text[self._i] == ",":
                    self._i += 1
                    index += 1
        elif char == "{":
            self._i += 1
            while True:
                self._skip_blank(newlines=False)
                if self.text[self._i] == "}":
                    self._i += 1
                    return
                self._key_value(path)
                self._skip_blank(newlines=False)
                if self.text[self._i] == ",":
                    self._i += 1
        else:  # number, boolean, date or time: runs to the next delimiter
            match = re.compile(r"[^,\]}\n#]+").match(self.text, self._i)
            if match is None:
                raise ValueError("not a value")
            self._i = match.end()
            while self.text[self._i - 1] in " \t\r":
                self._i -= 1

    def _string(self) -> None:
        text, i = self.text, self._i
        quote = text[i]
        if text.startswith(quote * 3, i):
            end = text.index(quote * 3, i + 3)
            while quote == '"' and _escaped(text, end):
                end = text.index(quote * 3, end + 1)
            end += 3
            for _ in range(2):  # up to two quotes may sit right before the closing delimiter
                if end < len(text) and text[end] == quote:
                    end += 1
            self._i = end
            return
        i += 1
        while text[i] != quote:
            i += 2 if quote == '"' and text[i] == "\\" else 1
        self._i = i + 1

    def _skip_blank(self, *, newlines: bool) -> None:
        text = self.text
        while self._i < len(text):
            char = text[self._i]
            if char in " \t" or (newlines and char in "\r\n"):
                self._i += 1
            elif char == "#":
                end = text.find("\n", self._i)
                self._i = len(text) if end < 0 else (end if not newlines else end + 1)
            else:
                return

    def _expect(self, token: str) -> None:
        self._skip_blank(newlines=False)
        if not self.text.startswith(token, self._i):
            raise ValueError(f"expected {token}")
        self._i += len(token)

    def _place_with_parents(self, path: tuple[str | int, ...], offset: int) -> None:
        for end in range(1, len(path) + 1):
            self._place(path[:end], offset)

    def _place(
        self, path: tuple[str | int, ...], offset: int, value: tuple[int, int] | None = None
    ) -> None:
        if path in self.found:  # a table header seen again keeps its first place
            return
        line = bisect.bisect_right(self._line_starts, offset)
        column = offset - self._line_starts[line - 1] + 1
        self.found[path] = _Position(line, column, value)


def _escaped(text: str, index: int) -> bool:
    """Whether the character at `index` follows an odd run of backslashes."""
    backslashes = 0
    while index - backslashes - 1 >= 0 and text[index - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1
