"""Soak test: a real ``genrify serve`` under steady load for minutes; does its memory keep growing?

    python tools/soak_serve.py                 # 10 minutes, 8 clients
    python tools/soak_serve.py --minutes 2 --clients 4

The server, model choice and request mix are those of ``benchmarks/bench_serve.py``
(uploads of a 30 s MP3, song predictions and searches against the demo
library, 127.0.0.1 only). The server's resident memory (VmRSS of the serve
process) is sampled every ``--interval`` seconds (default 10). The first
``--warmup`` seconds (default 60) of load are the warm-up: allocator arenas,
torch's kernels and caches fill up there, so growth is measured from the first
sample after it to the end of the run. RSS moves by tens of MiB between
samples (requests in flight hold decoded audio), so growth compares the median
of the first three samples after the warm-up with the median of the last three;
the raw first/last/max samples are printed too. Target: growth < 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

# The serving harness and machine facts are the benchmarks' (benchmarks/_common.py, bench_serve.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _common import CACHE, machine_header, synthetic_song  # noqa: E402
from bench_serve import ServeProcess, Tally, client_loop, examples, pick_model, report  # noqa: E402


async def soak(server: ServeProcess, *, clients: int, seconds: float, interval: float, upload: bytes,
               seed: int = 0) -> tuple[Tally, float, list[tuple[float, int]]]:
    import httpx

    songs = await examples(server.base)
    tally = Tally()
    samples: list[tuple[float, int]] = []
    t0 = time.monotonic()
    deadline = t0 + seconds

    async def sampler():
        while True:
            now = time.monotonic()
            samples.append((now - t0, server.rss()))
            print(f"  t={now - t0:6.0f} s  RSS {samples[-1][1] / 2**20:7.1f} MiB  "
                  f"analyses ok {sum(len(tally.latency.get(k, [])) for k in ('upload', 'predict'))}  "
                  f"503 {tally.busy}  errors {len(tally.errors)}", flush=True)
            if now >= deadline:
                return
            await asyncio.sleep(min(interval, max(0.0, deadline - now)))

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=server.base, timeout=httpx.Timeout(60.0), limits=limits) as c:
        await asyncio.gather(sampler(), *(client_loop(c, seed=seed * 1000 + i, deadline=deadline, songs=songs,
                                                      upload=upload, images=False, tally=tally)
                                          for i in range(clients)))
    return tally, time.monotonic() - t0, samples


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between RSS samples (default 10)")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds of load before growth is measured")
    ap.add_argument("--model", help="model file (default: the bundled model, else a synthetic-trained CNN)")
    args = ap.parse_args(argv)

    model, which = pick_model(args.model)
    upload = synthetic_song(CACHE / "serve-upload-30s.mp3", style="metal", seed=7, duration=30.0).read_bytes()
    seconds = args.minutes * 60
    warmup = min(args.warmup, seconds / 4)
    machine_header("serving soak test (genrify serve on 127.0.0.1)", librosa=False, extra={
        "model": which, "clients": args.clients, "minutes": args.minutes, "RSS sampled every": f"{args.interval:g} s",
        "load": f"{os.getloadavg()[0]:.2f} (1-min load average before the run)",
    })
    # One upload is sent again and again: without --cache-size 0 the soak would mostly serve cache hits.
    with ServeProcess(model, extra_args=("--cache-size", "0")) as server:
        idle = server.rss()
        print(f"server: {server.command} (pid {server.proc.pid}); RSS idle after start {idle / 2**20:.0f} MiB")
        tally, wall, samples = asyncio.run(soak(server, clients=args.clients, seconds=seconds,
                                                interval=args.interval, upload=upload))
        alive = server.alive()
    report(tally, wall)
    after_warmup = [rss for t, rss in samples if t >= warmup]
    after_warmup = after_warmup or [samples[-1][1]]
    start, end = statistics.median(after_warmup[:3]), statistics.median(after_warmup[-3:])
    peak = max(rss for _, rss in samples)
    growth = 100.0 * (end - start) / start
    peak_growth = 100.0 * (peak - start) / start
    print(f"RSS samples: idle {idle / 2**20:.0f} MiB; first after {warmup:.0f} s warm-up "
          f"{after_warmup[0] / 2**20:.0f} MiB; last {samples[-1][1] / 2**20:.0f} MiB; max {peak / 2**20:.0f} MiB")
    print(f"RSS start (median of 3) {start / 2**20:.0f} MiB; end (median of 3) {end / 2**20:.0f} MiB")
    print(f"growth start -> end: {growth:+.1f} %  (max over start: {peak_growth:+.1f} %); target < 10 %: "
          f"{'met' if growth < 10 else 'NOT met'}; server alive: {alive}")
    return 0 if alive and growth < 10 and not tally.errors else 1


if __name__ == "__main__":
    sys.exit(main())
