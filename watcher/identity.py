"""PURE: the keys that say two feed items are the same entry, and whether its text changed.

Three keys per entry, any of which marks it as already seen:
- the guid key, scoped to its feed (guids are only unique within a feed);
- the link key, global, over a canonical form of the link, so the same article coming back
  under a new guid, in this feed or another, is recognised;
- the title key, scoped to its feed: the folded title words and the publication minute, for
  feeds that change both guid and link of an item they republish. Only for titles that can
  tell items apart (see `entry_keys`).

A fourth digest, the content key, is no identity: it says whether a known entry came back
with other words in its title or summary (markup, case, spacing and punctuation aside).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from watcher.model import Entry, TextIdentity
from watcher.text import FIELD_BREAK, scan_line

_TRACKING_PREFIXES = ("utm_",)
_TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "yclid", "mc_cid", "mc_eid", "ref_src", "igshid"}
)
# Parameters that only ask for the AMP rendering of the same article.
_AMP_PARAMS = frozenset({"amp", "outputtype"})
# Google's AMP cache: https://example-com.cdn.ampproject.org/c/s/example.com/path
_AMP_CACHE_SUFFIX = ".cdn.ampproject.org"


# A title key needs a title of this many words at least: "News digest" or "Live updates"
# recur with other content, and a minute is not narrow enough to tell those apart.
_TITLE_KEY_MIN_WORDS = 3
_MIDNIGHT = time(0)


@dataclass(frozen=True, slots=True)
class EntryKeys:
    guid_key: str
    link_key: str | None
    title_key: str | None  # None: undated, date only, a short title, or shared (entry_keys)
    content_key: str


def canonical_url(url: str) -> str:
    """A form of `url` under which trivially different spellings of one link compare equal:
    http ≡ https, host case and `www.` ignored, no fragment, no tracking parameters, no
    trailing slash, and the AMP rendering of an article equal to the article (an `amp.`
    host, an `/amp` path segment, `.amp.html`, `?amp=1`, Google's AMP cache); a path in
    Unicode equal to it percent-encoded, whatever the case of its hex digits or whether
    letters, digits and `-._~` are encoded; a host in Unicode equal to its punycode."""
    return normalised_spelling(spelled_url(url))


def plainly_spelt(url: str) -> bool:
    """Whether `url` holds only characters no normalisation of a path or host touches (no
    "%", nothing beyond ASCII): its canonical form is then its `spelled_url`."""
    return _PLAIN_URL.fullmatch(url) is not None


def normalised_spelling(spelled: str) -> str:
    """A `spelled_url` with its path and host spelt one way: `canonical_url`."""
    if plainly_spelt(spelled):  # nearly every link: nothing to normalise
        return spelled
    try:
        parts = urlsplit(spelled)
    except ValueError:  # what spelling made of an odd link ("[" moved into the host)
        return spelled
    return urlunsplit(
        (parts.scheme, _ascii_host(parts.netloc), _normal_path(parts.path), parts.query, "")
    )


# Characters a path may hold as they are (RFC 3986 pchar, and "/"), and "%".
_PATH_SAFE = "/!$&'()*+,;=:@-._~%"
# Characters no normalisation changes anywhere in a URL (not "[", which a path encodes).
_PLAIN_URL = re.compile(r"[A-Za-z0-9/!$&'()*+,;=:@._~?-]*")
_TRIPLET = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _normal_path(path: str) -> str:
    """RFC 3986's normalisations of a path (6.2.2): characters a path may not hold as they
    are (non-ASCII ones in UTF-8) percent-encoded, upper-case hex digits, and unreserved
    characters decoded. Encoded delimiters (`%2F`) stay encoded: they mean other paths."""
    encoded = quote(path, safe=_PATH_SAFE, errors="surrogatepass")
    return _TRIPLET.sub(_normal_triplet, encoded)


def _normal_triplet(match: re.Match[str]) -> str:
    character = chr(int(match[1], 16))
    return character if character in _UNRESERVED else "%" + match[1].upper()


def _ascii_host(netloc: str) -> str:
    """A host (and port) in Unicode as punycode ("xn--"), label by label, with no mapping
    but the lower case spelled_url gave it: Python's "idna" codec (IDNA 2003) would make
    "faß.de" "fass.de", another site."""
    if netloc.isascii():
        return netloc
    host, colon, port = netloc.rpartition(":")  # a port, as written ("host:abc" too)
    if not colon:
        host, port = netloc, ""
    labels = (
        label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii")
        for label in host.split(".")
    )
    return ".".join(labels) + colon + port


def spelled_url(url: str) -> str:
    """`canonical_url` up to the spelling of its path and host in Unicode and percent
    encoding: the canonical form of links keyed before schema v16."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # "https://[x/": no URL, yet a link key all the same
        return url.strip()
    netloc = parts.netloc
    if "@" in netloc or ":" in netloc or "[" in netloc:
        host = (parts.hostname or "").lower()
        try:
            port = parts.port
        except ValueError:  # "host:abc", "host:99999": kept as written, never a crash
            host, port = netloc.rpartition("@")[2].lower(), None
    else:  # as SplitResult.hostname and .port would say, without parsing it twice
        host, port = netloc.lower(), None
    path = parts.path
    if host.endswith(_AMP_CACHE_SUFFIX):
        # /c/s/HOST/PATH (s = https) or /c/HOST/PATH; /i/ and /v/ are images and viewers.
        cached = path.split("/")
        if len(cached) > 3 and cached[1] == "c":
            rest = cached[3:] if cached[2] == "s" else cached[2:]
            host, path = rest[0].lower(), "/" + "/".join(rest[1:])
    host = host.removeprefix("www.")
    if host.startswith("amp.") and host.count(".") >= 2:  # amp.example.com, not amp.dev
        host = host.removeprefix("amp.")
    if port is not None and port not in (80, 443):
        host = f"{host}:{port}"
    query = _kept_query(parts.query) if parts.query else ""
    scheme = "https" if parts.scheme.lower() in ("http", "https") else parts.scheme.lower()
    return urlunsplit((scheme, host, _without_amp(path).rstrip("/"), query, ""))


# A query whose every pair is made of characters that decoding and encoding leave alone.
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9_.~=&-]*")
_PLAIN_PAIR = re.compile(r"[A-Za-z0-9_.~-]*(?:=[A-Za-z0-9_.~-]*)?")


def _kept_query(query: str) -> str:
    """The query without tracking and AMP parameters, re-encoded: `urlencode(parse_qsl(q))`
    of the pairs kept. A plain query (most are: `?at_medium=RSS&at_campaign=rss`) is
    filtered as a string, with the same result; see tests/test_identity.py."""
    if _PLAIN_QUERY.fullmatch(query):
        pairs = [pair for pair in query.split("&") if pair]
        if all(_PLAIN_PAIR.fullmatch(pair) for pair in pairs):
            kept = []
            for pair in pairs:
                key, _, value = pair.partition("=")
                if not _tracking(key.lower()) and not _amp_request(key.lower(), value.lower()):
                    kept.append(f"{key}={value}")
            return "&".join(kept)
    return urlencode(
        [
            (k, v)
            for k, v in parse_qsl(query, keep_blank_values=True)
            if not _tracking(k.lower()) and not _amp_request(k.lower(), v.lower())
        ]
    )


def is_tracking_parameter(key: str) -> bool:
    """Whether a query parameter only tracks the reader (`utm_source`, `fbclid`, ...)."""
    return _tracking(key.lower())


def _tracking(key: str) -> bool:
    return key in _TRACKING_PARAMS or key.startswith(_TRACKING_PREFIXES)


def _amp_request(key: str, value: str) -> bool:
    return key in _AMP_PARAMS and value in ("", "1", "true", "amp", "yes")


def _without_amp(path: str) -> str:
    segments = path.split("/")
    if segments and segments[-1] == "":
        segments.pop()  # a trailing slash
    if len(segments) > 2 and segments[-1] == "amp":
        segments.pop()  # /news/123/amp
    elif len(segments) > 2 and segments[1] == "amp":
        del segments[1]  # /amp/news/123
    if segments:
        last = segments[-1]
        for amp_suffix, plain in ((".amp.html", ".html"), (".amp.htm", ".htm"), (".amp", "")):
            if last.endswith(amp_suffix) and len(last) > len(amp_suffix):
                segments[-1] = last[: -len(amp_suffix)] + plain
                break
    return "/".join(segments)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:32]


def link_key(canonical: str) -> str:
    """The link key of a canonical link."""
    return _digest(canonical)


def link_guid_key(feed_id: int, canonical: str) -> str:
    """The guid key of an entry known by its canonical link (no guid it can trust)."""
    return _digest(str(feed_id), "link:" + canonical)


def text_identity(title: str, summary: str) -> TextIdentity:
    """The folded words of the title, and a digest of the folded words of title and
    summary: two texts that differ only in case, spacing, punctuation or markup (gone from
    displayed text) share it. `watcher.text.words`, built the cheaper way."""
    folded = " ".join(scan_line(title, summary).line.split())
    return TextIdentity(
        folded_title=folded.partition(FIELD_BREAK)[0].rstrip(),
        content_key=_digest("content", folded),
    )


def content_key(title: str, summary: str) -> str:
    """The digest of `text_identity`."""
    return text_identity(title, summary).content_key


def title_key_minute(published: datetime | None) -> int | None:
    """The minute (since the epoch) a title key takes from a publication time; None for no
    time, or exactly midnight UTC: most likely a date without a time, which every item of
    that day shares."""
    if published is None:
        return None
    published = published.astimezone(UTC)
    if published.time() == _MIDNIGHT:
        return None
    return int(published.timestamp()) // 60


def _title_key(feed_id: int, published: datetime | None, title: str) -> str | None:
    """The folded title words and the minute of publication, scoped to the feed; None
    where it would identify too little (see `entry_keys`)."""
    minute = title_key_minute(published)
    if minute is None:
        return None
    if not title or title.count(" ") + 1 < _TITLE_KEY_MIN_WORDS:
        return None
    return _digest("title", str(feed_id), title, str(minute))


def entry_keys(feed_id: int, entries: Sequence[Entry]) -> list[EntryKeys]:
    """Keys for one feed's batch of entries, in order.

    Some feeds give every item the same guid; a guid shared by items with different links
    in one batch identifies nothing, so those items are keyed by their link instead.

    A title key wrongly shared by two different items hides the second one for good, so it
    is left out wherever that is likely: for undated entries, for a publication time of
    exactly midnight UTC (a date without a time), for titles of fewer than three words, and
    for a title and minute that two different items of this batch share ("Live: …").
    """
    links_per_guid: dict[str, set[str | None]] = {}
    for entry in entries:
        if entry.guid:
            links_per_guid.setdefault(entry.guid, set()).add(entry.link)
    guid_counts = Counter(entry.guid for entry in entries if entry.guid)

    # guid key, link, title key, content key
    identities: list[tuple[str, str | None, str | None, str]] = []
    items_per_title: dict[str, set[str]] = {}
    for entry in entries:
        link = canonical_url(entry.link) if entry.link else None
        guid_trusted = bool(entry.guid) and not (
            guid_counts[entry.guid or ""] > 1 and len(links_per_guid[entry.guid or ""]) > 1
        )
        if guid_trusted and entry.guid:
            guid_key = _digest(str(feed_id), "guid:" + entry.guid)
        elif link:
            guid_key = link_guid_key(feed_id, link)
        else:
            published = entry.published.isoformat() if entry.published else ""
            guid_key = _digest(str(feed_id), "text:" + entry.title + "\0" + published)
        text = entry.text_identity or text_identity(entry.title, entry.summary)
        title_key = _title_key(feed_id, entry.published, text.folded_title)
        if title_key is not None:
            items_per_title.setdefault(title_key, set()).add(guid_key)
        identities.append((guid_key, link, title_key, text.content_key))
    return [
        EntryKeys(
            guid_key=guid_key,
            link_key=link_key(link) if link else None,
            title_key=title_key if title_key and len(items_per_title[title_key]) == 1 else None,
            content_key=content,
        )
        for guid_key, link, title_key, content in identities
    ]
