"""`watcher check --fetch` against a real feed server."""

import asyncio
from pathlib import Path

import pytest

from tests.fakes.feed_server import FeedServer
from watcher.cli import main

ROOT = Path(__file__).resolve().parent.parent


def write_config(path: Path, feeds: dict[str, str]) -> Path:
    path.write_text(
        "".join(f'[[feeds]]\nname = "{name}"\nurl = "{url}"\n' for name, url in feeds.items()),
        encoding="utf-8",
    )
    return path


async def test_every_feed_is_fetched_and_a_failure_means_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FeedServer() as server:
        config = write_config(
            tmp_path / "watcher.toml",
            {
                "seed": server.serve("/seed", (ROOT / "seeds" / "turan-feed.xml").read_bytes()),
                "html": server.serve(
                    "/html", "<html><body>x</body></html>", content_type="text/html"
                ),
                "down": server.serve("/down", "", status=503),
            },
        )
        code = await asyncio.to_thread(main, ["check", "--config", str(config), "--fetch"])
    out = capsys.readouterr().out
    assert code == 1
    rows = {line.split()[0]: line for line in out.splitlines()[2:5]}
    assert rows["seed"].split()[1:4] == ["200", "3", "utf-8"]
    assert "not a feed" in rows["html"]
    assert rows["down"].split()[1] == "503"
    assert "1 of 3 feeds fetched and parsed" in out
    assert not (tmp_path / "watcher.db").exists()  # writes nothing


async def test_all_good_means_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with FeedServer() as server:
        config = write_config(
            tmp_path / "watcher.toml",
            {"seed": server.serve("/seed", (ROOT / "seeds" / "turan-feed.xml").read_bytes())},
        )
        code = await asyncio.to_thread(main, ["check", "--config", str(config), "--fetch"])
    assert code == 0
    assert "1 of 1 feeds fetched and parsed" in capsys.readouterr().out
