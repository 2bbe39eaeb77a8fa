"""watcher.config: loading, merging and, above all, errors that point at the mistake."""

from __future__ import annotations

import textwrap
import tomllib
from pathlib import Path

import pytest

from watcher.config import (
    LoggingSettings,
    PollingSettings,
    TelegramSettings,
    _Locator,
    compiled_rules,
    load_config,
    parse_duration,
)
from watcher.errors import ConfigError
from watcher.model import FeedDef, RuleDef

REPO = Path(__file__).resolve().parent.parent
FAKE_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the n-th line of `path` that contains `needle`."""
    hits = [n for n, line in enumerate(path.read_text("utf-8").splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


def config_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value


# --------------------------------------------------------------------------- shipped config


def test_shipped_config_loads() -> None:
    settings = load_config(REPO / "config" / "watcher.toml")

    config = REPO / "config"
    assert settings.files == (
        config / "watcher.toml",
        config / "feeds.toml",
        config / "rules.toml",
    )
    assert settings.storage.path == REPO / "var" / "watcher.db"
    # The shipped values are the defaults, but for the region's time zone.
    assert settings.telegram == TelegramSettings(timezone="Asia/Baku")
    assert settings.polling == PollingSettings()
    assert len(settings.feeds) == 18
    assert {feed.language for feed in settings.feeds} == {"az", "en", "hy", "ka", "ru"} - {"hy"}
    assert all(feed.url.startswith("https://") for feed in settings.feeds)
    # The rules themselves are checked in tests/test_shipped_rules.py.
    assert len(settings.rules) == 8
    assert all(rule.chats == () for rule in settings.rules)


# --------------------------------------------------------------------------- defaults


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    main = write(tmp_path, "watcher.toml", "")
    settings = load_config(main)

    assert settings.path == main
    assert settings.files == (main,)
    assert settings.storage.path == tmp_path / "watcher.db"
    assert settings.telegram == TelegramSettings(
        api_base_url="https://api.telegram.org",
        token_env="TELEGRAM_BOT_TOKEN",
        token_file=None,
        admins=(),
        disable_link_preview=False,
    )
    assert settings.polling == PollingSettings(
        interval=600, timeout=30, max_body_bytes=10_485_760, concurrency=10
    )
    assert settings.logging == LoggingSettings(level="INFO")
    assert (settings.feeds, settings.rules, dict(settings.actors)) == ((), (), {})


def test_every_key_is_read(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        "watcher.toml",
        """
        [storage]
        path = "/srv/watcher/watcher.db"
        [telegram]
        api_base_url = "http://127.0.0.1:8081/"
        token_env = "WATCHER_TOKEN"
        token_file = "secrets/token"
        admins = [123456789, 42, 42]
        disable_link_preview = true
        retry_for = "2h"
        subscribers = "allowlist"
        allow = [5, -100]
        timezone = "Asia/Yerevan"
        [polling]
        interval = "2m"
        timeout = 15
        max_body_bytes = 1048576
        concurrency = 3
        per_host = 1
        failing_after = 3
        [logging]
        level = "debug"
        [[feeds]]
        name = "turan-en"
        url = "https://turan.az/en/rss"
        interval = "1h"
        language = "EN"
        [[feeds]]
        name = "apa-az"
        url = "http://apa.az/rss"
        [actors.russian_peacekeepers]
        names = ["Russian peacekeeping contingent", " Russian peacekeepers ",
                 "Russian peacekeepers"]
        [[rules]]
        name = "peacekeepers"
        query = '"peacekeeping contingent" OR @russian_peacekeepers'
        chats = [-1001234567890, 5, 5]
        """,
    )
    settings = load_config(main)

    assert settings.storage.path == Path("/srv/watcher/watcher.db")
    assert settings.telegram == TelegramSettings(
        api_base_url="http://127.0.0.1:8081",
        token_env="WATCHER_TOKEN",
        token_file=tmp_path / "secrets" / "token",
        admins=(123456789, 42),
        disable_link_preview=True,
        retry_for=7200,
        subscribers="allowlist",
        allow=(5, -100),
        timezone="Asia/Yerevan",
    )
    assert settings.polling == PollingSettings(
        interval=120,
        timeout=15,
        max_body_bytes=1_048_576,
        concurrency=3,
        per_host=1,
        failing_after=3,
    )
    assert settings.logging.level == "DEBUG"
    assert settings.feeds == (
        FeedDef("turan-en", "https://turan.az/en/rss", 3600, "en"),
        FeedDef("apa-az", "http://apa.az/rss", 120, None),  # the [polling] interval
    )
    assert dict(settings.actors) == {
        "russian_peacekeepers": ("Russian peacekeeping contingent", "Russian peacekeepers")
    }
    assert settings.rules == (
        RuleDef(
            "peacekeepers",
            '"peacekeeping contingent" OR @russian_peacekeepers',
            (-1001234567890, 5),
        ),
    )


def test_actors_are_read_only(tmp_path: Path) -> None:
    main = write(tmp_path, "w.toml", '[actors.x]\nnames = ["X"]\n')
    actors = load_config(main).actors
    with pytest.raises(TypeError):
        actors["y"] = ("Y",)  # type: ignore[index]


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    main = tmp_path / "w.toml"
    main.write_bytes(b'\xef\xbb\xbf[polling]\ninterval = "1m"\n')
    assert load_config(main).polling.interval == 60


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("1h", 3600),
        ("1d", 86400),
        ("10m", 600),
        (" 5m ", 300),
        (1, 1),
        (600, 600),
    ],
)
def test_parse_duration(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5x", 'expected a duration like "5m" or seconds, got "5x"'),
        ("", 'expected a duration like "5m" or seconds, got ""'),
        ("5", 'expected a duration like "5m" or seconds, got "5"'),
        ("m", 'expected a duration like "5m" or seconds, got "m"'),
        ("5 m", 'expected a duration like "5m" or seconds, got "5 m"'),
        ("5M", 'expected a duration like "5m" or seconds, got "5M"'),
        ("1h30m", 'expected a duration like "5m" or seconds, got "1h30m"'),
        ("-5m", 'expected a duration like "5m" or seconds, got "-5m"'),
        (1.5, 'expected a duration like "5m" or seconds, got 1.5'),
        (True, 'expected a duration like "5m" or seconds, got true'),
        (None, 'expected a duration like "5m" or seconds, got None'),
        ([5], 'expected a duration like "5m" or seconds, got an array'),
        (0, "expected a duration of at least 1 second, got 0"),
        (-5, "expected a duration of at least 1 second, got -5"),
        ("0s", 'expected a duration of at least 1 second, got "0s"'),
        # Added to a date, a duration this long overflowed at every poll.
        ("3651d", 'expected a duration of at most "3650d" (ten years), got "3651d"'),
        ("99999999999d", 'expected a duration of at most "3650d" (ten years), got "99999999999d"'),
    ],
)
def test_parse_duration_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(value)
    assert str(caught.value) == message


# --------------------------------------------------------------------------- reading files


def test_a_missing_file(tmp_path: Path) -> None:
    error = config_error(tmp_path / "nope.toml")
    assert error.file == tmp_path / "nope.toml"
    assert (error.key, error.line) == (None, None)
    assert error.message == "cannot read config file: No such file or directory"


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    main = tmp_path / "w.toml"
    main.write_bytes(b'[logging]\nlevel = "\xff"\n')
    error = config_error(main)
    assert (error.file, error.line, error.column) == (main, 2, 10)
    assert error.message == "not UTF-8 text (byte 0xff)"


def test_arrays_nested_too_deeply_for_the_toml_reader(tmp_path: Path) -> None:
    main = write(tmp_path, "w.toml", "x = " + "[" * 2000 + "]" * 2000 + "\n")
    error = config_error(main)
    assert (error.file, error.message) == (main, "arrays or tables nested too deeply")


def test_an_include_name_with_a_nul_character(tmp_path: Path) -> None:
    main = write(tmp_path, "w.toml", 'include = ["a\\u0000.toml"]\n')
    error = config_error(main)
    assert (error.file, error.key, error.line) == (main, "include[0]", 1)
    assert error.message == "a file name cannot hold a NUL character"


def test_an_error_lists_the_files_read_or_tried(tmp_path: Path) -> None:
    main = write(tmp_path, "w.toml", 'include = ["rules.toml", "missing.toml"]\n')
    rules = write(tmp_path, "rules.toml", '[[rules]]\nname = "r"\nquery = "x"\n')
    error = config_error(main)
    assert error.files == (main, rules, tmp_path / "missing.toml")


def test_a_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    main = write(tmp_path, "w.toml", '[polling]\ninterval = "5m"\ntimeout = = 3\n')
    error = config_error(main)
    assert (error.file, error.key, error.line, error.column) == (main, None, 3, 11)
    assert error.message == "TOML syntax error: invalid value"
    assert str(error) == f"{main}:3:11: TOML syntax error: invalid value"


def test_a_toml_syntax_error_in_an_included_file(tmp_path: Path) -> None:
    main = write(tmp_path, "w.toml", 'include = ["rules.toml"]\n')
    rules = write(tmp_path, "rules.toml", "[[rules]]\nname = 'a'\nname = 'b'\n")
    error = config_error(main)
    assert (error.file, error.line, error.column) == (rules, 3, 11)
    assert error.message.startswith("TOML syntax error: cannot overwrite a value")


def test_a_syntax_error_at_the_end_of_the_file(tmp_path: Path) -> None:
    main = write(tmp_path, "w.toml", '[logging]\nlevel = "unclosed')
    error = config_error(main)
    assert (error.file, error.line, error.column) == (main, 2, None)
    assert error.message == "TOML syntax error: unterminated string at the end of the file"


# --------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("text", "key", "needle", "message"),
    [
        (
            '[storge]\npath = "x.db"\n',
            "storge",
            "[storge]",
            'unknown key "storge" at the top level; did you mean "storage"? allowed: actors, '
            "feeds, http, include, logging, polling, retention, rules, storage, stories, "
            "telegram",
        ),
        (
            "[telegram]\nadmin = [1]\n",
            "telegram.admin",
            "admin =",
            'unknown key "admin" in [telegram]; did you mean "admins"? allowed: admins, '
            "allow, api_base_url, disable_link_preview, max_in_flight, max_retry_delay, "
            "retry_for, subscribers, timezone, token_env, token_file",
        ),
        (
            '[polling]\ninterval = "5m"\nworkers = 4\n',
            "polling.workers",
            "workers",
            'unknown key "workers" in [polling]; allowed: concurrency, failing_after, '
            "interval, max_body_bytes, max_interval, min_interval, per_host, timeout",
        ),
        (
            '[storage]\npath = "x.db"\nwal = true\n',
            "storage.wal",
            "wal",
            'unknown key "wal" in [storage]; allowed: path',
        ),
        (
            '[logging]\nlevl = "INFO"\n',
            "logging.levl",
            "levl",
            'unknown key "levl" in [logging]; did you mean "level"? allowed: format, level',
        ),
        (
            '[actors.x]\nname = ["X"]\n',
            "actors.x.name",
            "name =",
            'unknown key "name" in [actors.x]; did you mean "names"? allowed: names',
        ),
        (
            '[[rules]]\nname = "a"\nquery = "a"\n[[rules]]\nname = "b"\nquerry = "b"\n',
            "rules[1].querry",
            "querry",
            'unknown key "querry" in a [[rules]] entry; did you mean "query"? allowed: '
            "chats, feeds, languages, name, priority, query",
        ),
    ],
)
def test_unknown_keys(tmp_path: Path, text: str, key: str, needle: str, message: str) -> None:
    main = write(tmp_path, "w.toml", text)
    error = config_error(main)
    assert (error.file, error.key, error.line) == (main, key, line_of(main, needle))
    assert error.message == message


def test_an_unknown_feed_key_gives_file_merged_index_and_line(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        "w.toml",
        """
        include = ["feeds.toml"]
        [[feeds]]
        name = "a"
        url = "https://a.example/rss"
        """,
    )
    feeds = write(
        tmp_path,
        "feeds.toml",
        """
        [[feeds]]
        name = "b"
        url = "https://b.example/rss"

        [[feeds]]
        name = "c"
        url = "https://c.example/rss"
        intervall = "5m"
        """,
    )
    error = config_error(main)
    assert (error.file, error.key, error.line) == (feeds, "feeds[2].intervall", 8)
    assert error.message == (
        'unknown key "intervall" in a [[feeds]] entry; did you mean "interval"? '
        "allowed: interval, language, name, tags, url, user_agent"
    )


# --------------------------------------------------------------------------- wrong values


def test_a_bad_duration_names_the_merged_index_in_the_included_file(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        "watcher.toml",
        """
        include = ["feeds.toml"]

        [[feeds]]
        name = "one"
        url = "https://one.example/rss"

        [[feeds]]
        name = "two"
        url = "https://two.example/rss"
        """,
    )
    feeds = write(
        tmp_path,
        "feeds.toml",
        """
        # Regional feeds.
        [[feeds]]
        name = "three"
        url = "https://three.example/rss"

        [[feeds]]
        name = "four"
        url = "https://four.example/rss"
        interval = "5x"
        """,
    )
    error = config_error(main)
    assert (error.file, error.key, error.line) == (feeds, "feeds[3].interval", 9)
    assert str(error) == (
        f'{feeds}:9: feeds[3].interval: expected a duration like "5m", seconds or "auto", got "5x"'
    )


@pytest.mark.parametrize(
    ("text", "key", "needle", "message"),
    [
        ("[storage]\npath = 5\n", "storage.path", "path", "expected a string, got 5"),
        ('[storage]\npath = ""\n', "storage.path", "path", "must not be empty"),
        ('storage = "x.db"\n', "storage", "storage", 'expected a table, got "x.db"'),
        (
            '[telegram]\nadmins = [1, "me"]\n',
            "telegram.admins[1]",
            "admins",
            'expected an integer, got "me"',
        ),
        (
            "[telegram]\nadmins = [\n  1,\n  -100,\n]\n",
            "telegram.admins[1]",
            "-100",
            "Telegram user ids are positive integers, got -100",
        ),
        (
            "[telegram]\nadmins = 1\n",
            "telegram.admins",
            "admins",
            "expected an array of Telegram user ids, got 1",
        ),
        (
            '[telegram]\ndisable_link_preview = "yes"\n',
            "telegram.disable_link_preview",
            "disable",
            'expected true or false, got "yes"',
        ),
        (
            '[telegram]\ntoken_env = "my token"\n',
            "telegram.token_env",
            "token_env",
            'expected the name of an environment variable like TELEGRAM_BOT_TOKEN, got "my token"',
        ),
        (
            '[polling]\nmax_body_bytes = "10MB"\n',
            "polling.max_body_bytes",
            "max_body",
            'expected an integer, got "10MB"',
        ),
        (
            "[polling]\nconcurrency = 0\n",
            "polling.concurrency",
            "concurrency",
            "expected an integer of at least 1, got 0",
        ),
        (
            "[polling]\ntimeout = 0\n",
            "polling.timeout",
            "timeout",
            "expected a duration of at least 1 second, got 0",
        ),
        (
            "[polling]\ninterval = 2.5\n",
            "polling.interval",
            "interval",
            'expected a duration like "5m", seconds or "auto", got 2.5',
        ),
        (
            '[logging]\nlevel = "LOUD"\n',
            "logging.level",
            "level",
            'expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got "LOUD"',
        ),
        (
            '[feeds]\nname = "a"\n',
            "feeds",
            "[feeds]",
            "expected [[feeds]] entries (an array of tables), got a table",
        ),
        (
            'feeds = ["https://a.example/rss"]\n',
            "feeds[0]",
            "feeds",
            'expected a table, got "https://a.example/rss"',
        ),
        (
            '[[feeds]]\nname = "a"\nurl = "https://a.example/"\nlanguage = "english"\n',
            "feeds[0].language",
            "language",
            'expected a language code like "en", "ru", "az", "hy", "ka", got "english"',
        ),
        (
            '[actors]\nx = ["X"]\n',
            "actors.x",
            "x =",
            "expected a table like [actors.x] with names = [...], got an array",
        ),
        (
            '[actors.x]\nnames = "X"\n',
            "actors.x.names",
            "names",
            'expected an array of names, got "X"',
        ),
        (
            "[actors.x]\nnames = []\n",
            "actors.x.names",
            "names",
            "an actor needs at least one name",
        ),
        (
            '[actors.x]\nnames = ["X", "  "]\n',
            "actors.x.names[1]",
            "names",
            "must not be empty",
        ),
        (
            '[actors.x]\nnames = ["X",\n  "--",\n]\n',
            "actors.x.names[1]",
            '"--"',
            '"--" has no letters or digits to match',
        ),
        (
            '[actors."Russian peacekeepers"]\nnames = ["X"]\n',
            'actors."Russian peacekeepers"',
            "[actors.",
            "actor names are ASCII letters, digits and _ (written @name in queries), "
            'got "Russian peacekeepers"',
        ),
        (
            '[[rules]]\nname = "a"\nquery = "a"\nchats = [-100, 1.5]\n',
            "rules[0].chats[1]",
            "chats",
            "expected an integer, got 1.5",
        ),
        (
            '[[rules]]\nname = "a"\nquery = 42\n',
            "rules[0].query",
            "query",
            "expected a string, got 42",
        ),
    ],
)
def test_wrong_values(tmp_path: Path, text: str, key: str, needle: str, message: str) -> None:
    main = write(tmp_path, "w.toml", text)
    error = config_error(main)
    assert (error.file, error.key, error.message) == (main, key, message)
    assert error.line == line_of(main, needle)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/rss",
        "example.com/rss",
        "https://",
        "https:///rss",
        "http://example.com:99999/rss",
        "https://exa mple.com/rss",
        "javascript:alert(1)",
    ],
)
def test_invalid_feed_urls(tmp_path: Path, url: str) -> None:
    main = write(tmp_path, "w.toml", f'[[feeds]]\nname = "a"\n\nurl = "{url}"\n')
    error = config_error(main)
    assert (error.key, error.line) == ("feeds[0].url", 4)
    assert error.message == f'expected an http:// or https:// URL, got "{url}"'


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://bots.example", 'expected an http:// or https:// URL, got "ftp://bots.example"'),
        (
            "https://bots.example/bot",
            'give the server root without "/bot" (Watcher adds it), got "https://bots.example/bot"',
        ),
        (
            "https://bots.example/?x=1",
            "expected the Bot API server's root URL without ?query or #fragment, "
            'got "https://bots.example/?x=1"',
        ),
    ],
)
def test_invalid_api_base_urls(tmp_path: Path, url: str, message: str) -> None:
    main = write(tmp_path, "w.toml", f'[telegram]\napi_base_url = "{url}"\n')
    error = config_error(main)
    assert (error.key, error.line, error.message) == ("telegram.api_base_url", 2, message)


# --------------------------------------------------------------------------- missing keys


@pytest.mark.parametrize(
    ("text", "key", "line", "message"),
    [
        (
            '[[feeds]]\nurl = "https://a.example/"\n',
            "feeds[0].name",
            1,
            "missing: every feed needs a unique name",
        ),
        (
            '[[feeds]]\nname = "a"\n',
            "feeds[0].url",
            1,
            "missing: every feed needs a name and a url",
        ),
        (
            '[[rules]]\nname = "a"\n',
            "rules[0].query",
            1,
            "missing: every rule needs a name and a query",
        ),
        ('[[rules]]\nquery = "a"\n', "rules[0].name", 1, "missing: every rule needs a unique name"),
        (
            "# actors\n[actors.x]\n",
            "actors.x.names",
            2,
            "missing: the names and spellings this actor goes by",
        ),
    ],
)
def test_missing_keys_point_at_their_table(
    tmp_path: Path, text: str, key: str, line: int, message: str
) -> None:
    main = write(tmp_path, "w.toml", text)
    error = config_error(main)
    assert (error.file, error.key, error.line, error.message) == (main, key, line, message)


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ('""', "must not be empty"),
        ('"   "', "must not be empty"),
        (
            '"turan en"',
            'expected a name without spaces (use "-" or "_"; it is typed in commands), '
            'got "turan en"',
        ),
    ],
)
def test_bad_names(tmp_path: Path, name: str, message: str) -> None:
    main = write(tmp_path, "w.toml", f'[[rules]]\nquery = "x"\nname = {name}\n')
    error = config_error(main)
    assert (error.key, error.line, error.message) == ("rules[0].name", 3, message)


def test_a_duplicate_feed_name_names_both_places(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        "w.toml",
        """
        include = ["more.toml"]
        [[feeds]]
        name = "turan-en"
        url = "https://turan.az/en/rss"
        """,
    )
    more = write(
        tmp_path,
        "more.toml",
        """
        [[feeds]]
        name = "apa"
        url = "https://apa.az/rss"
        [[feeds]]
        name = "turan-en"
        url = "https://turan.az/rss"
        """,
    )
    error = config_error(main)
    assert (error.file, error.key, error.line) == (more, "feeds[2].name", 5)
    assert error.message == f'duplicate feed name "turan-en": feeds[0].name has it too, at {main}:3'


def test_rule_names_are_unique_ignoring_case(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        "w.toml",
        """
        [[rules]]
        name = "Peacekeepers"
        query = "a"

        [[rules]]
        name = "peacekeepers"
        query = "b"
        """,
    )
    error = config_error(main)
    assert (error.file, error.key, error.line) == (main, "rules[1].name", 6)
    assert error.message == (
        'duplicate rule name "peacekeepers" (names are compared ignoring case): '
        f"rules[0].name has it too, at {main}:2"
    )


def test_a_feed_url_listed_twice(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        "w.toml",
        """
        [[feeds]]
        name = "a"
        url = "https://apa.az/rss"
        [[feeds]]
        name = "b"
        url = "https://apa.az/rss"
        """,
    )
    error = config_error(main)
    assert (error.key, error.line) == ("feeds[1].url", 6)
    assert error.message == f'same URL as feeds[0] "a", at {main}:1'


def test_an_actor_defined_in_two_files(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        "w.toml",
        'include = ["actors.toml"]\n\n[actors.putin]\nnames = ["Putin"]\n',
    )
    actors = write(
        tmp_path,
        "actors.toml",
        '[actors.aliyev]\nnames = ["Aliyev"]\n[actors.putin]\nnames = ["Путин"]\n',
    )
    error = config_error(main)
    assert (error.file, error.key, error.line) == (actors, "actors.putin", 3)
    assert error.message == f"already defined at {main}:3; define each actor once"


def test_a_table_set_in_two_files_names_both(tmp_path: Path) -> None:
    main = write(tmp_path, "w.toml", 'include = ["b.toml"]\n[storage]\npath = "a.db"\n')
    second = write(tmp_path, "b.toml", '# storage again\n[storage]\npath = "b.db"\n')
    error = config_error(main)
    assert (error.file, error.key, error.line) == (second, "storage", 2)
    assert error.message == (
        f"[storage] is already set in {main}:2; set each table in one file only"
    )


# --------------------------------------------------------------------------- the bot token


def test_a_token_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    main = write(tmp_path, "w.toml", '[telegram]\nadmins = [1]\ntoken = "sekrit-value"\n')
    error = config_error(main)
    assert (error.file, error.key, error.line) == (main, "telegram.token", 3)
    assert "token_env" in error.message and "token_file" in error.message
    assert "sekrit-value" not in str(error)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (f'[telegram]\ntoken_env = "{FAKE_TOKEN}"\n', "telegram.token_env"),
        (f'[telegram]\ntoken = "{FAKE_TOKEN}"\n', "telegram.token"),
        (f'[[rules]]\nname = "a"\nquery = "x {FAKE_TOKEN}"\n', "rules[0].query"),
        (
            f'[telegram]\napi_base_url = "https://api.telegram.org/bot{FAKE_TOKEN}"\n',
            "telegram.api_base_url",
        ),
    ],
)
def test_a_token_anywhere_is_refused_without_echoing_it(
    tmp_path: Path, text: str, key: str
) -> None:
    main = write(tmp_path, "w.toml", text)
    error = config_error(main)
    assert (error.file, error.key, error.line) == (main, key, text.count("\n"))
    assert error.message.startswith("this looks like a Telegram bot token")
    assert FAKE_TOKEN.split(":")[1] not in str(error)


def test_a_token_in_an_included_file_is_shown_with_its_merged_index(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        "w.toml",
        'include = ["feeds.toml"]\n[[feeds]]\nname = "a"\nurl = "https://a.example/"\n',
    )
    feeds = write(
        tmp_path,
        "feeds.toml",
        f'[[feeds]]\nname = "b"\nurl = "https://b.example/?key={FAKE_TOKEN}"\n',
    )
    error = config_error(main)
    assert (error.file, error.key, error.line) == (feeds, "feeds[1].url", 3)
    assert FAKE_TOKEN.split(":")[1] not in str(error)


@pytest.mark.parametrize("zone", ["America", "Europe", "America/Argentina", "../etc"])
def test_a_time_zone_that_names_a_folder_is_no_time_zone(tmp_path: Path, zone: str) -> None:
    main = write(tmp_path, "w.toml", f'[telegram]\ntimezone = "{zone}"\n')
    error = config_error(main)
    assert (error.key, error.line) == ("telegram.timezone", 2)
    assert error.message.startswith("expected an IANA time zone")


@pytest.mark.parametrize(
    "text",
    [
        f'[telegram]\n"{FAKE_TOKEN}" = true\n',
        f'"{FAKE_TOKEN}" = 1\n',
        f'[actors."{FAKE_TOKEN}"]\nnames = ["x"]\n',
        f'include = ["{FAKE_TOKEN}"]\n',
    ],
    ids=["a key", "a top-level key", "an actor name", "an include name"],
)
def test_a_token_written_as_a_name_is_refused_without_echoing_it(tmp_path: Path, text: str) -> None:
    # Unknown-key, actor-name and read errors quote the name: the token must stop first.
    error = config_error(write(tmp_path, "w.toml", text))
    assert error.message.startswith("this looks like a Telegram bot token")
    assert FAKE_TOKEN.split(":")[1] not in str(error)


def test_read_token_from_the_environment() -> None:
    telegram = TelegramSettings(token_env="WATCHER_TOKEN")
    assert telegram.read_token({"WATCHER_TOKEN": f" {FAKE_TOKEN}\n"}) == FAKE_TOKEN
    assert telegram.read_token({"TELEGRAM_BOT_TOKEN": FAKE_TOKEN}) is None
    assert telegram.read_token({"WATCHER_TOKEN": "  "}) is None


def test_read_token_from_a_file_wins_over_the_environment(tmp_path: Path) -> None:
    main = write(tmp_path, "etc/w.toml", '[telegram]\ntoken_file = "../run/token"\n')
    token_file = tmp_path / "run" / "token"
    token_file.parent.mkdir()
    token_file.write_text(f"{FAKE_TOKEN}\n", encoding="utf-8")
    telegram = load_config(main).telegram

    assert telegram.token_file == token_file
    assert telegram.read_token({"TELEGRAM_BOT_TOKEN": "from-env"}) == FAKE_TOKEN
    token_file.write_text("\n", encoding="utf-8")
    assert telegram.read_token({"TELEGRAM_BOT_TOKEN": "from-env"}) is None


def test_an_unreadable_token_file(tmp_path: Path) -> None:
    missing = TelegramSettings(token_file=tmp_path / "absent")
    with pytest.raises(ConfigError) as caught:
        missing.read_token({})
    assert (caught.value.file, caught.value.key) == (tmp_path / "absent", "telegram.token_file")
    assert caught.value.message == "cannot read the bot token file: No such file or directory"

    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe" + FAKE_TOKEN.encode())
    with pytest.raises(ConfigError) as caught:
        TelegramSettings(token_file=binary).read_token({})
    assert caught.value.message == "the bot token file is not UTF-8 text"


# --------------------------------------------------------------------------- rule queries


def test_an_unknown_actor_points_at_the_query_and_its_column(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        "w.toml",
        """
        [actors.russian_peacekeepers]
        names = ["Russian peacekeepers"]

        [[rules]]
        name = "a"
        query = '"peacekeeping contingent" OR @russian_peacekeeper'
        """,
    )
    error = config_error(main)
    assert (error.file, error.key, error.line) == (main, "rules[0].query", 6)
    assert error.message == (
        'rule "a": unknown actor @russian_peacekeeper; did you mean @russian_peacekeepers? '
        "(column 30 of the query)"
    )
    line = main.read_text("utf-8").splitlines()[5]
    assert error.column == line.index("@russian") + 1
    assert str(error).startswith(f'{main}:6:{error.column}: rules[0].query: rule "a": unknown')


def test_a_query_syntax_error_in_an_included_file_uses_the_merged_index(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        "w.toml",
        """
        include = ["rules.toml"]
        [[rules]]
        name = "first"
        query = "Aliyev AND Putin"
        """,
    )
    rules = write(
        tmp_path,
        "rules.toml",
        """
        [[rules]]
        name = "second"
        query = "tripartite"

        [[rules]]
        name = "third"
        query = '"peacekeeping contingent'
        """,
    )
    error = config_error(main)
    assert (error.file, error.key, error.line, error.column) == (rules, "rules[2].query", 7, 10)
    assert error.message == 'rule "third": unclosed quote (column 1 of the query)'


def test_a_query_with_escapes_keeps_the_query_column_in_the_message(tmp_path: Path) -> None:
    main = write(tmp_path, "w.toml", '[[rules]]\nname = "a"\nquery = "\\"x\\" OR"\n')
    error = config_error(main)
    assert (error.key, error.line, error.column) == ("rules[0].query", 3, None)
    assert (
        error.message == 'rule "a": expected a term after "OR", found the end of the query '
        "(column 7 of the query)"
    )


def test_a_query_error_points_at_its_column_in_the_file(tmp_path: Path) -> None:
    main = write(tmp_path, "w.toml", "[[rules]]\nname = 'a'\nquery = 'Aliyev OR (Putin'\n")
    error = config_error(main)
    assert (error.key, error.line) == ("rules[0].query", 3)
    assert error.column == len("query = '") + 1 + len("Aliyev OR ")  # the unclosed "("
    assert error.message.endswith("(column 11 of the query)")


# --------------------------------------------------------------------------- includes


def test_includes_nest_relative_to_the_including_file(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        "etc/watcher.toml",
        """
        include = ["sub/feeds.toml", "rules.toml"]
        [[feeds]]
        name = "main"
        url = "https://main.example/rss"
        """,
    )
    sub_feeds = write(
        tmp_path,
        "etc/sub/feeds.toml",
        """
        include = ["more.toml"]
        [[feeds]]
        name = "sub"
        url = "https://sub.example/rss"
        """,
    )
    more = write(
        tmp_path,
        "etc/sub/more.toml",
        """
        [storage]
        path = "data/w.db"
        [[feeds]]
        name = "more"
        url = "https://more.example/rss"
        """,
    )
    rules = write(tmp_path, "etc/rules.toml", '[[rules]]\nname = "r"\nquery = "x"\n')
    settings = load_config(main)

    assert settings.files == (main, sub_feeds, more, rules)
    assert [feed.name for feed in settings.feeds] == ["main", "sub", "more"]
    assert [rule.name for rule in settings.rules] == ["r"]
    # Relative to the folder of the file that sets it, not the main file's.
    assert settings.storage.path == tmp_path / "etc" / "sub" / "data" / "w.db"


def test_a_missing_include_points_at_the_include_entry(tmp_path: Path) -> None:
    main = write(tmp_path, "w.toml", 'include = [\n  "feeds.toml",\n  "rules.toml",\n]\n')
    write(tmp_path, "feeds.toml", "")
    error = config_error(main)
    assert (error.file, error.key, error.line) == (main, "include[1]", 3)
    assert error.message == (
        f"cannot read included file {tmp_path / 'rules.toml'}: No such file or directory"
    )


def test_an_include_cycle(tmp_path: Path) -> None:
    main = write(tmp_path, "a.toml", 'include = ["sub/b.toml"]\n')
    b = write(tmp_path, "sub/b.toml", '# b\ninclude = ["../a.toml"]\n')
    error = config_error(main)
    assert (error.file, error.key, error.line) == (b, "include[0]", 2)
    assert error.message == "include cycle: a.toml → sub/b.toml → a.toml"


def test_a_file_including_itself(tmp_path: Path) -> None:
    main = write(tmp_path, "a.toml", 'include = ["a.toml"]\n')
    error = config_error(main)
    assert (error.file, error.key, error.line) == (main, "include[0]", 1)
    assert error.message == "include cycle: a.toml → a.toml"


def test_a_file_included_twice(tmp_path: Path) -> None:
    main = write(tmp_path, "a.toml", 'include = ["b.toml", "c.toml"]\n')
    b = write(tmp_path, "b.toml", 'include = ["c.toml"]\n')
    write(tmp_path, "c.toml", "")
    error = config_error(main)
    assert (error.file, error.key, error.line) == (main, "include[1]", 1)
    assert error.message == f"c.toml is already included (by {b}:1); include each file once"


def test_include_must_be_an_array(tmp_path: Path) -> None:
    main = write(tmp_path, "a.toml", 'include = "b.toml"\n')
    error = config_error(main)
    assert (error.key, error.line) == ("include", 1)
    assert error.message == 'expected an array of file names like ["feeds.toml"], got "b.toml"'


# --------------------------------------------------------------------------- locating lines


def test_lines_are_found_past_multiline_strings_and_comments(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        "w.toml",
        '''
        [[rules]]  # [[rules]] in a comment is not a header
        name = "a"
        query = """
        Aliyev
        [[rules]]
        name = "fake"
        """

        [[rules]]
        name = 'b'
        query = 'x'
        chats = ["-100"]
        ''',
    )
    error = config_error(main)
    assert (error.key, error.line) == ("rules[1].chats[0]", 12)


def test_lines_are_found_in_inline_tables_and_dotted_keys(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        "w.toml",
        """
        actors.x.names = ["X"]
        rules = [
          { name = "a", query = "x" },
          { name = "b", query = "@x OR @y" },
        ]
        """,
    )
    error = config_error(main)
    line = main.read_text("utf-8").splitlines()[3]
    assert (error.key, error.line, error.column) == ("rules[1].query", 4, line.index("@y") + 1)
    assert error.message == 'rule "b": unknown actor @y (column 7 of the query)'

    dotted = write(tmp_path, "d.toml", '# one\n# two\nactors.x.names = ["X", 5]\n')
    error = config_error(dotted)
    assert (error.key, error.line) == ("actors.x.names[1]", 3)


def paths_of(value: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found: list[tuple[str | int, ...]] = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths_of(item, (*prefix, index))
    return found


@pytest.mark.parametrize("name", ["watcher.toml", "feeds.toml", "rules.toml"])
def test_every_key_of_the_shipped_files_is_located(name: str) -> None:
    text = (REPO / "config" / name).read_text("utf-8")
    lines = text.splitlines()
    located = _Locator(text)
    for path in paths_of(tomllib.loads(text)):
        assert path in located.found, path
        last_key = next(part for part in reversed(path) if isinstance(part, str))
        line = located.found[path].line
        # The line holds the key itself, the [table] header it belongs to, or an element.
        assert last_key in lines[line - 1] or isinstance(path[-1], int), (path, line)


# --------------------------------------------------------------------------- rule filters


def test_rule_filters_and_priority_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "watcher.toml",
        """
        [[feeds]]
        name = "apa"
        url = "https://apa.az/rss"

        [[rules]]
        name = "x"
        query = "Karabakh"
        feeds = ["apa", "apa"]
        languages = ["RU", "az"]
        priority = 5
        """,
    )
    (rule,) = load_config(path).rules
    assert (rule.feeds, rule.languages, rule.priority) == (("apa",), ("ru", "az"), 5)


@pytest.mark.parametrize(
    ("value", "key", "message"),
    [
        ('feeds = ["apa", "trend"]', "rules[0].feeds[1]", 'no feed is named "trend"'),
        ('feeds = ["ap"]', "rules[0].feeds[0]", 'did you mean "apa"?'),
        ('languages = ["Russian"]', "rules[0].languages[0]", "expected a language code"),
        ('priority = "high"', "rules[0].priority", 'expected an integer, got "high"'),
    ],
)
def test_bad_rule_filters(tmp_path: Path, value: str, key: str, message: str) -> None:
    path = write(
        tmp_path,
        "watcher.toml",
        f"""
        [[feeds]]
        name = "apa"
        url = "https://apa.az/rss"

        [[rules]]
        name = "x"
        query = "Karabakh"
        {value}
        """,
    )
    error = config_error(path)
    assert error.key == key
    assert message in error.message
    assert error.line == line_of(path, value.split(" =")[0] + " =")


def test_auto_intervals_and_their_bounds(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "watcher.toml",
        """
        [polling]
        interval = "auto"
        min_interval = "2m"
        max_interval = "2h"
        [[feeds]]
        name = "a"
        url = "https://a.example/rss"
        [[feeds]]
        name = "b"
        url = "https://b.example/rss"
        interval = "15m"
        [[feeds]]
        name = "c"
        url = "https://c.example/rss"
        interval = "AUTO"
        """,
    )
    settings = load_config(path)
    assert (settings.polling.min_interval, settings.polling.max_interval) == (120, 7200)
    assert [(f.name, f.auto_interval, f.interval) for f in settings.feeds] == [
        ("a", True, 600),
        ("b", False, 900),
        ("c", True, 600),
    ]


def test_max_interval_below_min_interval_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "w.toml", '[polling]\nmin_interval = "1h"\nmax_interval = "5m"\n')
    error = config_error(path)
    assert (error.key, error.line) == ("polling.max_interval", 3)
    assert "must not be shorter than min_interval (3600 s)" in error.message


def test_a_query_error_in_a_multiline_query_points_at_its_line(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        "w.toml",
        """
        [actors.lachin]
        names = ["Lachin"]
        [[rules]]
        name = "a"
        query = '''
        Karabakh
          AND @lachinn'''
        """,
    )
    error = config_error(main)
    assert error.key == "rules[0].query"
    assert (error.line, error.column) == (line_of(main, "@lachinn"), 7)
    assert "did you mean @lachin?" in error.message


def test_the_rules_are_compiled_once_with_the_config(tmp_path: Path) -> None:
    path = write(tmp_path, "w.toml", "[[rules]]\nname = 'k'\nquery = 'Karabakh'\n")
    settings = load_config(path)
    matcher = compiled_rules(settings)
    assert matcher is settings.matcher
    assert [hit.rule for hit in matcher.match("Karabakh today", "")] == ["k"]


def test_read_token_from_a_systemd_credential(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "telegram-token").write_text(f"{FAKE_TOKEN}\n", encoding="utf-8")
    environ = {"CREDENTIALS_DIRECTORY": str(credentials), "TELEGRAM_BOT_TOKEN": "from-env"}

    assert TelegramSettings().read_token(environ) == FAKE_TOKEN
    # Another service's credentials directory without ours: the environment still counts.
    (credentials / "telegram-token").unlink()
    assert TelegramSettings().read_token(environ) == "from-env"


def test_retention_http_logging_format_and_feed_tags(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        "w.toml",
        """
        [logging]
        format = "JSON"
        [retention]
        entries = "120d"
        outbox = "7d"
        [http]
        listen = "[::1]:9464"
        [stories]
        window = "24h"
        threshold = 0.2
        realert_on_update = true
        [[feeds]]
        name = "apa"
        url = "https://apa.az/rss"
        tags = ["az", "wire", "az"]
        user_agent = "Mozilla/5.0 (X11; Linux x86_64) Watcher"
        """,
    )
    settings = load_config(main)
    assert settings.feeds[0].user_agent == "Mozilla/5.0 (X11; Linux x86_64) Watcher"

    assert settings.logging.format == "json"
    assert (settings.retention.entries, settings.retention.outbox) == (120 * 86400, 7 * 86400)
    assert settings.http.listen == ("::1", 9464)
    stories = settings.stories
    assert (stories.window, stories.threshold, stories.realert_on_update) == (86400, 0.2, True)
    assert settings.feeds[0].tags == ("az", "wire")
    defaults = load_config(write(tmp_path, "d.toml", "")).http
    assert defaults.listen is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[http]\nlisten = "9464"\n', 'expected "HOST:PORT"'),
        ('[http]\nlisten = ":9464"\n', 'expected "HOST:PORT"'),
        ('[http]\nlisten = "::1:9464"\n', 'expected "HOST:PORT"'),
        ('[http]\nlisten = "[]:9464"\n', 'expected "HOST:PORT"'),
        ('[http]\nlisten = "127.0.0.1:http"\n', 'expected "HOST:PORT"'),
        ('[http]\nlisten = "127.0.0.1:99999"\n', 'expected "HOST:PORT"'),
        ('[retention]\nentries = "12h"\n', "expected at least 1d"),
        ('[logging]\nformat = "xml"\n', "expected one of auto, json, text"),
        ("[stories]\nthreshold = 1.5\n", "expected a number greater than 0 and at most 1"),
        ('[retention]\noutbox = "1d"\n', "[retention] outbox (86400s) must be at least"),
        ('[stories]\nwindow = "40d"\n', "[retention] outbox (2592000s) must be at least"),
        ('[stories]\nthreshold = "high"\n', "expected a number greater than 0 and at most 1"),
    ],
)
def test_bad_retention_http_and_log_format(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "w.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in caught.value.message
    assert caught.value.line == 2


_NOT_A_USER_AGENT = "is not a User-Agent: expected one line of printable ASCII, at most 512"


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        ('"Mozilla/5.0\\r\\nX-Injected: 1"', _NOT_A_USER_AGENT),
        ('"Браузер/1.0"', _NOT_A_USER_AGENT),
        (f'"{"a" * 513}"', _NOT_A_USER_AGENT),
        ('""', "must not be empty"),
        ("5", "expected a string"),
    ],
)
def test_a_feed_user_agent_must_be_one_line_of_printable_ascii(
    tmp_path: Path, agent: str, message: str
) -> None:
    path = write(
        tmp_path,
        "w.toml",
        f'[[feeds]]\nname = "apa"\nurl = "https://apa.az/rss"\nuser_agent = {agent}\n',
    )
    error = config_error(path)
    assert error.key == "feeds[0].user_agent" and error.line == 4
    assert message in error.message


def test_an_actors_name_is_checked_where_it_is_written_even_before_a_rule_uses_it(
    tmp_path: Path,
) -> None:
    main = write(
        tmp_path,
        "watcher.toml",
        """
        [actors.khalfali]
        names = ["Khalfali river", "Ха*"]

        [[rules]]
        name = "a"
        query = "Karabakh"
        """,
    )
    error = config_error(main)
    assert (error.file, error.key, error.line) == (main, "actors.khalfali.names[1]", 2)
    assert error.message == '"Ха*": a wildcard needs at least 3 letters before "*"'


def test_a_bad_feed_url_is_quoted_without_its_credentials(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        "w.toml",
        """
        [[feeds]]
        name = "paid"
        url = "ftp://bob:Hunter2secret@paid.example/rss?api_key=K3Y_abcdef"
        """,
    )
    error = config_error(main)
    assert "Hunter2secret" not in str(error) and "K3Y_abcdef" not in str(error)
    assert error.message == (
        'expected an http:// or https:// URL, got "ftp://***@paid.example/rss?api_key=***"'
    )


@pytest.mark.parametrize(
    ("second", "warned"),
    [
        ("http://www.apa.az/rss/", True),
        ("https://apa.az/rss?utm_source=rss", True),
        ("https://other:pw@apa.az/rss", False),  # another account: another feed
        ("https://apa.az/rss/amp", False),  # another path
        ("https://apa.az:8443/rss", False),  # another port
    ],
)
def test_a_feed_url_spelt_another_way_is_a_warning(
    tmp_path: Path, second: str, warned: bool
) -> None:
    # Likely one feed twice (whichever polls first owns each item), but a config that
    # loaded before must still load.
    main = write(
        tmp_path,
        "w.toml",
        f"""
        [[feeds]]
        name = "a"
        url = "https://apa.az/rss"
        [[feeds]]
        name = "b"
        url = "{second}"
        """,
    )
    settings = load_config(main)
    assert [feed.name for feed in settings.feeds] == ["a", "b"]
    if warned:
        (warning,) = settings.warnings
        assert warning == (
            f'{main}:6: feeds[1].url: looks like the URL of feeds[0] "a" ({main}:1) '
            "spelt another way: one feed twice?"
        )
    else:
        assert settings.warnings == ()
