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


def next_check_after_success(
    now: datetime, interval_s: int, rng: random.Random | None = None
) -> datetime:
    interval = timedelta(seconds=interval_s)
    return now + interval + _jitter(interval, rng or random.Random())


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
