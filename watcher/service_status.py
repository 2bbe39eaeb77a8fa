"""What the daemon tells systemd about itself: the STATUS= line `systemctl status` shows."""

from __future__ import annotations

from dataclasses import dataclass

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
    states = await store.feed_state_counts(failing_after)
    pending = (await store.outbox_counts()).get("pending", 0)
    return ServiceStatus(
        feeds=sum(states.values()) - states.get("disabled", 0),
        failing=states.get("failing", 0),
        disabled=states.get("disabled", 0),
        outbox=pending,
    )
