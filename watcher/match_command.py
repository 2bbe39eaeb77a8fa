"""`watcher match`: run the configured rules over a feed file, a URL or a text, and show
which rules hit and where — how a rule author tries a rule before deploying it.

Reads, matches, renders; sends nothing and writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher.errors import ParseError
from watcher.fetch import Fetcher
from watcher.model import Entry, FetchResult, Hit, Span
from watcher.parse import parse_feed
from watcher.rules import Matcher
from watcher.text import html_to_text

_CONTEXT_CHARS = 60


@dataclass(frozen=True, slots=True)
class MatchedEntry:
    entry: Entry
    hits: list[Hit]


def entries_from_bytes(body: bytes, *, url: str, content_type: str | None = None) -> list[Entry]:
    """A feed document's entries; anything that is not a feed is one entry of text whose
    first line is the title and the rest the summary."""
    try:
        parsed = parse_feed(FetchResult(status=200, url=url, body=body, content_type=content_type))
    except ParseError:
        parsed = None
    if parsed is not None and (parsed.entries or parsed.version):
        return list(parsed.entries)
    text = body.decode("utf-8", errors="replace").lstrip("\ufeff")
    title, _, rest = text.strip().partition("\n")
    return [Entry(guid=None, link=None, title=html_to_text(title), summary=html_to_text(rest))]


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


async def read_url(
    url: str, *, timeout_s: float, max_body_bytes: int, user_agent: str | None = None
) -> list[Entry]:
    async with Fetcher(timeout_s=timeout_s, max_body_bytes=max_body_bytes) as fetcher:
        result = await fetcher.fetch(url, user_agent=user_agent)
    body = result.body or b""
    return entries_from_bytes(body, url=result.url, content_type=result.content_type)


def read_local(source: str, *, stdin: bytes | None) -> list[Entry]:
    """A file, or `-` for the bytes given as `stdin`."""
    if source == "-":
        return entries_from_bytes(stdin or b"", url="stdin")
    path = Path(source)
    return entries_from_bytes(path.read_bytes(), url=path.resolve().as_uri())


def match_entries(
    entries: Sequence[Entry], matcher: Matcher, *, feed: str | None, language: str | None
) -> list[MatchedEntry]:
    return [
        MatchedEntry(entry, matcher.match(entry.title, entry.summary, feed=feed, language=language))
        for entry in entries
    ]


def hits_json(hits: Sequence[Hit]) -> list[dict[str, Any]]:
    """Hits as `watcher match --json` and `watcher replay --json` print them."""
    return [
        {
            "rule": hit.rule,
            "spans": [
                {"field": s.field, "start": s.start, "end": s.end, "text": s.text}
                for s in hit.spans
            ],
        }
        for hit in hits
    ]


def to_json(results: Sequence[MatchedEntry]) -> str:
    return json.dumps(
        [
            {
                "title": result.entry.title,
                "link": result.entry.link,
                "hits": hits_json(result.hits),
            }
            for result in results
        ],
        ensure_ascii=False,
        indent=2,
    )


def highlight_brackets(text: str) -> str:
    return f"[{text}]"


def highlight_ansi(text: str) -> str:
    return f"\x1b[1;7m{text}\x1b[0m"


def highlighted(text: str, spans: Sequence[Span], mark: Callable[[str], str]) -> str:
    """`text` with each span marked, overlapping spans (of different hits: "Trump" and
    "Trump said") marked as one."""
    out: list[str] = []
    cursor = 0
    merged: list[list[int]] = []
    for span in sorted(spans, key=lambda s: s.start):
        if merged and span.start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], span.end)
        else:
            merged.append([span.start, span.end])
    for start, end in merged:
        out.append(text[cursor:start])
        out.append(mark(text[start:end]))
        cursor = end
    out.append(text[cursor:])
    return "".join(out)


def _excerpt(text: str, spans: Sequence[Span], mark: Callable[[str], str]) -> str:
    """The part of a long field around its first and last hit."""
    start = max(0, min(s.start for s in spans) - _CONTEXT_CHARS)
    end = min(len(text), max(s.end for s in spans) + _CONTEXT_CHARS)
    shifted = [Span(s.field, s.start - start, s.end - start, s.text) for s in spans]
    body = highlighted(text[start:end], shifted, mark)
    return ("…" if start > 0 else "") + body + ("…" if end < len(text) else "")


def to_text(results: Sequence[MatchedEntry], mark: Callable[[str], str]) -> str:
    lines: list[str] = []
    hit_entries = sum(1 for r in results if r.hits)
    for number, result in enumerate(results, 1):
        spans = [s for hit in result.hits for s in hit.spans]
        title_spans = [s for s in spans if s.field == "title"]
        summary_spans = [s for s in spans if s.field == "summary"]
        lines.append(f"{number}. {highlighted(result.entry.title, title_spans, mark)}")
        if result.entry.link:
            lines.append(f"   {result.entry.link}")
        if not result.hits:
            lines.append("   no rule hit")
        for hit in result.hits:
            words = ", ".join(dict.fromkeys(f'"{s.text}"' for s in hit.spans))
            lines.append(f"   hit {hit.rule}: {words}")
        if summary_spans:
            lines.append(f"   {_excerpt(result.entry.summary, summary_spans, mark)}")
        lines.append("")
    lines.append(f"{hit_entries} of {len(results)} entries hit at least one rule")
    return "\n".join(lines)
