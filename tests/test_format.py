"""Alert formatting: Telegram HTML that is always escaped and always within limits."""

import html
import re

from watcher.model import Entry, Hit, Span
from watcher.telegram.format import (
    MESSAGE_LIMIT,
    hashtag,
    html_to_console,
    render_alert,
    visible_length,
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
    assert visible_length(visible(message)) <= MESSAGE_LIMIT


def test_console_rendering_is_readable_text() -> None:
    entry = Entry(guid="1", link="https://x.az/a?b=1&c=2", title="A & B", summary="x < y")
    text = html_to_console(render_alert(entry, "apa", [Hit("r")]))
    assert text.splitlines()[0] == "A & B <https://x.az/a?b=1&c=2>"
    assert "x < y" in text and "<b>" not in text
