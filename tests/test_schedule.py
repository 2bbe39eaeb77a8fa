import random
from datetime import UTC, datetime, timedelta

from watcher.schedule import (
    MAX_BACKOFF,
    auto_interval,
    next_check_after_failure,
    next_check_after_success,
    success_delay,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_success_waits_the_interval_plus_bounded_jitter() -> None:
    rng = random.Random(1)
    for _ in range(200):
        delay = next_check_after_success(NOW, 600, rng) - NOW
        assert timedelta(seconds=600) <= delay <= timedelta(seconds=660)


def test_jitter_spreads_feeds_with_the_same_interval() -> None:
    rng = random.Random(2)
    times = {next_check_after_success(NOW, 600, rng) for _ in range(50)}
    assert len(times) == 50


def test_failures_back_off_exponentially_up_to_a_ceiling() -> None:
    rng = random.Random(3)
    delays = [next_check_after_failure(NOW, 60, errors, rng=rng) - NOW for errors in range(1, 15)]
    assert delays[0] < timedelta(seconds=70)
    assert timedelta(seconds=120) <= delays[1] < timedelta(seconds=130)
    assert timedelta(seconds=240) <= delays[2] < timedelta(seconds=250)
    assert all(d <= MAX_BACKOFF + timedelta(seconds=6) for d in delays)
    assert delays[-1] >= MAX_BACKOFF


def test_retry_after_is_never_undercut() -> None:
    delay = next_check_after_failure(NOW, 60, 1, retry_after_s=3600, rng=random.Random(4)) - NOW
    assert delay >= timedelta(hours=1)


def test_a_daily_feed_backs_off_no_less_than_its_interval() -> None:
    delay = next_check_after_failure(NOW, 86400, 5, rng=random.Random(5)) - NOW
    assert delay >= timedelta(days=1)


def test_a_longer_freshness_hint_is_respected_up_to_the_maximum() -> None:
    assert success_delay(300, fresh_for_s=900, max_s=3600) == 900
    assert success_delay(300, fresh_for_s=86400, max_s=3600) == 3600
    assert success_delay(300, fresh_for_s=60, max_s=3600) == 300  # never more often
    assert success_delay(300, fresh_for_s=None, max_s=3600) == 300
    assert success_delay(7200, fresh_for_s=86400, max_s=3600) == 7200


def test_next_check_applies_the_hint_with_jitter() -> None:
    delay = next_check_after_success(NOW, 300, random.Random(6), fresh_for_s=900, max_s=3600)
    assert timedelta(seconds=900) <= delay - NOW <= timedelta(seconds=900 + 90)


def test_auto_interval_follows_how_often_the_feed_publishes() -> None:
    assert auto_interval(0, min_s=60, max_s=3600) == 3600
    assert auto_interval(7, min_s=60, max_s=86400) == 43200  # daily → twice a day
    assert auto_interval(7 * 24, min_s=60, max_s=3600) == 1800  # hourly → every 30 min
    assert auto_interval(100_000, min_s=60, max_s=3600) == 60
