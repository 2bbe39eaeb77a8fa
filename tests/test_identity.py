from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.identity import (
    _amp_request,
    _kept_query,
    _tracking,
    canonical_url,
    content_key,
    entry_keys,
)
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
        # One path in Unicode and percent-encoded, in either case of hex digits.
        (
            "https://on.ge/story/157146-თელავის",
            "https://on.ge/story/157146-%E1%83%97%E1%83%94%E1%83%9A%E1%83%90%E1%83%95%E1%83%98%E1%83%A1",
        ),
        (
            "https://news.am/arm/news/ռուս",
            "https://news.am/arm/news/%d5%bc%d5%b8%d6%82%d5%bd",
        ),
        ("https://a.example/%7Euser/%41b", "https://a.example/~user/Ab"),
        ("https://a.example/two words", "https://a.example/two%20words"),
        # A host in Unicode and in punycode.
        ("https://президент.рф/news/1", "https://xn--d1abbgf6aiiy.xn--p1ai/news/1"),
        ("https://WWW.Президент.РФ/news/1", "https://xn--d1abbgf6aiiy.xn--p1ai/news/1"),
        ("https://faß.de/a", "https://xn--fa-hia.de/a"),
        # "[" is encoded in a path, whichever spelling it comes with.
        ("https://a.example/a[1]/%7Efoo", "https://a.example/a[1]/~foo"),
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
        ("https://amp.dev/documentation", "https://dev/documentation"),
        ("https://apa.az/tags/amp/1", "https://apa.az/tags/1"),
        ("https://apa.az/news?amp=0", "https://apa.az/news"),
        # An encoded slash is not a slash; case counts in a path.
        ("https://a.example/a%2Fb", "https://a.example/a/b"),
        ("https://a.example/News", "https://a.example/news"),
        # Two sites: IDNA 2003 (Python's "idna" codec) would map ß to ss.
        ("https://faß.de/a", "https://fass.de/a"),
    ],
)
def test_canonical_url_keeps_different_links_apart(a: str, b: str) -> None:
    assert canonical_url(a) != canonical_url(b)


@pytest.mark.parametrize("port", ["abc", "99999", "\uff11"])
def test_a_link_whose_port_is_no_port_has_a_canonical_form(port: str) -> None:
    # urlsplit raises for such a port only when asked for it; a link key must never raise
    # (recording the document's entries would fail at every poll).
    url = f"https://User@WWW.News.example:{port}/a/"
    assert canonical_url(url) == f"https://news.example:{port}/a"
    assert canonical_url(url) == canonical_url(url.replace("https", "http"))


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


AT = datetime(2026, 11, 28, 9, 41, 17, tzinfo=UTC)


def dated(guid: str, link: str, title: str, published: datetime | None = AT) -> Entry:
    return Entry(guid=guid, link=link, title=title, summary="", published=published)


def test_title_key_recognises_an_item_whose_guid_and_link_both_changed() -> None:
    (first,) = entry_keys(1, [dated("a1", "https://x.az/s/1?sid=1", "Road to Khankendi reopens")])
    (again,) = entry_keys(
        1,
        # The same minute, the same words: case, spacing and punctuation aside.
        [
            dated(
                "a2", "https://x.az/s/9?sid=2", "ROAD to  Khankendi reopens!", AT.replace(second=59)
            )
        ],
    )
    assert first.guid_key != again.guid_key and first.link_key != again.link_key
    assert first.title_key is not None and first.title_key == again.title_key


def test_title_key_differs_by_feed_minute_and_words() -> None:
    base = dated("a", "https://x.az/1", "Road to Khankendi reopens")
    (key,) = entry_keys(1, [base])
    (other_feed,) = entry_keys(2, [base])
    (next_minute,) = entry_keys(
        1, [dated("a", "https://x.az/1", base.title, AT.replace(minute=42))]
    )
    (other_words,) = entry_keys(1, [dated("a", "https://x.az/1", "Road to Khankendi closes")])
    assert (
        len({key.title_key, other_feed.title_key, next_minute.title_key, other_words.title_key})
        == 4
    )


@pytest.mark.parametrize(
    "item",
    [
        dated("a", "https://x.az/1", "Road to Khankendi reopens", None),  # undated
        # A date without a time: every item of that day would share the minute.
        dated(
            "a", "https://x.az/1", "Road to Khankendi reopens", datetime(2026, 11, 28, tzinfo=UTC)
        ),
        dated("a", "https://x.az/1", "News digest"),  # too few words to tell items apart
        dated("a", "https://x.az/1", "«»"),
    ],
    ids=["undated", "date only", "two words", "no words"],
)
def test_no_title_key_where_it_would_identify_too_little(item: Entry) -> None:
    (key,) = entry_keys(1, [item])
    assert key.title_key is None


def test_a_title_and_minute_shared_by_two_items_of_a_batch_is_no_title_key() -> None:
    keys = entry_keys(
        1,
        [
            dated("live-1", "https://x.az/live/1", "Live: talks in Brussels"),
            dated("live-2", "https://x.az/live/2", "Live: talks in Brussels"),
            dated("other", "https://x.az/3", "Talks in Brussels end"),
        ],
    )
    assert [key.title_key is None for key in keys] == [True, True, False]


def test_content_key_ignores_case_spacing_and_punctuation_but_not_words() -> None:
    (key,) = entry_keys(1, [Entry("g", None, "Road reopens", "Russian peacekeepers left.")])
    same = content_key("ROAD  reopens!", "russian peacekeepers — left")
    assert key.content_key == same
    assert content_key("Road reopens", "Russian peacekeepers left the road") != same
    # Words moving between title and summary change the text.
    assert content_key("Road reopens Russian", "peacekeepers left") != same


def test_the_text_identity_from_the_parse_worker_gives_the_same_keys() -> None:
    """parse_feed computes each entry's text identity in the worker, off the event loop;
    the keys must be those computed from the text itself."""
    from watcher.identity import text_identity
    from watcher.model import FetchResult
    from watcher.parse import parse_feed

    body = (
        b"<rss version='2.0'><channel><title>t</title><item><title>Russian peacekeepers"
        b" leave Khankendi</title><guid>a</guid><pubDate>Wed, 08 Mar 2023 10:07:00 +0000"
        b"</pubDate><description>&lt;p&gt;The &lt;b&gt;last&lt;/b&gt; column left."
        b"&lt;/p&gt;</description></item></channel></rss>"
    )
    (parsed,) = parse_feed(FetchResult(200, "https://apa.az/rss", body)).entries
    assert parsed.text_identity == text_identity(parsed.title, parsed.summary)
    bare = Entry(parsed.guid, parsed.link, parsed.title, parsed.summary, parsed.published)
    assert bare.text_identity is None
    assert entry_keys(7, [parsed]) == entry_keys(7, [bare])
    assert entry_keys(7, [parsed])[0].title_key is not None


_QUERY_PARTS = st.sampled_from(
    ["a", "id", "utm_source", "UTM_Medium", "fbclid", "amp", "outputType", "at_medium", "=", "&",
     "&&", "1", "RSS", "x.y", "-", "~", "_", "%20", "+", " ", ";", "é", "=="]
)  # fmt: skip


@given(st.lists(_QUERY_PARTS, max_size=12).map("".join))
def test_a_query_is_filtered_as_parse_qsl_and_urlencode_would(query: str) -> None:
    # The string fast path for plain queries must give what the general path gives.
    reference = urlencode(
        [
            (k, v)
            for k, v in parse_qsl(query, keep_blank_values=True)
            if not _tracking(k.lower()) and not _amp_request(k.lower(), v.lower())
        ]
    )
    assert _kept_query(query) == reference


@given(st.text(max_size=30), st.sampled_from(["a.example", "Пример.рф", "www.x.az:8080"]))
def test_canonical_url_never_raises_and_is_its_own_canonical_form(path: str, host: str) -> None:
    url = canonical_url(f"https://{host}/{path}")
    assert canonical_url(url) == url


@given(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40),
    st.sampled_from(["https://A.example/", "http://www.x.az:8080/", "https://amp.x.az/news/"]),
)
def test_a_plainly_spelt_link_keeps_the_key_it_had_before_version_16(rest: str, start: str) -> None:
    # Schema v16 passes over such links without rekeying them: that must be right.
    from watcher.identity import plainly_spelt, spelled_url

    url = start + rest
    if plainly_spelt(url):
        assert canonical_url(url) == spelled_url(url)


@pytest.mark.parametrize(
    "url", ["https://x.cdn.ampproject.org/c/s/[x/é", "https://x.cdn.ampproject.org/c/s/ｘ[/a"]
)
def test_a_link_spelling_makes_odd_still_has_a_canonical_form(url: str) -> None:
    # Spelling moves an AMP cache link's first path segment into the host: one that does
    # not parse as a host must not make every poll of its feed (or the v16 upgrade) fail.
    canonical = canonical_url(url)
    assert canonical_url(canonical) == canonical
