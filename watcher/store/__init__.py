"""Storage adapter. The daemon talks to `Store`; SQLite is the embedded backend."""

from watcher.store.retention import PruneReport, optimize, prune
from watcher.store.sqlite import Store, WriteTransaction, migrate, unchanged_for_recording
from watcher.store.stories import EditTarget, StoryEdit, StoryEntry, StoryMessage
from watcher.store.subscribers import HeldAlert

__all__ = [
    "EditTarget",
    "HeldAlert",
    "PruneReport",
    "Store",
    "StoryEdit",
    "StoryEntry",
    "StoryMessage",
    "WriteTransaction",
    "migrate",
    "optimize",
    "prune",
    "unchanged_for_recording",
]
