"""The parse pool: `FeedParser` runs `watcher.parse.parse_feed` off the event loop, in worker
processes of our own (watcher.parse_worker) or, where child processes are unwelcome, in
threads. See `FeedParser` for why processes, and bench/parse_pool.py for the figures."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import pickle
import select
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from watcher.errors import ParseError
from watcher.model import FetchResult, KnownItem, ParsedFeed
from watcher.parse import parse_feed
from watcher.parse_worker import FRAME_HEADER, INTERRUPTS

__all__ = ["DEFAULT_POOL", "FeedParser", "PoolKind"]

PoolKind = Literal["process", "thread"]
DEFAULT_POOL: PoolKind = "process"
# The largest real feeds parse in well under a second; the 10 MB a body may have, in a few.
PARSE_DEADLINE_S = 60.0


_WORKER_COMMAND = (sys.executable, "-m", "watcher.parse_worker")
# Pipe capacity asked of the kernel (the default is 64 KiB): most bodies and replies then
# cross in one write and one read. Refused past /proc/sys/fs/pipe-max-size; not needed.
_PIPE_BYTES = 1024 * 1024
# A worker that closed its reply pipe is exiting; its exit status names what killed it.
_EXIT_POLL_S = 0.01
_EXIT_POLLS = 100
# How long close() waits for the workers to see end of file and exit before killing them.
_CLOSE_TIMEOUT_S = 2.0
# glibc raises its trim threshold each time a large block is freed, and then keeps what a
# large feed needed for good: ~5 MB more per worker after a few parses. A fixed threshold
# (glibc's default value) hands it back after each parse, for no measurable CPU.
_WORKER_ENVIRONMENT = {"MALLOC_TRIM_THRESHOLD_": "131072"}

_Pipes = tuple[int, int]  # the daemon's ends of a worker's pipes: requests, replies


def _start_workers(count: int) -> tuple[subprocess.Popen[bytes], list[_Pipes]]:
    """Start one worker process, which forks `count - 1` siblings (see watcher.parse_worker):
    the process, and the pipes of each worker, its own first."""
    opened: list[int] = []
    ours: list[_Pipes] = []
    theirs: list[_Pipes] = []
    try:
        for _ in range(count):
            worker_requests, requests = os.pipe()
            opened += (worker_requests, requests)
            replies, worker_replies = os.pipe()
            opened += (replies, worker_replies)
            ours.append((requests, replies))
            theirs.append((worker_requests, worker_replies))
        process = _spawn_worker(theirs[0], theirs[1:])
    except BaseException:
        for fd in opened:
            os.close(fd)
        raise
    for pipes in theirs:
        for fd in pipes:
            os.close(fd)
    for pipes in ours:
        for fd in pipes:
            os.set_blocking(fd, False)
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    return process, ours


def _spawn_worker(own: _Pipes, siblings: list[_Pipes]) -> subprocess.Popen[bytes]:
    # The interrupts are blocked in this thread while it starts the child, so they are
    # blocked in the child from its first instruction until it ignores them (a worker still
    # importing when Ctrl-C comes would die of it). A process-directed signal meanwhile goes
    # to another thread, or waits the millisecond until they are unblocked here.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    try:
        # stderr stays the daemon's: the worker's warnings go where the daemon's logs go.
        return subprocess.Popen(
            [*_WORKER_COMMAND, *(f"{requests},{replies}" for requests, replies in siblings)],
            stdin=own[0],
            stdout=own[1],
            pass_fds=[fd for pipes in siblings for fd in pipes],
            env=_WORKER_ENVIRONMENT | os.environ,
        )
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _exit_description(code: int | None) -> str:
    if code is None:
        return "its pipe closed"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class _Worker:
    """One worker process (watcher.parse_worker) and the daemon's ends of its pipes, read
    and written without blocking from the event loop. One job at a time: `send` is called
    only once the previous reply has been read, or the reply of a cancelled job would be
    taken for the next job's.

    `process` is None for a sibling forked by another worker: not the daemon's child, so
    its exit status is unknown, and its pid is known once it has greeted."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pipes: _Pipes,
        process: subprocess.Popen[bytes] | None,
        on_free: Callable[[_Worker], None],
        on_end: Callable[[_Worker], None],
    ) -> None:
        self._loop = loop
        self._requests, self._replies = pipes
        self.process = process
        self.pid = process.pid if process is not None else None
        self._on_free = on_free
        self._on_end = on_end
        self.job: asyncio.Future[bytearray] | None = None
        self._outgoing = memoryview(b"")
        self._writing = False
        self._incoming = bytearray(FRAME_HEADER.size)
        self._received = 0
        self._reading_header = True
        self._greeted = False
        self._reading = True
        self._exit_poll: asyncio.TimerHandle | None = None
        self._death: str | None = None
        loop.add_reader(self._replies, self._read)

    def send(self, request: bytes) -> asyncio.Future[bytearray]:
        """Write one request; the future gets the reply's pickle. Cancelling the future
        does not stop the worker: its reply is read and dropped."""
        job: asyncio.Future[bytearray] = self._loop.create_future()
        if self._death is not None:  # died after it was handed out
            job.set_exception(ParseError(self._death))
            return job
        self.job = job
        if not self._reading:  # died, and the loop saw it: _ended fails the job
            return job
        self._outgoing = memoryview(FRAME_HEADER.pack(len(request)) + request)
        self._write()
        return job

    def _write(self) -> None:
        try:
            sent = os.write(self._requests, self._outgoing)
        except BlockingIOError:
            sent = 0
        except OSError:  # the worker is gone: its reply pipe reports it
            sent = len(self._outgoing)
        self._outgoing = self._outgoing[sent:]
        if self._outgoing and not self._writing:
            self._loop.add_writer(self._requests, self._write)
            self._writing = True
        elif not self._outgoing and self._writing:
            self._loop.remove_writer(self._requests)
            self._writing = False

    def _read(self) -> None:
        while True:
            try:
                got = os.readv(self._replies, [memoryview(self._incoming)[self._received :]])
            except BlockingIOError:
                return
            except OSError:
                got = 0
            if got == 0:
                self._lost()
                return
            self._received += got
            if self._received < len(self._incoming):
                continue
            if self._reading_header:
                (size,) = FRAME_HEADER.unpack(self._incoming)
                self._incoming, self._received, self._reading_header = bytearray(size), 0, False
                continue
            frame = self._incoming
            self._incoming, self._received = bytearray(FRAME_HEADER.size), 0
            self._reading_header = True
            if not self._greeted:
                self._greeted = True
                self.pid = pickle.loads(frame)
                continue
            job, self.job = self.job, None
            if job is not None and not job.done():
                job.set_result(frame)
            self._on_free(self)
            return

    def _stop_io(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._replies)
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._requests)
        if self._requests >= 0:
            os.close(self._requests)
            self._requests = -1

    def _lost(self) -> None:
        self._stop_io()
        os.close(self._replies)
        self._replies = -1
        self._await_exit(0)

    def _await_exit(self, polls: int) -> None:
        if self.process is None:
            self._ended(None)
            return
        code = self.process.poll()
        if code is None and polls < _EXIT_POLLS:
            self._exit_poll = self._loop.call_later(_EXIT_POLL_S, self._await_exit, polls + 1)
            return
        self._exit_poll = None
        self._ended(code)

    def _ended(self, code: int | None) -> None:
        self._death = f"parser worker died: {_exit_description(code)}"
        job, self.job = self.job, None
        if job is not None and not job.done():
            job.set_exception(ParseError(self._death))
        self._on_end(self)

    def close(self) -> None:
        """End of file on its request pipe: the worker exits once it has written the reply
        it may be working on (for a caller that gave up)."""
        if self.job is not None:
            self.job.cancel()
            self.job = None
        if self._exit_poll is not None:
            self._exit_poll.cancel()
            self._exit_poll = None
        self._stop_io()

    def wait(self, deadline: float) -> None:
        """Wait for the worker to exit, reading and dropping what it still writes; kill it
        at `deadline`."""
        if self._replies >= 0:
            os.set_blocking(self._replies, True)
            with contextlib.suppress(OSError):
                while select.select([self._replies], [], [], _left(deadline))[0]:
                    if not os.read(self._replies, _PIPE_BYTES):
                        break
                else:
                    self._kill()
            os.close(self._replies)
            self._replies = -1
        if self.process is not None:
            try:
                self.process.wait(_left(deadline))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """Stop a worker that overran its deadline; the end of its reply pipe tells the pool
        to replace it."""
        if self._reading:
            self._kill()

    def _kill(self) -> None:
        # Its reply pipe is still open, so it is still running: the pid is still its own.
        with contextlib.suppress(ProcessLookupError):
            if self.process is not None:
                self.process.kill()
            elif self.pid is not None:
                os.kill(self.pid, signal.SIGKILL)


class _ProcessPool:
    """Up to `size` workers, started as jobs come (those missing all at once, as one process
    and its forked siblings); a job waits for a free worker."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._workers: list[_Worker] = []
        self._idle: list[_Worker] = []
        self._waiting: deque[asyncio.Future[_Worker]] = deque()
        self._closed = False

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(worker.pid for worker in self._workers if worker.pid is not None)

    async def run(self, request: bytes, deadline_s: float) -> bytearray:
        """The reply to `request`. A worker still parsing after `deadline_s` is killed (and
        replaced): a body no feed needs (quadratic markup feedparser or expat meets) must
        not hold a worker, and the feeds waiting for one, for minutes or days."""
        if self._closed:
            raise RuntimeError("the feed parser is closed")
        worker = await self._free_worker()
        job = worker.send(request)
        try:
            return await asyncio.wait_for(asyncio.shield(job), deadline_s)
        except TimeoutError:
            if job.done() and not job.cancelled():
                # The reply came as the deadline fell, and the worker may be another
                # feed's by now: take the reply, kill nothing.
                return job.result()
            job.cancel()  # its death is this caller's news, told here
            if worker.job is job:
                worker.kill()
            raise ParseError(
                f"not read: parsing took longer than {deadline_s:g}s (the worker was stopped)"
            ) from None
        except asyncio.CancelledError:
            job.cancel()  # the worker finishes the body; its reply is dropped
            raise

    async def _free_worker(self) -> _Worker:
        if self._idle:
            return self._idle.pop()
        if len(self._workers) < self._size:
            return self._start()
        waiter: asyncio.Future[_Worker] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._free(waiter.result())  # handed a worker as it was cancelled: pass it on
            raise

    def _start(self) -> _Worker:
        """Start every missing worker; the first is the caller's, the others are free."""
        loop = asyncio.get_running_loop()
        try:
            process, pipes = _start_workers(self._size - len(self._workers))
        except OSError as exc:
            raise ParseError(f"cannot start a parser worker: {exc}") from exc
        first, *others = (
            _Worker(loop, own, process if i == 0 else None, self._free, self._ended)
            for i, own in enumerate(pipes)
        )
        self._workers += [first, *others]
        for worker in others:
            self._free(worker)
        return first

    def _next_waiter(self) -> asyncio.Future[_Worker] | None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                return waiter
        return None

    def _free(self, worker: _Worker) -> None:
        if self._closed:
            return
        waiter = self._next_waiter()
        if waiter is not None:
            waiter.set_result(worker)
        else:
            self._idle.append(worker)

    def _ended(self, worker: _Worker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        if self._closed:
            return
        # A dead worker costs the job it had, not the jobs waiting for it: one gets a new one.
        waiter = self._next_waiter()
        if waiter is None:
            return
        try:
            waiter.set_result(self._start())
        except ParseError as exc:
            waiter.set_exception(exc)

    def close(self) -> None:
        self._closed = True
        while (waiter := self._next_waiter()) is not None:
            waiter.cancel()
        workers, self._workers, self._idle = self._workers, [], []
        for worker in workers:
            worker.close()
        deadline = time.monotonic() + _CLOSE_TIMEOUT_S
        for worker in workers:
            worker.wait(deadline)


class FeedParser:
    """Runs `parse_feed` off the event loop; call `close()` on shutdown.

    `pool="process"` (the default) parses in worker processes. feedparser is pure Python and
    holds the GIL, so in a thread pool the event loop waits for the GIL at every turn and
    parsing shares one core with it. Measured by bench/parse_pool.py (2 workers, 2 cores,
    100 parses of 17 real news feeds, a 10 ms ticker on the loop): loop lag p99 27-40 ms
    (max 41-65 ms) with threads against 2-4 ms (max 5-16 ms) with processes, in about half
    the wall time, for the same CPU. `pool="thread"` remains for embeddings where child
    processes are unwelcome (a thread cannot be stopped: it has no deadline).

    The workers are our own (watcher.parse_worker), not a multiprocessing pool: no fork
    server or resource tracker beside them, and no thread in the daemon to feed them: the
    event loop reads and writes their pipes itself. On first use the pool starts one
    process, `python -m watcher.parse_worker`, which imports the parser and forks the other
    workers, so they share its memory: ~14-18 MB (PSS) a worker after parsing, against
    ~20 MB for a worker started on its own and ~22 MB for the fork server and resource
    tracker the multiprocessing pool kept as well. A pickled body goes in and a ParsedFeed
    comes out (well under a millisecond of the loop); starting takes ~0.2 s of a core, in
    the worker. A worker that dies, or is killed for parsing longer than `deadline_s`, costs
    the body it was parsing (a ParseError) and is replaced, started on its own; one whose
    caller was cancelled finishes its body, and the reply is dropped.
    """

    def __init__(
        self,
        workers: int = 2,
        *,
        pool: PoolKind = DEFAULT_POOL,
        deadline_s: float = PARSE_DEADLINE_S,
    ) -> None:
        self.pool: PoolKind = pool
        self._deadline_s = deadline_s
        self._threads = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="parse")
            if pool == "thread"
            else None
        )
        self._processes = _ProcessPool(workers) if pool == "process" else None

    @property
    def worker_pids(self) -> tuple[int, ...]:
        """The worker processes running now (none with `pool="thread"`)."""
        return self._processes.pids if self._processes is not None else ()

    async def parse(
        self, result: FetchResult, known: Mapping[int, KnownItem] | None = None
    ) -> ParsedFeed:
        """`parse_feed(result, known=known)` in a worker."""
        known = known or {}
        if self._threads is not None:
            parse = functools.partial(parse_feed, result, known=known)
            return await asyncio.wrap_future(self._threads.submit(parse))
        assert self._processes is not None
        request = pickle.dumps((result, known), protocol=pickle.HIGHEST_PROTOCOL)
        ok, value = pickle.loads(await self._processes.run(request, self._deadline_s))
        if not ok:
            raise value
        parsed: ParsedFeed = value
        return parsed

    def close(self) -> None:
        """End the workers and wait for them (a couple of seconds at most: one still
        parsing is killed). Parses still waiting are cancelled."""
        if self._threads is not None:
            self._threads.shutdown(wait=True, cancel_futures=True)
        if self._processes is not None:
            self._processes.close()
