"""One full polling cycle of the real daemon over 10,000 feeds, against two baselines.

A local aiohttp server in its own process (bench/_feedfarm.py) serves N feeds cycled from real
news feeds (tests/data/feeds-real/fastfeedparser-benchmark-en-news), spread over many loopback
addresses: 80% answer 304, 15% answer 200 with an unchanged body and no validators, 5% have
3 new entries. Three measurements, each in a fresh interpreter, one after the other:

- the daemon: watcher.app.Daemon, as `watcher run` starts it, on a SQLite file in a temp dir
  with a config of N feeds (TOML read by load_config; the rules of config/rules.toml; no
  token, so alerts go to the console). Its store is primed through watcher.store with every
  feed's state as after a successful poll (validators, body hash, and the entries of the feeds
  whose bodies change; --full-history: of every feed) instead of running a real first cycle,
  which parses every feed: about ten minutes of CPU here. A warm-up cycle over the first 5% of
  the feeds starts the daemon and its parse workers; then every feed is made due (sqlite3) and
  the measured cycle runs until every feed has been polled (counted from the daemon's
  `poll …` log lines);
- (b) the limit: one process, aiohttp fetches of every feed with the same validators and
  concurrency, feedparser (with the daemon's options) on only the bodies whose hash changed;
- (a) what most scripts do: a sequential loop of `feedparser.parse(url)` over a random
  sample of the feeds, scaled to N.

The daemon cuts the items a changed body shares with the previous one out of it before
feedparser reads it, which needs the same bytes (watcher/feed_items.py). `--churn` measures
feeds where no item is the same bytes twice (a comment in every item changes at every
generation; its fields do not): there the daemon parses every changed body in full.

Figures: wall time; CPU time of the daemon process (by thread) and of its children
(the parse workers), not of the server; memory during the cycle: the daemon's peak RSS
and the peak PSS of the daemon with its children (sampled from outside every 100 ms); event-loop
lag p50/p99/max from a task on the daemon's loop that sleeps 10 ms and records how late it
wakes.

The daemon and the limit run `--repeat` times (default 3), taking turns. The same work costs
a different CPU time from run to run on a shared machine (the limit's feedparser alone took
30 to 38 s in runs a few minutes apart), and other work only ever adds time: the CPU ratio
is that of the two least CPU times. Wall time, lag and memory are the worst of the runs.
Ends with one RESULT line (rss_mb is the PSS peak). About five minutes on two cores
(two with `--repeat 1`).

    .venv/bin/python bench/poll.py [--feeds 10000] [--hosts 100] [--concurrency 100]
        [--per-host 2] [--naive-sample 500] [--layout interleaved|grouped] [--latency-ms 0]
        [--full-history] [--churn] [--repeat 3] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _feedfarm import (
    CONTENT_TYPE,
    KIND_304,
    KIND_NEW,
    KIND_SAME,
    LAYOUTS,
    NEW_PER_GENERATION,
    Farm,
    load_farm,
    tag_url,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
RULES = ROOT / "config" / "rules.toml"
TICK_S = 0.010
CYCLE_TIMEOUT_S = 900.0
MEMORY_SAMPLE_S = 0.1
# Generations of the farm: the database is primed at PRIMED, the warm-up cycle sees WARM, the
# measured cycle MEASURED (5% of the feeds gain entries at each step).
PRIMED, WARM, MEASURED = 0, 1, 2

Figures = dict[str, Any]


# --- measuring a process tree ---------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants(root: int) -> list[int]:
    """Every live process below `root`, however deep (the parse workers are its children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_cpu_s(root: int) -> tuple[float, float]:
    """User + system CPU of `root`, and of every descendant (live or reaped by its parent)."""
    own = children = 0
    for pid in [root, *descendants(root)]:
        fields = _stat_fields(pid)
        if fields is None:
            continue
        if pid == root:  # utime stime | cutime cstime
            own += int(fields[11]) + int(fields[12])
            children += int(fields[13]) + int(fields[14])
        else:
            children += sum(int(value) for value in fields[11:15])
    return own / _CLOCK_TICKS, children / _CLOCK_TICKS


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU of each thread of this process by Python thread name (a name's threads summed;
    the thread number dropped from names like "Thread-3 (_connection_worker_thread)")."""
    names = {t.native_id: re.sub(r"^Thread-\d+ ", "", t.name) for t in threading.enumerate()}
    cpu: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = names.get(int(task.name), "other")
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu[name] = cpu.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return cpu


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def current_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def reset_peak_rss(pids: list[int]) -> bool:
    """Start VmHWM afresh (Linux ≥ 4.0), so a peak is the peak of what follows."""
    done = True
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            done = False
    return done


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class LagTicker:
    """Sleeps TICK_S at a time on the loop under test and records how late it wakes."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lag-ticker")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + TICK_S
            await asyncio.sleep(TICK_S)
            self.samples.append(max(0.0, loop.time() - due))

    def take(self) -> Figures:
        lag_ms = [late * 1000 for late in self.samples]
        self.samples = []
        return {
            "lag_p50_ms": statistics.median(lag_ms) if lag_ms else 0.0,
            "lag_p99_ms": percentile(lag_ms, 0.99),
            "lag_max_ms": max(lag_ms, default=0.0),
            "lag_samples": len(lag_ms),
        }

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def set_generation(port: int, farm: Farm, generation: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        url = f"http://{farm.host(0)}:{port}/_generation/{generation}"
        async with session.put(url) as response:
            response.raise_for_status()


# --- the daemon -----------------------------------------------------------------------------


def write_config(workdir: Path, farm: Farm, port: int, options: argparse.Namespace) -> Path:
    lines = [
        f"include = [{json.dumps(str(RULES))}]",
        "[storage]",
        f"path = {json.dumps(str(workdir / 'watcher.db'))}",
        "[telegram]",
        'token_env = "WATCHER_BENCH_NO_TOKEN"',  # no token: alerts go to the console
        "[polling]",
        'interval = "10m"',
        'timeout = "30s"',
        f"concurrency = {options.concurrency}",
        f"per_host = {options.per_host}",
        "[logging]",
        'level = "INFO"',
    ]
    for i in range(farm.feeds):
        lines += ["[[feeds]]", f'name = "feed{i:05d}"', f'url = "{farm.url(i, port)}"']
    path = workdir / "watcher.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def warm_up_feeds(farm: Farm) -> int:
    """How many feeds (the first ones) the warm-up cycle polls: enough to start the parse
    workers and warm the store, few enough to take a couple of seconds."""
    return min(farm.feeds, max(100, farm.feeds // 20))


def parse_body(url: str, body: bytes) -> tuple[Any, ...]:
    """A feed's entries as a poll parses them (in a priming pool's process)."""
    from watcher.model import FetchResult
    from watcher.parse import parse_feed

    result = FetchResult(status=200, url=url, body=body, content_type=CONTENT_TYPE)
    return parse_feed(result).entries


async def prime(settings: Any, farm: Farm, port: int, *, full_history: bool) -> Figures:
    """Write every feed's state as a successful poll would have left it: validators, body
    hash and, for the feeds whose bodies get parsed in the measured cycle (or every feed,
    with `full_history`), their entries. The warm-up feeds are left at PRIMED and due now,
    the others at WARM and due tomorrow, so the measured cycle finds every feed one
    generation behind.

    The changing feeds' entries are parse_feed's, of their bodies (in a pool of processes:
    ~70 ms a feed), so they carry the item digests a poll would have left; the other feeds'
    (with `full_history`) are the template's entries given the feed's own links and guids,
    checked against a real parse of one feed per template. All go through the store's own
    insert_entries, so a poll of these bodies would have recorded exactly these."""
    from watcher.model import Entry, FeedSuccess, FetchResult
    from watcher.parse import parse_feed
    from watcher.store import Store

    started = time.perf_counter()

    def parse(i: int, body: bytes) -> tuple[Entry, ...]:
        result = FetchResult(
            status=200, url=farm.url(i, port), body=body, content_type=CONTENT_TYPE
        )
        return tuple(parse_feed(result).entries)

    template_entries = [parse(i, template) for i, template in enumerate(farm.templates)]

    def entries_of(i: int) -> tuple[Entry, ...]:
        """A feed's entries, for a feed whose body never changes (not one of KIND_NEW)."""
        tag = farm.tag(i)
        return tuple(
            replace(e, link=tag_url(e.link, tag), guid=tag_url(e.guid, tag))
            for e in template_entries[farm.template_of(i)]
        )

    for template in range(len(farm.templates)):
        for kind in (KIND_SAME, KIND_304):
            i = next(
                (
                    i
                    for i in range(farm.feeds)
                    if farm.kind(i) == kind and farm.template_of(i) == template
                ),
                None,
            )
            if i is None:
                continue
            real, primed = parse(i, farm.body(i, WARM)), entries_of(i)
            # Entry equality leaves the text identity out: compare it too.
            if real != primed or [e.text_identity for e in real] != [
                e.text_identity for e in primed
            ]:
                raise SystemExit(f"priming would not match a real poll of feed {i}")

    warm_up = warm_up_feeds(farm)
    store = await Store.open(settings.storage.path)
    try:
        now = datetime.now(UTC)
        tomorrow = now + timedelta(days=1)
        await store.sync_feeds(settings.feeds, now)
        states = {state.name: state for state in await store.feeds()}
        entries = 0
        loop = asyncio.get_running_loop()
        with ProcessPoolExecutor(os.cpu_count() or 2) as pool:
            for start in range(0, farm.feeds, 500):
                group = range(start, min(start + 500, farm.feeds))
                changing = [i for i in group if farm.kind(i) == KIND_NEW]
                parsed = await asyncio.gather(
                    *(
                        loop.run_in_executor(
                            pool,
                            parse_body,
                            farm.url(i, port),
                            farm.body(i, PRIMED if i < warm_up else WARM),
                        )
                        for i in changing
                    )
                )
                parsed_of = dict(zip(changing, parsed, strict=True))
                async with store.write() as tx:
                    for i in group:
                        state = states[f"feed{i:05d}"]
                        generation = PRIMED if i < warm_up else WARM
                        feed_entries = parsed_of.get(i)
                        if feed_entries is None and full_history:
                            feed_entries = entries_of(i)
                        if feed_entries is not None:
                            entries += len(feed_entries)
                            await tx.insert_entries(state.id, feed_entries, now)
                        await tx.feed_succeeded(
                            state.id,
                            FeedSuccess(
                                checked_at=now,
                                status=200,
                                etag=farm.etag(i, generation),
                                last_modified=farm.last_modified(i, generation),
                                body_hash=hashlib.sha256(farm.body(i, generation)).hexdigest(),
                                next_check_at=now if i < warm_up else tomorrow,
                            ),
                        )
    finally:
        await store.close()
    return {
        "prime_s": time.perf_counter() - started,
        "prime_entries": entries,
        "warm_up_feeds": warm_up,
    }


class PollCounter:
    """Counts the daemon's finished polls (it is handed each poll's report, as the daemon
    logs it) until every feed has been polled, and snapshots the process tree's CPU at that
    moment."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.reset(0)

    def reset(self, target: int) -> None:
        self.target = target
        self.polled: set[str] = set()
        self.repolled: list[str] = []
        self.polls = 0
        self.statuses: Counter[str] = Counter()
        self.new_entries: Counter[int] = Counter()
        self.finished_at: list[float] = []
        self.done = asyncio.Event()
        self.end_wall = 0.0
        self.end_epoch = 0.0
        self.end_cpu = (0.0, 0.0)
        self.end_threads: dict[str, float] = {}

    def count(self, report: Any) -> None:
        self.polls += 1
        self.statuses[str(report.status) if report.status is not None else "-"] += 1
        if report.new:
            self.new_entries[report.new] += 1
        self.finished_at.append(time.perf_counter())
        name = report.feed
        if name in self.polled:
            self.repolled.append(name)
        self.polled.add(name)
        if len(self.polled) == self.target and not self.end_wall:
            self.end_wall = time.perf_counter()
            self.end_epoch = time.time()
            self.end_cpu = tree_cpu_s(os.getpid())
            self.end_threads = thread_cpu_s(os.getpid())
            self._loop.call_soon_threadsafe(self.done.set)


def make_all_due(db_path: Path) -> int:
    with sqlite3.connect(db_path, timeout=30) as db:
        cursor = db.execute(
            "UPDATE feeds SET next_check_at = ? WHERE active = 1", (time.time() - 1,)
        )
        return cursor.rowcount


def checked_since(db_path: Path, since: float) -> int:
    with sqlite3.connect(db_path, timeout=30) as db:
        row = db.execute(
            "SELECT count(*) FROM feeds WHERE last_checked_at >= ?", (since,)
        ).fetchone()
        return int(row[0])


async def run_daemon(options: argparse.Namespace) -> Figures:
    import watcher.app
    from watcher.app import Daemon
    from watcher.config import load_config
    from watcher.logs import setup_logging

    workdir = Path(options.workdir)
    farm = load_farm(options.feeds, options.hosts, options.layout, churn=options.churn)
    port = options.port
    settings = load_config(write_config(workdir, farm, port, options))
    figures: Figures = await prime(settings, farm, port, full_history=options.full_history)
    figures["settings"] = {
        "concurrency": settings.polling.concurrency,
        "per_host": settings.polling.per_host,
        "timeout_s": settings.polling.timeout,
        "interval_s": settings.polling.interval,
        "rules": len(settings.rules),
    }

    log_file = (workdir / "daemon.log").open("w", encoding="utf-8")
    setup_logging("INFO", stream=log_file)
    loop = asyncio.get_running_loop()
    counter = PollCounter(loop)
    # Counted where the daemon logs each poll (at DEBUG when it found nothing new: not
    # logged at all at INFO, so no log line can count them).
    log_poll = watcher.app._log_poll

    def counted_log_poll(report: Any, seconds: float) -> None:
        counter.count(report)
        log_poll(report, seconds)

    watcher.app._log_poll = counted_log_poll  # type: ignore[attr-defined]
    ticker = LagTicker()
    ticker.start()

    async def cycle(name: str, generation: int, feeds: int, *, make_due: bool) -> Figures:
        await set_generation(port, farm, generation)
        if make_due:
            await asyncio.to_thread(make_all_due, settings.storage.path)
        counter.reset(feeds)
        reset_peak_rss([os.getpid(), *descendants(os.getpid())])
        ticker.take()
        wall_since = time.time()
        started, cpu_before = time.perf_counter(), tree_cpu_s(os.getpid())
        threads_before = thread_cpu_s(os.getpid())
        try:
            await asyncio.wait_for(counter.done.wait(), CYCLE_TIMEOUT_S)
        except TimeoutError:
            raise SystemExit(
                f"{name}: only {len(counter.polled)} of {feeds} feeds polled in "
                f"{CYCLE_TIMEOUT_S:.0f} s (is watcher.app._log_poll still called per poll?)"
            ) from None
        wall = counter.end_wall - started
        workers = descendants(os.getpid())
        seconds = [t - started for t in counter.finished_at]
        per_second = Counter(int(s) for s in seconds)
        return {
            "wall_s": wall,
            "cpu_s": sum(counter.end_cpu) - sum(cpu_before),
            "cpu_daemon_s": counter.end_cpu[0] - cpu_before[0],
            "cpu_children_s": counter.end_cpu[1] - cpu_before[1],
            "cpu_threads_s": {
                name: round(cpu - threads_before.get(name, 0.0), 2)
                for name, cpu in counter.end_threads.items()
                if cpu - threads_before.get(name, 0.0) >= 0.05
            },
            **ticker.take(),
            "rss_main_mb": peak_rss_mb(os.getpid()),
            "children": len(workers),
            "start_time": wall_since,
            "end_time": counter.end_epoch,
            "polls": counter.polls,
            "repolled": counter.repolled,
            "statuses": dict(counter.statuses),
            "feeds_with_new_entries": dict(counter.new_entries),
            "first_poll_done_s": min(seconds, default=0.0),
            "polls_per_second": [per_second.get(s, 0) for s in range(int(wall) + 1)],
            "checked": await asyncio.to_thread(checked_since, settings.storage.path, wall_since),
        }

    daemon = Daemon(settings, environ={})
    run = asyncio.create_task(daemon.run(), name="daemon")
    try:
        warm_up = figures["warm_up_feeds"]
        figures["warm"] = await cycle("warm-up cycle", WARM, warm_up, make_due=False)
        figures["cycle"] = await cycle("measured cycle", MEASURED, farm.feeds, make_due=True)
    finally:
        daemon.request_stop()
        await asyncio.wait_for(run, 30)
        await ticker.stop()
        log_file.close()
    figures["rss_main_lifetime_mb"] = peak_rss_mb(os.getpid())
    return figures


# --- (b) the limit --------------------------------------------------------------------------


async def run_limit(options: argparse.Namespace) -> Figures:
    """Every feed fetched with the validators a poller would hold after the previous
    generation; feedparser on the bodies whose hash changed. Nothing else."""
    import io

    import aiohttp
    import feedparser

    farm = load_farm(options.feeds, options.hosts, options.layout, churn=options.churn)
    await set_generation(options.port, farm, MEASURED)
    previous = MEASURED - 1
    urls = [farm.url(i, options.port) for i in range(farm.feeds)]
    conditions: list[dict[str, str]] = []
    known_hash: list[str | None] = []
    for i in range(farm.feeds):
        headers = {}
        if (etag := farm.etag(i, previous)) is not None:
            headers["If-None-Match"] = etag
        if (last_modified := farm.last_modified(i, previous)) is not None:
            headers["If-Modified-Since"] = last_modified
        conditions.append(headers)
        body = farm.body(i, previous) if farm.kind(i) != KIND_304 else None
        known_hash.append(hashlib.sha256(body).hexdigest() if body is not None else None)

    statuses: Counter[int] = Counter()
    parsed = entries = 0
    parse_cpu = 0.0
    slots = asyncio.Semaphore(options.concurrency)

    async def poll(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal parsed, entries, parse_cpu
        async with slots, session.get(urls[i], headers=conditions[i]) as response:
            statuses[response.status] += 1
            if response.status == 304:
                return
            body = await response.read()
            if hashlib.sha256(body).hexdigest() == known_hash[i]:
                return
            before = time.process_time()
            document = feedparser.parse(
                io.BytesIO(body),
                response_headers={
                    "content-type": response.headers.get("Content-Type", ""),
                    "content-location": urls[i],
                },
                sanitize_html=False,
                resolve_relative_uris=False,
            )
            parse_cpu += time.process_time() - before
            parsed += 1
            entries += len(document.entries)

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        started, cpu_before = time.perf_counter(), time.process_time()
        await asyncio.gather(*(poll(session, i) for i in range(farm.feeds)))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_before
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "statuses": {str(k): v for k, v in statuses.items()},
        "parsed": parsed,
        "parse_cpu_s": parse_cpu,
        "entries": entries,
        "rss_main_mb": peak_rss_mb(os.getpid()),
    }


# --- (a) what most scripts do ---------------------------------------------------------------


async def run_naive(options: argparse.Namespace) -> Figures:
    import feedparser

    farm = load_farm(options.feeds, options.hosts, options.layout, churn=options.churn)
    await set_generation(options.port, farm, MEASURED)
    sample = random.Random(7).sample(range(farm.feeds), min(options.naive_sample, farm.feeds))
    urls = [farm.url(i, options.port) for i in sample]
    entries = failures = 0
    started, cpu_before = time.perf_counter(), time.process_time()
    for url in urls:
        document = feedparser.parse(url)
        entries += len(document.entries)
        failures += int(document.get("status") != 200)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_before
    scale = farm.feeds / len(urls)
    return {
        "sample": len(urls),
        "sample_wall_s": wall,
        "wall_s": wall * scale,
        "cpu_s": cpu * scale,
        "entries": entries,
        "failures": failures,
    }


ROLES = {"daemon": run_daemon, "limit": run_limit, "naive": run_naive}


# --- the whole run --------------------------------------------------------------------------


def child(role: str, options: argparse.Namespace, workdir: Path, port: int) -> Figures:
    """Run one measurement in a fresh interpreter; sample its process tree's memory from
    here, outside it, so the sampling costs the measured process nothing."""
    out = workdir / f"{role}.json"
    command = [sys.executable, __file__, "--role", role, "--port", str(port)]
    command += ["--workdir", str(workdir), "--out", str(out)]
    command += ["--feeds", str(options.feeds), "--hosts", str(options.hosts)]
    command += ["--layout", options.layout, "--concurrency", str(options.concurrency)]
    command += ["--per-host", str(options.per_host)]
    command += ["--naive-sample", str(options.naive_sample)]
    command += ["--full-history"] if options.full_history else []
    command += ["--churn"] if options.churn else []
    samples: list[tuple[float, float, float]] = []  # (time, PSS of the tree, RSS of the tree)
    with (workdir / f"{role}.out").open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
        while process.poll() is None:
            tree = [process.pid, *descendants(process.pid)]
            samples.append((time.time(), sum(map(pss_mb, tree)), sum(map(current_rss_mb, tree))))
            time.sleep(MEMORY_SAMPLE_S)
    if process.returncode != 0:
        tail = (workdir / f"{role}.out").read_text(errors="replace")[-3000:]
        raise SystemExit(f"{role} failed (exit {process.returncode}):\n{tail}")
    figures: Figures = json.loads(out.read_text())
    figures["memory_samples"] = samples
    return figures


def peak_in(
    samples: list[tuple[float, float, float]], start: float, end: float, column: int
) -> float:
    return max((s[column] for s in samples if start <= s[0] <= end), default=0.0)


def start_farm(options: argparse.Namespace) -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, str(BENCH / "_feedfarm.py"), "--feeds", str(options.feeds)]
    command += ["--hosts", str(options.hosts), "--layout", options.layout]
    command += ["--latency-ms", str(options.latency_ms)]
    command += ["--churn"] if options.churn else []
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert server.stdout is not None
    line = server.stdout.readline().split()
    if len(line) != 2 or line[0] != "PORT":
        server.kill()
        raise SystemExit("the feed server did not start")
    return server, int(line[1])


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def tree_pss_peak(daemon: Figures) -> float:
    cycle = daemon["cycle"]
    return peak_in(daemon["memory_samples"], cycle["start_time"], cycle["end_time"], 1)


def report(
    options: argparse.Namespace, farm: Farm, runs: dict[str, list[Figures]], load_before: float
) -> None:
    # The details are those of the daemon's and the limit's least-CPU runs.
    daemon = min(runs["daemon"], key=lambda figures: figures["cycle"]["cpu_s"])
    limit = min(runs["limit"], key=lambda figures: figures["cpu_s"])
    naive = runs["naive"][0] if runs["naive"] else None
    cycle, warm = daemon["cycle"], daemon["warm"]
    kinds = Counter(farm.kinds)
    sizes = [len(t) for t in farm.templates]
    print(
        f"{farm.feeds} feeds on {farm.hosts} loopback hosts ({options.layout}), cycled from "
        f"{len(sizes)} real feeds of {min(sizes) // 1024}-{max(sizes) // 1024} KB "
        f"(mean {statistics.mean(sizes) / 1024:.0f} KB); server latency {options.latency_ms:g} ms"
    )
    print(
        f"mix{' (--churn)' if options.churn else ''}: {kinds[KIND_304]} answer 304, "
        f"{kinds[KIND_SAME]} 200 unchanged without "
        f"validators, {kinds[KIND_NEW]} 200 with {NEW_PER_GENERATION} new entries"
    )
    s = daemon["settings"]
    print(
        f"daemon: concurrency={s['concurrency']} per_host={s['per_host']} "
        f"timeout={s['timeout_s']}s interval={s['interval_s']}s rules={s['rules']}; "
        f"{os.cpu_count()} CPUs (load average {load_before:.1f} before the run: other work "
        f"on the machine skews every figure), Python {sys.version.split()[0]}"
    )
    print(
        f"store primed with every feed's state and {daemon['prime_entries']} entries in "
        f"{daemon['prime_s']:.1f} s; warm-up cycle of the first {daemon['warm_up_feeds']} feeds "
        f"(daemon start included) {warm['wall_s']:.1f} s, lag p99 {warm['lag_p99_ms']:.1f} ms, "
        f"max {warm['lag_max_ms']:.0f} ms (neither measured)\n"
    )
    header = (
        f"{'':28} {'wall s':>7} {'cpu s':>7} {'lag p50':>8} {'lag p99':>8} {'lag max':>8}"
        f" {'rss MB':>7}"
    )
    print("runs (daemon, then limit):")
    for n, (d, b) in enumerate(zip(runs["daemon"], runs["limit"], strict=True), start=1):
        c = d["cycle"]
        print(
            f"  {n}: daemon wall {c['wall_s']:.2f} s, cpu {c['cpu_s']:.2f} s, lag p99 "
            f"{c['lag_p99_ms']:.1f} ms, tree PSS {tree_pss_peak(d):.0f} MB; limit cpu "
            f"{b['cpu_s']:.2f} s (feedparser {b['parse_cpu_s']:.2f} s); ratio "
            f"{ratio(c['cpu_s'], b['cpu_s']):.2f}"
        )
    print("\nthe least-CPU run of each:")
    print(header)
    print("-" * len(header))
    print(
        f"{'daemon: one full cycle':28} {cycle['wall_s']:7.2f} {cycle['cpu_s']:7.2f}"
        f" {cycle['lag_p50_ms']:8.1f} {cycle['lag_p99_ms']:8.1f} {cycle['lag_max_ms']:8.1f}"
        f" {cycle['rss_main_mb']:7.0f}"
    )
    print(
        f"{'(b) limit: aiohttp+feedparser':28} {limit['wall_s']:7.2f} {limit['cpu_s']:7.2f}"
        f" {'':8} {'':8} {'':8} {limit['rss_main_mb']:7.0f}"
    )
    if naive is not None:
        label = f"(a) naive, {naive['sample']} scaled"
        print(f"{label:28} {naive['wall_s']:7.2f} {naive['cpu_s']:7.2f}")
    print(
        f"\nmeasured cycle: statuses {cycle['statuses']}, feeds with new entries "
        f"{cycle['feeds_with_new_entries']}, feeds checked {cycle['checked']}/{farm.feeds}, "
        f"first poll done at {cycle['first_poll_done_s']:.2f} s"
    )
    print(f"  polls finished per second: {cycle['polls_per_second']}")
    print(
        f"  cpu: daemon process {cycle['cpu_daemon_s']:.2f} s (by thread: "
        f"{cycle['cpu_threads_s']}), its children (parse workers) "
        f"{cycle['cpu_children_s']:.2f} s"
    )
    print(
        f"  polls: {cycle['polls']} for {farm.feeds} feeds; polled again within the cycle: "
        f"{cycle['repolled'] or 'none'}"
    )
    samples = daemon["memory_samples"]
    pss_peak = peak_in(samples, cycle["start_time"], cycle["end_time"], 1)
    rss_sum_peak = peak_in(samples, cycle["start_time"], cycle["end_time"], 2)
    print(
        f"  memory: daemon process peak RSS {cycle['rss_main_mb']:.0f} MB; with its "
        f"{cycle['children']} children (parse workers) peak "
        f"PSS {pss_peak:.0f} MB, peak RSS sum {rss_sum_peak:.0f} MB (shared pages counted "
        f"once per process); process lifetime peak RSS (the bench's priming included) "
        f"{daemon['rss_main_lifetime_mb']:.0f} MB"
    )
    print(
        f"limit: statuses {limit['statuses']}, parsed {limit['parsed']} "
        f"({limit['entries']} entries); cpu: feedparser {limit['parse_cpu_s']:.2f} s, the rest "
        f"(fetching, hashing) {limit['cpu_s'] - limit['parse_cpu_s']:.2f} s"
    )
    if naive is not None:
        print(
            f"naive: {naive['sample']} feeds in {naive['sample_wall_s']:.1f} s "
            f"({naive['failures']} not 200), x{farm.feeds / naive['sample']:g}"
        )

    cycles = [d["cycle"] for d in runs["daemon"]]
    rss_mb = max(tree_pss_peak(d) for d in runs["daemon"])
    cpu_ratio = ratio(cycle["cpu_s"], limit["cpu_s"])
    worst_wall = max(c["wall_s"] for c in cycles)
    print(
        f"\ntargets (over {len(cycles)} runs: cpu, the least of each; wall, lag and memory, "
        "the worst)"
    )
    print(f"  cpu  daemon/limit   {cpu_ratio:6.2f}x   (target <= 1.25x)  {_ok(cpu_ratio <= 1.25)}")
    if naive is not None:
        speedup = ratio(naive["wall_s"], worst_wall)
        print(f"  wall naive/daemon  {speedup:6.1f}x   (target >= 10x)    {_ok(speedup >= 10)}")
    lag = max(c["lag_p99_ms"] for c in cycles)
    print(f"  lag p99            {lag:6.1f} ms  (target < 50 ms)   {_ok(lag < 50)}")
    print(f"  memory (tree PSS)  {rss_mb:6.0f} MB  (target <= 150 MB) {_ok(rss_mb <= 150)}")
    daemon_rss = max(c["rss_main_mb"] for c in cycles)
    print(f"  rss daemon process {daemon_rss:6.0f} MB  (target <= 150 MB) {_ok(daemon_rss <= 150)}")
    naive_wall = f"{naive['wall_s']:.1f}" if naive is not None else "nan"
    print(
        f"RESULT cycle_wall_s={worst_wall:.2f} cycle_cpu_s={cycle['cpu_s']:.2f}"
        f" limit_cpu_s={limit['cpu_s']:.2f} naive_wall_s={naive_wall}"
        f" lag_p99_ms={lag:.1f} rss_mb={rss_mb:.0f} daemon_rss_mb={daemon_rss:.0f}"
        f" cpu_ratio={cpu_ratio:.2f}"
    )


def _ok(met: bool) -> str:
    return "met" if met else "NOT MET"


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--feeds", type=int, default=10_000)
    args.add_argument("--hosts", type=int, default=100, help="loopback addresses")
    args.add_argument("--layout", choices=LAYOUTS, default="interleaved")
    args.add_argument("--concurrency", type=int, default=100, help="[polling] concurrency")
    args.add_argument("--per-host", type=int, default=2, help="[polling] per_host")
    args.add_argument("--naive-sample", type=int, default=500, help="0: skip the naive loop")
    args.add_argument(
        "--full-history",
        action="store_true",
        help="prime every feed's entries (600,000 rows, +70 s), not only the changing feeds'",
    )
    args.add_argument("--latency-ms", type=float, default=0.0, help="server delay per answer")
    args.add_argument(
        "--churn",
        action="store_true",
        help="every item of a changing body changes its bytes (not its fields) each time",
    )
    args.add_argument("--repeat", type=int, default=3, help="runs of the daemon and the limit")
    args.add_argument("--keep", action="store_true", help="keep the work dir (logs, db)")
    args.add_argument("--role", choices=sorted(ROLES), help=argparse.SUPPRESS)
    args.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args.add_argument("--workdir", help=argparse.SUPPRESS)
    args.add_argument("--out", help=argparse.SUPPRESS)
    options = args.parse_args()
    if options.role:
        figures = asyncio.run(ROLES[options.role](options))
        Path(options.out).write_text(json.dumps(figures))
        return

    farm = load_farm(options.feeds, options.hosts, options.layout, churn=options.churn)
    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="watcher-bench-poll-"))
    server, port = start_farm(options)
    try:
        runs: dict[str, list[Figures]] = {"daemon": [], "limit": [], "naive": []}
        for n in range(1, max(options.repeat, 1) + 1):
            rundir = workdir / f"run{n}"
            rundir.mkdir()
            for role in ("daemon", "limit"):
                print(f"running {role} ({n}/{options.repeat})...", file=sys.stderr, flush=True)
                runs[role].append(child(role, options, rundir, port))
        if options.naive_sample > 0:
            print("running naive...", file=sys.stderr, flush=True)
            runs["naive"].append(child("naive", options, workdir, port))
        print(f"server CPU (not counted): {_cpu_of(server.pid):.1f} s", file=sys.stderr)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        if options.keep:
            print(f"work dir kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(options, farm, runs, load_before)


def _cpu_of(pid: int) -> float:
    fields = _stat_fields(pid)
    return sum(int(v) for v in fields[11:13]) / _CLOCK_TICKS if fields else 0.0


if __name__ == "__main__":
    main()
