"""The systemd notify protocol: state lines sent as datagrams to `$NOTIFY_SOCKET`.

A few lines of socket code rather than a dependency (see sd_notify(3)): one datagram per
message, `KEY=value` lines. Without `$NOTIFY_SOCKET` (not run by systemd, or `Type=` other
than notify) every call does nothing. A failed send is logged once and never raised: the
daemon's work matters more than its reports about it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self, environ: Mapping[str, str], *, pid: int | None = None) -> None:
        self._address = _socket_address(environ.get("NOTIFY_SOCKET", ""))
        self._socket: socket.socket | None = None
        self._warned = False
        self.watchdog_interval_s = _watchdog_interval(environ, os.getpid() if pid is None else pid)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}")

    def reloading(self) -> None:
        # MONOTONIC_USEC tells systemd which reload this is (systemd 253 and newer need it
        # with Type=notify-reload; older ones ignore it).
        self._send(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def reloaded(self, status: str) -> None:
        self.ready(status)

    def stopping(self) -> None:
        self._send("STOPPING=1\nSTATUS=stopping")

    def status(self, text: str) -> None:
        self._send(f"STATUS={text}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _send(self, message: str) -> None:
        if self._address is None:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
                self._socket.setblocking(False)
            self._socket.sendto(message.encode("utf-8"), self._address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("cannot notify systemd at NOTIFY_SOCKET: %s", exc)


def _socket_address(value: str) -> str | bytes | None:
    if value.startswith("@"):
        # An abstract socket: its name starts with a NUL byte instead of "@".
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # unset, or a vsock/other address we do not speak


def _watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; None when the watchdog is
    off or meant for another process (WATCHDOG_PID)."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    owner = environ.get("WATCHDOG_PID")
    if usec <= 0 or (owner is not None and owner.strip() != str(pid)):
        return None
    return usec / 1_000_000 / 2
