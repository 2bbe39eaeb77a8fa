"""Storage adapter. The daemon talks to `Store`; SQLite is the embedded backend."""

from watcher.store.retention import PruneReport, optimize, prune
from watcher.store.sqlite import Store, WriteTransaction, migrate
from watcher.store.subscribers import HeldAlert

__all__ = ["HeldAlert", "PruneReport", "Store", "WriteTransaction", "migrate", "optimize", "prune"]
