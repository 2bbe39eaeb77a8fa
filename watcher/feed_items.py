"""PURE: where the items of a feed document lie in its bytes, so a parse can leave out the
items the feed listed before without feedparser reading them (watcher.parse).

A news feed that changed adds a few items to the dozens it lists, and feedparser's cost is
per item: handed the document without the items it had before, it does a tenth of the work.
That is sound only where an item's bytes and its *context* decide what feedparser makes of
it, whatever else the document holds. feedparser keeps state across the whole document:
which namespace each prefix names and the feed's version (set by any namespace declaration
and by an `<rss>` or `<feed>` element anywhere), the xml:base and xml:lang in force (an
item's own can outlive it: feedparser skips the pop at a `</div>` in escaped content), and
whether the head had an `<image>` or `<textInput>` (where an item's own goes). So
`item_layout` gives a layout only for documents that keep all of it fixed, and None for any
other (the caller then parses the whole document):

- served as XML (a media type ending in "xml"), UTF-8 by every label it carries (the
  charset given to feedparser, the XML declaration; a text/* type without a charset is
  US-ASCII to feedparser) and valid UTF-8 throughout:
  feedparser decodes the whole document at once and falls back to other encodings when that
  fails, so bytes left out could change how the rest decodes;
- well-formed to expat with namespaces (what feedparser's strict parser uses), with no
  DOCTYPE (entities declared there reach into items): feedparser's lenient parser, used on
  broken documents, reads a document differently as a whole;
- items where RSS 2.0, RSS 1.0/0.90 and Atom 1.0/0.3 put them (`rss/channel/item`,
  `rdf:RDF/item`, `feed/entry`), none empty, with nothing but white space between two of
  them, and no element named like a feed's structure (rss, feed, channel, RDF, item, entry,
  in any case) anywhere else, nor image or textInput inside an item;
- base and lang attributes only on the elements the items are in; in RSS 1.0 its namespace
  declared on the root (feedparser takes the version from the first it sees);
- elsewhere, only namespace declarations that cannot change how feedparser names an element
  in an item: of a prefix bound to one namespace throughout the document, not a prefix
  feedparser gives another namespace (`xmlns:dc` for DC terms would make every `dc:date` a
  `dcterms:date` from there on), and one prefix for each namespace feedparser does not know
  (it names such elements by the first prefix it saw for the namespace);
- no element feedparser takes for text content (title, description, summary, content, ...)
  inside another, in the head or in an item: at the inner one's end feedparser's count of
  open content goes off for the rest of the document.

The first item of a document, which follows the head and so takes whatever state the head
left (whether it had content, for one), is digested apart: known by its bytes only at the
head of the next document too, else read again (parse_feed always reads the first item).

The context is what then decides how an item parses besides its bytes: the headers
feedparser is given (media type, charset, base URI), the XML declaration, and the names,
attributes and namespace declarations of the elements the items are in. Item digests are
taken over it and the item's bytes (watcher.parse). tests/test_feed_items.py checks the
promise on real feeds, on the document pairs reviews found, and on generated documents
built to break it.
"""

from __future__ import annotations

import codecs
import hashlib
import xml.parsers.expat
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ItemLayout", "item_layout", "without_items"]

_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns# RDF"
_RSS1 = frozenset(("http://purl.org/rss/1.0/", "http://my.netscape.com/rdf/simple/0.9/"))
_ATOM10 = "http://www.w3.org/2005/Atom"
_ATOM03 = "http://purl.org/atom/ns#"


@dataclass(frozen=True, slots=True)
class _Shape:
    """Where a format puts its items (names as expat gives them: "namespace-uri local")."""

    path: tuple[str, ...]  # the elements from below the root to the items' parent
    items: frozenset[str]  # the names items may have
    beside: frozenset[str] = frozenset()  # elements of its structure beside the items


# By the root element's name.
_SHAPES = {
    "rss": _Shape(("channel",), frozenset(("item",))),
    _RDF: _Shape(
        (),
        frozenset(f"{uri} item" for uri in _RSS1),
        frozenset(f"{uri} channel" for uri in _RSS1),
    ),
    f"{_ATOM10} feed": _Shape((), frozenset((f"{_ATOM10} entry",))),
    f"{_ATOM03} feed": _Shape((), frozenset((f"{_ATOM03} entry",))),
}
# Local names (lowercased, as feedparser dispatches them) that change the document's state
# wherever they are, and those that read the head's state inside an item.
_STRUCTURE = frozenset(("rss", "feed", "channel", "rdf", "item", "entry"))
_HEAD_BOUND = frozenset(("image", "textinput"))
# Attributes (by lowercased local name, any namespace) whose value reaches past the element.
_SCOPED = frozenset(("base", "lang"))
# feedparser's names of the elements whose handlers count content in and out: one met
# inside another is taken for inline markup at its start, yet its end still counts out, and
# the count stays off for the rest of the document (no item gets a content type any more).
_CONTENT = frozenset(
    (
        "title",
        "subtitle",
        "tagline",
        "rights",
        "copyright",
        "description",
        "abstract",
        "summary",
        "content",
        "info",
        "body",
        "fullitem",
        "content:encoded",
        "xhtml:body",
        "feedburner:browserfriendly",
        "media:title",
        "media:description",
        "itunes:subtitle",
        "itunes:summary",
        "dc:title",
        "dc:description",
        "dc:rights",
    )
)


class _Namespaces:
    """The parser's own prefix for each namespace it knows: it names an element in one of
    them by that prefix, whatever prefix the document uses."""

    def __init__(self, prefixes: Mapping[str, str]) -> None:
        self.prefixes = {uri.lower(): prefix for uri, prefix in prefixes.items()}
        self.names = frozenset(name.lower() for name in self.prefixes.values())

    def prefix(self, uri: str) -> str | None:
        uri = uri.lower()
        if "backend.userland.com/rss" in uri:  # feedparser takes any of these for RSS
            return ""
        return self.prefixes.get(uri)


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


def item_layout(
    body: bytes,
    *,
    media_type: str,
    charset: str | None,
    base: str,
    namespaces: Mapping[str, str],
) -> ItemLayout | None:
    """Where `body`'s items are, given the media type, charset and base URI feedparser
    will be handed with it, and the namespaces it knows (URI → its prefix for them); None
    where leaving items out could change how the rest parses (see the module doc)."""
    media_type = media_type.strip().lower()
    if not media_type.endswith("xml") or not _is_utf8(charset):
        return None
    if charset is None and media_type.startswith("text/"):
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    walker = _Walker(body, _Namespaces(namespaces))
    try:
        walker.parser.Parse(body, True)
    except (_NoLayout, xml.parsers.expat.ExpatError):
        return None
    if not walker.spans:
        return None
    for (_, end), (start, _) in zip(walker.spans, walker.spans[1:], strict=False):
        if body[end:start].strip():
            return None
    context = repr((media_type, charset, base, walker.declaration, walker.context))
    digest = hashlib.blake2b(context.encode("utf-8", "surrogatepass"), digest_size=16)
    return ItemLayout(tuple(walker.spans), digest.digest())


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


def _scopes(attributes: list[str]) -> bool:
    """Whether some attribute (expat's ordered list: name, value, ...) is a base or lang."""
    return any(name.rpartition(" ")[2].lower() in _SCOPED for name in attributes[::2])


class _Walker:
    """Expat handlers that find the items and record the context."""

    def __init__(self, body: bytes, namespaces: _Namespaces) -> None:
        self.body = body
        self.namespaces = namespaces
        parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
        parser.ordered_attributes = True
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.StartNamespaceDeclHandler = self.namespace
        parser.StartDoctypeDeclHandler = self.doctype
        parser.XmlDeclHandler = self.xml_declaration
        self.parser = parser
        self.stack: list[str] = []  # the names of the open elements
        self.shape = _Shape((), frozenset())
        self.item_depth = 0  # the stack's height in the item being read; 0 outside items
        self.item_start = 0
        self.item_children = 0
        self.spans: list[tuple[int, int]] = []
        self.declaration: tuple[str, str | None, int] | None = None
        self.context: list[tuple[object, ...]] = []
        self.declared: list[tuple[str | None, str]] = []  # "" for an undeclaration
        # Prefix → namespace, as declared on the elements items are in, and elsewhere.
        self.context_bound: dict[str | None, str] = {}
        self.bound: dict[str | None, str] = {}
        self.unknown_prefix: dict[str, str | None] = {}  # namespace unknown to feedparser → prefix
        self.open_content: list[bool] = []  # per open element: whether it counts content
        self.in_content = 0

    def xml_declaration(self, version: str, encoding: str | None, standalone: int) -> None:
        if not _is_utf8(encoding):
            raise _NoLayout
        self.declaration = (version, encoding, standalone)

    def doctype(self, *_: object) -> None:
        raise _NoLayout

    def namespace(self, prefix: str | None, uri: str | None) -> None:
        uri = uri or ""  # None: an undeclaration (xmlns=""), which names no namespace
        self.declared.append((prefix, uri))  # on the element whose start comes next
        # feedparser names an element in a namespace it does not know by the first prefix
        # declared for it anywhere before: one prefix per such namespace.
        unknown = bool(uri) and self.namespaces.prefix(uri) is None
        if unknown and self.unknown_prefix.setdefault(uri, prefix) != prefix:
            raise _NoLayout

    def _feedparser_name(self, namespace: str, local: str) -> str:
        """The name feedparser dispatches an element by ("dc:title", "title")."""
        if not namespace:
            return local
        known = self.namespaces.prefix(namespace)
        prefix = known if known is not None else self.unknown_prefix.get(namespace)
        return f"{prefix.lower()}:{local}" if prefix else local

    def start(self, name: str, attributes: list[str]) -> None:
        declared, self.declared = tuple(self.declared), []
        namespace, _, local = name.rpartition(" ")
        local = local.lower()
        height = len(self.stack)
        shape = self.shape
        is_content = (
            height > len(shape.path)  # in the head or in an item
            and self._feedparser_name(namespace, local) in _CONTENT
            and not (height == 1 and name in shape.beside)
        )
        if is_content and self.in_content:
            raise _NoLayout
        self.open_content.append(is_content)
        self.in_content += is_content
        if self.item_depth:
            if local in _STRUCTURE or _scopes(attributes):
                raise _NoLayout
            if local in _HEAD_BOUND and not self.namespaces.prefix(namespace):
                raise _NoLayout  # feedparser's <image> or <textInput>, which the head's decide
            self._declared_elsewhere(declared)
            self.item_children += 1
        elif not height:
            found = _SHAPES.get(name)
            if found is None:
                raise _NoLayout
            if name == _RDF and not any(uri.lower() in _RSS1 for _, uri in declared):
                raise _NoLayout  # the version would come from whichever element declares it
            self.shape = found
            self._in_context(name, attributes, declared)
        elif height <= len(shape.path) + 1 and self._on_path(name):
            self._in_context(name, attributes, declared)
        elif height == len(shape.path) + 1 and name in shape.items and self._on_path(None):
            if _scopes(attributes):
                raise _NoLayout
            self._declared_elsewhere(declared)
            self.item_depth = height + 1
            self.item_start = self.parser.CurrentByteIndex
            self.item_children = 0
        elif height == 1 and name in shape.beside:
            self._in_context(name, attributes, declared)
        elif local in _STRUCTURE or _scopes(attributes):
            raise _NoLayout  # in the head: it would reach the items
        else:
            self._declared_elsewhere(declared)
        self.stack.append(name)

    def _in_context(
        self, name: str, attributes: list[str], declared: tuple[tuple[str | None, str], ...]
    ) -> None:
        """An element the items are in: its attributes and namespaces reach them."""
        for prefix, uri in declared:
            if self.bound.get(prefix, uri) != uri:
                raise _NoLayout
            self.context_bound[prefix] = uri
        self.context.append((name, tuple(attributes), declared))

    def _declared_elsewhere(self, declared: tuple[tuple[str | None, str], ...]) -> None:
        """Namespace declarations in the head or in an item: feedparser records them for
        the rest of the document, so only those that change no element's name may be."""
        for prefix, uri in declared:
            if (
                self.context_bound.get(prefix, uri) != uri
                or self.bound.setdefault(prefix, uri) != uri
                or (
                    prefix is not None
                    and prefix.lower() in self.namespaces.names
                    and prefix != self.namespaces.prefix(uri)
                )
            ):
                raise _NoLayout

    def _on_path(self, name: str | None) -> bool:
        """Whether the open elements below the root, then `name` (if given), begin the
        path to the items. Called only near the root: cheap however deep a document is."""
        below_root = (*self.stack[1:], name) if name is not None else tuple(self.stack[1:])
        return self.shape.path[: len(below_root)] == below_root

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
        self.in_content -= self.open_content.pop()
