"""Credentials in feed URLs: what is secret, and how a URL is shown."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.errors import FetchError
from watcher.redaction import display_url, url_secrets


@pytest.mark.parametrize(
    ("url", "shown", "secrets"),
    [
        ("https://x.az/rss?id=7", "https://x.az/rss?id=7", []),
        (
            "https://x.az/rss?api_key=S3CRET-value&id=7",
            "https://x.az/rss?api_key=***&id=7",
            ["S3CRET-value"],
        ),
        (
            "http://user:hunter2pw@x.az/rss",
            "http://***@x.az/rss",
            ["user:hunter2pw", "user", "hunter2pw"],
        ),
        ("https://APIKEY123@x.az/", "https://***@x.az/", ["APIKEY123"]),
        (
            "https://x.az/r?Token=a%20b+c&sig=",
            "https://x.az/r?Token=***&sig=",
            ["a%20b+c", "a b c"],
        ),
        (
            "https://x.az/r?access_token=t1&session=s2",
            "https://x.az/r?access_token=***&session=***",
            ["t1", "s2"],
        ),
        # A URL the parser refuses: no userinfo and no query shown.
        ("http://u:pw@[::1/x?token=abc", "http://***@[::1/x", []),
    ],
)
def test_what_of_a_url_is_secret_and_how_it_is_shown(
    url: str, shown: str, secrets: list[str]
) -> None:
    assert display_url(url) == shown
    assert url_secrets(url) == secrets


def test_a_fetch_error_names_the_url_without_its_credentials() -> None:
    error = FetchError("timed out", url="https://u:pw-1234@x.az/rss?apikey=K-99&id=7", status=500)
    assert str(error) == "https://***@x.az/rss?apikey=***&id=7 (HTTP 500): timed out"


_VALUE = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="&#=%+"),
    min_size=8,
    max_size=20,
)


@given(_VALUE, st.sampled_from(["api_key", "token", "X-Auth", "secret", "signature"]))
def test_a_credential_parameter_never_shows(value: str, name: str) -> None:
    url = f"https://x.az/rss?id=7&{name}={value}&lang=en"
    assert display_url(url).partition("?")[2] == f"id=7&{name}=***&lang=en"
    assert value in url_secrets(url)
