"""The `watcher` command's contract: exit codes and messages."""

import subprocess
import sys
from pathlib import Path

import pytest

from watcher import __version__
from watcher.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_check_accepts_the_shipped_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(ROOT / "config" / "watcher.toml")]) == 0
    assert capsys.readouterr().out.startswith("config OK: 18 feeds")


def test_check_rejects_a_bad_config_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "watcher.toml"
    config.write_text('[polling]\ninterval = "5x"\n', encoding="utf-8")
    assert main(["check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}:2" in err and "polling.interval" in err and '"5x"' in err


def test_run_refuses_a_bad_config_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "watcher.toml"
    config.write_text("[[rules]]\nname = 'x'\nquery = '@nobody'\n", encoding="utf-8")
    assert main(["run", "--config", str(config)]) == 2
    assert "rules[0].query" in capsys.readouterr().err


def test_missing_config_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml" in capsys.readouterr().err


def test_version_via_python_dash_m() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"watcher {__version__}"


def test_default_config_path_is_config_watcher_toml() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr


def run_daemon(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "watcher", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_run_with_its_http_port_taken_says_so_in_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "watcher.toml"
        config.write_text(f'[http]\nlisten = "127.0.0.1:{port}"\n', encoding="utf-8")
        done = run_daemon(config)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("watcher: ")
    assert "address already in use" in done.stderr.lower()


def test_run_with_an_unreadable_credential_says_so_in_one_line(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    (credentials / "telegram-token").mkdir(parents=True)  # a directory: cannot be read
    config = tmp_path / "watcher.toml"
    config.write_text("", encoding="utf-8")
    done = run_daemon(config, {"CREDENTIALS_DIRECTORY": str(credentials)})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "cannot read the bot token file" in done.stderr


@pytest.mark.parametrize("level", ["debug", "Warning", "CRITICAL"])
def test_log_level_is_taken_in_any_case(level: str) -> None:
    from watcher.cli import _parser

    args = _parser().parse_args(["run", "--config", "watcher.toml", "--log-level", level])
    assert args.log_level == level.upper()


def test_check_prints_what_loads_but_looks_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "w.toml"
    config.write_text(
        '[[feeds]]\nname = "a"\nurl = "https://apa.az/rss"\n'
        '[[feeds]]\nname = "b"\nurl = "http://www.apa.az/rss/"\n',
        encoding="utf-8",
    )
    assert main(["check", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("config OK: 2 feeds")
    assert "watcher: warning: " in captured.err and "one feed twice?" in captured.err
