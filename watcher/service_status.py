"""What the daemon tells systemd about itself: the STATUS= line `systemctl status` shows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from watcher.status_command import feed_state_name
from watcher.store import Store


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    feeds: int
    failing: int
    disabled: int
    outbox: int  # alerts and notices waiting to be sent

    def line(self) -> str:
        text = f"polling {self.feeds} feeds, {self.failing} failing, outbox {self.outbox}"
        if self.disabled:
            text += f", {self.disabled} disabled (410 Gone)"
        return text


async def read_service_status(store: Store, failing_after: int) -> ServiceStatus:
    """Feeds counted by the state `watcher status` and /metrics show for them."""
    states = Counter(feed_state_name(feed, failing_after) for feed in await store.feeds())
    pending = (await store.outbox_counts()).get("pending", 0)
    return ServiceStatus(
        feeds=sum(states.values()) - states["disabled"],
        failing=states["failing"],
        disabled=states["disabled"],
        outbox=pending,
    )
