"""Event-loop lag: a task that sleeps a fixed period and records how late it woke.

Anything that blocks the loop (a parse that escaped the pool, a slow synchronous call)
delays every feed, every send and every bot command at once; this is how it shows. The
time of the last wake-up (`last_beat`) also tells the health check that the loop runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

DEFAULT_PERIOD_S = 0.25


class LoopLagMonitor:
    def __init__(
        self,
        *,
        period_s: float = DEFAULT_PERIOD_S,
        on_lag: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.period_s = period_s
        self._on_lag = on_lag
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.last_beat: float | None = None  # `clock` time of the last wake-up
        self.last_lag_s = 0.0

    def start(self) -> None:
        """Needs a running event loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            due = self._clock() + self.period_s
            await asyncio.sleep(self.period_s)
            woke = self._clock()
            self.last_lag_s = max(0.0, woke - due)
            self.last_beat = woke
            if self._on_lag is not None:
                try:
                    self._on_lag(self.last_lag_s)
                except Exception:  # a broken observer must not stop the heartbeat
                    log.exception("loop lag observer failed")
