"""`watcher backup DEST`: a consistent copy of the live database while the daemon runs.

SQLite's online backup API copies the database page by page. Run in steps on its own, it
starts over whenever another connection writes between two steps, so beside a daemon that
writes every few seconds it might never finish. Holding one read transaction on the source
for the whole copy pins a snapshot instead: in WAL mode that blocks no writer (they append
to the WAL; only checkpoints wait for the copy to end), and every step reads the same
consistent state. A short pause after each step leaves disk and CPU to the daemon.

The copy is written to DEST.tmp, checked with `PRAGMA integrity_check` and only then renamed
over DEST, so DEST is always either the previous backup or a complete, checked one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from watcher.errors import StoreError

PAGES_PER_STEP = 256  # 1 MiB with SQLite's default 4 KiB pages
PAUSE_S = 0.005
_COUNTED_TABLES = ("feeds", "entries", "outbox", "subscribers", "held_alerts")


@dataclass(frozen=True, slots=True)
class BackupReport:
    path: Path
    size_bytes: int
    schema_version: int
    counts: dict[str, int]  # rows per table in the copy
    seconds: float


# The files SQLite keeps beside a database: replaced, they lose or corrupt what it holds.
_COMPANIONS = ("", "-wal", "-shm", "-journal")


def _is_part_of(dest: Path, source: Path) -> bool:
    """Whether `dest` is the database at `source` or one of its companion files, however
    it is spelt (symlinks, `..`)."""
    for suffix in _COMPANIONS:
        live = source.with_name(source.name + suffix)
        if dest.exists() and live.exists() and dest.samefile(live):
            return True
        if dest.resolve() == live.resolve():  # a companion not there yet counts too
            return True
    return False


def backup_database(
    source: Path,
    dest: Path,
    *,
    pages_per_step: int = PAGES_PER_STEP,
    pause_s: float = PAUSE_S,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> BackupReport:
    """Copy the database at `source` to `dest` (a file, or a directory to put a
    timestamped file in). Blocking: call it from a thread when on an event loop."""
    started = time.monotonic()
    if not source.is_file():
        raise StoreError(f"no database at {source}")
    if dest.is_dir():
        dest = dest / f"{source.stem}-{now():%Y%m%dT%H%M%SZ}{source.suffix or '.db'}"
    if _is_part_of(dest, source):
        raise StoreError(f"{dest} is the live database; back up to another path")
    partial = dest.with_name(dest.name + ".tmp")
    _remove(partial)
    try:
        # The copy holds subscribers' chat ids: readable by its owner only, whatever the
        # umask (SQLite gives its journal the same mode).
        os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        _copy(source, partial, pages_per_step, pause_s)
        version, counts = _check(partial)
        _fsync(partial)
        partial.replace(dest)
        _fsync(dest.parent)
    except BaseException:
        _remove(partial)
        raise
    return BackupReport(
        path=dest,
        size_bytes=dest.stat().st_size,
        schema_version=version,
        counts=counts,
        seconds=time.monotonic() - started,
    )


def _copy(source: Path, partial: Path, pages_per_step: int, pause_s: float) -> None:
    # mode=rw: never create an empty database where the live one is missing.
    src = sqlite3.connect(f"{source.absolute().as_uri()}?mode=rw", uri=True, isolation_level=None)
    try:
        src.execute("PRAGMA busy_timeout = 5000")
        dst = sqlite3.connect(partial, isolation_level=None)
        try:
            src.execute("BEGIN")
            src.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # pins the snapshot
            src.backup(
                dst,
                pages=pages_per_step,
                # Python's `sleep=` only applies after SQLITE_BUSY; this pauses every step.
                progress=lambda _status, _remaining, _total: time.sleep(pause_s),
            )
            src.execute("COMMIT")
            # The copy keeps the source's WAL flag; make it one self-contained file.
            dst.execute("PRAGMA journal_mode = DELETE")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot back up {source}: {exc}") from exc
    finally:
        src.close()


def _check(path: Path) -> tuple[int, dict[str, int]]:
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            problems = [row[0] for row in db.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                shown = "; ".join(problems[:5])
                raise StoreError(f"the copy failed its integrity check: {shown}")
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_schema")}
            counts = {
                table: int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                for table in _COUNTED_TABLES
                if table in tables
            }
    except sqlite3.Error as exc:
        raise StoreError(f"cannot check the copy {path}: {exc}") from exc
    return version, counts


def _fsync(path: Path) -> None:
    """Make the copy (or its directory entry) durable before calling it a backup."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    for leftover in (path, Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
