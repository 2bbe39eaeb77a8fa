"""The parse path on real and broken documents."""

from pathlib import Path

import pytest

from watcher.errors import ParseError
from watcher.model import FetchResult
from watcher.parse import FeedParser, parse_feed

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


def fetched(body: bytes, content_type: str | None = "application/rss+xml") -> FetchResult:
    return FetchResult(
        status=200, url="http://127.0.0.1/feed", body=body, content_type=content_type
    )


def rss(items: str) -> bytes:
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>t</title>"
        f"{items}</channel></rss>"
    ).encode()


def test_seed_feed_parses_into_clean_entries() -> None:
    parsed = parse_feed(fetched((SEEDS / "turan-feed.xml").read_bytes()))
    assert parsed.version == "rss20"
    assert len(parsed.entries) == 3
    first = parsed.entries[0]
    assert first.title.startswith("Peacekeepers are a tool in the hands of Russia")
    assert first.guid == "turan-seed-1"
    assert first.link == "https://turan.example/politics/peacekeepers-are-a-tool"
    assert "<p>" not in first.summary
    assert "accompanied by the Russian peacekeeping contingent" in first.summary
    assert (
        first.published is not None and first.published.isoformat() == "2023-03-08T06:00:00+00:00"
    )


def test_html_is_stripped_and_entities_decoded() -> None:
    parsed = parse_feed(
        fetched(
            rss(
                "<item><title>Aliyev &amp; Putin</title><guid>1</guid>"
                "<description>&lt;p&gt;Met in &lt;b&gt;Moscow&lt;/b&gt;&amp;nbsp;today&lt;/p&gt;"
                "</description></item>"
            )
        )
    )
    (entry,) = parsed.entries
    assert entry.title == "Aliyev & Putin"
    assert entry.summary == "Met in Moscow today"


def test_atom_plain_text_title_keeps_its_angle_brackets() -> None:
    body = (
        b"<feed xmlns='http://www.w3.org/2005/Atom'><title>t</title>"
        b"<entry><id>urn:1</id><title type='text'>5 &lt; 6 &amp; &lt;b&gt; is text</title>"
        b"<summary type='text'>plain</summary></entry></feed>"
    )
    (entry,) = parse_feed(fetched(body, "application/atom+xml")).entries
    assert entry.title == "5 < 6 & <b> is text"


def test_header_charset_reaches_the_parser() -> None:
    body = (
        "<?xml version='1.0'?><rss version='2.0'><channel><title>t</title><item>"
        "<title>Миротворцы в Карабахе</title><guid>1</guid></item></channel></rss>"
    ).encode("windows-1251")
    parsed = parse_feed(fetched(body, "text/xml; charset=windows-1251"))
    assert parsed.entries[0].title == "Миротворцы в Карабахе"
    assert parsed.encoding == "windows-1251"


def test_broken_feed_still_yields_its_entries() -> None:
    body = rss("<item><title>One & two</title><guid>1</guid></item><item><title>Three")
    parsed = parse_feed(fetched(body))
    assert [e.title for e in parsed.entries][:1] == ["One & two"]
    assert parsed.warnings


@pytest.mark.parametrize(
    "body",
    [b"<html><body><h1>Not a feed</h1></body></html>", b"", b"\x00\xff\xfe random bytes"],
)
def test_non_feeds_raise_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed(fetched(body, "text/html"))


def test_entries_without_title_or_summary_are_dropped() -> None:
    parsed = parse_feed(fetched(rss("<item><guid>1</guid></item><item><title>x</title></item>")))
    assert [e.title for e in parsed.entries] == ["x"]


async def test_parser_pool_runs_off_the_event_loop() -> None:
    parser = FeedParser()
    try:
        parsed = await parser.parse(fetched((SEEDS / "turan-feed.xml").read_bytes()))
    finally:
        parser.close()
    assert len(parsed.entries) == 3
