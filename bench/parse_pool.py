"""Where should feeds be parsed: a thread pool, a process pool, or inline on the event loop?

Parses N real news feeds (cycling the 17 fastfeedparser benchmark feeds from
../shared/data, or the 4 copied into tests/data when that folder is absent) through
watcher.parse_pool.FeedParser with each pool, and inline for reference, while a ticker task
wakes every 10 ms and records how late it woke: that lateness is what every other task of
the daemon (fetches, the bot, deliveries) suffers while parsing runs.

Each mode runs in a fresh interpreter, one after the other, so that none inherits another's
warm caches or competes with it for the cores. Two scenarios:
- saturated: all N feeds submitted at once (a burst of changed feeds);
- paced: one feed every 1/RATE s (RATE=17/s is 10,000 feeds polled every 10 minutes, all
  of them changed, the hash check skipping none).

Figures: wall time, CPU time (this process and, for the process pool, its workers, read from
/proc before they exit: Linux only), loop lag p50/p99/max, the first parse's latency
(cold start: the workers, started on first use), and peak RSS. Ends with one RESULT line.

    .venv/bin/python bench/parse_pool.py [--feeds 100] [--workers 2] [--rate 17]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FEED_DIR = "feeds-real/fastfeedparser-benchmark-en-news"
SOURCES = (ROOT.parent / "shared" / "data" / FEED_DIR, ROOT / "tests" / "data" / FEED_DIR)
MODES = ("thread", "process", "inline")
TICK_S = 0.010


def feed_files() -> list[Path]:
    for folder in SOURCES:
        files = sorted(folder.glob("*.xml"))
        if files:
            return files
    sys.exit(f"no feeds found in {' or '.join(map(str, SOURCES))}")


def cpu_seconds_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb_of(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_one(mode: str, n: int, workers: int, rate: float) -> dict[str, float]:
    from watcher.model import FetchResult
    from watcher.parse import parse_feed
    from watcher.parse_pool import FeedParser

    files = feed_files()
    bodies = [path.read_bytes() for path in files]
    results = [
        FetchResult(status=200, url=f"http://127.0.0.1/feed/{i}", body=bodies[i % len(bodies)])
        for i in range(n)
    ]
    parser = FeedParser(workers, pool=mode) if mode != "inline" else None  # type: ignore[arg-type]

    lateness: list[float] = []
    running = True

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while running:
            due = loop.time() + TICK_S
            await asyncio.sleep(TICK_S)
            lateness.append(max(0.0, loop.time() - due))

    tick_task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)  # the ticker's first wake is not part of the measurement
    lateness.clear()

    # Cold start: the first parse, pool start-up included (a tiny feed, so it is start-up).
    tiny = FetchResult(
        status=200, url="http://127.0.0.1/tiny", body=b"<rss version='2.0'><channel/></rss>"
    )
    started = time.perf_counter()
    if parser is not None:
        await parser.parse(tiny)
        if mode == "process":  # every worker started, not just the first
            await asyncio.gather(*(parser.parse(tiny) for _ in range(workers * 4)))
    else:
        parse_feed(tiny)
    cold_start_s = time.perf_counter() - started
    cold_lag_max_ms = max(lateness, default=0.0) * 1000

    async def parse(result: FetchResult, delay: float) -> int:
        await asyncio.sleep(delay)
        if parser is not None:
            return len((await parser.parse(result)).entries)
        await asyncio.sleep(0)  # inline: one feed per loop turn, the best inline can do
        return len(parse_feed(result).entries)

    worker_pids = list(parser.worker_pids) if parser is not None else []
    worker_cpu_before = sum(cpu_seconds_of(pid) for pid in worker_pids)

    lateness.clear()
    cpu_before = time.process_time()
    wall_before = time.perf_counter()
    entries = await asyncio.gather(
        *(parse(result, i / rate if rate else 0.0) for i, result in enumerate(results))
    )
    wall = time.perf_counter() - wall_before
    cpu = time.process_time() - cpu_before
    worker_cpu = sum(cpu_seconds_of(pid) for pid in worker_pids) - worker_cpu_before
    worker_rss = sum(rss_mb_of(pid) for pid in worker_pids)
    running = False
    await tick_task
    if parser is not None:
        parser.close()
    lag_ms = [late * 1000 for late in lateness]
    return {
        "feeds": n,
        "distinct_feeds": len(files),
        "entries": sum(entries),
        "wall_s": wall,
        "cpu_main_s": cpu,
        "cpu_workers_s": worker_cpu,
        "cpu_total_s": cpu + worker_cpu,
        "lag_p50_ms": statistics.median(lag_ms) if lag_ms else 0.0,
        "lag_p99_ms": percentile(lag_ms, 0.99),
        "lag_max_ms": max(lag_ms, default=0.0),
        "ticks": len(lag_ms),
        "cold_start_ms": cold_start_s * 1000,
        "cold_lag_max_ms": cold_lag_max_ms,
        "rss_main_mb": rss_mb_of(os.getpid()),
        "rss_workers_mb": worker_rss,
    }


def measure(mode: str, n: int, workers: int, rate: float) -> dict[str, float]:
    command = [sys.executable, __file__, "--one", mode, "--feeds", str(n)]
    command += ["--workers", str(workers), "--rate", str(rate)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def table(title: str, runs: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    header = (
        f"{'mode':8} {'wall s':>7} {'cpu s':>7} {'(workers)':>9} {'lag p50':>8} {'lag p99':>8}"
        f" {'lag max':>8} {'cold ms':>8} {'(lag)':>6} {'rss MB':>7} {'entries':>8}"
    )
    print(header)
    print("-" * len(header))
    for mode, f in runs.items():
        print(
            f"{mode:8} {f['wall_s']:7.2f} {f['cpu_total_s']:7.2f} {f['cpu_workers_s']:9.2f}"
            f" {f['lag_p50_ms']:8.1f} {f['lag_p99_ms']:8.1f} {f['lag_max_ms']:8.1f}"
            f" {f['cold_start_ms']:8.0f} {f['cold_lag_max_ms']:6.0f}"
            f" {f['rss_main_mb'] + f['rss_workers_mb']:7.0f} {f['entries']:8.0f}"
        )


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--feeds", type=int, default=100, help="feeds parsed per run")
    args.add_argument("--workers", type=int, default=2, help="pool size")
    args.add_argument("--rate", type=float, default=17.0, help="feeds/s in the paced run")
    args.add_argument("--one", choices=MODES, help=argparse.SUPPRESS)
    options = args.parse_args()
    if options.one:
        figures = asyncio.run(run_one(options.one, options.feeds, options.workers, options.rate))
        print(json.dumps(figures))
        return

    files = feed_files()
    print(
        f"{options.feeds} parses of {len(files)} real feeds from {files[0].parent}, "
        f"{options.workers} workers, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    saturated = {mode: measure(mode, options.feeds, options.workers, 0.0) for mode in MODES}
    table("saturated: all feeds submitted at once", saturated)
    paced = {mode: measure(mode, options.feeds, options.workers, options.rate) for mode in MODES}
    table(f"paced: {options.rate:g} feeds/s", paced)

    thread, process, inline = (saturated[mode] for mode in MODES)
    print("\nratios (saturated)")
    print(f"  wall    thread/inline {ratio(thread['wall_s'], inline['wall_s'])}", end="")
    print(f"  process/inline {ratio(process['wall_s'], inline['wall_s'])}")
    print(f"  cpu     thread/inline {ratio(thread['cpu_total_s'], inline['cpu_total_s'])}", end="")
    print(f"  process/inline {ratio(process['cpu_total_s'], inline['cpu_total_s'])}")
    print(f"  lag p99 thread/process {ratio(thread['lag_p99_ms'], process['lag_p99_ms'])}")
    print(
        f"  lag p99 paced: thread {paced['thread']['lag_p99_ms']:.1f} ms,"
        f" process {paced['process']['lag_p99_ms']:.1f} ms,"
        f" inline {paced['inline']['lag_p99_ms']:.1f} ms"
    )
    print(
        f"RESULT thread_wall_s={thread['wall_s']:.2f} process_wall_s={process['wall_s']:.2f}"
        f" inline_wall_s={inline['wall_s']:.2f} thread_lag_p99_ms={thread['lag_p99_ms']:.1f}"
        f" process_lag_p99_ms={process['lag_p99_ms']:.1f}"
    )


if __name__ == "__main__":
    main()
