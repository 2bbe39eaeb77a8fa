"""The fault matrix: every way a feed can misbehave, each on its own feed, while healthy
feeds run beside them in the real daemon. The daemon must keep running, keep the healthy
feeds on schedule, give each faulty feed the right state, stay small in memory and never
let a local file leak into an entry."""

from __future__ import annotations

import gzip
import json
import random
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.daemon import DaemonProcess, wait_for_polls
from tests.fakes.feed_server import FeedServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SEED_FEED = (ROOT / "seeds" / "turan-feed.xml").read_text(encoding="utf-8")
MARKER = "LOCAL-FILE-MARKER-7f3a9c"
FAILING_AFTER = 2
PEAK_RSS_LIMIT_MB = 150


def rss(items: str, *, declaration: str = "<?xml version='1.0' encoding='utf-8'?>") -> str:
    return f"{declaration}<rss version='2.0'><channel><title>t</title>{items}</channel></rss>"


def item(n: int, title: str, *, guid: str | None = None, link: str | None = None) -> str:
    guid_xml = f"<guid>{guid}</guid>" if guid else ""
    link_xml = f"<link>{link}</link>" if link else ""
    return f"<item><title>{title}</title>{guid_xml}{link_xml}</item>"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_faults(server: FeedServer, secret: Path) -> dict[str, str]:
    """Feed name → URL, one fault each."""
    xxe = (
        "<?xml version='1.0'?>"
        f"<!DOCTYPE rss [<!ENTITY xxe SYSTEM 'file://{secret}'>]>"
        "<rss version='2.0'><channel><title>t</title>"
        "<item><title>Leak &xxe;</title><guid>xxe-1</guid><description>&xxe;</description>"
        "</item></channel></rss>"
    )
    lol = "".join(f"<!ENTITY lol{n} '{('&lol' + str(n - 1) + ';') * 10}'>" for n in range(1, 10))
    laughs = (
        f"<?xml version='1.0'?><!DOCTYPE rss [<!ENTITY lol0 'lol'>{lol}]>"
        "<rss version='2.0'><channel><title>t</title><item><title>&lol9;</title>"
        "<guid>lol</guid></item></channel></rss>"
    )
    whole = rss(item(1, "One", guid="t1") + item(2, "Two", guid="t2") + item(3, "Three", guid="t3"))
    lying = rss(item(1, "Миротворцы покинули Ханкенди", guid="cp1")).encode("windows-1251")
    return {
        "http-500": server.serve("/500", "", status=500),
        "http-429": server.serve("/429", "", status=429, headers={"Retry-After": "3600"}),
        "http-503": server.serve("/503", "", status=503),
        "http-410": server.serve("/410", "", status=410),
        "refused": f"http://127.0.0.1:{closed_port()}/rss",
        "slow-drip": server.serve("/drip", "", drip_every_s=0.2),
        "huge-body": server.serve("/huge", "", filler_bytes=50_000_000),
        "gzip-bomb": server.serve("/bomb", gzip.compress(b"\0" * 30_000_000), gzip=True),
        "truncated": server.serve("/truncated", whole[: whole.index("<item><title>Three")]),
        "random-bytes": server.serve(
            "/random", random.Random(4).randbytes(20_000), content_type="application/rss+xml"
        ),
        "html-page": server.serve(
            "/html",
            "<!doctype html><html><head><title>Site</title></head><body><p>Hi</p></body></html>",
            content_type="text/html; charset=utf-8",
        ),
        "redirect-loop": server.serve("/loop", "", redirect_to="/loop"),
        "lying-charset": server.serve(
            "/lying", lying, content_type="application/rss+xml; charset=utf-8"
        ),
        "xxe": server.serve("/xxe", xxe),
        "billion-laughs": server.serve("/laughs", laughs),
        "empty-body": server.serve("/empty", ""),
        "no-guid-or-link": server.serve("/noid", rss(item(1, "First") + item(2, "Second"))),
        "duplicate-guids": server.serve(
            "/dupes",
            rss(
                "".join(
                    item(n, f"Story {n}", guid="same", link=f"https://dupes.example/{n}")
                    for n in range(3)
                )
            ),
        ),
    }


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as running:
        running.serve("/healthy-a", SEED_FEED)
        running.serve("/healthy-b", rss(item(1, "Calm day", guid="b1")))
        yield running


def status(config: Path) -> dict[str, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "status", "--config", str(config), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {row["name"]: row for row in json.loads(done.stdout)}


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


async def test_faulty_feeds_never_disturb_healthy_ones(tmp_path: Path, server: FeedServer) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(MARKER, encoding="utf-8")
    faults = serve_faults(server, secret)
    feeds = {"healthy-a": server.url("/healthy-a"), "healthy-b": server.url("/healthy-b")}
    feeds.update(faults)
    config = tmp_path / "watcher.toml"
    config.write_text(
        f"""
[storage]
path = "watcher.db"

[polling]
interval = "1s"
timeout = "2s"
max_body_bytes = 1048576
failing_after = {FAILING_AFTER}

[actors.russian_peacekeepers]
names = ["Russian peacekeepers", "Russian peacekeeping contingent"]

[[rules]]
name = "peacekeepers"
query = '@russian_peacekeepers'
"""
        + "".join(f'[[feeds]]\nname = "{name}"\nurl = "{url}"\n' for name, url in feeds.items()),
        encoding="utf-8",
    )
    daemon = DaemonProcess(config, {}, tmp_path)
    try:
        daemon.start()
        await daemon.wait_for_log("poll feed=healthy-a status=200")
        # News on a healthy feed while the faults go on: it is alerted.
        server.serve(
            "/healthy-a",
            SEED_FEED.replace(
                "<item>",
                "<item><title>Russian peacekeepers leave Khankendi</title>"
                "<guid>new-1</guid><link>https://turan.example/new-1</link></item><item>",
                1,
            ),
        )
        await daemon.wait_for_log("Russian peacekeepers leave Khankendi <https://turan.example")
        # Healthy feeds keep their schedule: polled again and again, about every 1-2 s.
        await wait_for_polls(server, "/healthy-b", 4, timeout=12)
        await wait_for_polls(server, "/500", 1, timeout=12)

        assert daemon.process is not None and daemon.process.poll() is None
        rows = status(config)
        memory = peak_rss_mb(daemon.process.pid)
        code, seconds = await daemon.stop()
    finally:
        daemon.kill()

    # The matrix as the operator would see it (`pytest -s` shows it; quoted in notes).
    print(
        f"\nfault matrix: daemon peak RSS {memory:.0f} MB, stopped in {seconds:.1f} s (rc {code})"
    )
    for name, row in rows.items():
        print(
            f"  {name:16} {row['state']:9} status={row['last_status']!s:4} "
            f"errors={row['consecutive_errors']} entries={row['entries_total']} "
            f"next={row['next_check'] or '-'} {(row['last_error'] or '')[:70]}"
        )
    assert code == 0 and seconds < 10, daemon.output
    assert memory < PEAK_RSS_LIMIT_MB, f"peak RSS {memory:.0f} MB"
    assert "Traceback" not in daemon.output, daemon.output

    def state(name: str) -> str:
        return str(rows[name]["state"])

    def error(name: str) -> str:
        return str(rows[name]["last_error"] or "")

    assert state("healthy-a") == state("healthy-b") == "ok"
    for name in ("http-500", "http-503", "refused"):
        assert state(name) == "failing", rows[name]
    assert rows["http-500"]["last_status"] == 500 and rows["http-503"]["last_status"] == 503
    # 429 with Retry-After: one failure, and nothing asked again for an hour.
    assert rows["http-429"]["consecutive_errors"] == 1
    assert rows["http-429"]["last_status"] == 429
    next_check = datetime.fromisoformat(rows["http-429"]["next_check"])
    assert next_check - datetime.now(UTC) > timedelta(minutes=55)  # Retry-After: 3600
    assert state("http-410") == "disabled"
    assert "timed out" in error("slow-drip")
    assert "limit" in error("huge-body") and "limit" in error("gzip-bomb")
    for name in ("random-bytes", "html-page", "empty-body"):
        assert "not a feed" in error(name), rows[name]
    assert "redirects" in error("redirect-loop")
    # Broken but recoverable documents: entries kept, the feed is fine.
    assert state("truncated") == "ok" and rows["truncated"]["entries_total"] == 2
    assert state("lying-charset") == "ok" and rows["lying-charset"]["entries_total"] == 1
    assert state("no-guid-or-link") == "ok" and rows["no-guid-or-link"]["entries_total"] == 2
    assert state("duplicate-guids") == "ok" and rows["duplicate-guids"]["entries_total"] == 3
    # Entity tricks are neutralised by the parser: fetched and parsed, nothing expanded.
    assert rows["billion-laughs"]["last_status"] in (200, 304)
    assert rows["xxe"]["last_status"] in (200, 304)

    with sqlite3.connect(tmp_path / "watcher.db") as db:
        stored = " ".join(
            str(value) for row in db.execute("SELECT title, summary FROM entries") for value in row
        )
    assert MARKER not in stored and MARKER not in daemon.output
