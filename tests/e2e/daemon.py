"""Running the real `watcher run` as a subprocess, and reading what it printed."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

from tests.fakes.feed_server import FeedServer


class DaemonProcess:
    """`python -m watcher run --config CONFIG` with stdout and stderr captured to files
    (pipes could fill up and stall the daemon while the test waits on something else)."""

    def __init__(self, config: Path, env: dict[str, str], workdir: Path, name: str = "run") -> None:
        self.config = config
        self.env = env
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM")}
        env.update(self.env)
        env["PYTHONUNBUFFERED"] = "1"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "watcher", "run", "--config", str(self.config)],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
            )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    async def wait_for_log(self, fragment: str, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while fragment not in self.output:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited ({self.process.returncode}):\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{fragment!r} not logged within {timeout}s:\n{self.output}")
            await asyncio.sleep(0.05)

    async def stop(self, signum: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, float]:  # noqa: ASYNC109
        """Send `signum`; return (exit code, seconds it took to exit)."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signum)
        while self.process.poll() is None:
            if time.monotonic() - started > timeout:
                self.process.kill()
                self.process.wait()
                raise AssertionError(
                    f"daemon still running {timeout}s after signal:\n{self.output}"
                )
            await asyncio.sleep(0.05)
        return self.process.returncode, time.monotonic() - started

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


async def wait_for_polls(server: FeedServer, path: str, n: int, timeout: float = 15.0) -> None:  # noqa: ASYNC109
    """Wait until `path` was requested `n` more times. Polls of one feed never overlap, so
    once the second request after a change arrives, the poll that saw the change is done."""
    target = len(server.hits(path)) + n
    deadline = time.monotonic() + timeout
    while len(server.hits(path)) < target:
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} polled {len(server.hits(path))} times, wanted {target}")
        await asyncio.sleep(0.05)


def news_feed(*items: tuple[str, str]) -> str:
    """An RSS document of (guid, title) items, newest first, each linked by its guid."""
    body = "".join(
        f"<item><title>{title}</title><guid>{guid}</guid>"
        f"<link>https://apa.example/{guid}</link></item>"
        for guid, title in items
    )
    return f"<rss version='2.0'><channel><title>APA</title>{body}</channel></rss>"


def write_config(
    folder: Path,
    feeds: dict[str, str],
    *,
    api: str | None = None,
    token_env: str = "WATCHER_E2E_TOKEN",
    rules: tuple[tuple[str, str, tuple[int, ...]], ...] = (),
    telegram: str = "",
    extra: str = "",
) -> Path:
    """`folder/watcher.toml` for a test daemon: the database beside it, polling every
    second, the feeds (name → URL), the rules (name, query, chats), a [telegram] table
    when `api` is given (plus `telegram` lines), and `extra` TOML tables."""
    text = '[storage]\npath = "watcher.db"\n[polling]\ninterval = "1s"\n'
    if api is not None:
        text += f'[telegram]\napi_base_url = "{api}"\ntoken_env = "{token_env}"\n{telegram}'
    text += extra
    for name, url in feeds.items():
        text += f'[[feeds]]\nname = "{name}"\nurl = "{url}"\n'
    for name, query, chats in rules:
        text += f"[[rules]]\nname = \"{name}\"\nquery = '{query}'\nchats = {list(chats)}\n"
    config = folder / "watcher.toml"
    config.write_text(text, encoding="utf-8")
    return config


async def wait_for_empty_outbox(database: Path, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Wait until the running daemon's outbox holds no pending row: all it queued has gone
    out (or been given up), so what reached the fake Telegram can be counted, duplicates
    and all, with nothing still to come."""

    def pending() -> int:
        with closing(sqlite3.connect(database, timeout=5)) as db:
            row = db.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()
            return int(row[0])

    deadline = time.monotonic() + timeout
    while (left := await asyncio.to_thread(pending)) > 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"{left} outbox rows still pending after {timeout}s")
        await asyncio.sleep(0.1)
