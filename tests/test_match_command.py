"""`watcher match`: what a rule author sees before deploying a rule."""

import asyncio
import io
import json
import sys
from pathlib import Path

import pytest

from tests.fakes.feed_server import FeedServer
from watcher.cli import main
from watcher.match_command import highlight_brackets, highlighted
from watcher.model import Span

ROOT = Path(__file__).resolve().parent.parent
SEED_FEED = ROOT / "seeds" / "turan-feed.xml"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "watcher.toml"
    path.write_text(
        """
[[feeds]]
name = "apa"
url = "https://apa.az/rss"
language = "az"

[actors.russian_peacekeepers]
names = ["Russian peacekeeping contingent", "Russian peacekeepers"]

[[rules]]
name = "peacekeepers"
query = '"peacekeeping contingent" OR @russian_peacekeepers'

[[rules]]
name = "azerbaijani-only"
query = "Karabakh"
languages = ["az"]
""",
        encoding="utf-8",
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_for_a_feed_file_lists_every_entry_in_order(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "match", "--config", str(config), "--json", str(SEED_FEED))
    assert code == 0
    entries = json.loads(out)
    assert [e["title"][:11] for e in entries] == ["Peacekeeper", "Baku hosts ", "Weather: ra"]
    first = entries[0]
    assert first["link"] == "https://turan.example/politics/peacekeepers-are-a-tool"
    (hit,) = first["hits"]
    assert hit["rule"] == "peacekeepers"
    summary = [s for s in hit["spans"] if s["field"] == "summary"]
    assert summary and summary[0]["text"] == "Russian peacekeeping contingent"
    assert entries[1]["hits"] == [] and entries[2]["hits"] == []


def test_spans_point_into_the_displayed_text(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "Peacekeepers news\nThe Russian\u00a0peacekeepers left Khankendi."
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    code, out, _ = run(capsys, "match", "--config", str(config), "--json", "-")
    assert code == 0
    (entry,) = json.loads(out)
    assert entry == {
        "title": "Peacekeepers news",
        "link": None,
        "hits": [
            {
                "rule": "peacekeepers",
                "spans": [
                    {
                        "field": "summary",
                        "start": 4,
                        "end": 24,
                        "text": "Russian peacekeepers",
                    }
                ],
            }
        ],
    }


def test_human_output_highlights_the_words(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "match", "--config", str(config), str(SEED_FEED))
    assert code == 0
    assert "hit peacekeepers:" in out
    assert "[Russian peacekeeping contingent]" in out
    assert out.rstrip().endswith("1 of 3 entries hit at least one rule")


def test_language_filters_apply_through_feed_or_language(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    story = tmp_path / "story.txt"
    story.write_text("Karabakh today\nNothing else.", encoding="utf-8")
    _, out, err = run(capsys, "match", "--config", str(config), "--json", str(story))
    assert json.loads(out)[0]["hits"] == []
    assert "1 rule(s) filter by feed or language" in err and "azerbaijani-only" in err
    _, out, _ = run(capsys, "match", "--config", str(config), "--json", "--feed", "apa", str(story))
    assert [h["rule"] for h in json.loads(out)[0]["hits"]] == ["azerbaijani-only"]
    _, out, _ = run(
        capsys, "match", "--config", str(config), "--json", "--language", "az", str(story)
    )
    assert [h["rule"] for h in json.loads(out)[0]["hits"]] == ["azerbaijani-only"]


async def test_a_url_is_fetched(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with FeedServer() as server:
        url = server.serve("/rss", SEED_FEED.read_bytes())
        # main() runs its own event loop: call it from a worker thread.
        code = await asyncio.to_thread(main, ["match", "--config", str(config), "--json", url])
    assert code == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


async def test_a_feed_url_is_fetched_with_that_feeds_user_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FeedServer() as server:
        url = server.serve("/rss", SEED_FEED.read_bytes())
        config = tmp_path / "watcher.toml"
        config.write_text(
            f'[[feeds]]\nname = "azertag"\nurl = "{url}"\nuser_agent = "Mozilla/5.0 (X11)"\n'
            '[[rules]]\nname = "any"\nquery = "peacekeepers"\n',
            encoding="utf-8",
        )
        for extra in ([], ["--feed", "azertag"]):  # found by its URL, or named
            command = ["match", "--config", str(config), *extra, "--json", url]
            assert await asyncio.to_thread(main, command) == 0
        other = server.serve("/other", SEED_FEED.read_bytes())
        assert await asyncio.to_thread(main, ["match", "--config", str(config), other]) == 0
    agents = [request.headers["User-Agent"] for request in server.requests]
    assert agents[:2] == ["Mozilla/5.0 (X11)"] * 2 and agents[2].startswith("Watcher/")
    capsys.readouterr()


def test_a_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rules]]\nname = 'x'\nquery = '\"unclosed'\n", encoding="utf-8")
    code, _, err = run(capsys, "match", "--config", str(bad), str(SEED_FEED))
    assert code == 2 and "rules[0].query" in err


def test_an_unreadable_source_exits_1(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "match", "--config", str(config), "/nonexistent/feed.xml")
    assert code == 1 and "cannot read /nonexistent/feed.xml" in err


def test_overlapping_spans_of_two_hits_are_marked_as_one() -> None:
    text = "Trump said talks"
    spans = [Span("title", 0, 5, "Trump"), Span("title", 0, 10, "Trump said")]
    assert highlighted(text, spans, highlight_brackets) == "[Trump said] talks"
    apart = [Span("title", 11, 16, "talks"), Span("title", 0, 5, "Trump")]
    assert highlighted(text, apart, highlight_brackets) == "[Trump] said [talks]"


async def test_a_configured_feeds_url_is_matched_as_that_feeds_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Its language and name reach the rules' filters, as in the daemon.
    async with FeedServer() as server:
        url = server.serve(
            "/rss",
            "<rss version='2.0'><channel><title>t</title><item><title>Karabakh today</title>"
            "<guid>g</guid></item></channel></rss>",
        )
        config = tmp_path / "watcher.toml"
        config.write_text(
            f'[[feeds]]\nname = "apa"\nurl = "{url}"\nlanguage = "az"\n'
            '[[rules]]\nname = "az-only"\nquery = "Karabakh"\nlanguages = ["az"]\n'
            '[[rules]]\nname = "apa-only"\nquery = "Karabakh"\nfeeds = ["apa"]\n',
            encoding="utf-8",
        )
        code = await asyncio.to_thread(main, ["match", "--config", str(config), "--json", url])
    assert code == 0
    assert [h["rule"] for h in json.loads(capsys.readouterr().out)[0]["hits"]] == [
        "az-only",
        "apa-only",
    ]


async def test_a_url_that_cannot_be_fetched_exits_1(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FeedServer() as server:
        url = server.serve("/gone", "", status=404)
        code = await asyncio.to_thread(main, ["match", "--config", str(config), url])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("watcher: cannot read http://") and "HTTP 404" in err
    assert "Traceback" not in err
