"""`watcher replay`: the current rules over a real database, grouped by story, read-only."""

import asyncio
import io
import json
import re
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watcher.cli import main
from watcher.config import load_config
from watcher.model import Entry, FeedDef, NewEntry, RuleDef
from watcher.pipeline import _chronological
from watcher.replay_command import replay_entries
from watcher.rules import compile_rules
from watcher.store import Store
from watcher.store.history import EntryHistory, StoredEntry, in_daemon_order
from watcher.stories import StorySettings

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ROOT / "bench" / "data" / "story-pairs-en-ru.tsv"
# `--since` counts back from the real clock, so the database is filled relative to it.
NOW = datetime.now(UTC).replace(microsecond=0)

CONFIG = """
[[feeds]]
name = "APA"
url = "https://apa.az/en/rss"
language = "en"

[[feeds]]
name = "Armenpress"
url = "https://armenpress.am/en/rss"
language = "en"

[[feeds]]
name = "Trend"
url = "https://trend.az/en/rss"
language = "en"

[[feeds]]
name = "TASS"
url = "https://tass.ru/rss"
language = "ru"

[[rules]]
name = "peacekeepers"
query = "peacekeep* OR миротвор*"

[[rules]]
name = "lachin"
query = "Lachin"
feeds = ["Trend"]

[[rules]]
name = "putin-ru"
query = "Путин"
languages = ["ru"]
"""


def same_story_pair() -> tuple[dict[str, str], dict[str, str]]:
    """The first "same" pair of the benchmark's English and Russian set: two outlets'
    reports of one event."""
    lines = [line for line in PAIRS.read_text(encoding="utf-8").splitlines() if line[:1] != "#"]
    header = lines[0].split("\t")
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t"), strict=True))
        if row["label"] == "same" and row["lang"] == "en":
            a = {k[:-2]: v for k, v in row.items() if k.endswith("_a")}
            b = {k[:-2]: v for k, v in row.items() if k.endswith("_b")}
            return a, b
    raise AssertionError("no same-story pair in the benchmark set")


PAIR_A, PAIR_B = same_story_pair()


def published_gap() -> timedelta:
    def parse(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    return parse(PAIR_B["published"]) - parse(PAIR_A["published"])


# (feed, guid, title, summary, published, first seen)
RECORDED: list[tuple[str, str, str, str, datetime | None, datetime]] = [
    (
        "Trend",
        "lachin-checkpoint",
        "Azerbaijan installs border checkpoint at entrance to Lachin road",
        "The State Border Service set it up near the Hakari bridge.",
        NOW - timedelta(hours=20),
        NOW - timedelta(hours=19),
    ),
    (
        "APA",
        "pair-a",
        PAIR_A["title"],
        PAIR_A["summary"],
        NOW - timedelta(hours=6),
        NOW - timedelta(hours=5),
    ),
    (
        "Armenpress",
        "pair-b",
        PAIR_B["title"],
        PAIR_B["summary"],
        NOW - timedelta(hours=6) + published_gap(),
        NOW - timedelta(hours=4),
    ),
    # A feed no longer configured: matched by its name, without a language.
    (
        "Gone",
        "gone-1",
        "Путин поблагодарил миротворцев за службу",
        "",
        None,
        NOW - timedelta(hours=3, minutes=30),
    ),
    # Dated in the future by its feed: it stands at the time it was first seen.
    (
        "TASS",
        "tass-1",
        "Путин провёл телефонный разговор с президентом Казахстана",
        "Стороны обсудили поставки зерна.",
        NOW + timedelta(hours=5),
        NOW - timedelta(hours=2),
    ),
    # Lachin, but the lachin rule takes Trend's entries only.
    ("APA", "apa-lachin", "Lachin road reopened for trucks", "", None, NOW - timedelta(hours=1)),
    ("Armenpress", "weather", "Sunny weekend ahead in Yerevan", "", None, NOW - timedelta(hours=1)),
    # First seen ten days ago.
    (
        "APA",
        "old",
        "Peacekeeping drills end in the north",
        "",
        NOW - timedelta(days=10),
        NOW - timedelta(days=10),
    ),
]


async def record(
    path: Path, rows: list[tuple[str, str, str, str, datetime | None, datetime]]
) -> None:
    feeds = [FeedDef(name, f"https://{name.lower()}.example/rss", 600) for name in FEED_NAMES]
    async with await Store.open(path) as store:
        await store.sync_feeds(feeds, NOW - timedelta(days=30))
        ids = {state.name: state.id for state in await store.feeds()}
        for feed, guid, title, summary, published, first_seen in rows:
            async with store.write() as tx:
                entry = Entry(
                    guid, f"https://{feed.lower()}.example/{guid}", title, summary, published
                )
                await tx.insert_entries(ids[feed], [entry], first_seen)


FEED_NAMES = ["APA", "Armenpress", "Trend", "TASS", "Gone"]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "watcher.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@pytest.fixture
def database(config: Path) -> Path:
    path = load_config(config).storage.path
    asyncio.run(record(path, RECORDED))
    return path


def replay_json(config: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> Any:
    assert main(["replay", "--config", str(config), "--since", "7d", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def titles(stories: Any) -> list[list[str]]:
    return [[entry["title"] for entry in story["entries"]] for story in stories]


def test_groups_what_would_have_alerted_into_stories_in_time_order(
    config: Path, database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stories = replay_json(config, capsys)
    assert titles(stories) == [
        ["Azerbaijan installs border checkpoint at entrance to Lachin road"],
        [PAIR_A["title"], PAIR_B["title"]],  # two outlets, one story, the first one leads
        ["Путин поблагодарил миротворцев за службу"],
        ["Путин провёл телефонный разговор с президентом Казахстана"],
    ]
    assert [[entry["feed"] for entry in story["entries"]] for story in stories] == [
        ["Trend"],
        ["APA", "Armenpress"],
        ["Gone"],
        ["TASS"],
    ]
    # A story is named by its lead entry.
    assert all(story["story"] == story["entries"][0]["id"] for story in stories)
    rules = [
        [[hit["rule"] for hit in entry["hits"]] for entry in story["entries"]] for story in stories
    ]
    # Gone has no language any more: the Russian-only rule does not take it.
    assert rules == [
        [["lachin"]],
        [["peacekeepers"], ["peacekeepers"]],
        [["peacekeepers"]],
        [["putin-ru"]],
    ]


def test_json_has_the_documented_shape(
    config: Path, database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stories = replay_json(config, capsys)
    checkpoint = stories[0]
    assert set(checkpoint) == {"story", "entries"}
    [entry] = checkpoint["entries"]
    assert isinstance(entry["id"], int)
    assert entry == {
        "id": entry["id"],
        "feed": "Trend",
        "title": "Azerbaijan installs border checkpoint at entrance to Lachin road",
        "link": "https://trend.example/lachin-checkpoint",
        "published": (NOW - timedelta(hours=20)).isoformat(),
        "first_seen": (NOW - timedelta(hours=19)).isoformat(),
        "hits": [
            {
                "rule": "lachin",
                "spans": [{"field": "title", "start": 53, "end": 59, "text": "Lachin"}],
            }
        ],
    }
    gone = stories[2]["entries"][0]
    assert gone["published"] is None
    assert gone["hits"][0]["spans"][0]["text"] == "миротворцев"


def test_rule_limits_the_replay_to_one_rule(
    config: Path, database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert titles(replay_json(config, capsys, "--rule", "lachin")) == [
        ["Azerbaijan installs border checkpoint at entrance to Lachin road"]
    ]
    # Names are unique ignoring case, so case does not matter.
    assert titles(replay_json(config, capsys, "--rule", "PEACEKEEPERS")) == [
        [PAIR_A["title"], PAIR_B["title"]],
        ["Путин поблагодарил миротворцев за службу"],
    ]


def test_since_leaves_out_entries_first_seen_before_it(
    config: Path, database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", "--config", str(config), "--since", "14d", "--json"]) == 0
    stories = json.loads(capsys.readouterr().out)
    assert titles(stories)[0] == ["Peacekeeping drills end in the north"]
    assert len(stories) == 5
    assert main(["replay", "--config", str(config), "--since", "90m", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["replay", "--config", str(config), "--since", "5400", "--json"]) == 0  # seconds
    assert json.loads(capsys.readouterr().out) == []


def test_text_output_highlights_the_words_and_sums_up(
    config: Path, database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    called = datetime.now(UTC)
    assert main(["replay", "--config", str(config), "--since", "7d"]) == 0
    returned = datetime.now(UTC)
    out = capsys.readouterr().out
    lead_at = NOW - timedelta(hours=6)
    also_at = lead_at + published_gap()
    also_shown = (
        f"{also_at:%H:%M}" if also_at.date() == lead_at.date() else f"{also_at:%Y-%m-%d %H:%M}"
    )
    pair_a = PAIR_A["title"].replace("peacekeepers", "[peacekeepers]")
    pair_b = PAIR_B["title"].replace("peacekeeping", "[peacekeeping]")
    assert (
        f"{lead_at:%Y-%m-%d %H:%M}  APA  {pair_a}\n"
        "   https://apa.example/pair-a\n"
        '   hit peacekeepers: "peacekeepers", "peacekeeping"\n'
        f"   also: {also_shown}  Armenpress  {pair_b}\n"
    ) in out
    assert "\x1b[" not in out  # not a terminal: no ANSI
    summary = out.rstrip("\n").splitlines()[-1]
    found = re.fullmatch(
        r"7 entries scanned \(first seen since (.+) UTC\): 5 would alert, 4 stories; "
        r"by rule: peacekeepers 3, lachin 1, putin-ru 1",
        summary,
    )
    assert found is not None, summary
    since = datetime.strptime(found[1], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    # Shown to the minute: the time the command ran, less 7 days.
    week = timedelta(days=7)
    assert called - week - timedelta(minutes=1) < since <= returned - week


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_matched_words_are_bold_on_a_terminal(
    config: Path, database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["replay", "--config", str(config), "--since", "7d", "--rule", "lachin"]) == 0
    assert "\x1b[1;7mLachin\x1b[0m road" in terminal.getvalue()


def test_nothing_to_replay_says_so(
    config: Path, database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", "--config", str(config), "--since", "30m"]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(
        r"0 entries scanned \(first seen since [-\d]+ [:\d]+ UTC\): 0 would alert, 0 stories\n",
        out,
    ), out


def snapshot(database: Path) -> dict[str, tuple[int, bytes] | None]:
    files = {name: Path(f"{database}{name}") for name in ("", "-wal")}
    return {
        name: (path.stat().st_mtime_ns, path.read_bytes()) if path.exists() else None
        for name, path in files.items()
    }


def test_replay_writes_nothing(
    config: Path, database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(database)
    assert main(["replay", "--config", str(config), "--since", "7d"]) == 0
    after = snapshot(database)
    assert after[""] == before[""]
    # The daemon is not running, so there was no -wal. A read-only reader of a WAL database
    # may leave an empty one behind (it cannot delete it), never a page.
    assert before["-wal"] is None
    wal = after["-wal"]
    assert wal is None or wal[1] == b""
    with EntryHistory.open(database) as history:
        assert len(list(history.entries_since(NOW - timedelta(days=30)))) == len(RECORDED)
        assert history.total_changes == 0
    with sqlite3.connect(database) as db:
        [(version,)] = db.execute("PRAGMA user_version").fetchall()
    assert version >= 8


async def test_replay_beside_a_running_daemon_sees_its_latest_entries(
    config: Path, database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with await Store.open(database) as store:  # the daemon's connection, kept open
        trend = next(state.id for state in await store.feeds() if state.name == "Trend")
        async with store.write() as tx:
            entry = Entry("new", "https://trend.example/new", "Lachin checkpoint opens", "")
            await tx.insert_entries(trend, [entry], NOW - timedelta(minutes=5))
        before = snapshot(database)
        assert before["-wal"] is not None and before["-wal"][1]  # committed, not checkpointed
        assert main(["replay", "--config", str(config), "--since", "1h", "--json"]) == 0
        assert titles(json.loads(capsys.readouterr().out)) == [["Lachin checkpoint opens"]]
        assert snapshot(database) == before


def test_unknown_rule_exits_2_with_a_suggestion(
    config: Path, database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", "--config", str(config), "--since", "7d", "--rule", "lachn"]) == 2
    assert "no rule named 'lachn' in the config; did you mean 'lachin'?" in capsys.readouterr().err
    assert main(["replay", "--config", str(config), "--since", "7d", "--rule", "zzz"]) == 2
    assert "the rules are: peacekeepers, lachin, putin-ru" in capsys.readouterr().err


def test_missing_database_exits_1_and_creates_none(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = load_config(config).storage.path
    assert main(["replay", "--config", str(config), "--since", "7d"]) == 1
    assert f"watcher: no database at {path}" in capsys.readouterr().err
    assert not path.exists()


def test_database_of_another_schema_version_is_refused_not_migrated(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = load_config(config).storage.path
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 7")
    db.close()
    assert main(["replay", "--config", str(config), "--since", "7d"]) == 1
    assert "schema version 7 is older than this Watcher's" in capsys.readouterr().err
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (7,)
    db.close()


def test_a_file_that_is_not_a_database_is_refused(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load_config(config).storage.path.write_bytes(b"not a database at all" * 100)
    assert main(["replay", "--config", str(config), "--since", "7d"]) == 1
    assert "cannot read the database" in capsys.readouterr().err


def test_since_must_be_a_duration(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["replay", "--config", str(config), "--since", "a week"])
    assert exit_info.value.code == 2
    assert 'expected a duration like "5m"' in capsys.readouterr().err


def test_invalid_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[rules]]\nname = 'x'\nquery = '('\n", encoding="utf-8")
    assert main(["replay", "--config", str(broken), "--since", "7d"]) == 2
    assert "invalid config" in capsys.readouterr().err


def test_a_rule_filter_does_not_change_how_entries_group() -> None:
    # The daemon leaves the words of every rule that hit out of the story signature: so
    # must replay, whichever rule it shows, or "Baku" here joins two events.
    rules = [RuleDef("quakes", "earthquake OR quake", (42,)), RuleDef("baku", "Baku", (7,))]
    t0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

    def entry(n: int, feed: str, title: str, minutes: int) -> StoredEntry:
        at = t0 + timedelta(minutes=minutes)
        return StoredEntry(n, feed, None, title, "", at, at, at)

    entries = [
        entry(1, "APA", "Earthquake drill: Baku schools evacuated", 0),
        entry(2, "Trend", "Quake insurance law: Baku parliament votes", 30),
    ]

    def groups(rule: str | None) -> list[list[int]]:
        result = replay_entries(
            iter(entries), compile_rules(rules, {}), feeds={}, stories=StorySettings(), rule=rule
        )
        return [[e.id for e in story.entries] for story in result.stories]

    assert groups(None) == groups("quakes") == [[1], [2]]


def test_reading_the_history_beside_a_stopped_daemon_leaves_no_files_behind(
    tmp_path: Path,
) -> None:
    async def create() -> None:
        async with await Store.open(tmp_path / "w.db") as store:
            await store.sync_feeds([FeedDef("apa", "https://apa.az/rss", 600)], datetime.now(UTC))

    asyncio.run(create())
    before = sorted(path.name for path in tmp_path.iterdir())
    with EntryHistory.open(tmp_path / "w.db") as history:
        assert list(history.entries_since(datetime.now(UTC) - timedelta(days=1))) == []
    assert sorted(path.name for path in tmp_path.iterdir()) == before


def test_one_polls_entries_are_replayed_in_the_daemons_order() -> None:
    """As `watcher.pipeline._chronological`: by date, ties in reversed document order; all
    in reversed document order when one is undated."""
    seen = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

    def stored(entry_id: int, published: datetime | None) -> StoredEntry:
        at = published or seen
        return StoredEntry(entry_id, "apa", None, f"t{entry_id}", "", published, seen, at)

    dated = [
        stored(1, seen - timedelta(minutes=5)),
        stored(2, seen - timedelta(minutes=30)),
        stored(3, seen - timedelta(minutes=5)),
        stored(4, seen - timedelta(minutes=10)),
    ]
    undated = [*dated[:2], stored(5, None), dated[3]]
    for poll, expected in ((dated, [2, 4, 3, 1]), (undated, [4, 5, 2, 1])):
        assert [entry.id for entry in in_daemon_order(poll)] == expected
        as_new = [NewEntry(e.id, Entry(f"g{e.id}", None, e.title, "", e.published)) for e in poll]
        assert [new.id for new in _chronological(as_new)] == expected
