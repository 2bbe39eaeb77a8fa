"""The notify protocol against a real datagram socket, as systemd would hold it."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from watcher.sd_notify import SystemdNotifier


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    # AF_UNIX paths are limited to 108 bytes: pytest's tmp_path can be longer.
    folder = Path(tempfile.mkdtemp(prefix="sd", dir="/tmp"))
    path = str(folder / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2)
    yield server, path
    server.close()
    Path(path).unlink()
    folder.rmdir()


def received(server: socket.socket) -> str:
    return server.recv(4096).decode()


def test_each_state_is_one_datagram_of_key_value_lines(
    notify_socket: tuple[socket.socket, str],
) -> None:
    server, path = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})

    notifier.ready("polling 3 feeds, 0 failing, outbox 0")
    notifier.watchdog()
    notifier.reloading()
    notifier.reloaded("polling 4 feeds, 0 failing, outbox 0")
    notifier.stopping()

    assert received(server) == "READY=1\nSTATUS=polling 3 feeds, 0 failing, outbox 0"
    assert received(server) == "WATCHDOG=1"
    reloading = received(server).split("\n")
    assert reloading[0] == "RELOADING=1"
    assert reloading[1].startswith("MONOTONIC_USEC=") and int(reloading[1].split("=")[1]) > 0
    assert received(server) == "READY=1\nSTATUS=polling 4 feeds, 0 failing, outbox 0"
    assert received(server) == "STOPPING=1\nSTATUS=stopping"
    notifier.close()


def test_an_abstract_socket_name() -> None:
    name = f"watcher-test-{id(object())}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(b"\0" + name.encode())
    server.settimeout(2)
    try:
        SystemdNotifier({"NOTIFY_SOCKET": f"@{name}"}).status("hello")
        assert received(server) == "STATUS=hello"
    finally:
        server.close()


def test_nothing_happens_without_notify_socket() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    notifier.ready("x")  # no socket, no error
    assert notifier.watchdog_interval_s is None


def test_a_vanished_socket_is_logged_once_and_never_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    notifier.ready("x")
    notifier.watchdog()
    warnings = [r for r in caplog.records if "cannot notify systemd" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"WATCHDOG_USEC": "60000000"}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "4242"}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_interval_is_half_of_watchdog_usec(
    environ: dict[str, str], interval: float | None
) -> None:
    assert SystemdNotifier(environ, pid=4242).watchdog_interval_s == interval
