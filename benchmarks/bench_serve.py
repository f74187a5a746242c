"""Serving load test: a real ``genrify serve`` on 127.0.0.1, hit by N concurrent async clients.

    python benchmarks/bench_serve.py                        # 16 clients, 60 s
    python benchmarks/bench_serve.py --clients 8 --seconds 30
    python benchmarks/bench_serve.py --smoke                # ~5 s, 4 clients (CI)
    python benchmarks/bench_serve.py --new-songs            # every analysis a song the server has not seen
    python benchmarks/bench_serve.py --no-cache             # genrify serve --cache-size 0

The server is started as a subprocess (``python -m genrify serve``) with its own
cache folder, so it generates and scans the demo library (synthetic tagged 30 s
MP3s) exactly as a user's first start does. The model is the bundled default
(``src/genrify/assets/default.genrify``) when it exists, else a small CNN
trained on synthetic clips (speed does not depend on accuracy); the script says
which.

Each client loops until the time is up, drawing (seeded) one of:

* 50 %  ``POST /api/predict`` with a 30 s MP3 (an upload, analysed): the same file every time;
* 35 %  ``GET /api/predict?artist=..&track=..`` for a demo-library song (found, analysed);
* 15 %  ``GET /api/search?artist=..&track=..`` (no analysis).

With ``--new-songs`` every analysis is a song the server has not seen (see below):
85 % uploads, each a different file, and 15 % searches; no look-ups of the demo
songs, which would repeat.

Analyses ask for ``images=false`` unless ``--images`` is given (the PNGs are
rendering, not prediction). A 503 is the server's back-pressure: the client
honours its ``Retry-After`` and the answer is counted apart from errors. An
error is anything else that is not a 200: a 4xx/5xx, a timeout, a dropped
connection. Only 127.0.0.1 is ever contacted.

The server keeps an analysis cache (``genrify serve --cache-size``, keyed by the
file's bytes, the model and the options): with the defaults, after the first
upload and the first look-up of each demo song, answers come from it. Each run
prints the server's cache hits and misses (``/healthz``) and how many answers of
each kind said ``"cached": true``, so it says how much of its throughput the
cache made. ``--no-cache`` starts the server with ``--cache-size 0``.

``--new-songs`` measures the server when no answer can come from the cache,
with the cache on as a user runs it: every upload is a different file, one of
``--upload-pool`` synthetic 30 s MP3s (different styles and seeds, generated
once and kept in the benchmark cache) with an ID3v1 tag naming the upload's
number appended, so no two uploads share bytes and each is decoded and analysed
in full (the audio of the pool's songs repeats; the bytes, which are the cache's
key, never do). The run then checks that this held: no answer may say
``"cached": true`` and the server's cache must report 0 hits; otherwise it says
so and exits 1 (were the cache ever keyed on the decoded audio instead of the
bytes, the check fails instead of the figure silently counting cache answers).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CACHE, REPO, machine_header, synthetic_song, train_demo_model  # noqa: E402

HOST = "127.0.0.1"


# --------------------------------------------------------------------------- the server under test


def pick_model(explicit: str | None = None) -> tuple[Path, str]:
    """The model to serve and a line saying which it is."""
    if explicit:
        return Path(explicit), f"{explicit} (given with --model)"
    bundled = REPO / "src" / "genrify" / "assets" / "default.genrify"
    if bundled.is_file():
        return bundled, f"{bundled.relative_to(REPO)} (the bundled default model)"
    out = train_demo_model(CACHE / "serve-cnn.genrify")
    return out, f"{out} (bundled default missing: a CNN trained 2 epochs on synthetic clips)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def proc_rss_bytes(pid: int) -> int:
    """Resident memory (VmRSS) of one process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class ServeProcess:
    """``python -m genrify serve`` on 127.0.0.1 and a free port, with a private cache folder."""

    def __init__(self, model: Path, *, extra_args: tuple[str, ...] = (), cache_dir: Path | None = None):
        self.model = model
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.extra_args = extra_args
        self._own_cache = cache_dir is None
        self.cache_dir = Path(cache_dir or tempfile.mkdtemp(prefix="genrify-serve-"))
        self.proc: subprocess.Popen | None = None
        self.log = self.cache_dir / "server.log"

    def __enter__(self) -> ServeProcess:
        import httpx

        env = {**os.environ, "GENRIFY_CACHE_DIR": str(self.cache_dir), "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "genrify", "serve", "--model", str(self.model), "--host", HOST,
               "--port", str(self.port), "--scan", "blocking", "--log-level", "warning", *self.extra_args]
        self.command = " ".join(cmd[1:])
        self._logfh = open(self.log, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._logfh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300  # the first start writes the demo library (10 x 30 s MP3s)
        while True:
            try:
                health = httpx.get(f"{self.base}/healthz", timeout=2).json()
                if health.get("library", {}).get("tracks", 0) > 0:
                    self.health = health
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"genrify serve exited {self.proc.returncode}:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("genrify serve did not become ready within 300 s")
            time.sleep(0.3)

    def rss(self) -> int:
        return proc_rss_bytes(self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logfh.close()
        if self._own_cache:
            shutil.rmtree(self.cache_dir, ignore_errors=True)


# --------------------------------------------------------------------------- the clients


class Tally:
    """Latencies and outcomes per request kind."""

    def __init__(self):
        self.latency: dict[str, list[float]] = {}
        self.ok: dict[str, int] = {}
        self.busy = 0  # 503 with Retry-After
        self.busy_without_retry_after = 0
        self.errors: list[str] = []
        self.cached: dict[str, int] = {}  # answers that said "cached": true, by kind
        self.cached_server_ms: list[float] = []  # their elapsed_ms: the server's own time for them

    def record(self, kind: str, seconds: float) -> None:
        self.latency.setdefault(kind, []).append(seconds)
        self.ok[kind] = self.ok.get(kind, 0) + 1


def _percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))
    return xs[k]


async def examples(base: str) -> list[dict]:
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        r = await c.get("/api/examples", params={"n": 20})
        r.raise_for_status()
        return r.json()["examples"]


class Uploads:
    """The bytes of each upload: ``songs[0]`` every time, or (``distinct``) a new file every time:
    the next song of the pool with an ID3v1 tag naming the upload's number appended."""

    def __init__(self, songs: list[bytes], *, distinct: bool):
        self.songs, self.distinct, self.count = songs, distinct, 0

    def next(self) -> bytes:
        i, self.count = self.count, self.count + 1
        if not self.distinct:
            return self.songs[0]
        title = f"genrify bench upload {i}".encode()[:30].ljust(30, b" ")
        return self.songs[i % len(self.songs)] + b"TAG" + title + bytes(97)  # 128 bytes; decoders skip it


def make_uploads(*, distinct: bool, pool: int) -> tuple[Uploads, str]:
    """The uploads and a line describing them (the pool's MP3s are generated once, then reused)."""
    from genrify.sources.synthetic import STYLES

    if not distinct:
        mp3 = synthetic_song(CACHE / "serve-upload-30s.mp3", style="metal", seed=7, duration=30.0)
        return Uploads([mp3.read_bytes()], distinct=False), (f"the same 30 s synthetic MP3 "
                                                             f"({mp3.stat().st_size / 1024:.0f} KiB) every time")
    paths = [synthetic_song(CACHE / "serve-pool" / f"{i:03d}.mp3", style=STYLES[i % len(STYLES)], seed=100 + i,
                            duration=30.0) for i in range(pool)]
    songs = [p.read_bytes() for p in paths]
    mean = sum(map(len, songs)) / len(songs) / 1024
    return Uploads(songs, distinct=True), (f"a different file every time: {pool} synthetic 30 s MP3s (mean {mean:.0f} "
                                           "KiB) in turn, each upload with its own ID3v1 tag (no two share bytes)")


#: Shares of uploads, look-ups of demo songs and searches among the requests.
MIX = (0.50, 0.35, 0.15)
#: The same with ``--new-songs``: the look-ups (of demo songs, which repeat) become uploads of new files.
MIX_NEW_SONGS = (0.85, 0.0, 0.15)


async def client_loop(c, *, seed: int, deadline: float, songs: list[dict], upload: bytes | Uploads, images: bool,
                      tally: Tally, mix=MIX) -> None:
    """One client's requests until ``deadline``; ``upload``: the bytes every upload sends, or an :class:`Uploads`;
    ``mix``: the shares of uploads, look-ups and searches."""
    uploads = upload if isinstance(upload, Uploads) else Uploads([upload], distinct=False)
    rng = random.Random(seed)
    img = "true" if images else "false"
    while time.monotonic() < deadline:
        song = rng.choice(songs)
        draw = rng.random()
        t0 = time.perf_counter()
        try:
            if draw < mix[0]:
                kind = "upload"
                r = await c.post(f"/api/predict?images={img}",
                                 files={"file": ("song.mp3", uploads.next(), "audio/mpeg")})
            elif draw < mix[0] + mix[1]:
                kind = "predict"
                r = await c.get("/api/predict", params={"artist": song["artist"], "track": song["title"],
                                                        "images": img})
            else:
                kind = "search"
                r = await c.get("/api/search", params={"artist": song["artist"], "track": song["title"]})
        except Exception as exc:  # a timeout or a dropped connection is an error, never a crash of the test
            tally.errors.append(f"{type(exc).__name__}: {exc}")
            continue
        dt = time.perf_counter() - t0
        if r.status_code == 200:
            tally.record(kind, dt)
            if kind != "search" and r.json().get("cached"):
                tally.cached[kind] = tally.cached.get(kind, 0) + 1
                tally.cached_server_ms.append(float(r.json()["elapsed_ms"]))
        elif r.status_code == 503:
            retry = r.headers.get("retry-after")
            if retry is None:
                tally.busy_without_retry_after += 1
                tally.errors.append(f"{kind}: 503 without Retry-After")
            tally.busy += 1
            await asyncio.sleep(min(float(retry or 1), max(0.0, deadline - time.monotonic())))
        else:
            tally.errors.append(f"{kind}: HTTP {r.status_code} {r.text[:120]}")


async def run_load(base: str, *, clients: int, seconds: float, upload: bytes | Uploads, images: bool = False,
                   seed: int = 0, mix=MIX) -> tuple[Tally, float]:
    """Drive ``clients`` concurrent loops against ``base`` for ``seconds``; returns the tally and the wall time."""
    import httpx

    songs = await examples(base)
    if not songs:
        raise RuntimeError("the server's library is empty")
    tally = Tally()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(60.0), limits=limits) as c:
        t0 = time.monotonic()
        deadline = t0 + seconds
        await asyncio.gather(*(client_loop(c, seed=seed * 1000 + i, deadline=deadline, songs=songs, upload=upload,
                                           images=images, tally=tally, mix=mix) for i in range(clients)))
        wall = time.monotonic() - t0
    return tally, wall


def report(tally: Tally, wall: float) -> dict:
    analysed = tally.latency.get("upload", []) + tally.latency.get("predict", [])
    every = [x for xs in tally.latency.values() for x in xs]
    figures = {
        "wall_s": wall,
        "predictions": len(analysed),
        "predictions_per_s": len(analysed) / wall,
        "requests_ok": len(every),
        "busy_503": tally.busy,
        "errors": len(tally.errors),
    }
    print(f"{'kind':8} {'ok':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind, xs in [("upload", tally.latency.get("upload", [])), ("predict", tally.latency.get("predict", [])),
                     ("search", tally.latency.get("search", [])), ("analyses", analysed), ("all", every)]:
        if xs:
            print(f"{kind:8} {len(xs):6d} {1e3 * statistics.median(xs):8.0f} {1e3 * _percentile(xs, 95):8.0f} "
                  f"{1e3 * _percentile(xs, 99):8.0f} {1e3 * max(xs):8.0f}")
    figures.update(p50_s=statistics.median(analysed) if analysed else float("nan"),
                   p95_s=_percentile(analysed, 95), p99_s=_percentile(analysed, 99))
    print(f"throughput: {figures['predictions_per_s']:.1f} predictions/s ({len(analysed)} in {wall:.1f} s), "
          f"{len(every) / wall:.1f} requests/s in all")
    print(f"analyses latency: p50 {1e3 * figures['p50_s']:.0f} ms, p95 {1e3 * figures['p95_s']:.0f} ms, "
          f"p99 {1e3 * figures['p99_s']:.0f} ms")
    print(f"503 (busy, Retry-After honoured): {tally.busy}; errors: {len(tally.errors)}")
    for e in sorted(set(tally.errors))[:10]:
        print(f"  error: {e} (x{tally.errors.count(e)})")
    return figures


def cache_report(tally: Tally, cache: dict | None) -> None:
    """How much of the run the analysis cache answered: the server's counts and the answers' own flags.

    ``cache`` is the ``"cache"`` object of the server's ``/healthz`` (``None``: not reported).
    """
    kinds = [k for k in ("upload", "predict") if tally.latency.get(k)]
    flags = ", ".join(f"{k} {tally.cached.get(k, 0)} of {len(tally.latency[k])}" for k in kinds)
    print(f"answers with \"cached\": true: {flags or 'none'}")
    if tally.cached_server_ms:
        ms = tally.cached_server_ms
        print(f"their elapsed_ms (the server's time from the cache look-up to the answer; HTTP not included): "
              f"p50 {statistics.median(ms):.1f} ms, p95 {_percentile(ms, 95):.1f} ms, max {max(ms):.1f} ms")
    if cache is None:
        print("server cache: not reported")
        return
    looked = cache["hits"] + cache["misses"]
    share = f"{100 * cache['hits'] / looked:.0f} %" if looked else "n/a"
    state = "off" if not cache["max_entries"] else f"{cache['entries']} of {cache['max_entries']} entries"
    print(f"server cache ({state}): {cache['hits']} hits ({cache['joined']} joined an analysis in flight), "
          f"{cache['misses']} misses (analyses run); {share} of analyses answered from the cache")


def new_songs_check(tally: Tally, cache: dict | None) -> bool:
    """Whether every analysis of a ``--new-songs`` run was a new song: no answer said ``"cached": true``, the
    server's cache counted no hit, and it ran (missed) at least one analysis per answer; prints the verdict."""
    answered = len(tally.latency.get("upload", [])) + len(tally.latency.get("predict", []))
    flagged = sum(tally.cached.values())
    problems = []
    if flagged:
        problems.append(f"{flagged} answers said \"cached\": true")
    if cache is None:
        problems.append("the server did not report its cache")
    else:
        if cache["hits"]:
            problems.append(f"the server's cache counted {cache['hits']} hits")
        if cache["max_entries"] and cache["misses"] < answered:
            problems.append(f"the server ran {cache['misses']} analyses for {answered} answers")
    if problems:
        print("every analysis a new song: NO (" + "; ".join(problems) + "): the throughput above is not that of "
              "new songs")
        return False
    print(f"every analysis a new song: yes ({answered} answers, none cached; server cache: 0 hits, "
          f"{cache['misses']} analyses run)")
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--smoke", action="store_true", help="about 5 s with 4 clients (CI)")
    ap.add_argument("--model", help="model file (default: the bundled model, else a synthetic-trained CNN)")
    ap.add_argument("--images", action="store_true", help="ask for the feature and timeline PNGs too")
    ap.add_argument("--fast", action="store_true", help="serve musicnn models in the fast mode (genrify serve --fast)")
    ap.add_argument("--max-analyses", type=int, default=None, help="passed to genrify serve (its default: 2)")
    ap.add_argument("--max-waiting", type=int, default=None, help="passed to genrify serve (its default: 8)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-cache", action="store_true", help="serve without the analysis cache (--cache-size 0)")
    ap.add_argument("--new-songs", action="store_true",
                    help="every analysis a song the server has not seen: uploads only (each a different file: a pool "
                         "of synthetic songs, each upload tagged apart) and searches; checked with the cache's counts")
    ap.add_argument("--upload-pool", type=int, default=24, metavar="N",
                    help="distinct songs in the pool of --new-songs (default 24; --smoke: 4)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.clients, args.seconds, args.upload_pool = min(args.clients, 4), 5.0, min(args.upload_pool, 4)

    model, which = pick_model(args.model)
    extra = []
    if args.max_analyses is not None:
        extra += ["--max-analyses", str(args.max_analyses)]
    if args.fast:
        extra += ["--fast"]
    if args.max_waiting is not None:
        extra += ["--max-waiting", str(args.max_waiting)]
    if args.no_cache:
        extra += ["--cache-size", "0"]
    uploads, uploads_line = make_uploads(distinct=args.new_songs, pool=max(1, args.upload_pool))
    mix = MIX_NEW_SONGS if args.new_songs else MIX
    machine_header("serving load test (genrify serve on 127.0.0.1)", librosa=False, extra={
        "model": which, "clients": args.clients, "seconds": args.seconds,
        "uploads": f"{uploads_line}; images={'yes' if args.images else 'no'}",
        "requests": f"{mix[0]:.0%} uploads, {mix[1]:.0%} look-ups of demo songs, {mix[2]:.0%} searches"
                    + ("; every analysis a new song (--new-songs)" if args.new_songs else ""),
        "analysis cache": "off (--cache-size 0)" if args.no_cache else "on (genrify serve's default size)",
        "load": f"{os.getloadavg()[0]:.2f} (1-min load average before the run; other work on the machine shows here)",
    })
    with ServeProcess(model, extra_args=tuple(extra)) as server:
        print(f"server: {server.command} (pid {server.proc.pid}); library: {server.health['library']['tracks']} tracks")
        rss0 = server.rss()
        tally, wall = asyncio.run(run_load(server.base, clients=args.clients, seconds=args.seconds, upload=uploads,
                                           images=args.images, seed=args.seed, mix=mix))
        rss1 = server.rss()
        import httpx

        health = httpx.get(f"{server.base}/healthz", timeout=10)
        healthy = health.status_code == 200 and server.alive()
    figures = report(tally, wall)
    cache = health.json().get("cache") if healthy else None
    cache_report(tally, cache)
    all_new = new_songs_check(tally, cache) if args.new_songs else True
    print(f"server RSS {rss0 / 2**20:.0f} MiB before, {rss1 / 2**20:.0f} MiB after; healthy after the run: {healthy}")
    p95_ok = figures["p95_s"] <= 1.0
    verdict = (f"target >= 20 predictions/s: {'met' if figures['predictions_per_s'] >= 20 else 'NOT met'}; "
               f"p95 <= 1 s: {'met' if p95_ok else 'NOT met'}; zero errors: {'met' if not figures['errors'] else 'NOT met'}")
    print(verdict)
    return 0 if healthy and all_new and not figures["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
