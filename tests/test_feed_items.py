"""Items cut out of a document before feedparser reads it (watcher.feed_items).

The promise: where `item_layout` gives a layout, feedparser makes of every item of a
document with some items cut out exactly what it makes of that item in the whole document.
Checked on every real and corpus feed in tests/data that has a layout, cutting out several
patterns of items; the rest checks which documents get no layout, and that a parse given
known items reads only the others."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import feedparser
import pytest

import watcher.parse
from watcher.feed_items import ItemLayout, item_layout, without_items
from watcher.identity import title_key_minute
from watcher.model import FetchResult, KnownItem
from watcher.parse import _item_fields, parse_feed

DATA = Path(__file__).parent / "data"
BASE = "http://127.0.0.1/feed"

RSS = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
    b"<title>News</title><lastBuildDate>Sat, 28 Nov 2026 12:00:00 +0000</lastBuildDate>\n"
    b"<item><title>One</title><guid>1</guid></item>\n"
    b"<item><title>Two</title><guid>2</guid><dc:date>2026-11-28T10:00:00Z</dc:date></item>\n"
    b"<item><title>Three</title><guid>3</guid></item>\n"
    b"</channel></rss>"
)


def _items(body: bytes, layout: ItemLayout) -> list[bytes]:
    return [layout.item(body, index) for index in range(len(layout.spans))]


# --- where the items are --------------------------------------------------------------------


def test_rss_items_are_found_byte_for_byte() -> None:
    layout = item_layout(RSS, "utf-8", BASE)
    assert layout is not None
    assert _items(RSS, layout) == [
        b"<item><title>One</title><guid>1</guid></item>",
        b"<item><title>Two</title><guid>2</guid><dc:date>2026-11-28T10:00:00Z</dc:date></item>",
        b"<item><title>Three</title><guid>3</guid></item>",
    ]
    cut = without_items(RSS, layout, {1})
    assert b"Two" not in cut and cut.count(b"<item>") == 2
    assert cut.startswith(RSS[: layout.spans[0][0]]) and cut.endswith(b"</channel></rss>")


@pytest.mark.parametrize(
    ("body", "count"),
    [
        (
            b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            b'xmlns="http://purl.org/rss/1.0/"><channel rdf:about="x"><title>t</title>'
            b'</channel><item rdf:about="a"><title>a</title></item>'
            b'<item rdf:about="b"><title>b</title></item></rdf:RDF>',
            2,
        ),
        (
            b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
            b"<entry><id>a</id></entry> <entry><id>b</id></entry></feed>",
            2,
        ),
    ],
    ids=["rss1", "atom"],
)
def test_rdf_and_atom_items_are_found(body: bytes, count: int) -> None:
    layout = item_layout(body, None, BASE)
    assert layout is not None and len(layout.spans) == count


@pytest.mark.parametrize(
    ("body", "charset"),
    [
        (RSS, "windows-1251"),  # a label other than UTF-8
        (RSS.replace(b'encoding="utf-8"', b'encoding="koi8-r"'), None),
        (RSS.replace(b"One", b"\xef\xbf"), None),  # not UTF-8 throughout
        (RSS.replace(b"<title>One</title>", b"<title>One</titl>"), None),  # ill-formed
        (RSS.replace(b"<title>One", b"<title>&nbsp;One"), None),  # undefined entity
        (RSS.replace(b"<rss", b'<!DOCTYPE rss [<!ENTITY x "y">]><rss'), None),
        (RSS.replace(b"<dc:date>", b"<foo:date>").replace(b"</dc:date>", b"</foo:date>"), None),
        (
            RSS.replace(b"<channel>", b"<channel><item><title>0</title></item><image>", 1).replace(
                b"</channel>", b"</image></channel>"
            ),
            None,
        ),  # an item elsewhere
        (RSS.replace(b"<guid>1</guid>", b"<guid>1</guid><entry>x</entry>"), None),  # nested
        (RSS.replace(b"<item><title>One</title><guid>1</guid></item>", b"<item/>"), None),
        (RSS.replace(b"</item>\n<item><title>Two", b"</item><ttl>5</ttl><item><title>Two"), None),
        (b"<opml><body><outline/></body></opml>", None),  # not a feed
        (b'<rss version="2.0"><channel><title>t</title></channel></rss>', None),  # no items
    ],
    ids=[
        "legacy-charset",
        "legacy-declaration",
        "invalid-utf8",
        "ill-formed",
        "undefined-entity",
        "doctype",
        "unbound-prefix",
        "item-outside-the-channel",
        "entry-in-an-item",
        "empty-item",
        "element-between-items",
        "not-a-feed",
        "no-items",
    ],
)
def test_documents_whose_items_may_not_parse_alone_get_no_layout(
    body: bytes, charset: str | None
) -> None:
    assert item_layout(body, charset, BASE) is None


def test_the_context_is_what_surrounds_the_items_not_the_head() -> None:
    """A feed that adds an item changes its lastBuildDate: its items' context stays; a
    base URI, a namespace or an attribute of the elements items are in changes it."""
    context = item_layout(RSS, "utf-8", BASE).context  # type: ignore[union-attr]
    same = RSS.replace(b"12:00:00", b"13:00:00").replace(b"<title>News", b"<title>Latest")
    assert item_layout(same, "utf-8", BASE).context == context  # type: ignore[union-attr]
    others = [
        (RSS, "utf-8", "http://127.0.0.1/elsewhere"),
        (RSS, None, BASE),
        (RSS.replace(b"<channel>", b'<channel xml:base="http://x.example/">'), "utf-8", BASE),
        (RSS.replace(b"/dc/elements/1.1/", b"/dc/terms/"), "utf-8", BASE),
        (RSS.replace(b'version="2.0"', b'version="0.91"'), "utf-8", BASE),
    ]
    for body, charset, base in others:
        assert item_layout(body, charset, base).context != context  # type: ignore[union-attr]


# --- the promise, on real feeds ---------------------------------------------------------------


# The real feeds copied here, and where present those read at run time from the shared data
# (more of the same collections; some have no licence to copy them under).
SHARED_FEEDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "feeds-real"


def _documents() -> dict[str, bytes]:
    """Every feed document with a layout and at least two items: the real ones, and each
    one-item document of the feedparser corpus with its item three times over (the corpus
    has an item of every shape feedparser knows; what one carries over to the next is what
    cutting items out could change)."""
    documents: dict[str, bytes] = {}
    paths = [*sorted(DATA.rglob("*")), *sorted(SHARED_FEEDS.rglob("*"))]
    for path in paths:
        if path.suffix.lower() not in (".xml", ".rss", ".atom", ".rdf"):
            continue
        body = path.read_bytes()
        layout = item_layout(body, None, BASE)
        if layout is None:
            continue
        name = f"{path.parent.name}/{path.name}"
        if len(layout.spans) >= 2:
            documents.setdefault(name, body)
        elif "feedparser-corpus" in path.parts:
            start, end = layout.spans[0]
            item = body[start:end]
            documents[name + " x3"] = body[:start] + b"\n".join([item] * 3) + body[end:]
    return documents


DOCUMENTS = _documents()


def test_real_feeds_have_layouts() -> None:
    """What the promise is checked on: the real feeds copied here are among them, and a
    hundred corpus items."""
    copied = DATA / "feeds-real" / "fastfeedparser-benchmark-en-news"
    for path in copied.glob("*.xml"):
        assert f"{copied.name}/{path.name}" in DOCUMENTS
    assert sum(name.endswith(" x3") for name in DOCUMENTS) >= 80


def _feedparser(body: bytes) -> Any:
    return feedparser.parse(
        io.BytesIO(body),
        response_headers={"content-location": BASE, "content-type": "application/xml"},
        sanitize_html=False,
        resolve_relative_uris=False,
    )


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_an_item_parses_alike_with_other_items_cut_out(name: str) -> None:
    body = DOCUMENTS[name]
    layout = item_layout(body, None, BASE)
    assert layout is not None
    whole = _feedparser(body)
    assert len(whole.entries) == len(layout.spans)
    expected = [_item_fields(raw) for raw in whole.entries]
    count = len(layout.spans)
    patterns = {
        "odd": {i for i in range(count) if i % 2},
        "even after the first": {i for i in range(2, count, 2)},
        "all but the first": set(range(1, count)),
        "the last": {count - 1},
    }
    for name, left_out in patterns.items():
        cut = _feedparser(without_items(body, layout, left_out))
        kept = [i for i in range(count) if i not in left_out]
        assert [_item_fields(raw) for raw in cut.entries] == [expected[i] for i in kept], name
        assert (cut.version, cut.encoding, cut.bozo) == (whole.version, whole.encoding, whole.bozo)
        assert cut.feed.get("ttl") == whole.feed.get("ttl")


# --- the parse ------------------------------------------------------------------------------


def test_a_parse_given_known_items_has_feedparser_read_only_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = DATA / "feeds-real" / "fastfeedparser-benchmark-en-news"
    body = next(path.glob("nyt-world*.xml")).read_bytes()
    result = FetchResult(200, BASE, body, content_type="application/rss+xml; charset=utf-8")
    whole = parse_feed(result)
    assert len(whole.entries) > 20
    # Known: every item but the third (as after a poll that listed all but that one).
    known = {
        entry.item_digest: KnownItem(entry.guid, title_key_minute(entry.published))
        for position, entry in enumerate(whole.entries)
        if position != 2 and entry.item_digest is not None
    }
    assert len(known) == len(whole.entries) - 1
    read: list[int] = []
    real = watcher.parse._feedparser

    def counting(body: bytes, headers: dict[str, str]) -> Any:
        document = real(body, headers)
        read.append(len(document.entries))
        return document

    monkeypatch.setattr(watcher.parse, "_feedparser", counting)
    again = parse_feed(result, known=known)
    assert read == [2]  # the first item (always read) and the third
    assert [entry.title for entry in again.entries] == [whole.entries[2].title]
    assert again.entries[0].item_digest == whole.entries[2].item_digest
    assert [item.position for item in again.unchanged] == [
        p for p in range(len(whole.entries)) if p != 2
    ]
    assert (again.version, again.encoding, again.ttl_s) == (
        whole.version,
        whole.encoding,
        whole.ttl_s,
    )


def test_a_new_item_sharing_a_guid_with_a_known_one_has_the_whole_document_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Items sharing a guid are keyed together (`entry_keys`): the known one is read again
    and neither is left out."""
    first = FetchResult(200, BASE, RSS)
    whole = parse_feed(first)
    known = {
        entry.item_digest: KnownItem(entry.guid, title_key_minute(entry.published))
        for entry in whole.entries
        if entry.item_digest is not None
    }
    added = RSS.replace(
        b"<item><title>Three",
        b"<item><title>Again</title><guid>2</guid></item>\n<item><title>Three",
    )
    read: list[int] = []
    real = watcher.parse._feedparser

    def counting(body: bytes, headers: dict[str, str]) -> Any:
        document = real(body, headers)
        read.append(len(document.entries))
        return document

    monkeypatch.setattr(watcher.parse, "_feedparser", counting)
    again = parse_feed(FetchResult(200, BASE, added), known=known)
    assert read == [2, 4]  # the first item and the new one; then the whole document
    assert [entry.title for entry in again.entries] == ["Two", "Again"]
    assert [entry.item_digest for entry in again.entries] == [None, None]
    assert [item.position for item in again.unchanged] == [0, 3]
