"""The `watcher` command: run the daemon, check a config, and the operator's tools."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from watcher import __version__
from watcher.config import LOG_LEVELS, Settings, compiled_rules, load_config, parse_duration
from watcher.errors import ConfigError, StoreError

DEFAULT_CONFIG = Path("config/watcher.toml")
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INVALID_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watcher", description="Watch news feeds and alert on Telegram."
    )
    parser.add_argument("--version", action="version", version=f"watcher {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--config",
            type=Path,
            default=DEFAULT_CONFIG,
            help=f"main config file (default: {DEFAULT_CONFIG})",
        )

    run = commands.add_parser("run", help="run the daemon until SIGTERM/SIGINT")
    with_config(run)
    run.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        help="overrides [logging] level of the config (default: INFO)",
    )
    run.add_argument(
        "--log-format",
        choices=["auto", "json", "text"],
        help="overrides [logging] format: JSON lines, readable text, or auto (JSON unless "
        "stderr is a terminal; the default)",
    )
    check = commands.add_parser("check", help="validate the config; exit 0 if valid, 2 if not")
    with_config(check)
    check.add_argument(
        "--fetch",
        action="store_true",
        help="also fetch and parse every feed once; exit 1 if any failed",
    )
    match = commands.add_parser(
        "match",
        help="show which rules hit a feed file, a URL or a text, and where",
        description="SOURCE is a feed file (RSS/Atom), an http(s) URL, or a text file or - "
        "(stdin): one entry, the first line its title and the rest its summary.",
    )
    with_config(match)
    match.add_argument("source", nargs="?", default="-", metavar="SOURCE")
    match.add_argument("--json", action="store_true", help="print a JSON array, one per entry")
    match.add_argument(
        "--feed", help="match as if the entries came from this configured feed (rule filters)"
    )
    match.add_argument("--language", help="match as entries of this language (rule filters)")
    replay = commands.add_parser(
        "replay",
        help="show what the current rules would have alerted on lately, by story",
        description="Runs the current rules over the stored entries first seen within SINCE "
        "and shows the entries that would have alerted, grouped into stories as the daemon "
        "groups them. Reads the database only (safe while the daemon runs); sends nothing.",
    )
    with_config(replay)
    replay.add_argument(
        "--since",
        type=_duration,
        required=True,
        metavar="SINCE",
        help="how far back: a duration like 90m, 12h or 7d",
    )
    replay.add_argument("--rule", metavar="NAME", help="only this rule's hits")
    replay.add_argument("--json", action="store_true", help="print a JSON array of stories")
    status = commands.add_parser("status", help="every feed with its state")
    with_config(status)
    status.add_argument("--json", action="store_true", help="print a JSON array")
    feeds = commands.add_parser("feeds", help="import feeds from OPML, export them as OPML")
    feeds_commands = feeds.add_subparsers(dest="feeds_command", required=True, metavar="ACTION")
    feeds_import = feeds_commands.add_parser(
        "import",
        help="add the feeds of an OPML file to the config",
        description="Adds a [[feeds]] entry for every feed of FILE whose URL is not configured "
        "yet (http/https, www. and a trailing slash do not count as different), with its "
        "folders and categories as tags. Existing text is kept as it is; nothing is written "
        "unless the result is a valid config.",
    )
    with_config(feeds_import)
    feeds_import.add_argument("file", type=Path, metavar="FILE.opml")
    feeds_import.add_argument(
        "--into",
        type=Path,
        metavar="FEEDS.toml",
        help="the config file to append to (default: the one that holds [[feeds]] entries, "
        "else the main config file)",
    )
    feeds_export = feeds_commands.add_parser(
        "export", help="print the configured feeds as an OPML 2.0 document"
    )
    with_config(feeds_export)
    feeds_export.add_argument(
        "--output", type=Path, metavar="FILE", help="write to FILE instead of stdout"
    )
    backup = commands.add_parser(
        "backup",
        help="copy the database while the daemon runs",
        description="Copies the database with SQLite's online backup API (safe while the "
        "daemon runs), checks the copy's integrity and renames it to DEST. DEST may be a "
        "directory: the copy is then named after the time.",
    )
    with_config(backup)
    backup.add_argument("dest", type=Path, metavar="DEST")
    return parser


def _duration(value: str) -> timedelta:
    # A command line has only strings: a bare number is seconds, as a config's integer is.
    seconds: object = int(value) if value.isascii() and value.isdigit() else value
    try:
        return timedelta(seconds=parse_duration(seconds))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _load(path: Path) -> Settings | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"watcher: invalid config: {exc}", file=sys.stderr)
        return None


def _check(path: Path, fetch: bool) -> int:
    settings = _load(path)
    if settings is None:
        return EXIT_INVALID_CONFIG
    files = ", ".join(str(f) for f in settings.files)
    print(
        f"config OK: {len(settings.feeds)} feeds, {len(settings.rules)} rules, "
        f"{len(settings.actors)} actors ({files})"
    )
    for warning in settings.warnings:
        print(f"watcher: warning: {warning}", file=sys.stderr)
    if not fetch:
        return EXIT_OK
    from watcher.check_command import ProgressBar, check_feeds, to_table

    progress = ProgressBar(len(settings.feeds))
    checks = asyncio.run(check_feeds(settings, progress.advance))
    print(to_table(checks))
    return EXIT_OK if all(check.ok for check in checks) else EXIT_FAILURE


def _match(args: argparse.Namespace) -> int:
    from watcher.errors import FetchError
    from watcher.match_command import (
        highlight_ansi,
        highlight_brackets,
        is_url,
        match_entries,
        read_local,
        read_url,
        to_json,
        to_text,
    )

    settings = _load(args.config)
    if settings is None:
        return EXIT_INVALID_CONFIG
    feeds = {feed.name: feed for feed in settings.feeds}
    if args.feed is not None and args.feed not in feeds:
        print(f"watcher: no feed named {args.feed!r} in the config", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    feed = feeds[args.feed] if args.feed else None
    try:
        if is_url(args.source):
            # The feed named, else the feed at this URL: fetched as the daemon fetches it,
            # and matched as its entries are (rules' feeds and languages filters).
            feed = feed or next((f for f in settings.feeds if f.url == args.source), None)
            entries = asyncio.run(
                read_url(
                    args.source,
                    timeout_s=settings.polling.timeout,
                    max_body_bytes=settings.polling.max_body_bytes,
                    user_agent=feed.user_agent if feed is not None else None,
                )
            )
        else:
            stdin = sys.stdin.buffer.read() if args.source == "-" else None
            entries = read_local(args.source, stdin=stdin)
    except FetchError as exc:  # it names the URL (its credentials masked)
        print(f"watcher: cannot read {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        print(f"watcher: cannot read {args.source}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    feed_name = feed.name if feed is not None else None
    language = args.language or (feed.language if feed is not None else None)
    _note_filters_left_out(settings, feed_name, language)
    matcher = compiled_rules(settings)
    results = match_entries(entries, matcher, feed=feed_name, language=language)
    if args.json:
        print(to_json(results))
    else:
        print(to_text(results, highlight_ansi if sys.stdout.isatty() else highlight_brackets))
    return EXIT_OK


def _note_filters_left_out(settings: Settings, feed: str | None, language: str | None) -> None:
    """Say which rules cannot hit for want of a feed or a language to filter on."""
    left_out = [
        rule.name
        for rule in settings.rules
        if (rule.feeds and feed is None) or (rule.languages and language is None)
    ]
    if left_out:
        print(
            f"watcher: note: {len(left_out)} rule(s) filter by feed or language and cannot "
            f"hit without --feed or --language: {', '.join(left_out)}",
            file=sys.stderr,
        )


def _replay(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from watcher.match_command import highlight_ansi, highlight_brackets
    from watcher.replay_command import find_rule, replay, to_json, to_text, unknown_rule

    settings = _load(args.config)
    if settings is None:
        return EXIT_INVALID_CONFIG
    names = [rule.name for rule in settings.rules]
    rule = None
    if args.rule is not None:
        rule = find_rule(args.rule, names)
        if rule is None:
            print(f"watcher: {unknown_rule(args.rule, names)}", file=sys.stderr)
            return EXIT_INVALID_CONFIG
    since = datetime.now(UTC) - args.since
    try:
        result = replay(settings, since=since, rule=rule)
    except StoreError as exc:
        print(f"watcher: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(to_json(result))
    else:
        mark = highlight_ansi if sys.stdout.isatty() else highlight_brackets
        print(to_text(result, mark, since=since, tz=ZoneInfo(settings.telegram.timezone)))
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from watcher.status_command import feed_statuses, to_json, to_table

    settings = _load(args.config)
    if settings is None:
        return EXIT_INVALID_CONFIG
    try:
        rows = asyncio.run(feed_statuses(settings))
    except StoreError as exc:
        print(f"watcher: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(to_json(rows) if args.json else to_table(rows))
    return EXIT_OK


def _backup(args: argparse.Namespace) -> int:
    from watcher.backup import backup_database

    settings = _load(args.config)
    if settings is None:
        return EXIT_INVALID_CONFIG
    try:
        report = backup_database(settings.storage.path, args.dest)
    except (StoreError, OSError) as exc:
        print(f"watcher: backup failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    counts = report.counts
    print(
        f"backed up {settings.storage.path} to {report.path}: {_size(report.size_bytes)}, "
        f"schema v{report.schema_version}, integrity ok, {counts.get('feeds', 0)} feeds, "
        f"{counts.get('entries', 0)} entries, {counts.get('outbox', 0)} outbox rows, "
        f"{counts.get('subscribers', 0)} subscribers ({report.seconds:.1f} s)"
    )
    return EXIT_OK


def _size(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def _feeds(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings is None:
        return EXIT_INVALID_CONFIG
    if args.feeds_command == "export":
        return _feeds_export(settings, args.output)
    return _feeds_import(settings, args.file, args.into)


def _feeds_export(settings: Settings, output: Path | None) -> int:
    from datetime import UTC, datetime

    from watcher.feeds_command import export_opml

    document = export_opml(settings, datetime.now(UTC))
    if output is None:
        sys.stdout.write(document)
        return EXIT_OK
    try:
        output.write_text(document, encoding="utf-8")
    except OSError as exc:
        print(f"watcher: cannot write {output}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"wrote {len(settings.feeds)} feeds to {output}")
    return EXIT_OK


def _feeds_import(settings: Settings, path: Path, into: Path | None) -> int:
    from watcher.feeds_command import import_opml
    from watcher.opml import OpmlError

    try:
        result = import_opml(settings, path.read_bytes(), into=into, source=path.name)
    except OpmlError as exc:
        print(f"watcher: {path}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except ConfigError as exc:
        print(f"watcher: nothing imported: {exc}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    except OSError as exc:
        print(f"watcher: nothing imported: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(result.summary())
    return EXIT_OK


def _run(path: Path, log_level: str | None, chosen_format: str | None) -> int:
    # Imported here so `watcher check` and `--version` stay quick and light.
    from watcher.app import Daemon
    from watcher.logs import log_format, setup_logging

    settings = _load(path)
    if settings is None:
        return EXIT_INVALID_CONFIG
    formatter = setup_logging(
        log_level or settings.logging.level,
        # argparse allowed only known names: log_format() finds each of them.
        fmt=(log_format(chosen_format) if chosen_format else None) or settings.logging.format,
    )
    daemon = Daemon(settings, environ=os.environ, log_formatter=formatter)
    try:
        return asyncio.run(daemon.run())
    except ConfigError as exc:  # the token file or credential could not be read
        print(f"watcher: {exc}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    except (StoreError, OSError) as exc:  # the database; the [http] port taken
        print(f"watcher: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except BrokenPipeError:
        # `watcher feeds export | head`: the reader has gone, which is not our error.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "check":
        return _check(args.config, args.fetch)
    if args.command == "run":
        return _run(args.config, args.log_level, args.log_format)
    if args.command == "match":
        return _match(args)
    if args.command == "replay":
        return _replay(args)
    if args.command == "status":
        return _status(args)
    if args.command == "feeds":
        return _feeds(args)
    if args.command == "backup":
        return _backup(args)
    raise AssertionError(f"unhandled command {args.command}")
