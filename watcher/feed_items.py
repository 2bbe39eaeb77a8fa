"""PURE: where the items of a feed document lie in its bytes, so a parse can leave out the
items the feed listed before without feedparser reading them (watcher.parse).

A news feed that changed adds a few items to the dozens it lists, and feedparser's cost is
per item: handed the document without the items it had before, it does a tenth of the work.
That is sound only where an item's bytes and what surrounds it decide what feedparser makes
of the item, so `item_layout` answers only for documents where they do, and None otherwise
(the caller then parses the whole document):

- UTF-8 by every label it carries (the charset given to feedparser, the XML declaration) and
  valid UTF-8 throughout: feedparser decodes the whole document at once and falls back to
  other encodings when that fails, so bytes left out could change how the rest decodes;
- well-formed to expat with namespaces (what feedparser's strict parser uses), with no
  DOCTYPE (entities declared there reach into items): feedparser's lenient parser, used on
  broken documents, reads a document differently as a whole;
- items where RSS 2.0, RSS 1.0/0.90 and Atom 1.0/0.3 put them (`rss/channel/item`,
  `rdf:RDF/item`, `feed/entry`), none elsewhere or inside another, none empty, with nothing
  but white space between two of them: feedparser carries a little state from one element to
  the next (whether an item had content, an unclosed guid), so what an item follows must be
  an item in both documents.

`context` is what else decides how an item parses: the headers feedparser is given (charset,
base URI), the XML declaration, and the names and attributes (xml:base, xml:lang, versions)
of the elements the items are in, with the namespace declarations made outside items. Item
digests are taken over it and the item's bytes; the parse always reads the first item, so a
kept item follows the head or a kept item, as in the whole document.
"""

from __future__ import annotations

import codecs
import hashlib
import xml.parsers.expat
from dataclasses import dataclass

__all__ = ["ItemLayout", "item_layout", "without_items"]

_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns# RDF"
_RSS1_ITEMS = frozenset(
    ("http://purl.org/rss/1.0/ item", "http://my.netscape.com/rdf/simple/0.9/ item")
)
_ATOM10 = "http://www.w3.org/2005/Atom"
_ATOM03 = "http://purl.org/atom/ns#"
# The root element (expat's "namespace-uri local-name") → the elements between it and the
# items, and the names the items may have.
_SHAPES: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "rss": (("channel",), frozenset(("item",))),
    _RDF: ((), _RSS1_ITEMS),
    f"{_ATOM10} feed": ((), frozenset((f"{_ATOM10} entry",))),
    f"{_ATOM03} feed": ((), frozenset((f"{_ATOM03} entry",))),
}
_ITEM_NAMES = frozenset(("item", "entry"))  # local names feedparser starts an entry at


@dataclass(frozen=True, slots=True)
class ItemLayout:
    """Each item's byte range in the document, in document order, and a digest of what
    besides its bytes decides how it parses."""

    spans: tuple[tuple[int, int], ...]
    context: bytes

    def item(self, body: bytes, index: int) -> bytes:
        start, end = self.spans[index]
        return body[start:end]


class _NoLayout(Exception):
    """The document is not one whose items parse alone."""


def _is_utf8(label: str | None) -> bool:
    if label is None:
        return True  # no label: XML's default, UTF-8
    try:
        return codecs.lookup(label).name == "utf-8"
    except LookupError:
        return False


def item_layout(body: bytes, charset: str | None, base: str) -> ItemLayout | None:
    """Where `body`'s items are, given the charset and the base URI feedparser will be
    handed with it; None where leaving items out could change how the rest parses (see the
    module doc)."""
    if not _is_utf8(charset):
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    walker = _Walker(body)
    try:
        walker.parser.Parse(body, True)
    except (_NoLayout, xml.parsers.expat.ExpatError):
        return None
    if not walker.spans:
        return None
    for (_, end), (start, _) in zip(walker.spans, walker.spans[1:], strict=False):
        if body[end:start].strip():
            return None
    context = repr((charset, base, walker.declaration, walker.context)).encode(
        "utf-8", "surrogatepass"
    )
    return ItemLayout(tuple(walker.spans), hashlib.blake2b(context, digest_size=16).digest())


def without_items(body: bytes, layout: ItemLayout, left_out: set[int]) -> bytes:
    """The document with the items at `left_out` (indexes into `layout.spans`) cut out."""
    parts: list[bytes] = []
    position = 0
    for index in sorted(left_out):
        start, end = layout.spans[index]
        parts.append(body[position:start])
        position = end
    parts.append(body[position:])
    return b"".join(parts)


class _Walker:
    """Expat handlers that find the items and record the context."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
        parser.ordered_attributes = True
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.StartNamespaceDeclHandler = self.namespace
        parser.StartDoctypeDeclHandler = self.doctype
        parser.XmlDeclHandler = self.xml_declaration
        self.parser = parser
        self.stack: list[str] = []  # the names of the open elements
        self.path: tuple[str, ...] = ()  # the elements from the root to the items' parent
        self.item_names: frozenset[str] = frozenset()
        self.item_depth = 0  # the stack's height in the item being read; 0 outside items
        self.item_start = 0
        self.item_children = 0
        self.spans: list[tuple[int, int]] = []
        self.declaration: tuple[str, str | None, int] | None = None
        self.context: list[tuple[object, ...]] = []
        self.declared: list[tuple[str | None, str]] = []

    def xml_declaration(self, version: str, encoding: str | None, standalone: int) -> None:
        if not _is_utf8(encoding):
            raise _NoLayout
        self.declaration = (version, encoding, standalone)

    def doctype(self, *_: object) -> None:
        raise _NoLayout

    def namespace(self, prefix: str | None, uri: str) -> None:
        self.declared.append((prefix, uri))  # on the element whose start comes next

    def start(self, name: str, attributes: list[str]) -> None:
        declared, self.declared = tuple(self.declared), []
        local = name.rpartition(" ")[2]
        if self.item_depth:
            if local in _ITEM_NAMES:
                raise _NoLayout  # an entry inside an item
            self.item_children += 1
            self.stack.append(name)
            return
        if not self.stack:
            shape = _SHAPES.get(name)
            if shape is None:
                raise _NoLayout
            self.path, self.item_names = shape
            self.context.append((name, tuple(attributes), declared))
        else:
            ancestors = tuple(self.stack[1:])
            if ancestors == self.path and name in self.item_names:
                self.stack.append(name)
                self.item_depth = len(self.stack)
                self.item_start = self.parser.CurrentByteIndex
                self.item_children = 0
                return
            if local in _ITEM_NAMES:
                raise _NoLayout  # an item somewhere else
            if self.path[: len(ancestors) + 1] == (*ancestors, name):
                # An element the items are in: its attributes and namespaces reach them.
                self.context.append((name, tuple(attributes), declared))
        self.stack.append(name)

    def end(self, name: str) -> None:
        if self.item_depth == len(self.stack):
            if not self.item_children:
                # An empty item ("<item/>" or nothing but text): expat's position does not
                # tell where it ends, and feedparser makes nothing worth keeping of it.
                raise _NoLayout
            position = self.parser.CurrentByteIndex  # at its end tag's "</"
            end = self.body.index(b">", position) + 1
            self.spans.append((self.item_start, end))
            self.item_depth = 0
        self.stack.pop()
