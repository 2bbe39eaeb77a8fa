"""Noticing that config files changed, by polling their modification stamps.

Polling a handful of small files once a second costs nothing and needs no inotify
dependency; it also sees edits made by replacing the file (how most editors save).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

Stamp = tuple[int, int, int] | None  # (inode, mtime in ns, size); None when missing


def _stamp(path: Path) -> Stamp:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


class FileStamps:
    """The stamps of a set of files, to compare against later."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self._stamps = {path: _stamp(path) for path in paths}

    def for_files(self, paths: Iterable[Path]) -> FileStamps:
        """The stamps of `paths`: as they were in this snapshot where it has them (an edit
        made since is still to be seen), as they are now for the others."""
        stamps = FileStamps(())
        stamps._stamps = {
            path: self._stamps[path] if path in self._stamps else _stamp(path) for path in paths
        }
        return stamps

    def including(self, paths: Iterable[Path]) -> FileStamps:
        """These stamps, and those of `paths` not among them as they are now."""
        stamps = FileStamps(())
        stamps._stamps = dict(self._stamps)
        for path in paths:
            if path not in stamps._stamps:
                stamps._stamps[path] = _stamp(path)
        return stamps

    def changed(self) -> list[Path]:
        """Files whose stamp differs from the snapshot (edited, replaced, removed)."""
        return [path for path, stamp in self._stamps.items() if _stamp(path) != stamp]
