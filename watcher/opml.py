"""PURE: OPML 2.0 documents to feed outlines and back.

Reading uses the standard library's expat parser through ElementTree, which is safe for
documents from strangers: it never fetches external entities (a reference to one is an
error) and, since expat 2.4, refuses entity expansions that amplify the input (billion
laughs). tests/test_opml.py holds both attacks.

Tags: OPML says where a feed belongs in two ways, the folders (outlines without a feed URL)
around it and its `category` attribute, a comma-separated list of slash-separated paths
("/News/Caucasus,wire"). Both become tags, paths written without their outer slashes
("News/Caucasus"); nested folders become one path ("Europe/Caucasus").
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from watcher.errors import WatcherError
from watcher.model import FeedDef


class OpmlError(WatcherError):
    """A document that is not OPML, or not well-formed."""


@dataclass(frozen=True, slots=True)
class Outline:
    """A feed as an OPML document lists it."""

    url: str
    title: str | None  # its `text`, else its `title`
    tags: tuple[str, ...] = ()
    language: str | None = None  # as written
    user_agent: str | None = None  # Watcher's own attribute, `userAgent`: as written
    interval: str | None = None  # Watcher's own attribute, `interval`: as written


def parse_opml(data: bytes) -> list[Outline]:
    """Every outline with an `xmlUrl`, in document order."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise OpmlError(f"not a well-formed XML document: {exc}") from None
    if root.tag != "opml":
        raise OpmlError(f"not an OPML document: its root element is <{root.tag}>, not <opml>")
    body = root.find("body")
    if body is None:
        raise OpmlError("not an OPML document: it has no <body>")
    return list(_outlines(body))


def _outlines(body: ET.Element) -> Iterator[Outline]:
    """The outlines with an `xmlUrl`, in document order. A walk with a stack of its own:
    a document nested a thousand deep must not exhaust Python's."""
    stack: list[tuple[Iterator[ET.Element], tuple[str, ...]]] = [
        (iter(body.findall("outline")), ())
    ]
    while stack:
        children, folders = stack[-1]
        element = next(children, None)
        if element is None:
            stack.pop()
            continue
        # Some exporters write xmlurl or XMLURL; the attribute is meant all the same.
        attributes = {name.lower(): value.strip() for name, value in element.attrib.items()}
        title = attributes.get("text") or attributes.get("title") or None
        url = attributes.get("xmlurl")
        if url:
            folder = [normalize_tag("/".join(folders))] if folders else []
            tags = [*folder, *category_tags(attributes.get("category", ""))]
            yield Outline(
                url=url,
                title=title,
                tags=tuple(dict.fromkeys(tag for tag in tags if tag)),
                language=attributes.get("language") or None,
                user_agent=attributes.get("useragent") or None,
                interval=attributes.get("interval") or None,
            )
        elif title:
            folders = (*folders, title)
        stack.append((iter(element.findall("outline")), folders))


def normalize_tag(tag: str) -> str:
    """A category path as a tag: no outer slashes, no empty or blank segments."""
    return "/".join(part.strip() for part in tag.split("/") if part.strip())


def category_tags(category: str) -> list[str]:
    return [tag for tag in (normalize_tag(part) for part in category.split(",")) if tag]


def render_opml(feeds: Sequence[FeedDef], *, title: str, created: datetime) -> str:
    """An OPML 2.0 document listing `feeds` in the order given: one outline each, its tags
    as `category` (tags with a comma cannot be written there and are left out), and its
    `user_agent` and interval as `userAgent` and `interval`, attributes of Watcher's that
    other readers ignore."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<opml version="2.0">',
        "  <head>",
        f"    <title>{_escape(title)}</title>",
        f"    <dateCreated>{format_datetime(created.astimezone(UTC), usegmt=True)}</dateCreated>",
        "  </head>",
        "  <body>",
    ]
    for feed in feeds:
        attributes = [
            ("type", "rss"),
            ("text", feed.name),
            ("title", feed.name),
            ("xmlUrl", feed.url),
        ]
        tags = [normalize_tag(tag) for tag in feed.tags if "," not in tag]
        if any(tags):
            attributes.append(("category", ",".join(tag for tag in tags if tag)))
        if feed.language:
            attributes.append(("language", feed.language))
        if feed.user_agent:
            attributes.append(("userAgent", feed.user_agent))
        attributes.append(("interval", "auto" if feed.auto_interval else f"{feed.interval}s"))
        written = " ".join(f'{name}="{_escape(value)}"' for name, value in attributes)
        lines.append(f"    <outline {written}/>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)


# Characters XML 1.0 cannot carry at all, even as character references.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
_ESCAPES |= {"\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}  # or attribute values lose them


def _escape(value: str) -> str:
    return "".join(_ESCAPES.get(char, char) for char in _NOT_XML.sub("", value))
