"""Every file of feedparser's own test corpus, and broken real feeds, through our parse path.

Each corpus file opens with a comment that holds feedparser's expectation for it: a Python
expression on feedparser's result (`Expect:`), an optional simulated HTTP header (`Header:`)
and an optional precondition (`SkipUnless:`). The expression is read with `ast`, never
evaluated, and only the parts that have an honest counterpart in ParsedFeed are checked:

- `encoding == 'x'`          → ParsedFeed.encoding is x (ignoring case);
- `bozo` / `not bozo`        → ParsedFeed.warnings is non-empty / empty;
- `entries[0][...] == 'lit'` for the title, description, summary or first content value,
  when the literal has displayed text → our first entry's title or summary is that text
  (as HTML converted to text, or as plain text for text/plain fields).

A disjunction (`... or ...`) is checked for nothing, and so are feed-level fields, links,
tags, languages and the like (ParsedFeed has no place for them). The corpus states no entry
counts; the real feeds below state theirs. When a file's precondition does not hold here
(`__import__('chardet')`: chardet is not a dependency) its encoding and texts are not
checked, since feedparser then falls back to windows-1252; it must still parse.

Every file, corpus or real, must yield a ParsedFeed or raise ParseError (only where listed
below), and every entry must satisfy the invariants the later stages rely on.
"""

from __future__ import annotations

import ast
import codecs
import importlib.util
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from watcher.errors import ParseError
from watcher.model import Entry, FetchResult, ParsedFeed
from watcher.parse import parse_feed
from watcher.text import html_to_text

DATA = Path(__file__).resolve().parent / "data"
CORPUS = DATA / "feedparser-corpus"
# Unlicensed captures may not be copied into the repository: read them where they lie.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Corpus files that are not feeds at all, so ParseError is the right answer.
NOT_A_FEED = {
    "illformed/rss_empty_document.xml": "a comment and nothing else",
}

# Corpus files whose entry text feedparser states as its HTML sanitizer leaves it; our path
# turns the raw HTML into text instead (sanitize_html=False), so that text is not compared.
TEXT_DIFFERS = {
    "encoding/bozo_linenoise.xml": "the sanitizer drops a stray '<>' that we show as text",
    "wellformed/rss/item_description_not_a_doctype.xml": (
        "<!' <a href=...> opens a bogus comment for an HTML parser (and a browser), so there"
        " is no text to show; the sanitizer escapes it instead"
    ),
}

# --- reading a corpus file's comment header -------------------------------------------------

# Byte patterns of "<?" or a BOM in encodings that are not ASCII-compatible (XML 1.0 app. F).
_WIDE_STARTS = (
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
)
_HEADER = re.compile(r"^\s*Header:\s*([^:\n]+):(.*)$", re.MULTILINE)
_EXPECT = re.compile(r"^\s*Expect:\s*(.*?)\s*(?:-->|$)", re.MULTILINE)
_SKIP_UNLESS = re.compile(r"^\s*SkipUnless:\s*(.*?)\s*$", re.MULTILINE)
_IMPORT = re.compile(r"__import__\('(\w+)'\)(?:\.lookup\('([\w-]+)'\))?")
_ENTRY_TEXT_PATHS = {
    ("entries", 0, "title"): "title",
    ("entries", 0, "title_detail", "value"): "title",
    ("entries", 0, "description"): "summary",
    ("entries", 0, "summary"): "summary",
    ("entries", 0, "summary_detail", "value"): "summary",
}
_CONTENT_PATH = ("entries", 0, "content", 0, "value")


def comment_text(data: bytes) -> str:
    for start, codec in _WIDE_STARTS:
        if data.startswith(start):
            return data.decode(codec, errors="ignore")
    return data.decode("utf-8", errors="ignore")


@dataclass
class Expectation:
    bozo: bool | None = None
    encoding: str | None = None
    entry_texts: list[tuple[str, str]] = field(default_factory=list)  # (our field, literal)


def subscript_path(node: ast.expr) -> tuple[object, ...] | None:
    """`entries[0]['title']` → ('entries', 0, 'title'); `entries[0].summary` too."""
    path: list[object] = []
    while True:
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            path.append(node.slice.value)
            node = node.value
        elif isinstance(node, ast.Attribute):
            path.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Name):
            path.append(node.id)
            return tuple(reversed(path))
        else:
            return None


def read_expectation(expression: str) -> Expectation:
    tree = ast.parse(expression, mode="eval").body
    expected = Expectation()
    if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.Or):
        return expected
    content: list[tuple[str, str]] = []
    for term in tree.values if isinstance(tree, ast.BoolOp) else [tree]:
        match term:
            case ast.Name(id="bozo"):
                expected.bozo = True
            case ast.UnaryOp(op=ast.Not(), operand=ast.Name(id="bozo")):
                expected.bozo = False
            case ast.Compare(
                left=ast.Name(id="encoding"),
                ops=[ast.Eq()],
                comparators=[ast.Constant(value=str(encoding))],
            ):
                expected.encoding = encoding
            case ast.Compare(
                left=left, ops=[ast.Eq()], comparators=[ast.Constant(value=str(literal))]
            ):
                path = subscript_path(left)
                if path == _CONTENT_PATH:
                    content.append(("summary", literal))
                elif path in _ENTRY_TEXT_PATHS:
                    expected.entry_texts.append((_ENTRY_TEXT_PATHS[path], literal))
    # Our summary is the description when an item has both, so a stated content value is
    # only our summary when no description or summary is stated beside it.
    if not any(ours == "summary" for ours, _ in expected.entry_texts):
        expected.entry_texts += content
    return expected


def precondition_holds(text: str) -> bool:
    found = _SKIP_UNLESS.search(text)
    if not found:
        return True
    for module, codec in _IMPORT.findall(found.group(1)):
        if codec:
            try:
                codecs.lookup(codec)
            except LookupError:
                return False
        elif importlib.util.find_spec(module) is None:
            return False
    return True


@dataclass
class CorpusCase:
    name: str
    body: bytes
    content_type: str | None
    expectation: Expectation
    checks_encoding: bool


def corpus_case(path: Path) -> CorpusCase:
    body = path.read_bytes()
    text = comment_text(body)
    headers = {key.strip().lower(): value.strip() for key, value in _HEADER.findall(text)}
    expect = _EXPECT.search(text)
    assert expect is not None, f"{path}: no Expect line"
    return CorpusCase(
        name=path.relative_to(CORPUS).as_posix(),
        body=body,
        content_type=headers.get("content-type"),
        expectation=read_expectation(expect.group(1)),
        checks_encoding=precondition_holds(text),
    )


CORPUS_FILES = sorted(p for p in CORPUS.rglob("*.xml"))

# --- what every parse must satisfy ------------------------------------------------------------


def fetched(body: bytes, content_type: str | None = None, name: str = "feed") -> FetchResult:
    return FetchResult(
        status=200, url=f"http://127.0.0.1/{name}", body=body, content_type=content_type
    )


def assert_clean(entry: Entry) -> None:
    for text in (entry.title, entry.summary, entry.guid or "", entry.link or ""):
        assert not any(unicodedata.category(char) in ("Cc", "Cs") for char in text), entry
        assert text == text.strip(), entry
    assert entry.title or entry.summary
    assert len(entry.title) <= 1000 and len(entry.summary) <= 20_000
    assert entry.link is None or entry.link.startswith(("http://", "https://"))


def parse_or_none(result: FetchResult) -> ParsedFeed | None:
    """The ParsedFeed, or None for ParseError: any other exception fails the test."""
    try:
        parsed = parse_feed(result)
    except ParseError:
        return None
    for entry in parsed.entries:
        assert_clean(entry)
    return parsed


# --- the corpus -------------------------------------------------------------------------------


def test_the_whole_corpus_was_copied() -> None:
    assert len(CORPUS_FILES) == 283
    assert (CORPUS / "LICENSE-feedparser.txt").is_file()


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.relative_to(CORPUS).as_posix())
def test_corpus_file(path: Path) -> None:
    case = corpus_case(path)
    parsed = parse_or_none(fetched(case.body, case.content_type, case.name))
    if case.name in NOT_A_FEED:
        assert parsed is None, f"{case.name} is {NOT_A_FEED[case.name]}, yet it parsed"
        return
    assert parsed is not None, f"{case.name} raised ParseError"
    expected = case.expectation
    if expected.bozo is not None:
        assert bool(parsed.warnings) == expected.bozo, parsed.warnings
    if not case.checks_encoding:
        return
    if expected.encoding is not None:
        assert (parsed.encoding or "").lower() == expected.encoding.lower()
    if case.name in TEXT_DIFFERS:
        return
    for ours, literal in expected.entry_texts:
        if not html_to_text(literal):
            continue  # markup without text (an <img>): nothing to read, so no entry
        assert parsed.entries, f"expected an entry showing {literal!r}"
        # As HTML converted to text, or as a text/plain field shows it.
        shown = {html_to_text(literal), " ".join(literal.split())}
        assert getattr(parsed.entries[0], ours) in shown


def test_the_expectations_are_read() -> None:
    # Guards the reader above: if it silently stopped understanding Expect lines, every
    # corpus test would pass while checking nothing.
    cases = [corpus_case(path) for path in CORPUS_FILES]
    assert sum(case.expectation.bozo is not None for case in cases) >= 200
    assert sum(case.expectation.encoding is not None for case in cases) >= 70
    assert sum(bool(case.expectation.entry_texts) for case in cases) >= 25
    assert sum(not case.checks_encoding for case in cases) <= 8  # the chardet ones


# --- broken real feeds (copied: MIT, BSD, Apache-2.0) ---------------------------------------


@dataclass(frozen=True)
class RealFeed:
    path: str
    content_type: str | None = None
    entries: int | None = None  # None: ParseError expected
    encoding: str | None = None
    first_title: str | None = None
    warned: bool | None = None


REAL = DATA / "feeds-real"
REAL_FEEDS = [
    # Two <guid> in one item: the first wins (upstream node-feedparser's expectation).
    RealFeed("node-feedparser-fixtures/guid-dupes.xml", entries=1, first_title="Huh?"),
    # A real Russian feed in windows-1251, declared in the XML declaration only.
    RealFeed(
        "node-feedparser-fixtures/iconv.xml",
        entries=10,
        encoding="windows-1251",
        first_title="В Бузулуке главные стройплощадки – детсад и Ледовый дворец",
    ),
    # Items illegally nested inside items: the ten real ones come out.
    RealFeed("node-feedparser-fixtures/illegally-nested.xml", entries=10),
    # A gzip file served without Content-Encoding (upstream only asks for a clean failure).
    RealFeed(
        "node-feedparser-fixtures/invalid-characters-gzipped.xml",
        "application/rss+xml",
        entries=25,
        first_title="NSOperation",
        warned=True,
    ),
    RealFeed("node-feedparser-fixtures/notafeed.html", "text/html"),
    # An unescaped & in one <link>: all three items recovered by the lenient parser.
    RealFeed("node-feedparser-fixtures/saxerror.xml", entries=3, warned=True),
    # Not well-formed, ISO-8859-1 bytes under a UTF-8 header.
    RealFeed(
        "rss-parser-fixtures/uolNoticias.rss",
        "text/xml; charset=utf-8",
        entries=15,
        first_title="Ibope: Bolsonaro perde de Haddad, Ciro e Alckmin em simulações de 2º turno",
        warned=True,
    ),
    RealFeed(
        "rss-parser-fixtures/encoding.rss",
        entries=40,
        encoding="iso-8859-1",
        first_title="Mãe de utente é a nova presidente da Raríssimas",
    ),
    # Truncated after the channel header: a feed with no entries, not an error.
    RealFeed("feed-rs-fixtures/rss_2.0_invalid_1.xml", entries=0, warned=True),
    RealFeed(
        "feed-rs-fixtures/rss_0.91_encoding_1.xml",
        entries=1,
        encoding="iso-8859-1",
        first_title="bash - Expansão de Parâmetros",
    ),
    RealFeed("feed-rs-fixtures/rss_0.91_encoding_2.xml", entries=1, encoding="iso-8859-1"),
    RealFeed("feed-rs-fixtures/rss_1.0_iso8859.xml", entries=1, encoding="iso-8859-1"),
    RealFeed("feed-rs-fixtures/rss_2.0_encoding_1.xml", entries=1, encoding="iso-8859-1"),
    RealFeed(
        "miniflux-testdata/encoding__koi8r.xml",
        entries=2,
        encoding="koi8-r",
        first_title="Первая новость",
    ),
    # Declared ISO-8859-1, written in UTF-8.
    RealFeed(
        "miniflux-testdata/encoding__utf8-incorrect-prolog.xml",
        entries=1,
        encoding="utf-8",
        first_title="Café",
        warned=True,
    ),
    RealFeed(
        "miniflux-testdata/encoding__windows-1252-incorrect-prolog.xml",
        entries=0,
        encoding="utf-8",
        warned=True,
    ),
    RealFeed("miniflux-testdata/encoding__invalid-prolog.xml", entries=1, first_title="Café"),
    # An XML document that is not a feed.
    RealFeed("miniflux-testdata/xml__iso88591_utf8_mismatch.xml"),
    RealFeed(
        "miniflux-testdata/parser__encoding_WINDOWS-1251.xml",
        "application/rss+xml",
        entries=50,
        encoding="windows-1251",
        first_title="Цитата #17703",
    ),
    RealFeed(
        "miniflux-testdata/parser__no_encoding_ISO-8859-1.xml",
        entries=9,
        first_title="Perturbateurs endocriniens : quels effets sur le cerveau ?",
    ),
]


def check_real_feed(feed: RealFeed, body: bytes) -> None:
    parsed = parse_or_none(fetched(body, feed.content_type, feed.path))
    if feed.entries is None:
        assert parsed is None, "expected ParseError"
        return
    assert parsed is not None, "raised ParseError"
    assert len(parsed.entries) == feed.entries
    if feed.encoding is not None:
        assert parsed.encoding == feed.encoding
    if feed.first_title is not None:
        assert parsed.entries[0].title == feed.first_title
    if feed.warned is not None:
        assert bool(parsed.warnings) == feed.warned, parsed.warnings


@pytest.mark.parametrize("feed", REAL_FEEDS, ids=lambda feed: feed.path)
def test_real_feed(feed: RealFeed) -> None:
    check_real_feed(feed, (REAL / feed.path).read_bytes())


def test_every_copied_real_feed_is_covered() -> None:
    copied = {
        p.relative_to(REAL).as_posix()
        for p in REAL.rglob("*")
        if p.is_file() and not p.name.startswith("LICENSE")
    }
    bench_only = {p for p in copied if p.startswith("fastfeedparser-benchmark-en-news/")}
    assert copied - bench_only == {feed.path for feed in REAL_FEEDS}
    for folder in {p.parent for p in REAL.rglob("*") if p.is_file()}:
        assert list(folder.glob("LICENSE*")), f"{folder} has no licence file"


# --- unlicensed real feeds: read from ../shared/data, never copied ---------------------------

UNLICENSED_FEEDS = [
    # Russian, Meduza: description CDATA ends in an unclosed <p>, content:encoded cut off.
    RealFeed(
        "meduza.io/meduza-rss.xml",
        "application/rss+xml; charset=utf-8",
        entries=4,
        encoding="utf-8",
        first_title=(
            "Макрон: ситуация становится все более напряженной для Европы, "
            "Франция может стать целью российских дронов"
        ),
        warned=False,
    ),
    # Georgian, Netgazeti: 8 real items, one without a link (kept: it has a headline) and
    # one without a headline or text (dropped).
    RealFeed("netgazeti.ge/netgazeti_feed.xml", entries=9, encoding="utf-8"),
]


@pytest.mark.parametrize("feed", UNLICENSED_FEEDS, ids=lambda feed: feed.path)
def test_unlicensed_real_feed(feed: RealFeed) -> None:
    path = SHARED_DATA / "feeds-real" / feed.path
    if not path.is_file():
        pytest.skip(f"{path} is absent: unlicensed data lives only in ../shared/data")
    check_real_feed(feed, path.read_bytes())
    if feed.path.startswith("netgazeti"):
        parsed = parse_feed(fetched(path.read_bytes()))
        assert sum(entry.link is None for entry in parsed.entries) == 1
