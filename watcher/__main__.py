"""`python -m watcher` is the `watcher` command."""

from watcher.cli import main

# Guarded: the parser's process pool (forkserver/spawn) may import the main module.
if __name__ == "__main__":
    raise SystemExit(main())
