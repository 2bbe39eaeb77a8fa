"""PURE: when a feed should be checked next.

Takes the clock and the outcome, returns a time; no I/O, so every policy here is tested
with plain numbers. Jitter keeps feeds that share an interval from polling in lockstep.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

# Backoff after failures doubles from the feed's interval up to this ceiling (or the interval
# itself, for feeds polled less often than that).
MAX_BACKOFF = timedelta(hours=6)
JITTER_FRACTION = 0.1
MAX_JITTER = timedelta(minutes=2)


def _jitter(interval: timedelta, rng: random.Random) -> timedelta:
    ceiling = min(interval * JITTER_FRACTION, MAX_JITTER)
    return ceiling * rng.random()


WEEK_S = 7 * 24 * 3600


def auto_interval(new_entries_last_week: int, *, min_s: int, max_s: int) -> int:
    """`interval = "auto"`: poll about twice as often as the feed published over the last
    seven days, between the bounds. A silent feed drifts to `max_s`, a busy one to `min_s`."""
    if new_entries_last_week <= 0:
        return max_s
    return max(min_s, min(max_s, WEEK_S // (2 * new_entries_last_week)))


def success_delay(interval_s: int, *, fresh_for_s: float | None = None, max_s: int) -> float:
    """Seconds until the next check: the interval, unless the publisher says (Cache-Control,
    Expires, RSS <ttl>) that nothing will change for longer — then that, up to `max_s`.
    A hint never makes us poll more often than configured."""
    delay = float(interval_s)
    if fresh_for_s is not None and fresh_for_s > delay:
        delay = min(fresh_for_s, float(max(max_s, interval_s)))
    return delay


def next_check_after_success(
    now: datetime,
    interval_s: int,
    rng: random.Random | None = None,
    *,
    fresh_for_s: float | None = None,
    max_s: int | None = None,
) -> datetime:
    seconds = success_delay(
        interval_s, fresh_for_s=fresh_for_s, max_s=max_s if max_s is not None else interval_s
    )
    delay = timedelta(seconds=seconds)
    return now + delay + _jitter(delay, rng or random.Random())


def next_check_after_failure(
    now: datetime,
    interval_s: int,
    consecutive_errors: int,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> datetime:
    """`consecutive_errors` counts this failure (1 for the first)."""
    interval = timedelta(seconds=interval_s)
    ceiling = max(MAX_BACKOFF, interval)
    exponent = min(max(consecutive_errors - 1, 0), 20)
    delay = min(interval * (1 << exponent), ceiling)
    if retry_after_s is not None:
        delay = max(delay, timedelta(seconds=retry_after_s))
    return now + delay + _jitter(interval, rng or random.Random())
