"""The parse path on real and broken documents."""

import calendar
import gzip
import re
import time
import tracemalloc
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.errors import ParseError
from watcher.model import FetchResult, ParsedFeed
from watcher.parse import (
    _EARLIEST_PUBLISHED,
    _FUTURE_TOLERANCE,
    _clean,
    _published,
    parse_feed,
)

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


# --- hostile and broken bodies ----------------------------------------------------------------


def titles_and_text(parsed: ParsedFeed) -> str:
    return " ".join(f"{e.title} {e.summary} {e.guid} {e.link}" for e in parsed.entries)


@pytest.mark.parametrize("well_formed", [True, False], ids=["strict", "lenient"])
def test_external_entities_never_read_local_files(tmp_path: Path, well_formed: bool) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("MARKER-7f3a9", encoding="utf-8")
    broken = "" if well_formed else " & broken"
    body = (
        "<?xml version='1.0'?>"
        f'<!DOCTYPE rss [<!ENTITY file SYSTEM "file://{secret}">'
        '<!ENTITY passwd SYSTEM "file:///etc/passwd">'
        f'<!ENTITY % remote SYSTEM "file://{secret}"> %remote;]>'
        "<rss version='2.0'><channel><title>t</title><item><guid>1</guid>"
        f"<title>a &file; b &passwd;{broken}</title><description>&file;</description>"
        "</item></channel></rss>"
    ).encode()
    parsed = parse_feed(fetched(body))
    text = titles_and_text(parsed)
    assert parsed.entries and "MARKER-7f3a9" not in text and "root:" not in text


def laughs(levels: int, newlines: bool) -> str:
    sep = "\n" if newlines else ""
    declarations = ['<!ENTITY lol0 "lol">']
    declarations += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, levels + 1)]
    return sep.join(declarations)


@pytest.mark.parametrize(
    ("newlines", "encoding"),
    [(True, "utf-8"), (False, "utf-8"), (False, "utf-16")],
    ids=["multi-line", "one-line", "utf-16"],
)
def test_billion_laughs_is_fast_and_small(newlines: bool, encoding: str) -> None:
    # feedparser itself drops entity declarations only when each starts a line; expat's own
    # guard fires after ~1M callbacks: seconds and ~100 MB per feed before our fix.
    body = (
        f"<?xml version='1.0' encoding='{encoding}'?>"
        f"<!DOCTYPE rss [{laughs(9, newlines)}]><rss version='2.0'><channel><title>t</title>"
        "<item><guid>1</guid><title>x &lol9;</title></item></channel></rss>"
    ).encode(encoding)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        parsed = parse_feed(fetched(body, None))
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
    assert elapsed < 10  # generous: the unguarded parse took seconds and ~100 MB
    assert "lollollol" not in titles_and_text(parsed)


def test_one_large_entity_repeated_is_stopped_by_expat() -> None:
    big = "A" * 100_000
    body = (
        f"<?xml version='1.0'?><!DOCTYPE rss [<!ENTITY a '{big}'>]>"
        "<rss version='2.0'><channel><title>t</title><item><guid>1</guid><title>x</title>"
        f"<description>{'&a;' * 2000}</description></item></channel></rss>"
    ).encode()
    started = time.perf_counter()
    parsed = parse_feed(fetched(body))
    assert time.perf_counter() - started < 10  # generous: only a blow-up fails it
    assert parsed.warnings and len(parsed.entries[0].summary) <= 20_000


@given(st.binary(max_size=3000))
@settings(max_examples=150, deadline=None)
def test_random_bytes_parse_or_raise_parse_error(body: bytes) -> None:
    try:
        parsed = parse_feed(fetched(body, None))
    except ParseError:
        return
    assert isinstance(parsed, ParsedFeed)


@given(st.data())
@settings(max_examples=100, deadline=None)
def test_damaged_real_feed_parses_or_raises_parse_error(data: st.DataObject) -> None:
    body = bytearray((SEEDS / "turan-feed.xml").read_bytes())
    for _ in range(data.draw(st.integers(1, 20))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(body)))
    try:
        parsed = parse_feed(fetched(bytes(body[:cut])))
    except ParseError:
        return
    for entry in parsed.entries:
        assert entry.title or entry.summary


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", None),
        (b"   \n\t ", "application/rss+xml"),
        (b"<!DOCTYPE html><html><head><title>Hi</title></head><body>x</body></html>", None),
        (b"<html><body><p>News</p></body></html>", "application/rss+xml"),
        (b"<?xml version='1.0'?><note><to>x</to></note>", "application/xml"),
        (b'{"items": [{"title": "json"}]}', "application/json"),
    ],
    ids=["empty", "blank", "html", "html-as-rss", "other-xml", "json"],
)
def test_what_is_not_a_feed_is_a_parse_error(body: bytes, content_type: str | None) -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed(fetched(body, content_type))


def test_entries_without_guid_or_link_are_kept() -> None:
    parsed = parse_feed(fetched(rss("<item><title>Bare</title></item>")))
    assert [(e.guid, e.link, e.title) for e in parsed.entries] == [(None, None, "Bare")]


def test_duplicate_guids_are_all_kept_in_order() -> None:
    # Telling them apart is identity.py's job: some feeds give every item one guid.
    items = "".join(
        f"<item><guid isPermaLink='false'>same</guid><title>Story {n}</title>"
        f"<link>https://example.org/{n}</link></item>"
        for n in range(3)
    )
    parsed = parse_feed(fetched(rss(items)))
    assert [(e.guid, e.title) for e in parsed.entries] == [
        ("same", "Story 0"),
        ("same", "Story 1"),
        ("same", "Story 2"),
    ]


RUSSIAN = "Миротворцы в Карабахе"


def feed_in(encoding: str, declared: str | None) -> bytes:
    declaration = f" encoding='{declared}'" if declared else ""
    return (
        f"<?xml version='1.0'{declaration}?><rss version='2.0'><channel><title>t</title>"
        f"<item><guid>1</guid><title>{RUSSIAN}</title></item></channel></rss>"
    ).encode(encoding)


def test_utf8_header_over_declared_windows_1251_body_reads_the_declaration() -> None:
    parsed = parse_feed(fetched(feed_in("windows-1251", "windows-1251"), "text/xml; charset=utf-8"))
    assert parsed.entries[0].title == RUSSIAN
    assert parsed.encoding == "windows-1251"
    assert parsed.warnings  # the header lied


def test_utf8_header_over_undeclared_windows_1251_body_is_recovered_as_latin() -> None:
    # Nothing in the body names its charset and chardet is not installed: feedparser's last
    # resort is windows-1252. The feed still parses and says why the text may be wrong.
    parsed = parse_feed(fetched(feed_in("windows-1251", None), "text/xml; charset=utf-8"))
    assert parsed.encoding == "windows-1252"
    assert parsed.entries[0].title == RUSSIAN.encode("windows-1251").decode("windows-1252")
    assert any("windows-1252" in warning for warning in parsed.warnings)


@pytest.mark.parametrize(
    ("content_type", "declared"),
    [
        ("text/xml; charset=windows-1251", None),
        ("application/rss+xml; charset=koi8-r", "utf-8"),
        (None, "windows-1251"),
        ("application/rss+xml; charset=iso-8859-1", None),
    ],
)
def test_utf8_body_under_a_legacy_label_is_read_as_utf8(
    content_type: str | None, declared: str | None
) -> None:
    parsed = parse_feed(fetched(feed_in("utf-8", declared), content_type))
    assert parsed.entries[0].title == RUSSIAN
    assert parsed.encoding == "utf-8"
    assert any("valid UTF-8" in warning for warning in parsed.warnings)


def test_a_legacy_body_under_its_own_label_is_left_alone() -> None:
    parsed = parse_feed(fetched(feed_in("koi8-r", None), "application/rss+xml; charset=koi8-r"))
    assert parsed.entries[0].title == RUSSIAN
    assert not parsed.warnings


def test_no_content_type_means_utf8_not_latin1() -> None:
    # feedparser assumes ISO-8859-1 when headers carry no Content-Type: mojibake for any
    # undeclared UTF-8 feed.
    parsed = parse_feed(fetched(feed_in("utf-8", None), None))
    assert parsed.entries[0].title == RUSSIAN
    assert parsed.encoding == "utf-8" and not parsed.warnings


@pytest.mark.parametrize(
    "title",
    ["   ", "&#160; &nbsp;", "\u200b\ufeff\u200e", "<b> </b>", "&#1;&#x7f;"],
    ids=["spaces", "nbsp", "invisible", "empty-markup", "controls"],
)
def test_titles_of_nothing_are_empty(title: str) -> None:
    body = rss(
        f"<item><guid>1</guid><title>{title}</title></item>"
        f"<item><guid>2</guid><title>{title}</title><description>Text</description></item>"
    )
    parsed = parse_feed(fetched(body))
    assert [(e.guid, e.title, e.summary) for e in parsed.entries] == [
        ("http://127.0.0.1/2", "", "Text")
    ]


def test_control_characters_and_impossible_characters_are_removed() -> None:
    body = rss(
        "<item><guid>g&#1;1</guid><title>a&#1;b&#x0B;c&#127;d&#x85;e x&#xD800;y&#1114112;z"
        "&#x1F600;</title><description>raw\x01\x08 text</description></item>"
    )
    parsed = parse_feed(fetched(body))
    (entry,) = parsed.entries
    # A vertical tab is a space; feedparser reads C1 characters as windows-1252 (U+0085 → …).
    assert entry.title == "ab cd\u2026e x\ufffdy\ufffdz\U0001f600"
    assert entry.summary == "raw text"
    assert entry.guid is not None and "\x01" not in entry.guid


@pytest.mark.parametrize("prefix", ["&#", "&#x"])
def test_a_character_reference_of_a_megabyte_of_zeros_is_read_at_once(prefix: str) -> None:
    # Matched the naive way, the zeros could be shared between the leading zeros and the
    # digits every which way: quadratic, about two hours for this body. Generous bound:
    # only that fails it.
    body = rss(f"<item><guid>g</guid><title>t {prefix}{'0' * 1_000_000}</title></item>")
    started = time.perf_counter()
    parse_feed(fetched(body))
    assert time.perf_counter() - started < 20


def test_a_character_reference_of_thousands_of_digits_is_an_impossible_character() -> None:
    # int() refuses more than 4,300 digits: that was a crash of the poll, not a feed read.
    body = rss(f"<item><guid>g</guid><title>a&#{'1' * 5000};b&#x{'F' * 5000};c</title></item>")
    (entry,) = parse_feed(fetched(body)).entries
    assert entry.title == "a\ufffdb\ufffdc"


NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("date", "kept"),
    [
        ("Sat, 28 Nov 2026 09:00:00 +0300", True),
        ("Sat, 28 Nov 2026 20:00:00 GMT", True),  # a time zone mistake: hours ahead
        ("Mon, 30 Nov 2026 12:00:00 GMT", False),
        ("Mon, 01 Jan 1800 00:00:00 GMT", False),
        ("9999-12-31T23:59:59Z", False),
        ("0000-00-00", False),
        ("yesterday", False),
    ],
)
def test_absurd_dates_become_unknown(date: str, kept: bool) -> None:
    body = rss(f"<item><guid>1</guid><title>x</title><pubDate>{date}</pubDate></item>")
    (entry,) = parse_feed(fetched(body), now=NOW).entries
    assert (entry.published is not None) == kept


def test_huge_fields_are_bounded_and_fast() -> None:
    word = "peacekeepers "
    body = rss(
        f"<item><guid>{'g' * 5000}</guid><link>https://example.org/{'p' * 5000}</link>"
        f"<title>{word * 100_000}</title><description>{word * 400_000}</description></item>"
    )
    started = time.perf_counter()
    (entry,) = parse_feed(fetched(body)).entries
    assert time.perf_counter() - started < 10  # generous: only a blow-up fails it
    assert 0 < len(entry.title) <= 1000 and 0 < len(entry.summary) <= 20_000
    assert entry.guid is not None and entry.guid.startswith("sha256:") and len(entry.guid) < 100
    assert entry.link is None


@pytest.mark.parametrize(
    ("link", "kept"),
    [
        ("https://example.org/a", True),
        ("  http://example.org/b\n ", True),
        ("javascript:alert(1)", False),
        ("data:text/html,hi", False),
        ("ftp://example.org/c", False),
        ("https://example.org:8080/d", True),
        ("https://example.org:abc/e", False),  # urlsplit raises only when asked the port
        ("https://example.org:99999/f", False),
    ],
)
def test_only_web_links_are_links(link: str, kept: bool) -> None:
    body = rss(f"<item><guid>1</guid><title>x</title><link>{link}</link></item>")
    (entry,) = parse_feed(fetched(body)).entries
    assert (entry.link == link.strip()) if kept else entry.link is None


def test_gzip_body_without_content_encoding_is_inflated() -> None:
    parsed = parse_feed(fetched(gzip.compress((SEEDS / "turan-feed.xml").read_bytes())))
    assert len(parsed.entries) == 3
    assert any("gzip" in warning for warning in parsed.warnings)


def test_gzip_bomb_and_corrupt_gzip_are_parse_errors() -> None:
    member = gzip.compress(b"<" * (8 * 1024 * 1024), compresslevel=1)
    bomb = member * 9  # 72 MB inflated from ~70 KB; gzip allows members back to back
    started = time.perf_counter()
    with pytest.raises(ParseError, match="inflates past"):
        parse_feed(fetched(bomb))
    assert time.perf_counter() - started < 10  # generous: only a blow-up fails it
    with pytest.raises(ParseError, match="corrupt gzip"):
        parse_feed(fetched(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff\xff\xff\xff"))


def test_gzip_members_back_to_back_are_all_inflated() -> None:
    body = (SEEDS / "turan-feed.xml").read_bytes()
    parsed = parse_feed(fetched(gzip.compress(body[:1000]) + gzip.compress(body[1000:])))
    assert len(parsed.entries) == 3


def test_truncated_gzip_yields_the_entries_before_the_cut() -> None:
    compressed = gzip.compress((SEEDS / "turan-feed.xml").read_bytes())
    parsed = parse_feed(fetched(compressed[: len(compressed) // 2]))
    assert parsed.entries[0].guid == "turan-seed-1"


def _clean_slowly(text: str, limit: int) -> str:
    """What `_clean` does, one step at a time for every text (its fast path must agree)."""
    text = text.translate(dict.fromkeys([*range(0x00, 0x20), *range(0x7F, 0xA0)]))
    text = re.sub("[\ud800-\udfff]", "\ufffd", text)
    text = re.sub(r"\s{2,}", " ", text).strip()
    if all(unicodedata.category(char)[0] in "CZ" for char in text):
        return ""
    return text[:limit].rstrip()


@given(
    st.text(st.sampled_from("ab é\u00a0\u200b\t\n\x07\x85\ud800\u2028\u3000\ufeff"), max_size=30),
    st.integers(min_value=1, max_value=12),
)
def test_cleaning_a_field_has_one_result_on_either_path(text: str, limit: int) -> None:
    assert _clean(text, limit) == _clean_slowly(text, limit)


def _field(low: int, high: int) -> st.SearchStrategy[int]:
    """Mostly in range; else off it a little (timegm carries) or absurdly."""
    return st.one_of(st.integers(low, high), st.integers(-100, 200), st.integers(-(10**20), 10**20))


@given(
    st.tuples(
        _field(1985, 2030),
        _field(1, 12),
        _field(1, 31),
        _field(0, 23),
        _field(0, 59),
        st.one_of(_field(0, 61), st.floats(0, 59)),
        st.integers(0, 6),
        st.integers(1, 366),
        st.integers(-1, 1),
    )
)
def test_a_publication_time_is_read_as_timegm_reads_it(fields: tuple[float, ...]) -> None:
    """`_published` builds the datetime directly and falls back to timegm only for what a
    datetime refuses (a leap second, a field past its range, a float): the result is
    timegm's, weekday, day of the year and DST flag ignored as timegm ignores them."""
    parsed = time.struct_time(fields)
    now = datetime(2026, 11, 28, tzinfo=UTC)
    try:
        expected: datetime | None = datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError, OSError):
        expected = None
    if expected is not None and not _EARLIEST_PUBLISHED <= expected <= now + _FUTURE_TOLERANCE:
        expected = None
    assert _published(parsed, now) == expected


# UTF-16 without a BOM must have a declaration (XML 1.0, 4.3.3); UCS-4 shows by its "<".
@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-32-le", "utf-32-be"])
@pytest.mark.parametrize("content_type", [None, "application/rss+xml"])
def test_utf16_and_utf32_without_an_xml_declaration_are_read(
    encoding: str, content_type: str | None
) -> None:
    # XML needs no declaration in UTF-16/32 (the BOM or the first "<" tells the encoding);
    # feedparser, given no charset, read them as UTF-8 and lost the feed.
    title = "Миротворцы в Карабахе"
    body = (
        f"<rss version='2.0'><channel><title>c</title><item><title>{title}</title>"
        "<guid>g</guid></item></channel></rss>"
    ).encode(encoding)
    assert [entry.title for entry in parse_feed(fetched(body, content_type)).entries] == [title]


def test_armscii8_is_read_as_armenian() -> None:
    # Python has no ARMSCII-8: feedparser read it as windows-1252 ("²³´µ"), which no
    # Armenian rule could match.
    title = "Ռուս խաղաղապահներ «Լաչին»"
    body = (
        "<?xml version='1.0' encoding='ARMSCII-8'?><rss version='2.0'><channel><title>c"
        f"</title><item><title>{title}</title><guid>g</guid></item></channel></rss>"
    ).encode("armscii-8")
    (entry,) = parse_feed(fetched(body, "application/rss+xml")).entries
    assert entry.title == title
    (entry,) = parse_feed(fetched(body, "text/xml; charset=armscii8")).entries
    assert entry.title == title


def test_the_armscii8_table_is_glibcs() -> None:
    import subprocess

    every_byte = bytes(range(256))
    ours = every_byte.decode("armscii-8", errors="replace")
    theirs = [
        subprocess.run(
            ["iconv", "-f", "ARMSCII-8", "-t", "UTF-8"], input=bytes([byte]), capture_output=True
        )
        for byte in every_byte
    ]
    assert [r.stdout.decode() if r.returncode == 0 else "\ufffd" for r in theirs] == list(ours)
    # ")(.,-" are Armenian punctuation too: ASCII stays ASCII.
    assert bytes(range(128)).decode("ascii").encode("armscii-8") == bytes(range(128))


def test_a_document_of_thousands_of_items_is_read_as_its_first_two_thousand() -> None:
    # 40,000 tiny items (2 MB) crossed to the daemon's event loop in one piece (a third of
    # a second) and were recorded at once; feeds list the newest first.
    items = "".join(f"<item><title>n{n}</title><guid>g{n}</guid></item>" for n in range(2500))
    parsed = parse_feed(fetched(rss(items)))
    assert [entry.title for entry in parsed.entries] == [f"n{n}" for n in range(2000)]
    assert "TooManyItems: read the first 2000 of 2500 items" in parsed.warnings


_OLD_ENTITY_DECLARATION = re.compile(r"<!ENTITY\s(?:[^>\"']|\"[^\"]*\"|'[^']*')*>")


def _dropped_the_old_way(text: str) -> str:
    """The repair before it was made linear: the same wherever every declaration ends."""
    return _OLD_ENTITY_DECLARATION.sub(
        lambda found: "" if re.search(r"[&%][A-Za-z_:][\w.:-]*;", found.group()) else found.group(),
        text,
    )


_DECLARATIONS = st.lists(
    st.sampled_from(
        [
            '<!ENTITY nbsp "&#160;">',
            "<!ENTITY a '&b;'>",
            '<!ENTITY c "x > y">',
            "<!ENTITY % p \"<!ENTITY q '&r;'>\">",
            '<!ENTITY\td SYSTEM "d.ent">',
            "<!ENTITY e 'it''s'>",
            " text ",
            "<!-- > -->",
            "<title>",
        ]
    ),
    max_size=12,
).map("".join)


@given(_DECLARATIONS)
def test_entity_declarations_are_dropped_as_before_where_each_ends(dtd: str) -> None:
    from watcher.parse import _drop_nested_entities

    assert _drop_nested_entities(dtd) == _dropped_the_old_way(dtd)


def test_declarations_that_never_end_are_passed_over_in_linear_time() -> None:
    # Each "<!ENTITY" with no ">" after it was looked for again to the end of the body:
    # 5,000 of them took 8 s. Generous bound: only that fails it.
    from watcher.parse import _defused

    body = b"<?xml version='1.0'?><!DOCTYPE rss [" + b"<!ENTITY a " * 300_000
    started = time.perf_counter()
    assert _defused(body) == body
    assert time.perf_counter() - started < 10
