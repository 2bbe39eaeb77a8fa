"""How the commands that only read (`watcher status`, `watcher replay`) open the database."""

from __future__ import annotations

import os
from pathlib import Path


def reading_uri(path: Path) -> str:
    """The URI to open `path` with for reading only (the connection then sets
    `PRAGMA query_only`). `mode=rw` where the caller may write there: SQLite's `mode=ro`
    creates the -wal and -shm files beside a stopped daemon's database and cannot remove
    them, which left them owned by whoever ran `sudo watcher status`, and the service's
    own user unable to write. `mode=rw` never creates the database either, and the last
    connection to close removes them. `mode=ro` where the caller may not write."""
    absolute = path.absolute()
    writable = os.access(absolute, os.W_OK) and os.access(absolute.parent, os.W_OK)
    return f"{absolute.as_uri()}?mode={'rw' if writable else 'ro'}"
