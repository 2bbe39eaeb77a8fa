"""The `watcher` command: run the daemon, check a config."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from watcher import __version__
from watcher.config import Settings, load_config
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
    return parser


def _load(path: Path) -> Settings | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"watcher: invalid config: {exc}", file=sys.stderr)
        return None


def _check(path: Path) -> int:
    settings = _load(path)
    if settings is None:
        return EXIT_INVALID_CONFIG
    files = ", ".join(str(f) for f in settings.files)
    print(
        f"config OK: {len(settings.feeds)} feeds, {len(settings.rules)} rules, "
        f"{len(settings.actors)} actors ({files})"
    )
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
        return _check(args.config)
    if args.command == "run":
        return _run(args.config, args.log_level)
    raise AssertionError(f"unhandled command {args.command}")
