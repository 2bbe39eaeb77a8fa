"""A parse worker: one process of watcher.parse_pool.FeedParser's pool, started as
`python -m watcher.parse_worker [REQUESTS,REPLIES ...]`.

It reads requests on stdin and writes replies on stdout, one at a time, each a frame: an
8-byte big-endian length, then a pickle. Its first frame is a greeting: its pid. Then a
request is `(FetchResult, known items by digest)` and its reply `(True, ParsedFeed)` or
`(False, exception)`, as `parse_feed` returned or raised. End of file on its requests (the
daemon closed the pool, or is gone) ends a worker.

Each REQUESTS,REPLIES pair of inherited file descriptors is another worker's pipes: once
parsing is imported, this process forks one sibling per pair to serve it. Forked siblings
share the imported modules' memory (~10 MB a worker) until they write to it.

This module imports only what the set-up needs; parsing is imported after the signal
set-up, which must come first.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import signal
import struct
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from watcher.model import FetchResult, KnownItem

FRAME_HEADER = struct.Struct("!Q")
# Ctrl-C reaches the whole process group and systemd's stop the whole control group: a
# worker that died of either would cost the daemon a feed while it drains its last polls.
# The daemon starts workers with these blocked, so none arrives before they are ignored.
INTERRUPTS = frozenset({signal.SIGINT, signal.SIGTERM})
# Parsing is batch work; the daemon's event loop (fetches, the bot, deliveries) is not. A
# lower priority lets the loop run first when every core is busy parsing.
NICENESS = 10


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame's payload, or None at end of file."""
    header = stream.read(FRAME_HEADER.size)
    if len(header) < FRAME_HEADER.size:
        return None
    (size,) = FRAME_HEADER.unpack(header)
    payload = stream.read(size)
    return payload if len(payload) == size else None


def write_frame(stream: BinaryIO, payload: bytes) -> None:
    stream.write(FRAME_HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _ignore_interrupts() -> None:
    for interrupt in INTERRUPTS:
        signal.signal(interrupt, signal.SIG_IGN)  # an interrupt already pending is dropped
    signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPTS)


def _private_streams() -> tuple[BinaryIO, BinaryIO]:
    """The request and reply pipes, moved off fds 0 and 1: a stray print or a library
    reading stdin must not corrupt the frames. Whatever is written to stdout goes to
    stderr, with the logs."""
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    nothing = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nothing, 0)
    os.close(nothing)
    return requests, replies


def _reply(value: object, ok: bool) -> bytes:
    try:
        return pickle.dumps((ok, value), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # an exception that does not pickle (a library's own type)
        problem = RuntimeError(f"{type(value).__name__}: {value} (unpicklable: {exc})")
        return pickle.dumps((False, problem), protocol=pickle.HIGHEST_PROTOCOL)


def _request(request: object) -> tuple[FetchResult, Mapping[int, KnownItem]]:
    """A request's body and known items. A worker that replaces a dead one runs the code
    on disk, which an upgrade may have changed under the running daemon: a bare FetchResult
    is a request from a daemon older than item digests, and a set of digests one from a
    daemon older than known items. Their digests are of the code they run, so nothing they
    know would be known here anyway."""
    from watcher.model import FetchResult

    if isinstance(request, tuple):
        result, known = request
        return result, known if isinstance(known, Mapping) else {}
    assert isinstance(request, FetchResult), type(request)
    return request, {}


def _serve(requests: BinaryIO, replies: BinaryIO) -> None:
    from watcher.parse import parse_feed

    try:
        write_frame(replies, pickle.dumps(os.getpid()))
        while (request := read_frame(requests)) is not None:
            try:
                result, known = _request(pickle.loads(request))
                reply = _reply(parse_feed(result, known=known), ok=True)
            except Exception as exc:
                reply = _reply(exc, ok=False)
            write_frame(replies, reply)
    except BrokenPipeError:
        pass  # the daemon is gone


def _warm_up() -> None:
    """Import everything parsing uses (feedparser is imported on first use) and fill its
    caches, so forked siblings share them; then keep the collector off those objects: a
    collection writes to every object it examines, which would unshare their pages."""
    from watcher.model import FetchResult
    from watcher.parse import parse_feed

    sample = (
        b"<rss version='2.0'><channel><title>t</title><item><title>A &amp; b</title>"
        b"<description>&lt;p&gt;c&lt;/p&gt;</description><guid>1</guid></item></channel></rss>"
    )
    parse_feed(FetchResult(status=200, url="http://localhost/", body=sample))
    gc.freeze()


def _reap_children(_signum: int, _frame: object) -> None:
    # Siblings are this process's children: reaped here, their CPU time is counted in it.
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _fork_siblings(own: tuple[BinaryIO, BinaryIO], pipes: list[tuple[int, int]]) -> None:
    every_fd = [fd for pair in pipes for fd in pair]
    signal.signal(signal.SIGCHLD, _reap_children)
    for requests, replies in pipes:
        if os.fork() == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            # Only its own pipes: a copy of another worker's would hide that worker's end
            # (end of file) from the daemon.
            for stream in own:
                stream.close()
            for fd in every_fd:
                if fd not in (requests, replies):
                    os.close(fd)
            try:
                _serve(os.fdopen(requests, "rb"), os.fdopen(replies, "wb"))
            finally:
                os._exit(0)  # never back into the parent's code
    for fd in every_fd:
        os.close(fd)


def main(arguments: list[str]) -> None:
    _ignore_interrupts()
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    own = _private_streams()
    siblings = [(int(pair[0]), int(pair[1])) for pair in (a.split(",") for a in arguments)]
    _warm_up()
    if siblings:
        _fork_siblings(own, siblings)
    _serve(*own)
    # The daemon closes every worker's pipes at once: wait for the siblings to end too, so
    # that none is left for init to reap.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    with contextlib.suppress(ChildProcessError):
        while True:
            os.wait()


if __name__ == "__main__":
    main(sys.argv[1:])
