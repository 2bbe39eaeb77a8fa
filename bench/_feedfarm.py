"""A farm of feeds for bench/poll.py: N feeds cycled from real news feeds, served by a local
aiohttp server on many loopback addresses, with a fixed mix of behaviours.

Each feed is a real feed (tests/data/feeds-real/fastfeedparser-benchmark-en-news, MIT) whose
item links and guids carry the feed's own tag, so no two feeds share an article (the daemon
dedupes links across feeds). Every feed has one behaviour, assigned at random once (seeded):

- KIND_304 (80%): ETag and Last-Modified; answers 304 to a matching If-None-Match;
- KIND_SAME (15%): 200 with the same body every time and no validators at all;
- KIND_NEW (5%): ETag per generation; each generation puts NEW_PER_GENERATION new items on
  top (copies of the first item with fresh links, guids and titles). With `churn`, every
  item of such a body also changes its bytes at every generation but none of its fields
  (a comment naming the generation, as a view counter would): no item is the same bytes
  twice.

The server holds one number, the generation, set with `PUT /_generation/{g}`: a client primes
at one generation and measures at the next. Run it as a script; it prints `PORT <n>` once
every address listens, and stops on SIGTERM or SIGINT:

    python bench/_feedfarm.py --feeds 10000 --hosts 100 [--latency-ms 0] [--churn]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import re
import signal
import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = ROOT / "tests" / "data" / "feeds-real" / "fastfeedparser-benchmark-en-news"

KIND_304 = "304"
KIND_SAME = "200-same"
KIND_NEW = "200-new"
SHARE_SAME = 0.15
SHARE_NEW = 0.05
NEW_PER_GENERATION = 3
CONTENT_TYPE = "application/xml; charset=utf-8"
LAST_MODIFIED = "Tue, 17 Feb 2026 18:00:00 GMT"
LAYOUTS = ("interleaved", "grouped")

# Where a link or guid URL starts, right after its "://": a tag inserted there becomes the
# first label of the host, so the URL stays valid and becomes the feed's own.
_URL_START = re.compile(rb'(?:<link>|<guid[^>]*>|rdf:about=")(?:<!\[CDATA\[)?\s*https?://')
_FIRST_ITEM = re.compile(rb"<item[\s>].*?</item>", re.S)
_TITLE_START = re.compile(rb"<title>(?:<!\[CDATA\[)?")


def template_files(folder: Path = TEMPLATE_DIR) -> list[Path]:
    files = sorted(folder.glob("*.xml"))
    if not files:
        raise SystemExit(f"no feeds in {folder}")
    return files


def tag_url(url: str | None, tag: str) -> str | None:
    """`url` as it reads once `tag` is inserted into the body (see `_URL_START`)."""
    if url is None:
        return None
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        return url
    return f"{scheme}://{tag}.{rest}"


def host_address(host: int) -> str:
    """The loopback address of host number `host` (127.0.0.0/8 is all loopback on Linux)."""
    return f"127.0.{1 + host // 254}.{1 + host % 254}"


class Farm:
    """What every feed is and what it answers; the server and the clients share it."""

    def __init__(
        self,
        templates: list[bytes],
        feeds: int,
        hosts: int,
        *,
        layout: str = "interleaved",
        seed: int = 1,
        churn: bool = False,
    ) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}")
        self.templates = templates
        self.feeds = feeds
        self.hosts = min(hosts, feeds)
        self.layout = layout
        self.churn = churn
        # Each template split where the tags go: a feed's body is one bytes.join away.
        self._segments: list[list[bytes]] = []
        for template in templates:
            cuts = [0, *(m.end() for m in _URL_START.finditer(template)), len(template)]
            self._segments.append([template[a:b] for a, b in itertools.pairwise(cuts)])
        new = round(feeds * SHARE_NEW)
        same = round(feeds * SHARE_SAME)
        kinds = [KIND_NEW] * new + [KIND_SAME] * same + [KIND_304] * (feeds - new - same)
        random.Random(seed).shuffle(kinds)
        self.kinds = kinds

    def kind(self, i: int) -> str:
        return self.kinds[i]

    def template_of(self, i: int) -> int:
        return i % len(self.templates)

    def tag(self, i: int) -> str:
        return f"f{i}"

    def host(self, i: int) -> str:
        if self.layout == "interleaved":  # neighbours in the config are on different hosts
            return host_address(i % self.hosts)
        per_host = -(-self.feeds // self.hosts)  # a host's feeds are listed together
        return host_address(i // per_host)

    def addresses(self) -> list[str]:
        return [host_address(h) for h in range(self.hosts)]

    def url(self, i: int, port: int) -> str:
        return f"http://{self.host(i)}:{port}/feed/{i}"

    def etag(self, i: int, generation: int) -> str | None:
        kind = self.kinds[i]
        if kind == KIND_SAME:
            return None
        if kind == KIND_NEW:
            return f'"{self.tag(i)}-g{generation}"'
        return f'"{self.tag(i)}"'

    def last_modified(self, i: int, generation: int) -> str | None:
        if self.kinds[i] == KIND_SAME:
            return None
        if self.kinds[i] == KIND_NEW:
            return f"Tue, 17 Feb 2026 {18 + generation % 6:02d}:00:00 GMT"
        return LAST_MODIFIED

    def body(self, i: int, generation: int) -> bytes:
        segments = self._segments[self.template_of(i)]
        base = (self.tag(i) + ".").encode().join(segments)
        if self.kinds[i] != KIND_NEW or generation <= 0:
            return base
        if self.churn:
            base = base.replace(b"</item>", f"<!-- g{generation} --></item>".encode())
        first = _FIRST_ITEM.search(base)
        if first is None:
            raise ValueError(f"template {self.template_of(i)} has no <item>")
        fresh = [
            _new_item(first.group(), g, k)
            for g in range(generation, 0, -1)
            for k in range(NEW_PER_GENERATION)
        ]
        return base[: first.start()] + b"\n".join([*fresh, b""]) + base[first.start() :]


def _new_item(item: bytes, generation: int, number: int) -> bytes:
    tag = f"n{generation}x{number}.".encode()
    item = _URL_START.sub(lambda m: m.group() + tag, item)
    title = f"Update {generation}.{number}: ".encode()
    return _TITLE_START.sub(lambda m: m.group() + title, item, count=1)


def load_farm(
    feeds: int, hosts: int, layout: str, *, churn: bool = False, folder: Path = TEMPLATE_DIR
) -> Farm:
    templates = [p.read_bytes() for p in template_files(folder)]
    return Farm(templates, feeds, hosts, layout=layout, churn=churn)


# --- the server -----------------------------------------------------------------------------


async def serve(farm: Farm, latency_s: float) -> None:
    from aiohttp import web

    generation = 0
    served: dict[int, int] = {}

    async def feed(request: web.Request) -> web.StreamResponse:
        i = int(request.match_info["i"])
        if not 0 <= i < farm.feeds:
            raise web.HTTPNotFound()
        if latency_s:
            await asyncio.sleep(latency_s)
        etag = farm.etag(i, generation)
        if etag is not None and request.headers.get("If-None-Match") == etag:
            served[304] = served.get(304, 0) + 1
            return web.Response(status=304, headers={"ETag": etag})
        headers = {"Content-Type": CONTENT_TYPE}
        last_modified = farm.last_modified(i, generation)
        if etag is not None and last_modified is not None:
            headers["ETag"] = etag
            headers["Last-Modified"] = last_modified
        served[200] = served.get(200, 0) + 1
        return web.Response(body=farm.body(i, generation), headers=headers)

    async def set_generation(request: web.Request) -> web.StreamResponse:
        nonlocal generation
        generation = int(request.match_info["g"])
        return web.json_response({"generation": generation})

    async def stats(request: web.Request) -> web.StreamResponse:
        return web.json_response({str(k): v for k, v in served.items()})

    app = web.Application()
    app.router.add_get("/feed/{i}", feed)
    app.router.add_put("/_generation/{g}", set_generation)
    app.router.add_get("/_stats", stats)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    port = await _listen(runner, farm.addresses())
    print(f"PORT {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


async def _listen(runner: object, addresses: list[str]) -> int:
    """One port on every address (retrying when another process holds it on one of them)."""
    from aiohttp import web

    assert isinstance(runner, web.AppRunner)
    for _ in range(20):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        sites = [web.TCPSite(runner, address, port, backlog=1024) for address in addresses]
        try:
            for site in sites:
                await site.start()
        except OSError:
            for site in sites:
                await site.stop()
            continue
        return port
    raise SystemExit("could not find one free port on every loopback address")


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--feeds", type=int, default=10_000)
    args.add_argument("--hosts", type=int, default=100)
    args.add_argument("--layout", choices=LAYOUTS, default="interleaved")
    args.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    args.add_argument("--churn", action="store_true", help="changing items' bytes change")
    options = args.parse_args()
    farm = load_farm(options.feeds, options.hosts, options.layout, churn=options.churn)
    asyncio.run(serve(farm, options.latency_ms / 1000))


if __name__ == "__main__":
    main()
