"""The `watcher` command: run the daemon, check a config."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from watcher import __version__
from watcher.config import Settings, compiled_rules, load_config
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
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="overrides [logging] level of the config (default: INFO)",
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
    status = commands.add_parser("status", help="every feed with its state")
    with_config(status)
    status.add_argument("--json", action="store_true", help="print a JSON array")
    return parser


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
    language = args.language or (feeds[args.feed].language if args.feed else None)
    try:
        if is_url(args.source):
            entries = asyncio.run(
                read_url(
                    args.source,
                    timeout_s=settings.polling.timeout,
                    max_body_bytes=settings.polling.max_body_bytes,
                )
            )
        else:
            stdin = sys.stdin.buffer.read() if args.source == "-" else None
            entries = read_local(args.source, stdin=stdin)
    except (OSError, FetchError) as exc:
        print(f"watcher: cannot read {args.source}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    matcher = compiled_rules(settings)
    results = match_entries(entries, matcher, feed=args.feed, language=language)
    if args.json:
        print(to_json(results))
    else:
        print(to_text(results, highlight_ansi if sys.stdout.isatty() else highlight_brackets))
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


def _run(path: Path, log_level: str | None) -> int:
    # Imported here so `watcher check` and `--version` stay quick and light.
    from watcher.app import Daemon
    from watcher.logs import setup_logging

    settings = _load(path)
    if settings is None:
        return EXIT_INVALID_CONFIG
    formatter = setup_logging(log_level or settings.logging.level)
    daemon = Daemon(settings, environ=os.environ, log_formatter=formatter)
    try:
        return asyncio.run(daemon.run())
    except StoreError as exc:
        print(f"watcher: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return _check(args.config, args.fetch)
    if args.command == "run":
        return _run(args.config, args.log_level)
    if args.command == "match":
        return _match(args)
    if args.command == "status":
        return _status(args)
    raise AssertionError(f"unhandled command {args.command}")
