"""`watcher feeds import` and `watcher feeds export`: OPML in and out of the config.

Import appends `[[feeds]]` entries as text to one config file and leaves every byte already
there alone (comments included). Nothing is written unless the config with the new entries
loads: it is validated in a copy of the config files first, then the target file is replaced
atomically. A feed whose URL is configured already (compared through canonical_url, so http
and https, `www.` or a trailing slash make no difference) is skipped, which makes a second
import of the same file a no-op that writes nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import tomllib
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

from watcher.config import (
    USER_AGENT_RULE,
    Settings,
    is_feed_url,
    is_language_code,
    is_name,
    is_user_agent,
    load_config,
    parse_interval,
)
from watcher.errors import ConfigError
from watcher.identity import canonical_url
from watcher.model import FeedDef
from watcher.opml import Outline, parse_opml, render_opml

EXPORT_TITLE = "Watcher feeds"


@dataclass(frozen=True, slots=True)
class NewFeed:
    name: str
    url: str
    title: str | None
    tags: tuple[str, ...] = ()
    language: str | None = None
    note: str | None = None  # something of the outline that could not be kept
    user_agent: str | None = None
    interval: str | None = None  # as the config writes it: "300s" or "auto"


@dataclass(frozen=True, slots=True)
class Skipped:
    url: str
    title: str | None
    reason: str


@dataclass
class ImportResult:
    target: Path
    added: list[NewFeed] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def summary(self) -> str:
        lines: list[str] = []
        if self.added:
            lines.append(f"added {len(self.added)} feeds to {self.target}:")
            width = max(len(feed.name) for feed in self.added)
            for feed in self.added:
                extra = f" ({feed.language})" if feed.language else ""
                extra += f" [{', '.join(feed.tags)}]" if feed.tags else ""
                extra += f"; {feed.note}" if feed.note else ""
                lines.append(f"  {feed.name:<{width}}  {feed.url}{extra}")
        else:
            lines.append(f"nothing to add: {self.target} is unchanged")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}:")
            width = max(len(skipped.url) for skipped in self.skipped)
            lines += [f"  {s.url:<{width}}  {s.reason}" for s in self.skipped]
        return "\n".join(lines)


# --------------------------------------------------------------------------- export


def export_opml(settings: Settings, now: datetime) -> str:
    """The configured feeds as OPML 2.0, in config order."""
    return render_opml(settings.feeds, title=EXPORT_TITLE, created=now)


# --------------------------------------------------------------------------- import


def import_opml(
    settings: Settings,
    data: bytes,
    *,
    into: Path | None = None,
    source: str = "OPML",
    today: date | None = None,
) -> ImportResult:
    """Add the feeds of the OPML document `data` to the config file `into` (by default the
    one that holds [[feeds]] entries, else the main file); `source` names the document in
    the comment above them. Raises OpmlError for a bad document and ConfigError when the
    result would not load (then no file was changed)."""
    outlines = parse_opml(data)
    target = target_file(settings, into)
    added, skipped = plan_import(outlines, settings.feeds)
    result = ImportResult(target=target, added=added, skipped=skipped)
    if not added:
        return result
    original = target.read_bytes()
    newline = "\r\n" if b"\r\n" in original else "\n"
    stamp = (today or datetime.now(UTC).date()).isoformat()
    header = f"Added by `watcher feeds import` from {source} on {stamp}."
    updated = append_text(original, feeds_toml(added, header=header), newline)
    _validate(settings, target, updated, expected_feeds=len(settings.feeds) + len(added))
    return result


def target_file(settings: Settings, into: Path | None) -> Path:
    """`into` if the config reads it; else the last config file with [[feeds]] entries,
    else the main file."""
    if into is not None:
        wanted = _identity(into)
        for path in settings.files:
            if _identity(path) == wanted:
                return path
        read = ", ".join(str(path) for path in settings.files)
        raise ConfigError(
            f"the config does not read this file (it reads {read}); add it to `include` first",
            file=into,
        )
    with_feeds = [path for path in settings.files if "feeds" in _toml(path)]
    return with_feeds[-1] if with_feeds else settings.path


def plan_import(
    outlines: Sequence[Outline], configured: Sequence[FeedDef]
) -> tuple[list[NewFeed], list[Skipped]]:
    """PURE: which outlines become feeds, under which names, and which are skipped why."""
    by_url = {canonical_url(feed.url): feed.name for feed in configured}
    taken = {feed.name.casefold() for feed in configured}
    numbers: dict[str, int] = {}
    added: list[NewFeed] = []
    skipped: list[Skipped] = []
    for outline in outlines:
        if not is_feed_url(outline.url):
            skipped.append(Skipped(outline.url, outline.title, "not an http:// or https:// URL"))
            continue
        key = canonical_url(outline.url)
        if key in by_url:
            skipped.append(
                Skipped(outline.url, outline.title, f"already configured as {by_url[key]!r}")
            )
            continue
        exported = outline.interval is not None
        name = feed_name(outline.title, outline.url, taken, numbers, exported=exported)
        language, note = _language(outline.language)
        notes = [note] if note else []
        user_agent = outline.user_agent
        if user_agent is not None and not is_user_agent(user_agent):
            user_agent = None
            notes.append(f"userAgent left out: not {USER_AGENT_RULE}")
        interval, dropped = _interval(outline.interval)
        if dropped:
            notes.append(dropped)
        added.append(
            NewFeed(
                name,
                outline.url,
                outline.title,
                outline.tags,
                language,
                "; ".join(notes) or None,
                user_agent,
                interval,
            )
        )
        by_url[key] = name
        taken.add(name.casefold())
    return added, skipped


def _interval(written: str | None) -> tuple[str | None, str | None]:
    """An outline's `interval` as the config writes it, or why it was left out."""
    if written is None:
        return None, None
    try:
        auto, seconds = parse_interval(written)
    except ValueError:
        return None, f"interval {written!r} left out: not a duration like 5m or auto"
    return ("auto" if auto else f"{seconds}s"), None


# A title that is already a good feed name is kept as it is; anything else becomes a slug.
# Names typed in commands and rules are best in ASCII, but an export of Watcher's own (its
# outlines carry `interval`) names its feeds as the config did, in any script.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MAX_NAME = 100
_SLUG_SEPARATORS = re.compile(r"[^a-z0-9]+")
_ASCII_FOR = str.maketrans({"ə": "e", "Ə": "e", "ı": "i", "ł": "l", "ø": "o", "đ": "d"})
_ASCII_FOR |= str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe"})
_MAX_SLUG = 48


def feed_name(
    title: str | None,
    url: str,
    taken: Collection[str],
    numbers: dict[str, int] | None = None,
    *,
    exported: bool = False,
) -> str:
    """A name for a new feed, unique ignoring case among `taken` (casefolded names), from
    an outline's title (`exported`: by Watcher, whose titles are the configured names).
    `numbers`, kept across calls, remembers how far each name's "-2", "-3"... got: a
    thousand outlines titled "RSS" then cost a thousand steps, not half a million."""
    title = (title or "").strip()
    if _NAME.fullmatch(title) or (exported and len(title) <= _MAX_NAME and is_name(title)):
        base = title
    else:
        parts = urlsplit(url)
        host = (parts.hostname or "").removeprefix("www.")
        base = _slug(title) or _slug(f"{host} {parts.path}") or "feed"
    counters = numbers if numbers is not None else {}
    name, number = base, counters.get(base.casefold(), 2)
    while name.casefold() in taken:
        name, number = f"{base}-{number}", number + 1
    counters[base.casefold()] = number
    return name


def _slug(text: str) -> str:
    """ "BBC News Azərbaycanca [az]" → "bbc-news-azerbaycanca-az"; letters without a Latin
    form (Cyrillic, Georgian, Armenian) drop out."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII_FOR))
    latin = "".join(char for char in decomposed if not unicodedata.combining(char))
    slug = _SLUG_SEPARATORS.sub("-", latin.lower()).strip("-")
    if len(slug) > _MAX_SLUG:
        slug = slug[:_MAX_SLUG].rsplit("-", 1)[0]
    return slug


# The checks config.py makes of a URL and a language, made here per outline so that one
# odd outline is skipped or loses its language instead of failing the whole import.
def _language(written: str | None) -> tuple[str | None, str | None]:
    if written is None:
        return None, None
    language = written.strip().lower().replace("_", "-")  # en_US is common in the wild
    if is_language_code(language):
        return language, None
    return None, f"language {written!r} left out: not a language code"


def feeds_toml(feeds: Sequence[NewFeed], *, header: str) -> str:
    """PURE: `[[feeds]]` entries as TOML text, each under a comment with its title."""
    blocks = [_comment(header)]
    for feed in feeds:
        lines = []
        if feed.title and feed.title != feed.name:
            lines.append(_comment(feed.title))
        lines += ["[[feeds]]", f"name = {toml_string(feed.name)}", f"url = {toml_string(feed.url)}"]
        if feed.language:
            lines.append(f"language = {toml_string(feed.language)}")
        if feed.tags:
            lines.append(f"tags = [{', '.join(toml_string(tag) for tag in feed.tags)}]")
        if feed.user_agent:
            lines.append(f"user_agent = {toml_string(feed.user_agent)}")
        if feed.interval:
            lines.append(f"interval = {toml_string(feed.interval)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n"}
_TOML_ESCAPES |= {"\f": "\\f", "\r": "\\r"}


def toml_string(value: str) -> str:
    """A TOML basic string holding exactly `value`."""
    escaped = "".join(
        _TOML_ESCAPES.get(char)
        or (f"\\u{ord(char):04X}" if ord(char) < 0x20 or ord(char) == 0x7F else char)
        for char in value
    )
    return f'"{escaped}"'


def _comment(text: str) -> str:
    # A comment ends at a newline and may not hold control characters: flatten them.
    return "# " + "".join(char if char.isprintable() else " " for char in text).strip()


def append_text(original: bytes, addition: str, newline: str) -> bytes:
    """`original` unchanged, then a blank line, then `addition` with `newline` endings."""
    text = addition.replace("\n", newline).encode("utf-8")
    if not original.strip():
        return original + text
    separator = newline.encode("ascii")
    if not original.endswith(separator):
        original += separator
    return original + separator + text


# --------------------------------------------------------------------------- writing


def _validate(settings: Settings, target: Path, updated: bytes, *, expected_feeds: int) -> None:
    """Load the config as it would be with `updated` in `target`; write `target` only if it
    loads. In a copy of the config files where that copy reads only itself; otherwise (an
    include by absolute path) in place, putting the old text back on failure."""
    with tempfile.TemporaryDirectory(prefix="watcher-import-") as scratch:
        copies = _copy_config(settings, Path(scratch))
        copies[target].write_bytes(updated)
        main = copies[settings.path]
        try:
            loaded = load_config(main)
        except ConfigError as exc:
            originals = {copy: path for path, copy in copies.items()}
            raise replace_file_in_error(exc, originals, target) from None
        self_contained = all(_inside(path, Path(scratch)) for path in loaded.files)
        if self_contained and len(loaded.feeds) == expected_feeds:
            write_atomically(target, updated)
            return
    original = target.read_bytes()
    write_atomically(target, updated)
    try:
        load_config(settings.path)
    except BaseException:
        write_atomically(target, original)
        raise


def _copy_config(settings: Settings, scratch: Path) -> dict[Path, Path]:
    """Copy every config file under `scratch`, keeping their places relative to each other
    (relative includes then resolve as they do for the real files)."""
    root = Path(os.path.commonpath([path.parent for path in settings.files]))
    copies: dict[Path, Path] = {}
    for path in settings.files:
        copy = scratch / path.relative_to(root)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
        copies[path] = copy
    return copies


def replace_file_in_error(
    error: ConfigError, originals: dict[Path, Path], target: Path
) -> ConfigError:
    """The same error, naming the real file instead of its scratch copy."""
    if error.file is None or error.file not in originals:
        return error
    file = originals[error.file]
    message = error.message
    if file == target and error.line is not None:
        message += " (a line of the file as it would be with the new entries at its end)"
    return ConfigError(message, file=file, key=error.key, line=error.line, column=error.column)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one rename: a reader (the daemon's reload) sees the
    old file or the new one, never half of it. Keeps the file's permission bits."""
    path = Path(os.path.realpath(path))  # a symlinked config: write where it points
    mode = path.stat().st_mode & 0o7777 if path.exists() else None
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if mode is not None:
            Path(temporary).chmod(mode)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _toml(path: Path) -> dict[str, object]:
    return tomllib.loads(path.read_bytes().decode("utf-8-sig"))


def _identity(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(path: Path, folder: Path) -> bool:
    return _identity(path).is_relative_to(_identity(folder))
