"""Storage adapter. The daemon talks to `Store`; SQLite is the embedded backend."""

from watcher.store.sqlite import Store, WriteTransaction, migrate

__all__ = ["Store", "WriteTransaction", "migrate"]
