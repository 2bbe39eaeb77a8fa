from datetime import UTC, datetime

import pytest

from watcher.identity import canonical_url, entry_keys
from watcher.model import Entry


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("http://www.Turan.az/news/1/", "https://turan.az/news/1"),
        ("https://turan.az/news/1#comments", "https://turan.az/news/1"),
        ("https://turan.az/news/1?utm_source=tg&utm_medium=x", "https://turan.az/news/1"),
        ("https://turan.az/news/1?fbclid=abc&id=7", "https://turan.az/news/1?id=7"),
        ("https://TURAN.az:443/news/1", "https://turan.az/news/1"),
        ("https://turan.az/news/1?gclid=1&msclkid=2&igshid=3", "https://turan.az/news/1"),
        # AMP renderings of the same article.
        ("https://amp.theguardian.com/world/2023/x", "https://www.theguardian.com/world/2023/x"),
        ("https://apa.az/news/1/amp", "https://apa.az/news/1"),
        ("https://apa.az/news/1/amp/", "https://apa.az/news/1/"),
        ("https://apa.az/amp/news/1", "https://apa.az/news/1"),
        ("https://apa.az/news/1.amp.html", "https://apa.az/news/1.html"),
        ("https://apa.az/news/1?amp=1", "https://apa.az/news/1"),
        ("https://apa.az/news/1?outputType=amp", "https://apa.az/news/1"),
        ("https://apa.az/news/1?amp", "https://apa.az/news/1"),
        ("https://apa-az.cdn.ampproject.org/c/s/apa.az/news/1", "https://apa.az/news/1"),
        ("https://apa-az.cdn.ampproject.org/c/apa.az/news/1", "http://apa.az/news/1"),
    ],
)
def test_canonical_url_folds_trivial_variants(a: str, b: str) -> None:
    assert canonical_url(a) == canonical_url(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://turan.az/news/1", "https://turan.az/news/2"),
        ("https://turan.az/news?id=1", "https://turan.az/news?id=2"),
        ("https://turan.az/news/1", "https://apa.az/news/1"),
        # "amp" as a real word of the path, or a page named amp, is kept.
        ("https://apa.az/amp", "https://apa.az"),
        ("https://apa.az/tags/amp/1", "https://apa.az/tags/1"),
        ("https://apa.az/news?amp=0", "https://apa.az/news"),
    ],
)
def test_canonical_url_keeps_different_links_apart(a: str, b: str) -> None:
    assert canonical_url(a) != canonical_url(b)


def entry(guid: str | None, link: str | None, title: str = "t") -> Entry:
    return Entry(guid=guid, link=link, title=title, summary="")


def test_guid_key_is_scoped_to_the_feed_and_link_key_is_global() -> None:
    (one,) = entry_keys(1, [entry("g", "https://x.az/a")])
    (two,) = entry_keys(2, [entry("g", "https://x.az/a")])
    assert one.guid_key != two.guid_key
    assert one.link_key == two.link_key


def test_a_guid_shared_by_different_links_falls_back_to_links() -> None:
    keys = entry_keys(1, [entry("same", "https://x.az/a"), entry("same", "https://x.az/b")])
    assert keys[0].guid_key != keys[1].guid_key


def test_entry_without_guid_or_link_is_keyed_by_title_and_date() -> None:
    when = datetime(2026, 11, 28, tzinfo=UTC)
    a, b, c = entry_keys(
        1,
        [
            Entry(guid=None, link=None, title="A", summary="", published=when),
            Entry(guid=None, link=None, title="A", summary="", published=when),
            Entry(guid=None, link=None, title="B", summary="", published=when),
        ],
    )
    assert a == b
    assert a.guid_key != c.guid_key
    assert a.link_key is None
