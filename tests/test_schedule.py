import random
from datetime import UTC, datetime, timedelta

from watcher.schedule import MAX_BACKOFF, next_check_after_failure, next_check_after_success

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
