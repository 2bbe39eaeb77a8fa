"""OPML documents in and out: structure, tags, escaping, and hostile documents."""

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.model import FeedDef
from watcher.opml import OpmlError, Outline, category_tags, parse_opml, render_opml

DIRECTORY = Path(__file__).parent / "data" / "feeds-directory.opml"
CREATED = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def opml(body: str, prolog: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{prolog}'
        f'<opml version="2.0"><head><title>t</title></head><body>{body}</body></opml>'
    ).encode()


def test_the_regional_directory() -> None:
    outlines = parse_opml(DIRECTORY.read_bytes())
    assert len(outlines) == 36  # and four folders
    assert outlines[0] == Outline(
        url="https://apa.az/rss", title="APA [az]", tags=("Azerbaijan",), language="az"
    )
    by_folder: dict[str, int] = {}
    for outline in outlines:
        by_folder[outline.tags[0]] = by_folder.get(outline.tags[0], 0) + 1
    assert by_folder == {"Azerbaijan": 14, "Armenia": 7, "Georgia": 7, "Russia": 8}
    assert outlines[-1].title == "Caucasian Knot [ru]"


def test_folders_and_categories_become_tags() -> None:
    document = opml(
        '<outline text="Europe"><outline title="Caucasus">'
        '<outline text="A" xmlUrl="https://a.example/rss" category="/News/Caucasus,wire, /x//y/"/>'
        "</outline></outline>"
        '<outline text="B" xmlUrl="https://b.example/rss" category="Europe/Caucasus"/>'
    )
    a, b = parse_opml(document)
    assert a.tags == ("Europe/Caucasus", "News/Caucasus", "wire", "x/y")
    assert b.tags == ("Europe/Caucasus",)


def test_what_is_not_a_feed_is_left_out_and_odd_spellings_are_read() -> None:
    document = opml(
        '<outline text="blog" type="link" url="https://blog.example/"/>'
        '<outline text="empty" xmlUrl="  "/>'
        '<outline title="Only a title" xmlurl=" https://c.example/feed "/>'
    )
    assert parse_opml(document) == [Outline("https://c.example/feed", "Only a title")]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"<rss version='2.0'><channel/></rss>", "root element is <rss>"),
        (b"<opml version='2.0'><head/></opml>", "no <body>"),
        (b"<opml><body><outline text='a'></body></opml>", "line 1"),
        (b"", "not a well-formed XML document"),
    ],
)
def test_what_is_not_opml_is_refused(document: bytes, message: str) -> None:
    with pytest.raises(OpmlError, match=message):
        parse_opml(document)


# --------------------------------------------------------------------------- hostile input


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-4f1e", encoding="utf-8")
    return path


@pytest.mark.parametrize("where", ["attribute", "text"])
def test_an_external_entity_is_never_read(secret: Path, where: str) -> None:
    prolog = f'<!DOCTYPE opml [<!ENTITY leak SYSTEM "{secret.as_uri()}">]>'
    if where == "attribute":
        body = '<outline text="&leak;" xmlUrl="https://a.example/rss"/>'
    else:
        body = '<outline text="a" xmlUrl="https://a.example/rss">&leak;</outline>'
    with pytest.raises(OpmlError) as refused:
        parse_opml(opml(body, prolog))
    assert "TOP-SECRET" not in str(refused.value)


def test_external_dtds_and_parameter_entities_are_not_fetched(secret: Path) -> None:
    for prolog in (
        f'<!DOCTYPE opml SYSTEM "{secret.as_uri()}">',
        f'<!DOCTYPE opml [<!ENTITY % p SYSTEM "{secret.as_uri()}"> %p;]>',
    ):
        outlines = parse_opml(opml('<outline text="a" xmlUrl="https://a.example/rss"/>', prolog))
        assert outlines == [Outline("https://a.example/rss", "a")]
        assert "TOP-SECRET" not in repr(outlines)


def test_a_billion_laughs_is_refused_at_once() -> None:
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
    )
    document = opml(
        '<outline text="&lol9;" xmlUrl="https://a.example/rss"/>', f"<!DOCTYPE opml [{entities}]>"
    )
    started = time.monotonic()
    with pytest.raises(OpmlError, match="amplification"):
        parse_opml(document)
    assert time.monotonic() - started < 10  # generous: only a blow-up fails it


# --------------------------------------------------------------------------- writing


def test_render_writes_opml_2_in_the_order_given() -> None:
    feeds = [
        FeedDef("b-news", "https://b.example/rss?a=1&b=2", 600, "ru", tags=("News/Caucasus",)),
        FeedDef("a-news", "https://a.example/rss", 600),
    ]
    assert render_opml(feeds, title="Watcher feeds", created=CREATED) == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<opml version="2.0">\n'
        "  <head>\n"
        "    <title>Watcher feeds</title>\n"
        "    <dateCreated>Sat, 28 Nov 2026 12:00:00 GMT</dateCreated>\n"
        "  </head>\n"
        "  <body>\n"
        '    <outline type="rss" text="b-news" title="b-news" '
        'xmlUrl="https://b.example/rss?a=1&amp;b=2" category="News/Caucasus" language="ru" '
        'interval="600s"/>\n'
        '    <outline type="rss" text="a-news" title="a-news" xmlUrl="https://a.example/rss" '
        'interval="600s"/>\n'
        "  </body>\n"
        "</opml>\n"
    )


def test_what_render_writes_reads_back_the_same() -> None:
    feeds = [
        FeedDef(
            "odd",
            "https://odd.example/rss",
            600,
            "hy",
            tags=('quote " and <angle> & amp', "tab\there", "line\nbreak", "/outer/slashes/"),
        )
    ]
    document = render_opml(feeds, title="<Watcher> & co", created=CREATED)
    (outline,) = parse_opml(document.encode("utf-8"))
    assert outline.url == "https://odd.example/rss" and outline.language == "hy"
    assert outline.tags == (
        'quote " and <angle> & amp',
        "tab\there",
        "line\nbreak",
        "outer/slashes",
    )


def test_tags_opml_cannot_carry_are_left_out() -> None:
    feeds = [FeedDef("a", "https://a.example/rss", 600, tags=("one, two", "three", "\x01bell"))]
    document = render_opml(feeds, title="t", created=CREATED)
    assert 'category="three,bell"' in document
    assert category_tags("three,bell") == ["three", "bell"]


def test_outlines_nested_a_thousand_deep_are_read() -> None:
    depth = 1000
    document = (
        '<opml version="2.0"><body>'
        + '<outline text="f">' * depth
        + '<outline text="x" xmlUrl="https://deep.example/feed"/>'
        + "</outline>" * depth
        + "</body></opml>"
    )
    (outline,) = parse_opml(document.encode())
    assert outline.url == "https://deep.example/feed" and outline.tags == ("/".join(["f"] * depth),)
