"""`watcher run` with `[http] listen`: /metrics in the Prometheus text format (parsed with
prometheus-client's own parser) counts what the daemon did, and /healthz turns 503 while the
database is locked away from it and 200 again once it is free."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.daemon import DaemonProcess, news_feed, wait_for_polls, write_config
from tests.fakes.feed_server import FeedServer

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def wait_for_health(
    http: aiohttp.ClientSession,
    url: str,
    status: int,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        code, body = await get(http, url)
        if code == status:
            return body
        assert time.monotonic() < deadline, f"/healthz stayed {code}: {body}"
        await asyncio.sleep(0.2)


async def test_metrics_count_the_work_and_healthz_sees_a_locked_database(
    tmp_path: Path,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with FeedServer() as feeds, aiohttp.ClientSession() as http:
        feeds.serve("/apa.xml", news_feed(("1", "Old news")))
        config = write_config(
            tmp_path,
            {"apa": feeds.url("/apa.xml")},
            rules=(("peacekeepers", "peacekeepers", ()),),
            extra=f'[http]\nlisten = "127.0.0.1:{port}"\n',
        )
        daemon = DaemonProcess(config, {}, tmp_path)
        try:
            daemon.start()
            await daemon.wait_for_log("http listening")
            healthy = await wait_for_health(http, f"{base}/healthz", 200)
            assert healthy["status"] == "ok"
            await wait_for_polls(feeds, "/apa.xml", 1)
            before = samples((await get(http, f"{base}/metrics"))[1])

            feeds.serve(
                "/apa.xml",
                news_feed(("2", "Russian peacekeepers leave Khankendi"), ("1", "Old news")),
            )
            await wait_for_polls(feeds, "/apa.xml", 2)
            status, text = await get(http, f"{base}/metrics")
            assert status == 200
            found = samples(text)

            def grew(name: str, **labels: str) -> float:
                key = (name, frozenset(labels.items()))
                return found[key] - before.get(key, 0.0)

            # The first poll recorded "Old news" without alerting (a new feed's backlog).
            assert before[("watcher_new_entries_total", frozenset())] == 1
            assert grew("watcher_new_entries_total") == 1
            assert grew("watcher_rule_hits_total", rule="peacekeepers") == 1
            assert grew("watcher_console_alerts_total") == 1
            assert grew("watcher_polls_total", outcome="new_entries") == 1
            assert found[("watcher_feeds", frozenset({("state", "ok")}))] == 1
            lag = found[("watcher_event_loop_lag_seconds_count", frozenset())]
            assert lag > 0

            # Another process holds the write lock: the daemon could not record anything.
            locker = sqlite3.connect(tmp_path / "watcher.db", isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")
            try:
                unhealthy = await wait_for_health(http, f"{base}/healthz", 503)
                assert unhealthy["status"] == "unhealthy"
                assert any(reason.startswith("database") for reason in unhealthy["reasons"])
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            await wait_for_health(http, f"{base}/healthz", 200)

            code, _ = await daemon.stop()
            assert code == 0
        finally:
            daemon.kill()
