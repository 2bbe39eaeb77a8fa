"""Log lines are single-line events and never carry a secret."""

import io
import logging
from collections.abc import Iterator

import pytest

from watcher.logs import REDACTED, setup_logging

TOKEN = "123456:AAHsecretsecretsecretsecretsecret"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    yield out
    setup_logging("WARNING", stream=io.StringIO())


def test_secrets_are_scrubbed_from_messages_and_tracebacks(stream: io.StringIO) -> None:
    formatter = setup_logging("INFO", stream=stream)
    formatter.add_secret(TOKEN)
    log = logging.getLogger("watcher.test")
    log.info("calling https://api.telegram.org/bot%s/sendMessage", TOKEN)
    try:
        raise RuntimeError(f"The token `{TOKEN}` was rejected by the server.")
    except RuntimeError:
        log.exception("send failed")
    text = stream.getvalue()
    assert TOKEN not in text
    assert text.count(REDACTED) == 2


def test_httpx_request_lines_are_not_logged_at_info(stream: io.StringIO) -> None:
    setup_logging("DEBUG", stream=stream)
    logging.getLogger("httpx").info("HTTP Request: POST https://api.telegram.org/bot%s", TOKEN)
    assert stream.getvalue() == ""


def test_line_format_is_timestamp_level_logger_message(stream: io.StringIO) -> None:
    setup_logging("INFO", stream=stream)
    logging.getLogger("watcher.app").info("poll feed=%s status=%d", "apa", 200)
    line = stream.getvalue().strip()
    stamp, level, name, message = line.split(" ", 3)
    assert stamp.endswith("Z") and level == "INFO" and name == "watcher.app"
    assert message == "poll feed=apa status=200"
