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


async def read_service_status(store: Store) -> ServiceStatus:
    feeds = await store.feeds()
    disabled = sum(1 for feed in feeds if feed.disabled_reason is not None)
    failing = sum(
        1 for feed in feeds if feed.failing_since is not None and feed.disabled_reason is None
    )
    pending = (await store.outbox_counts()).get("pending", 0)
    return ServiceStatus(
        feeds=len(feeds) - disabled, failing=failing, disabled=disabled, outbox=pending
    )
