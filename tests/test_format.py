"""Alert formatting: Telegram HTML that is always escaped and always within limits."""

import html
import re

import pytest

from tests.fakes.telegram_api import telegram_length
from watcher.model import Entry, Hit, RuleDef, Span
from watcher.rules import compile_rules
from watcher.telegram.format import (
    MESSAGE_LIMIT,
    DigestLine,
    hashtag,
    html_to_console,
    render_alert,
    render_digest,
    render_notice,
)

TAG = re.compile(r"<[^>]+>")


def visible(message: str) -> str:
    return html.unescape(TAG.sub("", message))


def test_title_is_bold_linked_and_escaped() -> None:
    entry = Entry(
        guid="1",
        link='https://x.az/a?b=1&c="2"',
        title='5 < 6 & <script>alert("x")</script>',
        summary="",
    )
    message = render_alert(entry, "apa", [Hit("peacekeepers")])
    assert message.startswith(
        '<b><a href="https://x.az/a?b=1&amp;c=&quot;2&quot;">'
        "5 &lt; 6 &amp; &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</a></b>"
    )
    assert "— apa" in message and "#peacekeepers" in message


def test_non_http_links_are_not_linked() -> None:
    entry = Entry(guid="1", link="javascript:alert(1)", title="T", summary="")
    assert "<a " not in render_alert(entry, "f", [Hit("r")])


def test_snippet_emphasises_the_matched_words() -> None:
    summary = "Long intro. " * 20 + "The Russian peacekeeping contingent escorted trucks."
    start = summary.index("peacekeeping contingent")
    span = Span("summary", start, start + len("peacekeeping contingent"), "peacekeeping contingent")
    entry = Entry(guid="1", link=None, title="T", summary=summary)
    message = render_alert(entry, "f", [Hit("pk", (span,))])
    assert "<b>peacekeeping contingent</b>" in message
    assert "…" in message  # the window starts after the intro


def test_one_message_names_every_rule_as_a_hashtag() -> None:
    entry = Entry(guid="1", link=None, title="T", summary="s")
    message = render_alert(entry, "f", [Hit("peacekeepers"), Hit("tripartite-declaration")])
    assert "#peacekeepers #tripartite_declaration" in message
    assert hashtag("Лачинский коридор") == "#Лачинский_коридор"


def test_message_never_exceeds_telegram_limit() -> None:
    entry = Entry(
        guid="1", link="https://x.az/" + "a" * 3000, title="😀<&" * 3000, summary="й" * 50_000
    )
    hits = [Hit(f"rule_{n}_" + "x" * 40) for n in range(500)]
    message = render_alert(entry, "feed", hits)
    assert telegram_length(message) <= MESSAGE_LIMIT


def test_console_rendering_is_readable_text() -> None:
    entry = Entry(guid="1", link="https://x.az/a?b=1&c=2", title="A & B", summary="x < y")
    text = html_to_console(render_alert(entry, "apa", [Hit("r")]))
    assert text.splitlines()[0] == "A & B <https://x.az/a?b=1&c=2>"
    assert "x < y" in text and "<b>" not in text


@pytest.mark.parametrize("name", ["f" * 5000, "📰" * 3000])
def test_a_long_feed_name_keeps_an_alert_within_the_limit(name: str) -> None:
    entry = Entry(guid="1", link="https://x.az/1", title="Quake hits Shamakhi", summary="s")
    message = render_alert(entry, name, [Hit("quake")])
    assert telegram_length(message) <= MESSAGE_LIMIT
    assert "#quake" in message


def test_a_digest_line_with_many_rules_and_a_long_feed_name_fits() -> None:
    rules = tuple(f"rule_{i}_" + "x" * 40 for i in range(100))
    lines = [DigestLine("Quake hits Shamakhi", "https://x.az/1", "apa" * 2000, rules)] * 3
    messages = render_digest(lines, "Digest (3 alerts)")
    assert all(telegram_length(message) <= MESSAGE_LIMIT for message in messages)
    assert sum(message.count("Quake hits Shamakhi") for message in messages) == 3


def test_a_notice_is_cut_by_what_telegram_counts() -> None:
    # Each emoji is two UTF-16 code units: cut by code points, this was 6,000 of them.
    message = render_notice("Feed " + "📰" * 3000 + " is failing")
    assert telegram_length(message) <= MESSAGE_LIMIT
    assert message.rstrip().endswith("…")


def test_a_hit_far_into_a_long_summary_is_shown() -> None:
    matcher = compile_rules([RuleDef("pk", "peacekeepers")], {})
    summary = "Talks went on. " * 150 + "Russian peacekeepers escorted the convoy."
    hits = matcher.match("Convoy reaches Khankendi", summary)
    message = render_alert(Entry("1", None, "Convoy reaches Khankendi", summary), "apa", hits)
    assert "<b>peacekeepers</b>" in message
