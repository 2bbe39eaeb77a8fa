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
NAME_LIMIT = 100  # a feed's name as a source; the config does not bound names
UPDATED_MARKER = "Updated:"  # before the title of an entry whose text changed
_SNIPPET_LEAD = 80  # characters of context shown before the first hit
_HASHTAG_UNSAFE = re.compile(r"\W+")


def visible_length(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def _shorten(text: str, limit: int) -> str:
    """`text` within `limit` UTF-16 code units (as Telegram counts), cut at a space where
    one is near the end, with "…" where it was cut."""
    if len(text) <= limit // 2 or visible_length(text) <= limit:  # the cheap test first
        return text
    # Cut by code units; a surrogate pair cut in half is dropped whole.
    cut = text.encode("utf-16-le")[: 2 * (limit - 1)].decode("utf-16-le", errors="ignore")
    space = cut.rfind(" ")
    if space > len(cut) // 2:
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
    entry: Entry,
    feed_name: str,
    hits: Sequence[Hit],
    *,
    tz: tzinfo | None = None,
    updated: bool = False,
) -> str:
    """One message for one entry, however many rules hit it. The published time is shown
    in `tz` (the operator's time zone), or UTC. The message about an `updated` entry (one
    recorded before its text changed) says so before its title."""
    title = _shorten(entry.title or "(untitled)", TITLE_LIMIT)
    link = entry.link if entry.link and entry.link.startswith(("http://", "https://")) else None
    if link:
        head = _Part(f'<b><a href="{escape(link)}">{escape(title)}</a></b>', title)
    else:
        head = _Part(f"<b>{escape(title)}</b>", title)
    if updated:
        head = _Part(f"<i>{UPDATED_MARKER}</i> {head.html}", f"{UPDATED_MARKER} {head.visible}")

    spans = [span for hit in hits for span in hit.spans]
    # The whole summary: the hits the snippet is built around may lie far into it.
    snippet = _emphasised_snippet(entry.summary, spans)
    published = ""
    if entry.published is not None:
        local = entry.published.astimezone(tz or UTC)
        published = f" · {local.day} {local:%b %Y %H:%M}"
    source = _text(f"— {_shorten(feed_name, NAME_LIMIT)}{published}")

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
    also: tuple[str, ...] = ()  # the other outlets that reported the story


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
        tags = _shorten(" ".join(hashtag(rule) for rule in line.rules), TITLE_LIMIT)
        also = f" ({_also_line(line.also, 'also')})" if line.also else ""
        tail = f" — {_shorten(line.feed, NAME_LIMIT)}{also} {tags}".rstrip()
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


ALSO_LIMIT = 600  # visible characters the list of other sources may take in a message
_MARKUP = re.compile(r"(<[^>]*>|&#?\w+;)")


def _visible(fragment: str) -> str:
    return html.unescape(_TAG.sub("", fragment))


def _also_line(sources: Sequence[str], label: str = "Also") -> str:
    """ "Also: A, B" (or another `label`) as visible text, naming as many sources as fit in
    ALSO_LIMIT, each name cut to NAME_LIMIT as under an alert (one long name must not hide
    the others)."""
    sources = [_shorten(source, NAME_LIMIT) for source in sources]
    shown: list[str] = []
    for count, source in enumerate(sources):
        rest = len(sources) - count - 1
        more = f" and {rest} more" if rest else ""
        line = f"{label}: " + ", ".join([*shown, source]) + more
        if shown and visible_length(line) > ALSO_LIMIT:
            break
        shown.append(source)
    rest = len(sources) - len(shown)
    line = f"{label}: " + ", ".join(shown) + (f" and {rest} more" if rest else "")
    return _shorten(line, ALSO_LIMIT)


def _cut_html(fragment: str, keep: int) -> str:
    """The start of a fragment of our HTML with at most `keep` visible characters (UTF-16
    code units), every tag it opened closed again."""
    out: list[str] = []
    open_tags: list[str] = []
    left = keep
    for token in _MARKUP.split(fragment):
        if not token:
            continue
        if token.startswith("<"):
            if token.startswith("</"):
                if open_tags:
                    open_tags.pop()
            else:
                open_tags.append(token[1:-1].split()[0] if token[1:-1].split() else "")
            out.append(token)
            continue
        if token.startswith("&") and token.endswith(";"):
            size = visible_length(html.unescape(token))
            if size > left:
                break
            out.append(token)
            left -= size
            continue
        taken: list[str] = []
        for char in token:
            size = visible_length(char)
            if size > left:
                break
            taken.append(char)
            left -= size
        out.append("".join(taken))
        if len(taken) < len(token):
            break
    out.extend(f"</{name}>" for name in reversed(open_tags))
    return "".join(out)


def _shrink(fragment: str, excess: int) -> str:
    """`fragment` with `excess` visible characters fewer at least, ending in "…" (or ""
    when nothing of it would be left)."""
    size = visible_length(_visible(fragment))
    keep = size - excess - 1  # room for the "…"
    if keep <= 0:
        return ""
    cut = _cut_html(fragment, keep)
    # Close the cut before its closing tags: "<b>wor…</b>" reads better than "<b>wor</b>…".
    closing = re.search(r"(</[^>]+>)+$", cut)
    if closing is None:
        return cut.rstrip() + "…"
    return cut[: closing.start()].rstrip() + "…" + closing.group(0)


def add_sources(message: str, sources: Sequence[str]) -> str:
    """A message of ours with a last line naming the other outlets that reported its story
    ("Also: APA, Trend"), for an edit of the message already sent. Within MESSAGE_LIMIT: the
    list takes at most ALSO_LIMIT, and the message makes room by shortening its snippet (the
    paragraphs between the first and the last), then its last paragraph, then its first."""
    if not sources:
        return message
    also = _also_line(sources)
    line = f"\n<i>{escape(also)}</i>"
    excess = visible_length(_visible(message)) + 1 + visible_length(also) - MESSAGE_LIMIT
    if excess <= 0:
        return message + line
    paragraphs = message.split("\n\n")
    order = [*range(1, len(paragraphs) - 1), len(paragraphs) - 1, 0]
    for index in dict.fromkeys(order):  # a message of one paragraph is cut once
        if excess <= 0:
            break
        before = visible_length(_visible(paragraphs[index]))
        paragraphs[index] = _shrink(paragraphs[index], excess)
        excess -= before - visible_length(_visible(paragraphs[index]))
        if not paragraphs[index] and 0 < index < len(paragraphs) - 1:
            excess -= 2  # its blank line goes with it
    return "\n\n".join(p for p in paragraphs if p) + line
