"""`watcher status`: feed states as the operator reads them, from a real database."""

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.config import load_config
from watcher.model import Entry, FeedSuccess
from watcher.store import Store

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "watcher.toml"
    path.write_text(
        """
[polling]
failing_after = 2
"""
        + "".join(
            f'[[feeds]]\nname = "{name}"\nurl = "https://{name}.example/rss"\n'
            for name in ("fresh", "healthy", "broken", "gone", "unseen")
        ),
        encoding="utf-8",
    )
    return path


async def prepare(config: Path) -> None:
    settings = load_config(config)
    async with await Store.open(settings.storage.path) as store:
        await store.sync_feeds(settings.feeds[:4], NOW)
        ids = {state.name: state.id for state in await store.feeds()}
        async with store.write() as tx:
            await tx.insert_entries(
                ids["healthy"],
                [Entry(f"g{n}", f"https://healthy.example/{n}", f"t{n}", "") for n in range(3)],
                NOW,
            )
            await tx.feed_succeeded(
                ids["healthy"],
                FeedSuccess(
                    checked_at=NOW,
                    status=200,
                    etag=None,
                    last_modified=None,
                    body_hash=None,
                    next_check_at=NOW + timedelta(minutes=10),
                ),
            )
            for _ in range(2):
                await tx.feed_failed(
                    ids["broken"], now=NOW, status=503, error="HTTP 503", next_check_at=NOW
                )
            await tx.feed_disabled(ids["gone"], now=NOW, status=410, reason="HTTP 410 Gone")


def test_json_gives_every_configured_feed_with_its_state(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(prepare(config))
    assert main(["status", "--config", str(config), "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert list(rows) == ["fresh", "healthy", "broken", "gone", "unseen"]
    assert {name: row["state"] for name, row in rows.items()} == {
        "fresh": "new",
        "healthy": "ok",
        "broken": "failing",
        "gone": "disabled",
        "unseen": "new",
    }
    assert rows["healthy"] == {
        "name": "healthy",
        "url": "https://healthy.example/rss",
        "state": "ok",
        "last_status": 200,
        "last_error": None,
        "consecutive_errors": 0,
        "next_check": "2026-11-28T12:10:00+00:00",
        "last_success": "2026-11-28T12:00:00+00:00",
        "entries_total": 3,
    }
    assert (rows["broken"]["consecutive_errors"], rows["broken"]["last_status"]) == (2, 503)
    assert rows["gone"]["last_error"] == "HTTP 410 Gone"
    assert rows["unseen"]["next_check"] is None and rows["unseen"]["entries_total"] == 0


def test_table_for_people(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(prepare(config))
    assert main(["status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "FEED",
        "STATE",
        "HTTP",
        "ERRORS",
        "ENTRIES",
        "LAST",
        "SUCCESS",
        "NEXT",
        "CHECK",
        "ERROR",
    ]
    assert "5 feeds: 1 disabled, 1 failing, 2 new, 1 ok" in out


def test_without_a_database_every_feed_is_new(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--config", str(config), "--json"]) == 0
    assert {row["state"] for row in json.loads(capsys.readouterr().out)} == {"new"}
    assert not (config.parent / "watcher.db").exists()


def test_status_never_writes_not_even_to_upgrade_an_older_database(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `watcher status` between `make install` and the restart: an upgrade here would lock
    # out the old daemon still running.
    from watcher.store.schema import MIGRATIONS

    database = config.parent / "watcher.db"
    with sqlite3.connect(database, isolation_level=None) as db:
        for number in range(5):
            MIGRATIONS[number](db)
            db.execute(f"PRAGMA user_version = {number + 1}")
    before = database.read_bytes()
    assert main(["status", "--config", str(config)]) == 1
    assert "older than this Watcher's" in capsys.readouterr().err
    assert database.read_bytes() == before
    assert not (config.parent / "watcher.db-wal").exists()


@pytest.mark.parametrize("kind", ["empty file", "not a database", "a folder"])
def test_status_on_what_is_no_database_says_so(
    config: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    database = config.parent / "watcher.db"
    if kind == "a folder":
        database.mkdir()
    else:
        database.write_bytes(b"" if kind == "empty file" else b"\x07" * 4096)
    assert main(["status", "--config", str(config)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("watcher: ") and "Traceback" not in error
    if kind != "a folder":
        assert database.stat().st_size == (0 if kind == "empty file" else 4096)


def test_status_beside_a_stopped_daemon_leaves_no_files_behind(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Files it left (as whoever ran `sudo watcher status`) would keep the service's own
    # user from writing its database.
    asyncio.run(prepare(config))
    folder = config.parent
    before = sorted(path.name for path in folder.iterdir())
    assert "watcher.db-wal" not in before and "watcher.db-shm" not in before
    assert main(["status", "--config", str(config)]) == 0
    assert sorted(path.name for path in folder.iterdir()) == before
