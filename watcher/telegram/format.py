"""PURE: alert messages in Telegram's HTML dialect.

Every string that came from a feed goes through `escape`, so a title such as
`5 < 6 & <b>` reaches the subscriber as written and never breaks Telegram's parser.
Lengths are tracked as visible text (what Telegram counts after parsing entities), in
UTF-16 code units as Telegram measures them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo

from watcher.model import Entry, Hit, Span

MESSAGE_LIMIT = 4096  # visible characters (UTF-16 code units) Telegram accepts in one message
TITLE_LIMIT = 300
SNIPPET_LIMIT = 400
_SNIPPET_LEAD = 80  # characters of context shown before the first hit
_HASHTAG_UNSAFE = re.compile(r"\W+")


def visible_length(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


@dataclass(frozen=True, slots=True)
class _Part:
    html: str
    visible: str


def _text(value: str) -> _Part:
    return _Part(escape(value), value)


def _emphasised_snippet(summary: str, spans: Sequence[Span]) -> list[_Part]:
    """A window of the summary around the first hit, hit words in bold."""
    if not summary:
        return []
    hits = sorted((s for s in spans if s.field == "summary"), key=lambda s: s.start)
    start = max(0, hits[0].start - _SNIPPET_LEAD) if hits else 0
    if start > 0:
        space = summary.find(" ", start)
        start = space + 1 if 0 <= space < hits[0].start else start
    end = min(len(summary), start + SNIPPET_LIMIT)
    if end < len(summary):
        space = summary.rfind(" ", start, end)
        end = space if space > start + SNIPPET_LIMIT // 2 else end
    parts: list[_Part] = [_text("…")] if start > 0 else []
    cursor = start
    for span in hits:
        if span.start < cursor or span.end > end:
            continue  # overlapping or outside the window
        parts.append(_text(summary[cursor : span.start]))
        word = summary[span.start : span.end]
        parts.append(_Part(f"<b>{escape(word)}</b>", word))
        cursor = span.end
    parts.append(_text(summary[cursor:end]))
    if end < len(summary):
        parts.append(_text("…"))
    return parts


def hashtag(rule: str) -> str:
    return "#" + (_HASHTAG_UNSAFE.sub("_", rule).strip("_") or "rule")


def render_alert(
    entry: Entry, feed_name: str, hits: Sequence[Hit], *, tz: tzinfo | None = None
) -> str:
    """One message for one entry, however many rules hit it. The published time is shown
    in `tz` (the operator's time zone), or UTC."""
    title = _shorten(entry.title or "(untitled)", TITLE_LIMIT)
    link = entry.link if entry.link and entry.link.startswith(("http://", "https://")) else None
    if link:
        head = _Part(f'<b><a href="{escape(link)}">{escape(title)}</a></b>', title)
    else:
        head = _Part(f"<b>{escape(title)}</b>", title)

    spans = [span for hit in hits for span in hit.spans]
    snippet = _emphasised_snippet(_shorten(entry.summary, 5 * SNIPPET_LIMIT), spans)
    published = ""
    if entry.published is not None:
        local = entry.published.astimezone(tz or UTC)
        published = f" · {local.day} {local:%b %Y %H:%M}"
    source = _text(f"— {feed_name}{published}")

    fixed = [head, _text("\n\n"), *snippet, _text("\n\n" if snippet else ""), source]
    used = sum(visible_length(p.visible) for p in fixed)
    tags: list[str] = []
    for hit in hits:  # many rules could hit; drop the tags that do not fit
        tag = hashtag(hit.rule)
        if used + visible_length(tag) + 1 > MESSAGE_LIMIT:
            break
        tags.append(tag)
        used += visible_length(tag) + 1
    tail = _text((" " + " ".join(tags)) if tags else "")
    return "".join(part.html for part in (*fixed, tail))


_LINK = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def _strip_tags(fragment: str) -> str:
    return html.unescape(_TAG.sub("", fragment))


def html_to_console(message: str) -> str:
    """Render one of our own messages for a terminal: links as `text <url>`, no tags."""
    pieces: list[str] = []
    position = 0
    for link in _LINK.finditer(message):
        pieces.append(_strip_tags(message[position : link.start()]))
        pieces.append(f"{_strip_tags(link.group(2))} <{html.unescape(link.group(1))}>")
        position = link.end()
    pieces.append(_strip_tags(message[position:]))
    return "".join(pieces)


def render_notice(text: str) -> str:
    """A message to the operators (admins) about Watcher itself."""
    body = _shorten(text, MESSAGE_LIMIT - 20)
    return f"⚠️ <b>Watcher</b>\n{escape(body)}"


@dataclass(frozen=True, slots=True)
class DigestLine:
    title: str
    link: str | None
    feed: str
    rules: tuple[str, ...]


def render_digest(lines: Sequence[DigestLine], heading: str) -> list[str]:
    """Held alerts as as few messages as the 4096-character limit allows, each line a
    linked title with its source and rules."""
    messages: list[str] = []
    head = _text(f"{heading}\n")
    parts: list[_Part] = [head]
    used = visible_length(head.visible)
    for line in lines:
        title = _shorten(line.title or "(untitled)", TITLE_LIMIT)
        link = line.link if line.link and line.link.startswith(("http://", "https://")) else None
        shown = f'<a href="{escape(link)}">{escape(title)}</a>' if link else escape(title)
        tags = " ".join(hashtag(rule) for rule in line.rules)
        tail = f" — {line.feed} {tags}".rstrip()
        part = _Part(f"\n• {shown}{escape(tail)}", f"\n• {title}{tail}")
        size = visible_length(part.visible)
        if used + size > MESSAGE_LIMIT and len(parts) > 1:
            messages.append("".join(p.html for p in parts))
            parts, used = [head], visible_length(head.visible)
        parts.append(part)
        used += size
    if len(parts) > 1:
        messages.append("".join(p.html for p in parts))
    return messages
