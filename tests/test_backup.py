"""Online backup of the live database, under load, and restoring it."""

import asyncio
import shutil
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.backup import backup_database
from watcher.cli import main
from watcher.errors import StoreError
from watcher.model import Alert, Entry, FeedDef
from watcher.store import Store
from watcher.store.schema import SCHEMA_VERSION

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
FEEDS = [FeedDef("apa", "https://apa.az/rss", 600), FeedDef("trend", "https://trend.az/rss", 600)]


def entry(n: int) -> Entry:
    return Entry(f"g{n}", f"https://apa.az/news/{n}", f"Title {n}", "Summary " * 40)


async def record(store: Store, numbers: range) -> None:
    """Entries and their alerts in one transaction, as the pipeline writes them."""
    state = await store.feed("apa")
    assert state is not None
    async with store.write() as tx:
        added = await tx.insert_entries(state.id, [entry(n) for n in numbers], NOW)
        await tx.enqueue([Alert(new.id, 42, f"alert {new.entry.guid}") for new in added], NOW)


def names_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777


def restore(backup: Path, path: Path) -> None:
    """What the operator does, with the daemon stopped: the backup replaces the database,
    and the old database's WAL and shared-memory files go (they belong to the old file)."""
    shutil.copyfile(backup, path)
    for leftover in ("-wal", "-shm"):
        Path(f"{path}{leftover}").unlink(missing_ok=True)


@pytest.fixture
async def live(tmp_path: Path):
    async with await Store.open(tmp_path / "live.db") as store:
        await store.sync_feeds(FEEDS, NOW)
        yield store


async def test_a_backup_under_load_is_a_consistent_snapshot(live: Store, tmp_path: Path) -> None:
    await record(live, range(3000))  # a few MB: the copy takes many steps
    dest = tmp_path / "backup.db"
    written_during_backup = 0
    copying = asyncio.create_task(
        asyncio.to_thread(backup_database, live.path, dest, pages_per_step=16, pause_s=0.001)
    )
    n = 3000
    deadline = time.monotonic() + 20
    while not copying.done() and time.monotonic() < deadline:
        await record(live, range(n, n + 1))
        n += 1
        written_during_backup += not copying.done()
    # A backup that starts over whenever the daemon writes would never get here.
    assert copying.done(), "the backup did not finish while the daemon kept writing"
    report = await copying
    assert written_during_backup >= 5  # the daemon's writers were not held up
    assert names_in(tmp_path) == ["backup.db", "live.db", "live.db-shm", "live.db-wal"]
    assert mode_of(dest) == 0o600
    with sqlite3.connect(dest) as db:  # one self-contained file
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)

    async with await Store.open(dest) as copy:
        assert await copy.count_entries() == report.counts["entries"] >= 3000
        assert await copy.outbox_counts() == {"pending": report.counts["entries"]}
        rows = await copy._fetchall("SELECT guid FROM entries ORDER BY id", ())
    # A snapshot: every entry up to a point, each with its alert, nothing after it.
    assert [row[0] for row in rows] == [f"g{i}" for i in range(len(rows))]
    assert await live.count_entries() == n > len(rows)
    assert report.schema_version == SCHEMA_VERSION and report.size_bytes > 1_000_000
    assert report.counts["feeds"] == 2
    with sqlite3.connect(dest) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


async def test_restoring_a_backup_keeps_what_it_had_seen(tmp_path: Path) -> None:
    path = tmp_path / "var" / "watcher.db"
    backup = tmp_path / "backup.db"
    async with await Store.open(path) as daemon:
        await daemon.sync_feeds(FEEDS, NOW)
        await record(daemon, range(5))
        await asyncio.to_thread(backup_database, path, backup)
        await record(daemon, range(5, 7))  # after the backup: lost by the restore
    restore(backup, path)

    async with await Store.open(path) as daemon:
        apa, trend = await daemon.feed("apa"), await daemon.feed("trend")
        assert apa is not None and trend is not None
        async with daemon.write() as tx:
            new = await tx.insert_entries(apa.id, [entry(n) for n in range(8)], NOW)
            # The same articles in another feed are known by their links.
            elsewhere = await tx.insert_entries(trend.id, [entry(n) for n in range(5)], NOW)
        assert [n.entry.guid for n in new] == ["g5", "g6", "g7"]
        assert elsewhere == []
        assert await daemon.outbox_counts() == {"pending": 5}


def test_a_damaged_database_fails_the_check_and_leaves_no_backup(tmp_path: Path) -> None:
    source = tmp_path / "damaged.db"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.execute("CREATE INDEX t_v ON t(v)")
        db.executemany("INSERT INTO t (v) VALUES (?)", [(f"value {n:05}",) for n in range(3000)])
    data = bytearray(source.read_bytes())
    page = 4096
    last = len(data) - page  # the index's pages come last: scramble one
    data[last + 100 : last + 400] = bytes(range(256)) + bytes(44)
    source.write_bytes(bytes(data))
    dest = tmp_path / "out.db"
    with pytest.raises(StoreError, match=r"integrity check|malformed"):
        backup_database(source, dest)
    assert names_in(tmp_path) == ["damaged.db"]


def test_refuses_to_overwrite_the_live_database(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    sqlite3.connect(path).close()
    with pytest.raises(StoreError, match="is the live database"):
        backup_database(path, tmp_path / "." / "w.db")


@pytest.mark.parametrize("companion", ["-wal", "-shm", "-journal"])
def test_refuses_to_overwrite_a_file_sqlite_keeps_beside_the_database(
    tmp_path: Path, companion: str
) -> None:
    # Renamed over the live write-ahead log, a backup lost every commit not yet in the file.
    path = tmp_path / "w.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(StoreError, match="is the live database"):
        backup_database(path, tmp_path / f"w.db{companion}")


def test_a_missing_database_is_reported_not_created(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no database at"):
        backup_database(tmp_path / "nope.db", tmp_path / "copy.db")
    assert not (tmp_path / "nope.db").exists()


async def test_a_directory_destination_gets_a_dated_file(live: Store, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    report = await asyncio.to_thread(
        backup_database, live.path, folder, now=lambda: NOW + timedelta(seconds=5)
    )
    assert report.path == folder / "live-20261128T120005Z.db"
    assert report.path.is_file()


def test_the_backup_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "watcher.toml"
    config.write_text(
        '[storage]\npath = "w.db"\n\n[[feeds]]\nname = "apa"\nurl = "https://apa.az/rss"\n',
        encoding="utf-8",
    )

    async def fill() -> None:
        async with await Store.open(tmp_path / "w.db") as store:
            await store.sync_feeds(FEEDS, NOW)
            await record(store, range(3))

    asyncio.run(fill())
    assert main(["backup", "--config", str(config), str(tmp_path / "b.db")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"backed up {tmp_path / 'w.db'} to {tmp_path / 'b.db'}: ")
    assert "2 feeds, 3 entries, 3 outbox rows, 0 subscribers" in out

    assert main(["backup", "--config", str(config), str(tmp_path / "w.db")]) == 1
    assert "is the live database" in capsys.readouterr().err
