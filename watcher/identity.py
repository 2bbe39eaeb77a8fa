"""PURE: the keys that say two feed items are the same entry.

Two keys per entry, either of which marks it as already seen:
- the guid key, scoped to its feed (guids are only unique within a feed);
- the link key, global, over a canonical form of the link, so the same article coming back
  under a new guid, in this feed or another, is recognised.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from watcher.model import Entry

_TRACKING_PREFIXES = ("utm_",)
_TRACKING_PARAMS = frozenset({"fbclid", "gclid", "yclid", "mc_cid", "mc_eid", "ref_src"})


@dataclass(frozen=True, slots=True)
class EntryKeys:
    guid_key: str
    link_key: str | None


def canonical_url(url: str) -> str:
    """A form of `url` under which trivially different spellings of one link compare equal:
    http ≡ https, host case and `www.` ignored, no fragment, no tracking parameters, no
    trailing slash."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    host = host.removeprefix("www.")
    if parts.port is not None and parts.port not in (80, 443):
        host = f"{host}:{parts.port}"
    query = urlencode(
        [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if k.lower() not in _TRACKING_PARAMS and not k.lower().startswith(_TRACKING_PREFIXES)
        ]
    )
    path = parts.path.rstrip("/")
    scheme = "https" if parts.scheme.lower() in ("http", "https") else parts.scheme.lower()
    return urlunsplit((scheme, host, path, query, ""))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:32]


def entry_keys(feed_id: int, entries: Sequence[Entry]) -> list[EntryKeys]:
    """Keys for one feed's batch of entries, in order.

    Some feeds give every item the same guid; a guid shared by items with different links
    in one batch identifies nothing, so those items are keyed by their link instead.
    """
    links_per_guid: dict[str, set[str | None]] = {}
    for entry in entries:
        if entry.guid:
            links_per_guid.setdefault(entry.guid, set()).add(entry.link)
    guid_counts = Counter(entry.guid for entry in entries if entry.guid)

    keys: list[EntryKeys] = []
    for entry in entries:
        link = canonical_url(entry.link) if entry.link else None
        guid_trusted = bool(entry.guid) and not (
            guid_counts[entry.guid or ""] > 1 and len(links_per_guid[entry.guid or ""]) > 1
        )
        if guid_trusted and entry.guid:
            identity = "guid:" + entry.guid
        elif link:
            identity = "link:" + link
        else:
            published = entry.published.isoformat() if entry.published else ""
            identity = "text:" + entry.title + "\0" + published
        keys.append(
            EntryKeys(
                guid_key=_digest(str(feed_id), identity),
                link_key=_digest(link) if link else None,
            )
        )
    return keys
