"""`watcher status`: every configured feed with its state, read from the database.

Safe beside a running daemon: it only reads (SQLite in WAL mode lets readers and the one
writer work at once).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from watcher.config import Settings
from watcher.model import FeedState
from watcher.redaction import display_url
from watcher.store import Store


def feed_state_name(state: FeedState | None, failing_after: int) -> str:
    """disabled (410 Gone) > failing (the threshold reached) > new (never fetched
    successfully yet) > ok."""
    if state is None:
        return "new"
    if state.disabled_reason is not None:
        return "disabled"
    if state.consecutive_errors >= failing_after:
        return "failing"
    if state.last_success_at is None:
        return "new"
    return "ok"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


async def feed_statuses(settings: Settings) -> list[dict[str, Any]]:
    """One dict per configured feed, in config order (the `--json` contract)."""
    states: dict[str, FeedState] = {}
    counts: dict[int, int] = {}
    if settings.storage.path.exists():
        opened = Store.open_read_only(settings.storage.path, then="look again")
        async with await opened as store:
            states = {state.name: state for state in await store.feeds()}
            counts = await store.entry_counts()
    rows: list[dict[str, Any]] = []
    for feed in settings.feeds:
        state = states.get(feed.name)
        rows.append(
            {
                "name": feed.name,
                "url": display_url(state.url if state is not None else feed.url),
                "state": feed_state_name(state, settings.polling.failing_after),
                "last_status": state.last_status if state else None,
                "last_error": state.last_error if state else None,
                "consecutive_errors": state.consecutive_errors if state else 0,
                "next_check": _iso(state.next_check_at) if state else None,
                "last_success": _iso(state.last_success_at) if state else None,
                "entries_total": counts.get(state.id, 0) if state else 0,
            }
        )
    return rows


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), ensure_ascii=False, indent=2)


def _short_time(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else "-"


def to_table(rows: Sequence[dict[str, Any]]) -> str:
    header = ("FEED", "STATE", "HTTP", "ERRORS", "ENTRIES", "LAST SUCCESS", "NEXT CHECK", "ERROR")
    lines = [
        (
            row["name"],
            row["state"],
            str(row["last_status"] or "-"),
            str(row["consecutive_errors"]),
            str(row["entries_total"]),
            _short_time(row["last_success"]),
            _short_time(row["next_check"]),
            (row["last_error"] or "")[:60],
        )
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    rendered = [
        "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
        for cells in [header, *lines]
    ]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    return "\n".join([*rendered, "", f"{len(rows)} feeds: {summary or 'none'}"])
