"""`watcher feeds import` and `export` on real config files in a temporary folder."""

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.config import load_config
from watcher.errors import ConfigError
from watcher.feeds_command import (
    NewFeed,
    export_opml,
    feed_name,
    feeds_toml,
    import_opml,
    plan_import,
    toml_string,
)
from watcher.model import FeedDef
from watcher.opml import Outline

DIRECTORY = Path(__file__).parent / "data" / "feeds-directory.opml"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TODAY = date(2026, 11, 28)

MAIN = """\
# The daemon.
include = ["feeds.toml"]

[storage]
path = "w.db"
"""
FEEDS = """\
# Feeds, hand-written.   Trailing spaces and odd spacing stay as they are.
[[feeds]]
name  = "APA-az"   # a comment after a value
url = "https://apa.az/rss"
language = "az"
"""


def opml(*outlines: str) -> bytes:
    return (
        '<?xml version="1.0"?><opml version="2.0"><head/><body>'
        + "".join(outlines)
        + "</body></opml>"
    ).encode()


def outline(text: str, url: str, **attributes: str) -> str:
    extra = "".join(f' {name}="{value}"' for name, value in attributes.items())
    return f'<outline text="{text}" xmlUrl="{url}"{extra}/>'


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "watcher.toml").write_text(MAIN, encoding="utf-8")
    (tmp_path / "feeds.toml").write_text(FEEDS, encoding="utf-8")
    return tmp_path / "watcher.toml"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def test_the_directory_is_added_after_the_existing_text(config: Path) -> None:
    before = (config.parent / "feeds.toml").read_bytes()
    result = import_opml(
        load_config(config), DIRECTORY.read_bytes(), source="feeds-directory.opml", today=TODAY
    )

    assert result.target == config.parent / "feeds.toml"
    assert [s.reason for s in result.skipped] == ["already configured as 'APA-az'"]
    assert len(result.added) == 35
    after = (config.parent / "feeds.toml").read_bytes()
    assert after.startswith(before + b"\n# Added by `watcher feeds import` from ")
    feeds = {feed.name: feed for feed in load_config(config).feeds}
    assert len(feeds) == 36
    assert feeds["apa-en"] == FeedDef(
        "apa-en", "https://en.apa.az/rss", 600, "en", tags=("Azerbaijan",)
    )
    # Two outlines titled "Trend News Agency [en]": unique names all the same.
    assert feeds["trend-news-agency-en"].url == "http://en.trend.az/feeds/index.rss"
    assert feeds["trend-news-agency-en-2"].url == "https://en.trend.az/rss"
    assert feeds["bbc-news-azerbaycanca-az"].language == "az"
    assert "\n# BBC News Azərbaycanca [az]\n[[feeds]]\n" in after.decode("utf-8")


def test_a_second_import_changes_nothing_and_says_so(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["feeds", "import", "--config", str(config), str(DIRECTORY)]
    assert main(arguments) == 0
    first = capsys.readouterr().out
    assert first.startswith(f"added 35 feeds to {config.parent / 'feeds.toml'}:\n  apa-en ")
    files = snapshot(config.parent)

    assert main(arguments) == 0
    second = capsys.readouterr().out
    assert second.startswith(f"nothing to add: {config.parent / 'feeds.toml'} is unchanged\n")
    assert "skipped 36:" in second
    assert snapshot(config.parent) == files


def test_other_spellings_of_a_configured_url_are_skipped(config: Path) -> None:
    document = opml(
        outline("a", "http://www.apa.az/rss/"),
        outline("b", "HTTPS://APA.AZ/rss#top"),
        outline("c", "https://apa.az/rss?utm_source=opml"),
        outline("d", "https://d.example/rss"),
        outline("e", "http://d.example/rss/"),  # the same as d, listed twice
        outline("f", "ftp://f.example/rss"),
    )
    result = import_opml(load_config(config), document, today=TODAY)
    assert [feed.name for feed in result.added] == ["d"]
    assert [(s.url, s.reason) for s in result.skipped] == [
        ("http://www.apa.az/rss/", "already configured as 'APA-az'"),
        ("HTTPS://APA.AZ/rss#top", "already configured as 'APA-az'"),
        ("https://apa.az/rss?utm_source=opml", "already configured as 'APA-az'"),
        ("http://d.example/rss/", "already configured as 'd'"),
        ("ftp://f.example/rss", "not an http:// or https:// URL"),
    ]


def test_names_are_unique_ignoring_case_and_fall_back_to_the_url() -> None:
    taken = {"apa-az", "feed"}
    assert feed_name("APA [az]", "https://x.example/", taken) == "apa-az-2"
    assert feed_name("apa-AZ", "https://x.example/", taken) == "apa-AZ-2"
    assert feed_name("Кавказский узел", "https://www.kavkaz-uzel.eu/rss/", taken) == (
        "kavkaz-uzel-eu-rss"
    )
    assert feed_name("ქართული", "https://civil.ge/ka/feed", set()) == "civil-ge-ka-feed"
    assert feed_name(None, "https://a.example", set()) == "a-example"
    assert feed_name("Déjà Vu — Ölkə: İlham ı", "https://a.example", set()) == (
        "deja-vu-olke-ilham-i"
    )
    assert len(feed_name("word " * 40, "https://a.example", set())) <= 48


def test_strings_are_escaped_so_toml_reads_back_exactly(tmp_path: Path) -> None:
    odd = 'quote " backslash \\ tab \t newline \n bell \x07 delete \x7f ünï'
    assert toml_string(odd).isprintable()
    text = feeds_toml(
        [NewFeed("odd", 'https://odd.example/rss?a=1&b="2"', odd, tags=(odd, "plain"))],
        header="from a\nfile",
    )
    assert text.startswith("# from a file\n\n# quote")
    config = tmp_path / "watcher.toml"
    config.write_text(text, encoding="utf-8")
    (feed,) = load_config(config).feeds
    assert feed.url == 'https://odd.example/rss?a=1&b="2"'
    assert feed.tags == (odd.strip(), "plain")


@pytest.mark.parametrize(
    ("attribute", "good", "kept", "bad", "note"),
    [
        (
            "language",
            "en_US",
            "en-us",
            "English",
            "language 'English' left out: not a language code",
        ),
        (
            "userAgent",
            "Mozilla/5.0 (X11)",
            "Mozilla/5.0 (X11)",
            "Браузер",
            "userAgent left out: not one line of printable ASCII, at most 512 characters",
        ),
    ],
)
def test_outline_attributes_are_checked(
    config: Path, attribute: str, good: str, kept: str, bad: str, note: str
) -> None:
    document = opml(
        outline("a", "https://a.example/rss", **{attribute: good}),
        outline("b", "https://b.example/rss", **{attribute: bad}),
    )
    result = import_opml(load_config(config), document, today=TODAY)
    field = "language" if attribute == "language" else "user_agent"
    assert [(getattr(f, field), f.note) for f in result.added] == [(kept, None), (None, note)]
    assert f"b  https://b.example/rss; {note}" in result.summary()
    assert getattr(load_config(config).feeds[-2], field) == kept


def test_without_feeds_anywhere_the_main_file_gets_them(tmp_path: Path) -> None:
    config = tmp_path / "watcher.toml"
    config.write_text("[polling]\ninterval = 300", encoding="utf-8")  # no final newline
    result = import_opml(load_config(config), opml(outline("A", "https://a.example/rss")))
    assert result.target == config
    text = config.read_text(encoding="utf-8")
    assert text.startswith("[polling]\ninterval = 300\n\n# Added by")
    assert [(f.name, f.interval) for f in load_config(config).feeds] == [("A", 300)]


def test_into_names_the_file_and_must_be_read_by_the_config(config: Path) -> None:
    settings = load_config(config)
    result = import_opml(settings, opml(outline("A", "https://a.example/rss")), into=config)
    assert result.target == config and len(load_config(config).feeds) == 2
    stray = config.parent / "stray.toml"
    stray.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="does not read this file"):
        import_opml(settings, opml(outline("B", "https://b.example/rss")), into=stray)
    assert stray.read_text(encoding="utf-8") == ""


def test_a_result_that_would_not_load_changes_no_file(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An inline `feeds = []` is a valid empty list, but no [[feeds]] can follow it.
    (config.parent / "feeds.toml").write_text("feeds = []\n", encoding="utf-8")
    bad = config.parent / "bad.opml"
    bad.write_bytes(opml(outline("A", "https://a.example/rss")))
    files = snapshot(config.parent)
    assert main(["feeds", "import", "--config", str(config), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"watcher: nothing imported: {config.parent / 'feeds.toml'}:")
    assert snapshot(config.parent) == files  # no change, no temporary file left


def test_a_file_included_by_absolute_path_is_checked_in_place(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    feeds = tmp_path / "etc" / "feeds.toml"
    feeds.write_text(FEEDS, encoding="utf-8")
    feeds.chmod(0o640)
    config = tmp_path / "watcher.toml"
    config.write_text(f"include = [{toml_string(str(feeds))}]\n", encoding="utf-8")
    settings = load_config(config)

    import_opml(settings, opml(outline("A", "https://a.example/rss")), today=TODAY)
    assert [f.name for f in load_config(config).feeds] == ["APA-az", "A"]
    assert feeds.stat().st_mode & 0o777 == 0o640

    before = feeds.read_bytes()
    # A URL shaped like a bot token is refused by the config loader: the file is put back.
    token_url = "https://b.example/123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQ/rss"
    with pytest.raises(ConfigError, match="token"):
        import_opml(load_config(config), opml(outline("B", token_url)), today=TODAY)
    assert feeds.read_bytes() == before
    assert [path.name for path in feeds.parent.iterdir()] == ["feeds.toml"]


def test_line_endings_and_a_byte_order_mark_are_kept(tmp_path: Path) -> None:
    config = tmp_path / "watcher.toml"
    original = '\ufeff# windows\r\n[[feeds]]\r\nname = "a"\r\nurl = "https://a.example/rss"\r\n'
    config.write_bytes(original.encode("utf-8"))
    import_opml(load_config(config), opml(outline("B", "https://b.example/rss")), today=TODAY)
    data = config.read_bytes()
    assert data.startswith(original.encode("utf-8") + b"\r\n# Added by")
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert [f.name for f in load_config(config).feeds] == ["a", "B"]


def test_export_then_import_into_an_empty_config_then_export_again(
    config: Path, tmp_path: Path
) -> None:
    import_opml(load_config(config), DIRECTORY.read_bytes(), today=TODAY)
    (config.parent / "feeds.toml").write_bytes(
        (config.parent / "feeds.toml").read_bytes()
        + b'\n[[feeds]]\nname = "odd"\nurl = "https://odd.example/rss?a=1&b=2"\n'
        + b'tags = ["News/Caucasus", "quote \\" & <tag>", "wire"]\n'
        + b'user_agent = "Mozilla/5.0 (X11; \\"quoted\\") Watcher"\n'
        # A name in another script and intervals of their own: the config's, not slugs
        # and defaults, after the round trip.
        + '[[feeds]]\nname = "новости-ru"\nurl = "https://n.example/ru"\ninterval = "2m"\n'.encode()
        + b'[[feeds]]\nname = "auto-feed"\nurl = "https://auto.example/rss"\ninterval = "auto"\n'
    )
    first = export_opml(load_config(config), NOW)

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "watcher.toml").write_text("", encoding="utf-8")
    import_opml(load_config(empty / "watcher.toml"), first.encode("utf-8"), today=TODAY)
    second = export_opml(load_config(empty / "watcher.toml"), NOW)

    assert second == first
    assert first.count("<outline ") == 39
    feeds = {f.name: f for f in load_config(empty / "watcher.toml").feeds}
    assert feeds["odd"].user_agent == 'Mozilla/5.0 (X11; "quoted") Watcher'
    assert feeds["новости-ru"].interval == 120
    assert feeds["auto-feed"].auto_interval
    before = {f.name: (f.url, f.interval, f.auto_interval) for f in load_config(config).feeds}
    after = {f.name: (f.url, f.interval, f.auto_interval) for f in feeds.values()}
    assert after == before


def test_names_count_on_from_where_they_got() -> None:
    outlines = [Outline(f"https://h{n}.example/feed", "RSS") for n in range(5)]
    added, _ = plan_import(outlines, [FeedDef("rss-3", "https://other.example/", 600)])
    assert [feed.name for feed in added] == ["RSS", "RSS-2", "RSS-4", "RSS-5", "RSS-6"]


def test_a_foreign_outline_titled_in_another_script_gets_an_ascii_name() -> None:
    outlines = [Outline("https://civil.ge/ka/feed", "ქართული")]  # no `interval`: not ours
    added, _ = plan_import(outlines, [])
    assert [feed.name for feed in added] == ["civil-ge-ka-feed"]


def test_export_command(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["feeds", "export", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')
    assert '<outline type="rss" text="APA-az" title="APA-az" xmlUrl="https://apa.az/rss"' in out

    target = config.parent / "feeds.opml"
    assert main(["feeds", "export", "--config", str(config), "--output", str(target)]) == 0
    assert capsys.readouterr().out == f"wrote 1 feeds to {target}\n"
    assert target.read_text(encoding="utf-8").endswith("</opml>\n")


def test_a_document_that_is_not_opml_is_reported(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = config.parent / "page.html"
    page.write_text("<html><body>not a feed list</body></html>", encoding="utf-8")
    files = snapshot(config.parent)
    assert main(["feeds", "import", "--config", str(config), str(page)]) == 1
    assert "root element is <html>" in capsys.readouterr().err
    assert snapshot(config.parent) == files


def test_a_symlinked_feeds_file_is_written_where_it_points(config: Path) -> None:
    real = config.parent / "checkout" / "feeds.toml"
    real.parent.mkdir()
    (config.parent / "feeds.toml").rename(real)
    (config.parent / "feeds.toml").symlink_to(real)
    assert main(["feeds", "import", "--config", str(config), str(DIRECTORY)]) == 0
    assert (config.parent / "feeds.toml").is_symlink()
    assert len(load_config(config).feeds) == 36
    assert "apa-en" in real.read_text("utf-8")
