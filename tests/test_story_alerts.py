"""One alert per story and chat: poll_feed() with a StoryTracker on real parts (a feed server
on 127.0.0.1, a SQLite file, the real matcher and story index), and the "Also:" line."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path

import pytest

from tests.fakes.feed_server import FeedServer
from tests.fakes.telegram_api import FakeTelegram, parse_telegram_html, utf16_len
from tests.poll_harness import Clock, poll_parts
from tests.test_delivery import sends
from watcher.delivery import Delivery
from watcher.digests import send_digest
from watcher.metrics import Metrics
from watcher.model import Alert, Entry, FeedDef, Hit, RuleDef
from watcher.pipeline import PollContext, PollReport, poll_feed
from watcher.replay_command import replay_entries
from watcher.rules import compile_rules
from watcher.store import Store, StoryMessage
from watcher.store.history import EntryHistory
from watcher.stories import StorySettings
from watcher.story_alerts import StoryTracker, other_sources
from watcher.telegram.format import ALSO_LIMIT, MESSAGE_LIMIT, add_sources, render_alert
from watcher.telegram.send import TelegramSender

PAIRS = Path(__file__).resolve().parent.parent / "bench" / "data" / "story-pairs-en-ru.tsv"
START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TOKEN = "123456:TEST-token-for-the-fake-bot-api-server"


@dataclass(frozen=True)
class Report:
    title: str
    summary: str


def reports(pair_id: str) -> tuple[Report, Report]:
    """The two entries of a labelled pair of bench/stories.py's set (hand-written, MIT)."""
    for line in PAIRS.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if fields[0] == pair_id:
            return Report(fields[7], fields[8]), Report(fields[12], fields[13])
    raise KeyError(pair_id)


QUAKE_APA, QUAKE_TREND = reports("24")  # one earthquake, two outlets
_, QUAKE_REPORT = reports("25")  # the same earthquake, a third outlet
QUAKE_FOURTH = Report(QUAKE_TREND.title, QUAKE_REPORT.summary)  # and a fourth
CHECKPOINT, _ = reports("7")  # another event altogether

RULES = [
    RuleDef("quakes", "earthquake OR quake OR checkpoint", (42,)),
    RuleDef("baku", "Baku", (7,)),  # only the Trend report of the quake names Baku
]


def rss(*items: tuple[str, Report, datetime]) -> str:
    body = "".join(
        f"<item><title>{escape(r.title)}</title><guid>{guid}</guid>"
        f"<link>https://news.example/{guid}</link>"
        f"<description>{escape(r.summary)}</description>"
        f"<pubDate>{format_datetime(at)}</pubDate></item>"
        for guid, r, at in items
    )
    return f"<rss version='2.0'><channel><title>t</title>{body}</channel></rss>"


@dataclass
class Parts:
    server: FeedServer
    context: PollContext
    clock: Clock
    feeds: dict[str, FeedDef]

    @property
    def store(self) -> Store:
        return self.context.store

    async def poll(self, name: str, *items: tuple[str, Report, datetime]) -> PollReport:
        """Serve `items` as feed `name` and poll it (a feed's first poll only primes it)."""
        feed = self.feeds[name]
        self.server.serve(f"/{name}", rss(*items))
        state = await self.store.feed(name)
        assert state is not None
        return await poll_feed(feed, state, self.context)

    async def outbox(self) -> list[tuple[int, int | None, int, int | None, str]]:
        """(id, entry_id, chat_id, edit_of, text) of every outbox row, by id."""
        rows = await self.store._fetchall(
            "SELECT id, entry_id, chat_id, edit_of, text FROM outbox ORDER BY id", ()
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def story_ids(self) -> dict[str, int | None]:
        """Each entry's story, by the guid given in `rss` (the end of its link)."""
        rows = await self.store._fetchall("SELECT link, story_id FROM entries", ())
        return {r[0].rsplit("/", 1)[1]: r[1] for r in rows}


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    clock = Clock(START)
    async with poll_parts(tmp_path / "w.db", RULES, clock=clock, stories=StoryTracker()) as (
        server,
        context,
    ):
        feeds = {
            name: FeedDef(name, server.url(f"/{name}"), 300) for name in ("APA", "Trend", "Report")
        }
        await context.store.sync_feeds(list(feeds.values()), clock.now)
        result = Parts(server, context, clock, feeds)
        for name in feeds:  # primed: every later entry is news
            await result.poll(name)
        yield result


def minutes(n: float) -> datetime:
    return START + timedelta(minutes=n)


async def test_same_story_in_two_feeds_is_one_message_and_one_edit(parts: Parts) -> None:
    parts.clock.now = minutes(10)
    first = await parts.poll("APA", ("apa-1", QUAKE_APA, minutes(5)))
    parts.clock.now = minutes(30)
    second = await parts.poll("Trend", ("trend-1", QUAKE_TREND, minutes(25)))

    assert (first.alerts, second.alerts) == (1, 2)  # Trend: an edit for 42, a message for 7
    message, edit, to_seven = await parts.outbox()
    assert (message[2], message[3]) == (42, None)
    assert (edit[2], edit[3]) == (42, message[0])  # edits the message 42 got
    assert edit[1] is not None and edit[1] != message[1]  # the entry it adds
    assert edit[4] == add_sources(message[4], ["Trend"])
    assert parse_telegram_html(edit[4]).text.endswith("\nAlso: Trend")
    assert to_seven[2] == 7  # see the next test
    stories = await parts.story_ids()
    assert stories["apa-1"] == stories["trend-1"] == message[1]
    # The edit tells chat 42 of Trend's entry as surely as a message would: that record
    # outlives the outbox row (see test_entry_updates).
    told = await parts.store._fetchall("SELECT entry_id, chat_id FROM versions_told", ())
    assert sorted((row[0], row[1]) for row in told) == sorted(
        [(message[1], 42), (edit[1], 42), (to_seven[1], 7)]
    )


async def test_a_chat_the_first_report_did_not_reach_gets_a_message(parts: Parts) -> None:
    parts.clock.now = minutes(10)
    await parts.poll("APA", ("apa-1", QUAKE_APA, minutes(5)))
    parts.clock.now = minutes(30)
    await parts.poll("Trend", ("trend-1", QUAKE_TREND, minutes(25)))

    # Chat 7 follows the rule "baku": only the Trend report names Baku. It is the first the
    # chat hears of the story, so a message of its own, naming no other outlet.
    (to_seven,) = [row for row in await parts.outbox() if row[2] == 7]
    assert to_seven[3] is None
    shown = parse_telegram_html(to_seven[4]).text
    assert shown.startswith(QUAKE_TREND.title) and "Also:" not in shown


async def test_a_third_outlet_edits_again_naming_both(parts: Parts) -> None:
    parts.clock.now = minutes(10)
    await parts.poll("APA", ("apa-1", QUAKE_APA, minutes(5)))
    parts.clock.now = minutes(30)
    await parts.poll("Trend", ("trend-1", QUAKE_TREND, minutes(25)))
    parts.clock.now = minutes(90)
    third = await parts.poll("Report", ("report-1", QUAKE_REPORT, minutes(80)))

    assert third.alerts == 1
    rows = await parts.outbox()
    message = rows[0]
    edits = [row for row in rows if row[3] == message[0]]
    assert len(edits) == 2
    assert parse_telegram_html(edits[-1][4]).text.endswith("\nAlso: Trend, Report")
    # The last edit holds the whole list: applied in order, it is what the chat ends with.
    assert edits[-1][4] == add_sources(message[4], ["Trend", "Report"])
    assert [row for row in rows if row[2] == 42 and row[3] is None] == [message]


async def test_an_unrelated_entry_gets_a_message_of_its_own(parts: Parts) -> None:
    parts.clock.now = minutes(10)
    await parts.poll("APA", ("apa-1", QUAKE_APA, minutes(5)))
    parts.clock.now = minutes(30)
    report = await parts.poll("Trend", ("trend-2", CHECKPOINT, minutes(25)))

    assert report.alerts == 1
    rows = await parts.outbox()
    assert [(row[2], row[3]) for row in rows] == [(42, None), (42, None)]
    stories = await parts.story_ids()
    assert stories["apa-1"] != stories["trend-2"]


async def test_entries_that_alert_nobody_are_not_given_a_story(parts: Parts) -> None:
    parts.clock.now = minutes(10)
    quiet = Report("Weather in Shamakhi", "Sunny and warm.")  # no rule hits it
    await parts.poll("APA", ("apa-1", QUAKE_APA, minutes(5)), ("apa-0", quiet, START))
    stories = await parts.story_ids()
    assert stories == {"apa-1": stories["apa-1"], "apa-0": None}
    assert stories["apa-1"] is not None
    assert parts.context.stories is not None and len(parts.context.stories.index) == 1


async def test_a_restart_in_the_middle_of_a_story_still_edits(parts: Parts) -> None:
    parts.clock.now = minutes(10)
    await parts.poll("APA", ("apa-1", QUAKE_APA, minutes(5)))

    restarted = StoryTracker()  # a new process: the index comes back from the store
    assert await restarted.load(parts.store, parts.clock.now) == 1
    parts.context.stories = restarted
    parts.clock.now = minutes(30)
    await parts.poll("Trend", ("trend-1", QUAKE_TREND, minutes(25)))

    message, edit, _ = await parts.outbox()
    assert (edit[2], edit[3]) == (42, message[0])


async def test_a_restart_gives_entries_back_their_signatures_without_the_rule_words(
    parts: Parts,
) -> None:
    parts.clock.now = minutes(10)
    await parts.poll("Trend", ("trend-1", QUAKE_TREND, minutes(5)))
    live = parts.context.stories
    assert live is not None
    (entry_id,) = live.index.stories()
    placed = live.index.terms_of(entry_id)
    assert "quak" not in placed and "baku" not in placed  # what "quakes" and "baku" matched

    restarted = StoryTracker()
    matcher = compile_rules(RULES, {})
    assert await restarted.load(parts.store, parts.clock.now, matcher=matcher) == 1
    assert restarted.index.terms_of(entry_id) == placed
    # A tracker given the rules in force uses them in every rebuild (a rolled-back poll's
    # too), not only at start.
    provided = StoryTracker(rules=lambda: (matcher, {}))
    await provided.load(parts.store, parts.clock.now)
    assert provided.index.terms_of(entry_id) == placed
    # Without the rules, the words they matched come back as terms.
    unaware = StoryTracker()
    await unaware.load(parts.store, parts.clock.now)
    assert unaware.index.terms_of(entry_id) == placed | {"quak", "baku"}


async def test_a_restart_restores_an_undated_entry_at_the_time_it_was_placed(
    parts: Parts,
) -> None:
    # An undated item matches no rule for three days, then an update makes it match: it
    # joins the index then, and a restart must give it back at that time, not at its
    # first sighting (more than a window ago).
    def undated(report: Report) -> str:
        return (
            "<rss version='2.0'><channel><title>t</title><item>"
            f"<title>{escape(report.title)}</title><guid>apa-1</guid>"
            f"<link>https://news.example/apa-1</link>"
            f"<description>{escape(report.summary)}</description></item></channel></rss>"
        )

    feed = parts.feeds["APA"]
    parts.clock.now = minutes(10)
    parts.server.serve("/APA", undated(Report("Officials meet in Ganja", "Talks went on.")))
    state = await parts.store.feed("APA")
    assert state is not None
    await poll_feed(feed, state, parts.context)
    assert await parts.outbox() == []

    parts.clock.now = START + timedelta(days=3)
    parts.server.serve("/APA", undated(QUAKE_APA))
    state = await parts.store.feed("APA")
    assert state is not None
    await poll_feed(feed, state, parts.context)
    assert len(await parts.outbox()) == 1  # the update made "quakes" match

    restarted = StoryTracker()
    parts.clock.now = START + timedelta(days=3, minutes=10)
    assert await restarted.load(parts.store, parts.clock.now) == 1
    parts.context.stories = restarted
    parts.clock.now = START + timedelta(days=3, minutes=20)
    await parts.poll("Trend", ("trend-1", QUAKE_TREND, parts.clock.now))

    message, edit = [row for row in await parts.outbox() if row[2] == 42]
    assert edit[3] == message[0]  # "Also: Trend", not a second message


async def test_an_outlets_next_item_about_a_story_it_is_named_in_is_a_message(
    parts: Parts,
) -> None:
    # APA starts a story and Trend joins it; two days later APA's first item has left the
    # window, so its next item about the story joins it again. The chat's message names
    # APA already: no edit can add anything, and the item must not be lost. The next
    # outlet edits that newest message, not the one of two days ago.
    apa, trend, apa_later, report = (
        Report(
            "Magnitude 5.1 earthquake strikes Shamakhi, houses damaged in Shamakhi villages",
            "A magnitude 5.1 earthquake struck Shamakhi district; houses in Shamakhi villages "
            "were damaged, the seismology centre in Baku said. No casualties in Shamakhi.",
        ),
        Report(
            "Magnitude 5.1 earthquake hits Shamakhi, houses damaged in villages",
            "An earthquake of magnitude 5.1 hit Shamakhi district; houses in several Shamakhi "
            "villages were damaged, the seismology centre said. No casualties in Shamakhi.",
        ),
        Report(
            "Shamakhi earthquake: houses damaged in Shamakhi villages after magnitude 5.1 quake",
            "After the magnitude 5.1 earthquake in Shamakhi district, houses in Shamakhi "
            "villages remain damaged, the seismology centre said. Residents evacuated.",
        ),
        Report(
            "Shamakhi villages: residents evacuated after magnitude 5.1 earthquake damaged houses",
            "Residents of Shamakhi villages whose houses the magnitude 5.1 earthquake damaged "
            "were evacuated, the seismology centre and Shamakhi district officials said.",
        ),
    )
    parts.clock.now = minutes(10)
    await parts.poll("APA", ("apa-1", apa, minutes(5)))
    parts.clock.now = minutes(20 * 60)
    await parts.poll("Trend", ("trend-1", trend, minutes(20 * 60 - 5)))
    parts.clock.now = minutes(49 * 60)
    await parts.poll("APA", ("apa-1", apa, minutes(5)), ("apa-2", apa_later, parts.clock.now))
    stories = await parts.story_ids()
    assert stories["apa-2"] == stories["apa-1"] == stories["trend-1"]
    to_42 = [(row[3] is not None, row[4]) for row in await parts.outbox() if row[2] == 42]
    assert [(edit, escape(apa_later.title) in text) for edit, text in to_42] == [
        (False, False),  # APA's first item
        (True, False),  # the edit adding Trend
        (False, True),  # APA's next item, a message of its own
    ]
    parts.clock.now = minutes(50 * 60)
    await parts.poll("Report", ("report-1", report, parts.clock.now))
    assert (await parts.story_ids())["report-1"] == stories["apa-1"]
    rows = [row for row in await parts.outbox() if row[2] == 42]
    assert rows[-1][3] == rows[2][0]  # Report's edit edits APA's next item
    assert rows[-1][4].endswith("<i>Also: Report</i>")


async def test_an_update_past_the_window_is_a_message_not_an_edit(parts: Parts) -> None:
    # APA's and Trend's reports made one story. Five days later APA rewrites its item to name
    # Baku, which a rule of chat 7 follows: that is news to chat 7, not a silent edit of the
    # message about the story it got five days ago.
    parts.clock.now = minutes(10)
    await parts.poll("APA", ("apa-1", QUAKE_APA, minutes(5)))
    parts.clock.now = minutes(30)
    await parts.poll("Trend", ("trend-1", QUAKE_TREND, minutes(25)))
    before = await parts.outbox()
    assert [row[2] for row in before if row[3] is None] == [42, 7]
    parts.clock.now = minutes(30) + timedelta(days=5)
    updated = Report(QUAKE_APA.title, QUAKE_APA.summary + " It was also felt in Baku.")
    await parts.poll("APA", ("apa-1", updated, minutes(5)))
    ((_, _, chat, edit_of, text),) = (await parts.outbox())[len(before) :]
    assert (chat, edit_of) == (7, None)
    assert text.startswith("<i>Updated:") and "also felt in <b>Baku</b>" in text


@pytest.mark.parametrize("quiet", ["muted", "digest"])
async def test_a_quiet_chat_with_the_story_gets_an_edit_not_a_held_alert(
    parts: Parts, quiet: str
) -> None:
    # Chat 555 got APA's report, then muted the bot (or chose a daily digest). Trend's report
    # of the same story edits that message, which makes no sound, rather than coming back
    # in the digest as a second alert about the story. A report of another story is held.
    chat = 555
    await parts.store.add_subscriber(chat, parts.clock.now)
    await parts.store.follow(chat, "quakes", parts.clock.now)
    parts.clock.now = minutes(10)
    await parts.poll("APA", ("apa-1", QUAKE_APA, minutes(5)))
    if quiet == "muted":
        await parts.store.set_muted_until(chat, minutes(120))
    else:
        await parts.store.set_digest(chat, "daily", "18:00")
    parts.clock.now = minutes(30)
    other = Report("Checkpoint opens on the Georgian border", "Traffic resumed at Sadakhlo.")
    report = await parts.poll(
        "Trend", ("trend-1", QUAKE_TREND, minutes(25)), ("trend-2", other, minutes(26))
    )
    assert report.held == 1
    rows = [row for row in await parts.outbox() if row[2] == chat]
    assert [row[3] for row in rows] == [None, rows[0][0]]  # the message, and its edit
    assert rows[1][4].endswith("<i>Also: Trend</i>")
    assert [held.title for held in await parts.store.held_alerts(chat)] == [other.title]


async def test_a_digest_tells_of_a_story_once(parts: Parts) -> None:
    # Chat 555 is muted before the story breaks: both reports are held, and its digest has
    # one line for the story, naming the second outlet.
    chat = 555
    await parts.store.add_subscriber(chat, parts.clock.now)
    await parts.store.follow(chat, "quakes", parts.clock.now)
    await parts.store.set_muted_until(chat, minutes(120))
    parts.clock.now = minutes(10)
    await parts.poll("APA", ("apa-1", QUAKE_APA, minutes(5)))
    parts.clock.now = minutes(30)
    assert (await parts.poll("Trend", ("trend-1", QUAKE_TREND, minutes(25)))).held == 1
    assert await send_digest(parts.store, chat, minutes(121), "While you were muted") == 2
    ((_, _, _, _, text),) = [row for row in await parts.outbox() if row[2] == chat]
    assert text.startswith("While you were muted (1 alert)\n")
    assert text.count("• ") == 1 and "— APA (also: Trend) #quakes" in text


async def test_an_update_for_a_muted_chat_with_the_story_is_an_edit(parts: Parts) -> None:
    # Chat 555 follows Baku: Trend's report names it, APA's does not. Muted, the chat then
    # sees APA's item rewritten to name Baku: an edit of its message, not a held alert.
    chat = 555
    await parts.store.add_subscriber(chat, parts.clock.now)
    await parts.store.follow(chat, "baku", parts.clock.now)
    parts.clock.now = minutes(10)
    await parts.poll("APA", ("apa-1", QUAKE_APA, minutes(5)))
    parts.clock.now = minutes(30)
    await parts.poll("Trend", ("trend-1", QUAKE_TREND, minutes(25)))
    await parts.store.set_muted_until(chat, minutes(240))
    parts.clock.now = minutes(60)
    updated = Report(QUAKE_APA.title, QUAKE_APA.summary + " It was also felt in Baku.")
    report = await parts.poll("APA", ("apa-1", updated, minutes(5)))
    assert (report.updated, report.held) == (1, 0)
    rows = [row for row in await parts.outbox() if row[2] == chat]
    assert [row[3] for row in rows] == [None, rows[0][0]]
    assert rows[1][4].endswith("<i>Also: APA</i>")
    assert await parts.store.held_alerts(chat) == []


async def test_an_update_while_its_story_goes_on_is_an_edit(parts: Parts) -> None:
    # APA's item is dated 47 h before it is first seen (a late feed); Trend's report of the
    # quake names Baku, and chat 7 gets it. Two hours later APA's item is rewritten to name
    # Baku too: APA's own date is past the window, but the story goes on through Trend's
    # report, so chat 7's message is edited, without a sound, not sent again.
    late = minutes(10) - timedelta(hours=47)
    parts.clock.now = minutes(10)
    await parts.poll("APA", ("apa-1", QUAKE_APA, late))
    baku = Report(QUAKE_APA.title, QUAKE_APA.summary + " It was also felt in Baku.")
    parts.clock.now = minutes(20)
    await parts.poll("Trend", ("trend-1", baku, minutes(15)))
    stories = await parts.story_ids()
    assert stories["trend-1"] == stories["apa-1"]
    before = await parts.outbox()
    parts.clock.now = minutes(20) + timedelta(hours=2)
    await parts.poll("APA", ("apa-1", baku, late))
    ((_, _, chat, edit_of, text),) = (await parts.outbox())[len(before) :]
    message = next(row for row in before if row[2] == 7 and row[3] is None)
    assert (chat, edit_of) == (7, message[0])
    assert text.endswith("<i>Also: APA</i>")


async def test_entries_older_than_the_window_are_not_loaded(parts: Parts) -> None:
    parts.clock.now = minutes(10)
    await parts.poll("APA", ("apa-1", QUAKE_APA, minutes(5)))
    tracker = StoryTracker(StorySettings(window=timedelta(hours=1)))
    assert await tracker.load(parts.store, minutes(10) + timedelta(minutes=30)) == 1
    assert await tracker.load(parts.store, minutes(10) + timedelta(hours=2)) == 0

    parts.context.stories = tracker
    parts.clock.now = minutes(10) + timedelta(hours=2)
    await parts.poll("Trend", ("trend-1", QUAKE_TREND, parts.clock.now))
    assert all(row[3] is None for row in await parts.outbox())  # too late: a new message


@pytest.mark.parametrize("placements", [1, 2])
async def test_a_rolled_back_poll_leaves_nothing_behind_in_the_index(
    parts: Parts, placements: int
) -> None:
    """A poll that placed its entry and then failed. With two placements in the one
    transaction (new entries, then updated ones), the second must not take the first's
    uncommitted rows as committed."""
    tracker = parts.context.stories
    assert tracker is not None
    state = await parts.store.feed("APA")
    assert state is not None
    entry = Entry("g", "https://news.example/g", QUAKE_APA.title, QUAKE_APA.summary, minutes(5))
    with pytest.raises(RuntimeError):
        async with parts.store.write() as tx:
            (new,) = await tx.insert_entries(state.id, [entry], minutes(10))
            text = render_alert(entry, "APA", [Hit("quakes")])
            plan = await tracker.apply(
                [new], [Alert(new.id, 42, text)], (), "APA", parts.store, tx, minutes(10)
            )
            await tx.enqueue(plan.messages, minutes(10))
            if placements == 2:
                await tracker.apply([], [], (), "APA", parts.store, tx, minutes(10))
            assert new.id in tracker.index
            raise RuntimeError("the poll failed after placing its entry")

    # The entry was never recorded, and its id is free again: the next poll's entry gets it.
    # That poll finds the index out of step with the store and reloads it.
    parts.clock.now = minutes(30)
    report = await parts.poll("Trend", ("trend-1", QUAKE_TREND, minutes(25)))
    assert report.error is None
    story = (await parts.story_ids())["trend-1"]
    assert story == new.id  # the id was reused
    assert tracker.index.stories() == {story: frozenset({story})}
    rows = await parts.outbox()
    assert [(row[2], row[3]) for row in rows] == [(42, None), (7, None)]  # nothing to edit


async def test_a_story_repeated_by_an_outlet_already_named_is_not_edited_again(
    parts: Parts,
) -> None:
    parts.clock.now = minutes(10)
    await parts.poll("APA", ("apa-1", QUAKE_APA, minutes(5)))
    outbox_id, story, _, _, text = (await parts.outbox())[0]
    assert story is not None
    message = StoryMessage(outbox_id, story, 42, story, "APA", text)
    named = StoryMessage(outbox_id, story, 42, story, "APA", text, added_feeds=("Trend",))
    tracker = StoryTracker()
    alert = Alert(99, 42, "the Trend report", ("quakes",))

    first = tracker.plan([alert], {99: story}, {(story, 42): message}, "Trend")
    assert [edit.text for edit in first.edits] == [add_sources(text, ["Trend"])]
    assert first.messages == []
    assert tracker.plan([alert], {99: story}, {(story, 42): named}, "Trend").edits == []
    assert tracker.plan([alert], {99: story}, {(story, 42): named}, "APA").edits == []


def test_other_sources_name_each_outlet_once_never_the_message_own() -> None:
    message = StoryMessage(1, 1, 42, 1, "APA", "x", added_feeds=("Trend", "APA", "Trend"))
    assert other_sources(message) == ["Trend"]
    assert other_sources(message, "Report") == ["Trend", "Report"]


# -- the "Also:" line ---------------------------------------------------------------------


def alert_text(summary: str, rules: int = 1) -> str:
    entry = Entry("g", "https://apa.az/1", "Quake & aftershocks <live>", summary, START)
    return render_alert(entry, "APA", [Hit(f"rule_{n}") for n in range(rules)])


def test_the_also_line_is_escaped_and_the_rest_left_alone() -> None:
    base = alert_text("An earthquake of magnitude 5.1 was recorded.")
    edited = add_sources(base, ["Trend", "Report <az> & co"])
    assert edited.startswith(base)
    shown = parse_telegram_html(edited)
    assert shown.text.endswith("\nAlso: Trend, Report <az> & co")
    assert shown.entities[-1]["type"] == "italic"
    assert add_sources(base, []) == base


def test_one_long_source_name_does_not_hide_the_others() -> None:
    base = alert_text("An earthquake of magnitude 5.1 was recorded.")
    long_name = "Agency " * 100
    shown = parse_telegram_html(add_sources(base, [long_name, "Trend", "Report"])).text
    also = shown.rsplit("\n", 1)[1]
    assert also.startswith("Also: Agency Agency") and also.endswith("…, Trend, Report")


def test_a_long_list_and_a_full_message_stay_within_telegram_limit() -> None:
    base = alert_text("word " * 2000, rules=400)  # a long snippet and tags up to the limit
    assert utf16_len(parse_telegram_html(base).text) > MESSAGE_LIMIT - 200
    sources = [f"Regional outlet number {n}" for n in range(300)]
    edited = add_sources(base, sources)

    shown = parse_telegram_html(edited).text  # valid HTML: every tag it opened is closed
    assert utf16_len(shown) <= MESSAGE_LIMIT
    also = shown.rsplit("\n", 1)[1]
    assert also.startswith("Also: Regional outlet number 0, Regional outlet number 1, ")
    assert also.endswith(" more") and utf16_len(also) <= ALSO_LIMIT
    assert edited.endswith("</i>")
    assert shown.startswith("Quake & aftershocks <live>\n\n")  # the title is kept
    assert "#rule_0" in shown and "— APA" in shown  # so are the source and the first tags


def test_the_snippet_gives_way_first() -> None:
    base = alert_text("Shamakhi " * 2000, rules=400)  # tags fill the message to the limit
    before = parse_telegram_html(base).text.split("\n\n")
    names = [f"Outlet {n} " + "x" * 80 for n in range(2)]  # within the name limit
    edited = add_sources(base, names)

    shown = parse_telegram_html(edited).text
    assert utf16_len(shown) <= MESSAGE_LIMIT
    title, snippet, last = shown.split("\n\n")
    source, also = last.split("\n")
    assert (title, source) == (before[0], before[2])  # the title and every tag kept
    assert snippet.startswith("Shamakhi Shamakhi") and snippet.endswith("…")
    assert len(snippet) < len(before[1])
    assert also == "Also: " + ", ".join(names)


@asynccontextmanager
async def outlets_and_telegram(
    tmp_path: Path, chat: int, metrics: Metrics | None = None
) -> AsyncIterator[tuple[Parts, FakeTelegram, Delivery]]:
    """APA, Trend, Report and Turan primed, rule "quakes" for `chat`, stories on, and
    delivery to the fake Bot API."""
    clock = Clock(START)
    rules = [RuleDef("quakes", "earthquake OR quake", (chat,))]
    async with (
        poll_parts(tmp_path / "w.db", rules, clock=clock, stories=StoryTracker()) as (
            server,
            context,
        ),
        FakeTelegram(TOKEN) as fake,
    ):
        names = ("APA", "Trend", "Report", "Turan")
        feeds = {name: FeedDef(name, server.url(f"/{name}"), 300) for name in names}
        await context.store.sync_feeds(list(feeds.values()), clock.now)
        parts = Parts(server, context, clock, feeds)
        for name in feeds:
            await parts.poll(name)
        sender = TelegramSender(TOKEN, api_base_url=fake.base_url, timeout_s=3)
        try:
            yield parts, fake, Delivery(parts.store, sender, clock=parts.clock, metrics=metrics)
        finally:
            await sender.close()


async def test_after_a_migration_the_edit_sent_as_a_message_is_the_one_edited(
    tmp_path: Path,
) -> None:
    # The story's message went to the group's old id; the group became a supergroup; the
    # next outlet's edit went out at the new id as a message. A third outlet edits that.
    old, new = -100, -1009
    async with outlets_and_telegram(tmp_path, old) as (parts, fake, delivery):
        parts.clock.now = minutes(10)
        await parts.poll("APA", ("apa-1", QUAKE_APA, minutes(5)))
        await delivery.drain()
        fake.migrate_chat(old, new)
        parts.clock.now = minutes(30)
        await parts.poll("Trend", ("trend-1", QUAKE_TREND, minutes(25)))
        await delivery.drain()  # the edit meets the migration: moved to the new id
        await delivery.drain()  # and sent there as a message
        parts.clock.now = minutes(90)
        await parts.poll("Report", ("report-1", QUAKE_REPORT, minutes(80)))
        await delivery.drain()
    (at_new,) = [m for m in fake.sent if m.chat_id == new]
    edited = fake.message(new, at_new.message_id)
    assert edited is not None and edited.visible_text.endswith("\nAlso: Trend, Report")


@pytest.mark.parametrize("missed", ["migrated", "given up"])
async def test_edits_queued_for_a_message_the_chat_never_got_make_one_message(
    tmp_path: Path, missed: str
) -> None:
    """Two outlets join the story before delivery reaches the chat again, and the chat
    never gets the story's message (the group migrated, or Telegram refused the message):
    one message names both outlets; not a message for each."""
    old, new = -100, -1009
    chat = new if missed == "migrated" else old
    async with outlets_and_telegram(tmp_path, old) as (parts, fake, delivery):
        parts.clock.now = minutes(10)
        await parts.poll("APA", ("apa-1", QUAKE_APA, minutes(5)))
        if missed == "migrated":
            await delivery.drain()
            fake.migrate_chat(old, new)
        parts.clock.now = minutes(30)
        await parts.poll("Trend", ("trend-1", QUAKE_TREND, minutes(25)))
        parts.clock.now = minutes(40)
        await parts.poll("Report", ("report-1", QUAKE_REPORT, minutes(35)))
        if missed == "given up":
            fake.fail_next(1, 400)  # APA's message is refused for good
        for _ in range(4):
            await delivery.drain()
        (message,) = [m for m in fake.sent if m.chat_id == chat]
        shown = fake.message(chat, message.message_id)
        assert shown is not None and shown.visible_text.endswith("\nAlso: Trend, Report")
        # A fourth outlet edits that message, naming every outlet the chat was told of.
        parts.clock.now = minutes(60)
        await parts.poll("Turan", ("turan-1", QUAKE_FOURTH, minutes(55)))
        await delivery.drain()
    (message,) = [m for m in fake.sent if m.chat_id == chat]
    shown = fake.message(chat, message.message_id)
    assert shown is not None and shown.visible_text.endswith("\nAlso: Trend, Report, Turan")


async def test_a_later_edit_retried_edits_the_edit_that_went_out_as_a_message(
    tmp_path: Path,
) -> None:
    # APA's message is refused; Trend's edit goes out as a message in its place; Report's
    # edit, due with it, fails once and is retried in a later round, where it edits that
    # message (the store points it there), not sent as another one.
    async with outlets_and_telegram(tmp_path, 42) as (parts, fake, delivery):
        parts.clock.now = minutes(10)
        await parts.poll("APA", ("apa-1", QUAKE_APA, minutes(5)))
        parts.clock.now = minutes(30)
        await parts.poll("Trend", ("trend-1", QUAKE_TREND, minutes(25)))
        parts.clock.now = minutes(40)
        await parts.poll("Report", ("report-1", QUAKE_REPORT, minutes(35)))
        fake.fail_next(1, 400, methods=["sendMessage"])  # APA's message, for good
        fake.fail_next(1, 502, methods=["editMessageText"])  # Report's edit, once
        for _ in range(2):
            await delivery.drain()
        rows = await parts.outbox()
        assert rows[-1][3] == rows[-2][0]  # Report's edit now edits Trend's row
        assert len(fake.sent) == 1 and fake.edits == []
        parts.clock.now = minutes(45)
        await delivery.drain()
    (message,) = fake.sent
    shown = fake.message(42, message.message_id)
    assert shown is not None and shown.visible_text.endswith("\nAlso: Trend, Report")


async def test_of_the_edits_of_one_message_due_at_once_only_the_latest_is_sent(
    tmp_path: Path,
) -> None:
    # Telegram was down while two more outlets joined the story: one edit call names both
    # (a group allows 20 messages a minute), and the other edit is settled as carried.
    metrics = Metrics(process_metrics=False)
    async with outlets_and_telegram(tmp_path, 42, metrics) as (parts, fake, delivery):
        parts.clock.now = minutes(10)
        await parts.poll("APA", ("apa-1", QUAKE_APA, minutes(5)))
        await delivery.drain()
        parts.clock.now = minutes(30)
        await parts.poll("Trend", ("trend-1", QUAKE_TREND, minutes(25)))
        parts.clock.now = minutes(40)
        await parts.poll("Report", ("report-1", QUAKE_REPORT, minutes(35)))
        await delivery.drain()
        await delivery.drain()
        pending = await parts.store.due_outbox(parts.clock.now)
    (message,) = fake.sent
    (edit,) = fake.edits
    assert edit.message_id == message.message_id
    assert edit.visible_text.endswith("\nAlso: Trend, Report")
    assert pending == []
    outcomes = sends(metrics)
    assert (outcomes["sent"], outcomes["edited"], outcomes["edit_superseded"]) == (1, 1, 1)


async def daemon_and_replay(parts: Parts) -> tuple[dict[str, str | None], dict[str, str]]:
    """Each entry's story (named by its first entry's guid) as the daemon recorded it, and
    as `watcher replay` groups the same database."""
    rows = await parts.store._fetchall("SELECT id, link, story_id FROM entries", ())
    guid = {row[0]: row[1].rsplit("/", 1)[1] for row in rows}
    daemon = {guid[row[0]]: guid.get(row[2]) for row in rows if row[2] is not None}
    with EntryHistory.open(parts.store.path) as history:
        result = replay_entries(
            history.entries_since(START - timedelta(days=7)),
            compile_rules(RULES, {}),
            feeds=parts.feeds,
            stories=StorySettings(),
        )
    replayed = {guid[e.id]: guid[story.id] for story in result.stories for e in story.entries}
    return daemon, replayed


@pytest.mark.parametrize(
    ("trend_seen", "trend_dated"),
    [(1, -2), (50, 1)],
    ids=["dated before the report seen first", "dated an hour after, seen 50 h after"],
)
async def test_replay_groups_as_the_daemon_did(
    parts: Parts, trend_seen: float, trend_dated: float
) -> None:
    parts.clock.now = START
    await parts.poll("APA", ("apa-1", QUAKE_APA, START))
    parts.clock.now = START + timedelta(hours=trend_seen)
    await parts.poll("Trend", ("trend-1", QUAKE_TREND, START + timedelta(hours=trend_dated)))
    daemon, replayed = await daemon_and_replay(parts)
    assert replayed == daemon
