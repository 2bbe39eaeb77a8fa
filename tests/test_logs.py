"""Log lines are single-line events and never carry a secret: readable lines on a terminal,
JSON objects anywhere else."""

import io
import json
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

from watcher.logs import REDACTED, JsonFormatter, RedactingFormatter, setup_logging

TOKEN = "123456:AAHsecretsecretsecretsecretsecret"
# A secret with characters JSON escapes: scrubbing the serialized line would miss it.
PASSWORD = 'pa"ss\\wörd-1234'


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    yield out
    setup_logging("WARNING", stream=io.StringIO())


def events(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def strings_in(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_are_scrubbed_from_messages_and_tracebacks(stream: io.StringIO, fmt: str) -> None:
    formatter = setup_logging("INFO", stream=stream, fmt=fmt)  # type: ignore[arg-type]
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


def test_text_line_is_timestamp_level_logger_message(stream: io.StringIO) -> None:
    setup_logging("INFO", stream=stream, fmt="text")
    logging.getLogger("watcher.app").info("poll feed=%s status=%d", "apa", 200)
    line = stream.getvalue().strip()
    stamp, level, name, message = line.split(" ", 3)
    assert stamp.endswith("Z") and level == "INFO" and name == "watcher.app"
    assert message == "poll feed=apa status=200"


def test_auto_writes_json_to_a_pipe_or_file(stream: io.StringIO) -> None:
    assert isinstance(setup_logging("INFO", stream=stream), JsonFormatter)
    logging.getLogger("watcher.app").info("started")
    (event,) = events(stream)
    assert event["msg"] == "started"


def test_auto_writes_readable_lines_to_a_terminal() -> None:
    controller, terminal_fd = os.openpty()
    try:
        with open(terminal_fd, "w", encoding="utf-8", closefd=False) as terminal:
            formatter = setup_logging("INFO", stream=terminal)
            assert not isinstance(formatter, JsonFormatter)
            assert isinstance(formatter, RedactingFormatter)
            logging.getLogger("watcher.app").info("poll feed=%s", "apa")
            terminal.flush()
            written = os.read(controller, 4096).decode()
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO watcher.app poll feed=apa\r?\n", written
        ), written
    finally:
        setup_logging("WARNING", stream=io.StringIO())
        os.close(controller)
        os.close(terminal_fd)


def test_json_event_fields(stream: io.StringIO) -> None:
    setup_logging("INFO", stream=stream, fmt="json")
    logging.getLogger("watcher.app").warning(
        "poll feed=%s status=%d entries=%d ms=%d error=%r",
        "apa",
        503,
        0,
        12,
        "HTTP 503 from https://apa.az/rss: it's down",
    )
    (event,) = events(stream)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["ts"]), event["ts"]
    assert event["level"] == "WARNING" and event["logger"] == "watcher.app"
    assert event["msg"].startswith("poll feed=apa status=503 entries=0 ms=12 error=")
    assert event["feed"] == "apa"
    assert event["status"] == 503 and event["entries"] == 0
    assert event["error"] == "HTTP 503 from https://apa.az/rss: it's down"
    assert "exc" not in event


def test_fields_never_replace_the_event_itself(stream: io.StringIO) -> None:
    setup_logging("INFO", stream=stream, fmt="json")
    logging.getLogger("watcher.app").info("odd level=debug msg=hello ts=0 feed=apa status=-")
    (event,) = events(stream)
    assert event["level"] == "INFO"
    assert event["msg"] == "odd level=debug msg=hello ts=0 feed=apa status=-"
    assert event["ts"] != 0 and event["feed"] == "apa" and event["status"] is None


def test_json_traceback_is_one_line_and_keeps_unicode(stream: io.StringIO) -> None:
    setup_logging("INFO", stream=stream, fmt="json")
    try:
        raise ValueError("Ханкенди\nsecond line")
    except ValueError:
        logging.getLogger("watcher.app").exception("poll crashed feed=%s", "azatutyun")
    assert len(stream.getvalue().splitlines()) == 1
    assert "Ханкенди" in stream.getvalue()  # readable, not \u-escaped
    (event,) = events(stream)
    assert event["exc"].startswith("Traceback (most recent call last):")
    assert event["exc"].endswith("ValueError: Ханкенди\nsecond line")
    assert event["feed"] == "azatutyun"


def test_no_json_field_carries_a_secret(stream: io.StringIO) -> None:
    setup_logging("INFO", stream=stream, fmt="json", secrets=[TOKEN, PASSWORD])
    log = logging.getLogger(f"watcher.{PASSWORD}")
    log.info("token=%s password=%r url=%s", TOKEN, PASSWORD, f"https://x/bot123456%3A{TOKEN[7:]}")
    try:
        raise RuntimeError(f"rejected {PASSWORD!r} and {TOKEN}")
    except RuntimeError:
        log.exception("failed")
    for event in events(stream):
        for text in strings_in(event):
            assert TOKEN not in text and PASSWORD not in text, event
            assert TOKEN.split(":")[1] not in text, event
    first, second = events(stream)
    assert first["token"] == REDACTED and first["password"] == REDACTED
    assert first["url"] == f"https://x/bot123456%3A{REDACTED}"
    assert REDACTED in second["exc"] and REDACTED in second["logger"]


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="auto, json, text"):
        setup_logging("INFO", stream=io.StringIO(), fmt="yaml")  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_lines_to_journald_start_with_their_priority(tmp_path: Any, fmt: str) -> None:
    # systemd names the stream it gave the service in $JOURNAL_STREAM ("device:inode");
    # journald takes "<4>" as the line's priority, so `journalctl -p warning` works.
    with (tmp_path / "journal").open("w") as journal, (tmp_path / "other").open("w") as other:
        status = os.fstat(journal.fileno())
        environ = {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}
        setup_logging("DEBUG", stream=journal, fmt=fmt, environ=environ)  # type: ignore[arg-type]
        log = logging.getLogger("watcher.test")
        log.error("e")
        log.warning("w")
        log.info("i")
        log.debug("d")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")  # a traceback: several lines in text, one in JSON
        # A child whose stderr goes elsewhere inherits the variable: no prefix there.
        setup_logging("DEBUG", stream=other, fmt=fmt, environ=environ)  # type: ignore[arg-type]
        log.warning("w")
        setup_logging("WARNING", stream=io.StringIO())
    lines = (tmp_path / "journal").read_text().splitlines()
    assert [line[:3] for line in lines[:4]] == ["<3>", "<4>", "<6>", "<7>"]
    traceback = lines[4:]
    assert len(traceback) == (1 if fmt == "json" else 5)
    assert all(line.startswith("<3>") for line in traceback)
    assert not (tmp_path / "other").read_text().startswith("<")
