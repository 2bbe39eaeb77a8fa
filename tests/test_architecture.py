"""The import rules of DESIGN.md, checked by walking every module's imports with `ast`.

- each third-party I/O library lives in one module (or package);
- the pure core imports nothing that does I/O;
- adapters never import each other;
- imports run one way: cli → app → orchestration → adapters and pure core → model/errors.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "watcher"

PURE = {
    "watcher.telegram.backend",
    "watcher.text",
    "watcher.rules",
    "watcher.schedule",
    "watcher.identity",
    "watcher.redaction",
    "watcher.armscii8",
    "watcher.stories",
    "watcher.opml",
    "watcher.telegram.format",
    "watcher.model",
    "watcher.errors",
}
ADAPTERS = {
    "watcher.fetch",
    "watcher.parse",
    "watcher.store",
    "watcher.telegram",
    "watcher.sd_notify",
}
# Modules of an adapter that live beside it: the parse pool and its workers' process.
ADAPTER_PARTS = {"watcher.parse_worker": "watcher.parse", "watcher.parse_pool": "watcher.parse"}
ORCHESTRATION = {
    "watcher.pipeline",
    "watcher.delivery",
    "watcher.scheduler",
    "watcher.logs",
    "watcher.match_command",
    "watcher.replay_command",
    "watcher.status_command",
    "watcher.check_command",
    "watcher.digests",
    "watcher.bot_backend",
    "watcher.config_watch",
    "watcher.feeds_command",
    "watcher.backup",
    "watcher.metrics",
    "watcher.http_api",
    "watcher.loop_lag",
    "watcher.service_status",
    "watcher.story_alerts",
}
LIBRARY_HOME = {
    # fetch is the HTTP client; http_api serves /metrics and /healthz (aiohttp.web).
    "aiohttp": {"watcher.fetch", "watcher.http_api"},
    "feedparser": {"watcher.parse"},
    "aiosqlite": {"watcher.store"},
    "telegram": {"watcher.telegram"},
    "apscheduler": {"watcher.scheduler"},
    "aiolimiter": {"watcher.delivery"},
    "ahocorasick": {"watcher.rules"},
    "pymorphy3": {"watcher.rules"},
    "prometheus_client": {"watcher.metrics", "watcher.http_api"},
}
IO_MODULES = {
    "asyncio",
    "socket",
    "sqlite3",
    "subprocess",
    "urllib.request",
    "http.client",
    "os",
    "shutil",
    "io",
} | {
    "aiohttp",
    "feedparser",
    "aiosqlite",
    "telegram",
    "apscheduler",
    "aiolimiter",
    "prometheus_client",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def within(name: str, groups: set[str]) -> bool:
    return any(name == g or name.startswith(g + ".") for g in groups)


MODULES = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_was_found() -> None:
    assert {"watcher.app", "watcher.pipeline", "watcher.store.sqlite", "watcher.rules"} <= set(
        MODULES
    )


@pytest.mark.parametrize("library", sorted(LIBRARY_HOME))
def test_each_library_lives_in_one_place(library: str) -> None:
    users = {m for m, imported in MODULES.items() if any(within(i, {library}) for i in imported)}
    assert users, f"{library} is not used at all"
    assert all(within(m, LIBRARY_HOME[library]) for m in users), users


@pytest.mark.parametrize("module", sorted(m for m in MODULES if within(m, PURE)))
def test_pure_core_does_no_io(module: str) -> None:
    io = {i for i in MODULES[module] if within(i, IO_MODULES)}
    internal = {i for i in MODULES[module] if i.startswith("watcher.") and not within(i, PURE)}
    assert not io, f"{module} imports I/O modules {io}"
    assert not internal, f"{module} imports non-pure watcher modules {internal}"


def adapter_of(module: str) -> str | None:
    return ADAPTER_PARTS.get(module) or next((a for a in ADAPTERS if within(module, {a})), None)


def test_every_module_has_its_place() -> None:
    top = {"watcher", "watcher.__main__", "watcher.app", "watcher.cli"}
    placed = PURE | ADAPTERS | ORCHESTRATION | set(ADAPTER_PARTS) | top
    assert not {m for m in MODULES if not within(m, placed)}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if adapter_of(m) is not None))
def test_adapters_never_import_each_other(module: str) -> None:
    own = adapter_of(module)
    assert own is not None
    others = {i for i in MODULES[module] if within(i, ADAPTERS - {own})}
    assert not others, f"{module} imports other adapters {others}"
    upward = {
        i for i in MODULES[module] if within(i, ORCHESTRATION | {"watcher.app", "watcher.cli"})
    }
    assert not upward, f"{module} imports upward {upward}"


def test_imports_run_one_way() -> None:
    for module, imported in MODULES.items():
        if module != "watcher.cli" and module != "watcher.__main__":
            assert "watcher.cli" not in imported, module
        if module not in {"watcher.cli"}:
            assert "watcher.app" not in imported, module
        if within(module, ORCHESTRATION):
            assert not any(within(i, {"watcher.app", "watcher.cli"}) for i in imported), module
