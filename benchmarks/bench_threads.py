"""One or all cores for one analysis, on an idle machine and beside another busy process.

    .venv/bin/python benchmarks/bench_threads.py            # 7 repetitions per setting
    .venv/bin/python benchmarks/bench_threads.py --smoke    # 1 repetition

The musicnn network on the 10 patches of a 30 s clip, wall time, with torch's
intra-op threads set to 1 and to every core, in the same process, alternating:
first with nothing else running, then beside one busy process per core minus
one (a Python loop that never sleeps: what another job on a shared machine
looks like). The figures say whether ``genrify.predict.batch.free_cores`` —
the cores the load average leaves free, at least one — is the right choice.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402


def _spin() -> None:
    while True:
        pass


def _times(model, x, threads: list[int], reps: int) -> dict[int, list[float]]:
    import torch

    out: dict[int, list[float]] = {t: [] for t in threads}
    with torch.inference_mode():
        for t in threads:
            torch.set_num_threads(t)
            model(x)  # warm-up at this thread count
        for _ in range(reps):
            for t in threads:
                torch.set_num_threads(t)
                t0 = time.perf_counter()
                model(x)
                out[t].append(time.perf_counter() - t0)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    reps = 1 if args.smoke else args.reps
    import torch

    from genrify.models.musicnn import load_musicnn

    C.machine_header("intra-op threads for one analysis: idle vs beside busy processes", librosa=False)
    cores = os.cpu_count() or 1
    threads = sorted({1, cores})
    model = load_musicnn()
    x = torch.randn(10, 187, 96, generator=torch.Generator().manual_seed(0))
    hogs_n = max(1, cores - 1)
    for label, hogs in (("idle", 0), (f"beside {hogs_n} busy process(es)", hogs_n)):
        procs = [multiprocessing.get_context("spawn").Process(target=_spin, daemon=True) for _ in range(hogs)]
        for p in procs:
            p.start()
        try:
            time.sleep(1.0 if hogs else 0.0)
            print(f"\n{label}: load average before {os.getloadavg()[0]:.2f}")
            res = _times(model, x, threads, reps)
        finally:
            for p in procs:
                p.terminate()
                p.join()
        for t in threads:
            print(f"  {t} thread(s): {C.summary_ms(res[t])}")
        if len(threads) > 1:
            print(f"  {cores} threads / 1 thread, median wall: {C.median(res[cores]) / C.median(res[1]):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
