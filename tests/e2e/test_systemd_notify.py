"""`watcher run` under a systemd that we play: a NOTIFY_SOCKET datagram socket, a watchdog
(WATCHDOG_USEC) and the bot token as a credential (LoadCredential=, CREDENTIALS_DIRECTORY).
The daemon must report READY only when it works, prove it is alive with WATCHDOG=1, bracket
a SIGHUP reload with RELOADING=1/READY=1, and say STOPPING=1 on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.daemon import DaemonProcess, news_feed, write_config
from tests.fakes.feed_server import FeedServer
from tests.fakes.telegram_api import FakeTelegram

pytestmark = pytest.mark.e2e

TOKEN = "616161:E2E-systemd-token-abcdefghijklmno"


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    folder = Path(tempfile.mkdtemp(prefix="sd", dir="/tmp"))  # AF_UNIX paths are short
    path = str(folder / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.setblocking(False)
    yield server, path
    server.close()
    Path(path).unlink()
    folder.rmdir()


async def next_message(server: socket.socket, timeout: float = 15.0) -> str:  # noqa: ASYNC109
    data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(server, 4096), timeout)
    return data.decode()


async def messages_until(server: socket.socket, prefix: str) -> list[str]:
    """Every message up to and including the first that starts with `prefix`."""
    seen = []
    while True:
        seen.append(await next_message(server))
        if seen[-1].startswith(prefix):
            return seen


async def test_ready_watchdog_reloading_and_stopping_in_order(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    server, socket_path = notify_socket
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "telegram-token").write_text(TOKEN + "\n", encoding="utf-8")
    async with FeedServer() as feeds, FakeTelegram(TOKEN) as telegram:
        feeds.serve("/apa.xml", news_feed(("1", "Old news")))
        config = write_config(
            tmp_path,
            {"apa": feeds.url("/apa.xml")},
            api=telegram.base_url,
            token_env="NO_SUCH_VARIABLE",  # the token comes only from the credential
        )
        daemon = DaemonProcess(
            config,
            {
                "NOTIFY_SOCKET": socket_path,
                "WATCHDOG_USEC": "1000000",  # a beat every 0.5 s
                "CREDENTIALS_DIRECTORY": str(credentials),
            },
            tmp_path,
        )
        try:
            started = time.monotonic()
            daemon.start()
            ready = await next_message(server)
            assert ready == "READY=1\nSTATUS=polling 1 feeds, 0 failing, outbox 0"
            # READY came after the first tick and the bot's start (the token reached it
            # only through the credential).
            assert feeds.hits("/apa.xml"), "READY=1 before the first poll started"
            assert any(call.method.lower() == "getme" for call in telegram.calls)

            beats = [await next_message(server) for _ in range(3)]
            assert beats == ["WATCHDOG=1"] * 3
            assert time.monotonic() - started < 15

            daemon.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
            reload_messages = await messages_until(server, "READY=1")
            states = [m.split("\n")[0] for m in reload_messages if m != "WATCHDOG=1"]
            assert states == ["RELOADING=1", "READY=1"]
            reloading = next(m for m in reload_messages if m.startswith("RELOADING=1"))
            assert "\nMONOTONIC_USEC=" in reloading

            stop = asyncio.create_task(daemon.stop())
            stop_messages = await messages_until(server, "STOPPING=1")
            assert [m for m in stop_messages if m != "WATCHDOG=1"] == [
                "STOPPING=1\nSTATUS=stopping"
            ]
            code, _ = await stop
            assert code == 0
        finally:
            daemon.kill()
        assert TOKEN not in daemon.output


async def test_no_notify_socket_no_trouble(tmp_path: Path) -> None:
    async with FeedServer() as feeds:
        feeds.serve("/apa.xml", news_feed(("1", "Old news")))
        config = write_config(tmp_path, {"apa": feeds.url("/apa.xml")})
        daemon = DaemonProcess(config, {"WATCHDOG_USEC": "1000000"}, tmp_path)
        try:
            daemon.start()
            await daemon.wait_for_log("poll feed=apa status=200")
            code, _ = await daemon.stop()
            assert code == 0
        finally:
            daemon.kill()
        assert "systemd" not in daemon.stderr
