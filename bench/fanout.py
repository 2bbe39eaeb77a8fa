"""One alert to 1,000 chats through the fake Bot API server, which enforces Telegram's
limits (30 messages/s overall, 1/s per private chat) and answers 429 when they are broken.

The floor is Telegram's own limit: 1,000 messages at 30/s. The delivery loop should come
close to it (ratio <= 1.1) without a single 429.

    .venv/bin/python bench/fanout.py [--chats 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.telegram_api import FakeTelegram
from watcher.delivery import Delivery
from watcher.model import Alert, Entry, FeedDef, Hit
from watcher.store import Store
from watcher.telegram.format import render_alert
from watcher.telegram.send import TelegramSender

TOKEN = "777000:BENCH-fanout-token-abcdefghijklmnop"
TELEGRAM_OVERALL_PER_S = 30.0


def now() -> datetime:
    return datetime.now(UTC)


async def fanout(chats: int, folder: Path) -> tuple[float, int, int]:
    async with FakeTelegram(TOKEN) as fake, await Store.open(folder / "bench.db") as store:
        await store.sync_feeds([FeedDef("apa", "https://apa.az/rss", 600)], now())
        state = await store.feed("apa")
        assert state is not None
        entry = Entry(
            guid="1",
            link="https://apa.az/news/1",
            title="Russian peacekeepers leave Khankendi",
            summary="The Russian peacekeeping contingent completed its withdrawal.",
        )
        text = render_alert(entry, "apa", [Hit("peacekeepers")])
        async with store.write() as tx:
            (new,) = await tx.insert_entries(state.id, [entry], now())
            await tx.enqueue([Alert(new.id, chat, text) for chat in range(1, chats + 1)], now())
        sender = TelegramSender(TOKEN, api_base_url=fake.base_url)
        delivery = Delivery(store, sender, clock=now)
        stop = asyncio.Event()
        started = time.perf_counter()
        runner = asyncio.create_task(delivery.run(stop))
        delivery.wake()
        await fake.wait_for_messages(chats, timeout=chats / 10 + 60)
        elapsed = time.perf_counter() - started
        stop.set()
        await runner
        await sender.close()
        return elapsed, fake.count_429, len(fake.sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        elapsed, http_429, sent = asyncio.run(fanout(args.chats, Path(folder)))
    limit = args.chats / TELEGRAM_OVERALL_PER_S
    print(f"chats:            {args.chats}")
    print(f"delivered:        {sent}")
    print(f"fan-out time:     {elapsed:.2f} s")
    print(f"Telegram's floor: {limit:.2f} s (30 messages/s)")
    print(f"ratio:            {elapsed / limit:.3f}")
    print(f"429 answers:      {http_429}")
    print(
        f"RESULT fanout_s={elapsed:.2f} limit_s={limit:.2f} ratio={elapsed / limit:.3f} "
        f"http_429={http_429}"
    )


if __name__ == "__main__":
    main()
