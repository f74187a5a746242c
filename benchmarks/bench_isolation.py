"""What decoding in disposable worker processes costs and buys: memory under bombs, time per song, serving.

    .venv/bin/python benchmarks/bench_isolation.py            # everything (~20 min on 2 busy cores)
    .venv/bin/python benchmarks/bench_isolation.py --smoke    # CNN only, a 20 s bomb, 2 s of load (CI)

Three figures, each beside its reference measured in the same run:

a. **Peak memory of a real ``genrify serve`` under decompression bombs.** The
   server (``--max-analyses 2``) and all its child processes (the decoder
   workers): the sum of their RSS (and PSS), sampled every 0.2 s from /proc,
   while K clients upload at once (K = 2 and 8) a 600 s, 8-channel, 192 kHz FLAC
   of silence (308 KB on disk, 3.7 GB as float32) — against the same K clients
   uploading an ordinary 30 s MP3. Each K gets a fresh server, warmed by one
   upload; the reference round runs first, then the bombs. With
   ``GENRIFY_DECODE_IN_PROCESS=1`` (decoding in the server's own process, the
   "before") only K = 2 runs, and only with enough free memory; a sampled
   total over :data:`RSS_CAP_BYTES` kills the server.
b. **One song, warm classifier (the small CNN), one core:** median ms of
   ``GenreClassifier.predict`` on a 30 s MP3 and M4A, decoding in a worker vs in
   process, alternating in the same loop.
c. **Serving throughput:** ``bench_serve.py``'s clients (its request mix, 8
   clients) against two servers started side by side, one decoding in workers,
   one in process; the load alternates between them in short rounds, so a busy
   machine weighs on both alike. Analyses/s and p95 latency in one table.

Both the small CNN (trained on synthetic clips, cached under
$GENRIFY_BENCH_CACHE) and the bundled default model are served. Songs and bombs
are generated here (never real recordings) and cached.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the bomb generator of tests/helpers

import _common as C  # noqa: E402
from bench_serve import ServeProcess, Tally, report, run_load  # noqa: E402

#: Upper bound on the sampled RSS of a server's process tree; above it the server is killed,
#: so that the in-process "before" run cannot take a shared machine down.
RSS_CAP_BYTES = 10 * 1024**3
#: Free memory (MemAvailable) needed before an in-process bomb run is started at all.
IN_PROCESS_MIN_AVAILABLE = 14 * 1024**3
#: The issue's target for the whole server (2 analysis slots) under bombs.
TARGET_BYTES = 1.5e9
IN_PROCESS = C.decode_in_process({})  # {"GENRIFY_DECODE_IN_PROCESS": "1"}


# --------------------------------------------------------------------------- inputs


def bomb_file(*, seconds: int) -> Path:
    """``seconds`` of 8-channel 192 kHz 24-bit FLAC silence, cached (600 s takes ~14 s to write)."""
    from helpers.badinput import _flac_8ch_192k

    path = C.CACHE / "isolation" / f"bomb-8ch-192k-{seconds}s.flac"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.flac")
        _flac_8ch_192k(tmp, seconds=seconds)
        os.replace(tmp, path)  # atomically: an interrupted run leaves no half bomb in the cache
    return path


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def serve_cache() -> Path:
    """One cache folder (demo library, index) for every server this script starts: written once."""
    path = C.CACHE / "isolation" / "serve"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- a. peak memory under bombs


class TreePeak:
    """Peak RSS and PSS (bytes) of ``pid`` and its descendants, sampled every ``interval`` seconds.

    ``reset()`` starts a new peak. Above ``cap`` the whole tree is killed (``.capped`` set).
    """

    def __init__(self, pid: int, *, interval: float = 0.2, cap: int = RSS_CAP_BYTES):
        self.pid, self.interval, self.cap = pid, interval, cap
        self.peak = self.peak_pss = 0
        self.capped = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def reset(self) -> tuple[int, int]:
        """Start a new peak; returns the tree's memory now."""
        now = C.tree_memory(self.pid)
        self.peak, self.peak_pss = now
        return now

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            rss, pss = C.tree_memory(self.pid)
            self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)
            if rss > self.cap and not self.capped:
                self.capped = True
                os.kill(self.pid, signal.SIGKILL)  # its decoder workers see stdin close and exit

    def __enter__(self) -> TreePeak:
        self.reset()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


async def upload_at_once(base: str, data: bytes, *, name: str, k: int, deadline_s: float) -> dict:
    """``k`` clients upload ``data`` at once; each retries after a 503 (honouring Retry-After) until answered."""
    import httpx

    outcomes: dict[str, int] = {}
    latencies: list[float] = []
    busy = [0]

    async def one(c) -> None:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < deadline_s:
            try:
                r = await c.post("/api/predict?images=false", files={"file": (name, data, "application/octet-stream")})
            except httpx.HTTPError as exc:
                key = f"{type(exc).__name__}"
                break
            if r.status_code == 503:
                busy[0] += 1
                await asyncio.sleep(float(r.headers.get("retry-after") or 1))
                continue
            body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
            key = f"{r.status_code}" + (f" {body.get('error', '')[:60]}" if r.status_code != 200 else "")
            break
        else:
            key = "gave up"
        latencies.append(time.perf_counter() - t0)
        outcomes[key] = outcomes.get(key, 0) + 1

    limits = httpx.Limits(max_connections=k, max_keepalive_connections=k)
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(deadline_s), limits=limits) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*(one(c) for _ in range(k)))
        wall = time.perf_counter() - t0
    return {"outcomes": outcomes, "wall_s": wall, "busy_503": busy[0], "max_latency_s": max(latencies)}


def memory_round(*, model: Path, k: int, cases: list[tuple[str, bytes, str]], env: dict[str, str],
                 cache_dir: Path, deadline_s: float) -> list[dict]:
    """One fresh server; for each case, in order, ``k`` uploads at once with the tree's peak memory sampled."""
    import httpx

    with _env(env):  # ServeProcess hands this process's environment to the server it starts
        server = ServeProcess(model, extra_args=("--max-analyses", "2", "--cache-size", "0"),
                              cache_dir=cache_dir).__enter__()
    rows = []
    try:
        warm = cases[0][1]  # one ordinary upload first: the model's first-call allocations are not the figure
        httpx.post(f"{server.base}/api/predict?images=false", files={"file": ("warm.mp3", warm, "audio/mpeg")},
                   timeout=300)
        with TreePeak(server.proc.pid) as peak:
            for label, data, name in cases:
                time.sleep(1.0)  # let memory freed by the previous round go back
                before, _ = peak.reset()
                res = asyncio.run(upload_at_once(server.base, data, name=name, k=k, deadline_s=deadline_s))
                time.sleep(0.5)  # one more sample after the last answer
                rows.append({"case": label, "k": k, "idle": before, "peak": peak.peak, "peak_pss": peak.peak_pss,
                             "capped": peak.capped, "alive": server.alive(), **res})
                if peak.capped or not server.alive():
                    break
    finally:
        server.__exit__()
    return rows


def bench_memory(*, models: list[tuple[str, Path]], ks: list[int], bomb_s: int, in_process_k: int | None,
                 song: bytes, deadline_s: float) -> None:
    bomb = bomb_file(seconds=bomb_s).read_bytes()
    print("\n-- a. peak memory of genrify serve + its children (sum of RSS / PSS every 0.2 s), --max-analyses 2")
    print(f"bomb: {bomb_s} s of 8-channel 192 kHz 24-bit FLAC silence, {len(bomb) / 1024:.0f} KiB "
          f"({bomb_s * 192000 * 8 * 4 / 1e9:.2f} GB as float32); reference: a 30 s MP3, {len(song) / 1024:.0f} KiB")
    cache_dir = serve_cache()
    header = (f"{'model':8} {'decoding':10} {'K':>2} {'upload':9} {'idle MB':>8} {'peak RSS MB':>11} "
              f"{'peak PSS MB':>11} {'x ref':>6} {'503s':>5} {'wall s':>7}  answers")
    print(header)
    for model_name, model in models:
        plan = [(k, "worker", {}) for k in ks]
        if in_process_k is not None:
            plan.insert(1, (in_process_k, "in process", IN_PROCESS))
        for k, mode, env in plan:
            if env and mem_available() < IN_PROCESS_MIN_AVAILABLE:
                print(f"{model_name:8} {mode:10} {k:2d} skipped: only {mem_available() / 2**30:.1f} GiB free")
                continue
            rows = memory_round(model=model, k=k, env=env, cache_dir=cache_dir, deadline_s=deadline_s,
                                cases=[("30 s song", song, "song.mp3"), ("bomb", bomb, "bomb.flac")])
            ref = rows[0]["peak"]
            for r in rows:
                answers = ", ".join(f"{key} x{n}" for key, n in sorted(r["outcomes"].items()))
                if r["capped"]:
                    answers += f"; KILLED at > {RSS_CAP_BYTES / 2**30:.0f} GiB"
                elif not r["alive"]:
                    answers += "; THE SERVER DIED"
                line = (f"{model_name:8} {mode:10} {k:2d} {r['case']:9} {r['idle'] / 1e6:8.0f} "
                        f"{r['peak'] / 1e6:11.0f} {r['peak_pss'] / 1e6:11.0f} {r['peak'] / ref:6.2f} "
                        f"{r['busy_503']:5d} {r['wall_s']:7.1f}  {answers}")
                if r["case"] == "bomb" and not env:
                    ok = r["peak"] <= TARGET_BYTES and not r["capped"] and r["alive"]
                    line += f"  [target <= 1.5 GB: {'met' if ok else 'NOT met'}]"
                print(line, flush=True)


# --------------------------------------------------------------------------- b. one song, warm classifier


def bench_song(*, model: Path, repeat: int) -> None:
    from genrify.predict import GenreClassifier

    limiter = C.limit_threads(1)  # noqa: F841  (held for the whole measurement)
    songs = [C.synthetic_song(C.CACHE / "predict" / f"song.{ext}", style="jazz", seed=7) for ext in ("mp3", "m4a")]
    clf = GenreClassifier.from_file(model)
    print(f"\n-- b. one 30 s song end to end (GenreClassifier.predict), small CNN, 1 core, warm; {repeat} repetitions")
    print(f"{'song':9} {'decoding in a worker':>26} {'in process':>26} {'worker - in process':>20} {'ratio':>6}")
    modes = {"worker": {}, "in process": IN_PROCESS}
    for song in songs:
        times: dict[str, list[float]] = {m: [] for m in modes}
        for mode, env in modes.items():  # a warm-up in each mode: the worker starts, the caches fill
            with _env(env):
                clf.predict(song, top_k=2)
        for i in range(repeat):
            order = list(modes) if i % 2 == 0 else list(modes)[::-1]  # alternate, so drift hits both alike
            for mode in order:
                # load_audio reads GENRIFY_DECODE_IN_PROCESS on each call: the switch operators use.
                with _env(modes[mode]):
                    t0 = C.clock()
                    clf.predict(song, top_k=2)
                    times[mode].append(C.clock() - t0)
        w, p = C.median(times["worker"]), C.median(times["in process"])
        print(f"{song.name:9} {C.summary_ms(times['worker']):>26} {C.summary_ms(times['in process']):>26} "
              f"{(w - p) * 1e3:+17.1f} ms {w / p:6.2f}")


class _env:
    """Set environment variables for a ``with`` block, then restore them."""

    def __init__(self, values: dict[str, str]):
        self.values = values

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------- c. serving throughput


def _merge(tallies: list[Tally]) -> Tally:
    out = Tally()
    for t in tallies:
        for kind, xs in t.latency.items():
            out.latency.setdefault(kind, []).extend(xs)
            out.ok[kind] = out.ok.get(kind, 0) + t.ok.get(kind, 0)
        out.busy += t.busy
        out.busy_without_retry_after += t.busy_without_retry_after
        out.errors += t.errors
    return out


def bench_serving(*, models: list[tuple[str, Path]], clients: int, seconds: float, rounds: int, song: bytes) -> None:
    print(f"\n-- c. serving: bench_serve.py's clients and request mix, {clients} clients, {seconds:g} s per decoding "
          f"mode in {rounds} alternating rounds; two servers side by side, default --max-analyses")
    cache_dir = serve_cache()
    summary = []
    for model_name, model in models:
        servers = {}
        try:
            for mode, env in (("worker", {}), ("in process", IN_PROCESS)):
                with _env(env):  # ServeProcess hands this process's environment to the server
                    # The same upload is sent again and again: with the analysis cache on, the
                    # comparison of decoding modes would measure cache hits.
                    servers[mode] = ServeProcess(model, extra_args=("--cache-size", "0"), cache_dir=cache_dir).__enter__()
            tallies: dict[str, list[Tally]] = {m: [] for m in servers}
            walls = {m: 0.0 for m in servers}
            for r in range(rounds):
                for mode in (list(servers) if r % 2 == 0 else list(servers)[::-1]):
                    tally, wall = asyncio.run(run_load(servers[mode].base, clients=clients, seconds=seconds / rounds,
                                                       upload=song, seed=r))
                    tallies[mode].append(tally)
                    walls[mode] += wall
        finally:
            for server in servers.values():
                server.__exit__()
        for mode in tallies:
            print(f"{model_name}, decoding {mode}:")
            figures = report(_merge(tallies[mode]), walls[mode])
            summary.append((model_name, mode, figures))
    print(f"\n{'model':8} {'decoding':10} {'analyses/s':>10} {'p50 ms':>7} {'p95 ms':>7} {'503s':>5} {'errors':>6} "
          f"{'x in process':>12}")
    ref = {m: f["predictions_per_s"] for m, mode, f in summary if mode == "in process"}
    for model_name, mode, f in summary:
        print(f"{model_name:8} {mode:10} {f['predictions_per_s']:10.1f} {1e3 * f['p50_s']:7.0f} "
              f"{1e3 * f['p95_s']:7.0f} {f['busy_503']:5d} {f['errors']:6d} "
              f"{f['predictions_per_s'] / ref[model_name]:12.2f}")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="CNN only, a 20 s bomb, K = 2, 2 s of load (CI)")
    ap.add_argument("--only", choices=("memory", "song", "serve"), help="run one of the three figures")
    ap.add_argument("--repeat", type=int, default=15, help="b: timed repetitions per song and mode (default 15)")
    ap.add_argument("--seconds", type=float, default=20.0, help="c: seconds of load per decoding mode (default 20)")
    ap.add_argument("--clients", type=int, default=8, help="c: concurrent clients (default 8)")
    args = ap.parse_args(argv)

    import warnings

    warnings.filterwarnings("ignore", message="Generating overly large repr")
    cnn = C.train_demo_model(C.CACHE / "models" / "cnn.genrify", name="cnn")
    bundled = C.REPO / "src" / "genrify" / "assets" / "default.genrify"
    models = [("cnn", cnn)] + ([("default", bundled)] if bundled.is_file() and not args.smoke else [])
    if args.smoke:
        ks, bomb_s, in_process_k, repeat, seconds, clients, rounds = [2], 20, None, 2, 2.0, 2, 1
    else:
        ks, bomb_s, in_process_k, repeat, seconds, clients, rounds = [2, 8], 600, 2, args.repeat, args.seconds, \
            args.clients, 2
    song = C.synthetic_song(C.CACHE / "serve-upload-30s.mp3", style="metal", seed=7, duration=30.0).read_bytes()
    C.machine_header("decoding isolation: memory under bombs, time per song, serving", librosa=False, extra={
        "models": "; ".join(f"{n} = {p}" for n, p in models),
        "load": f"{os.getloadavg()[0]:.2f} (1-min load average before the run; other work on the machine shows here)",
        "memory": f"{mem_available() / 2**30:.1f} GiB available",
    })
    if args.only in (None, "memory"):
        bench_memory(models=models, ks=ks, bomb_s=bomb_s, in_process_k=in_process_k, song=song,
                     deadline_s=120 if args.smoke else 900)
    if args.only in (None, "song"):
        bench_song(model=cnn, repeat=repeat)
    if args.only in (None, "serve"):
        bench_serving(models=models, clients=clients, seconds=seconds, rounds=rounds, song=song)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
