"""PURE: the secret parts of a feed's URL, and the URL as logs, status and notices show it.

Feeds behind a paywall or an aggregator carry credentials in their URL: `user:pass@` before
the host, or a query parameter (`?api_key=…`, `&token=…`). Whatever shows a URL (a log
line, `watcher status`, a notice to the admins, a fetch error stored with the feed) shows
it masked; the log formatter also scrubs the secrets themselves, as a second defence.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

__all__ = ["MASK", "display_url", "url_secrets"]

MASK = "***"
# Query parameter names that carry credentials by every convention we know of.
_SECRET_NAME = re.compile(
    r"key|token|secret|pass|pwd|auth|sig|session|credential|ticket|hash", re.IGNORECASE
)
# What a URL the parser refuses may still hold: userinfo, and any query.
_USERINFO = re.compile(r"(?<=//)[^/?#@]*@")


def _secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def url_secrets(url: str) -> list[str]:
    """The secret parts of `url`, as written and percent-decoded: its userinfo, and the
    values of query parameters whose names say they are credentials."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    for piece in (userinfo, *userinfo.split(":", 1)) if userinfo else ():
        found += [piece, unquote(piece)]
    for raw in parts.query.split("&"):
        name, equals, value = raw.partition("=")
        if equals and value and _secret_name(unquote(name)):
            found += [value, unquote(value.replace("+", " "))]
    return [secret for secret in dict.fromkeys(found) if secret]


def display_url(url: str) -> str:
    """`url` with its userinfo and the values of credential parameters masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(MASK + "@", url).partition("?")[0]
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    query = parts.query
    if query and any(_secret_name(name) for name, _ in parse_qsl(query, keep_blank_values=True)):
        query = "&".join(
            f"{name}={MASK}" if value and _secret_name(unquote(name)) else f"{name}{equals}{value}"
            for name, equals, value in (raw.partition("=") for raw in query.split("&"))
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
