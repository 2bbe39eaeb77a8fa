"""Times are stored as Unix seconds (REAL) and handed out as aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime


def to_db(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def from_db(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None
