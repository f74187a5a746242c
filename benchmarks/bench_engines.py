"""The default model on its two inference engines: NumPy (no torch) vs torch, CPU per 30 s clip.

    .venv/bin/python benchmarks/bench_engines.py            # 5 rounds
    .venv/bin/python benchmarks/bench_engines.py --smoke    # 1 round

What the default model's budget counts: decode + resample, musicnn log-mel, the
network on every window (full mode: 10 patches of a 30 s clip; fast mode: 3),
heads and signal checks — ``GenreClassifier.analyse`` on a 30 s MP3, CPU time
(``time.process_time``) on one thread (``OMP_NUM_THREADS=1``), with the decoder
in the same process (``GENRIFY_DECODE_IN_PROCESS=1``, set by
``_common.decode_in_process``) so that its CPU time is counted too (genrify
decodes in a worker process by default). Each engine runs in its own fresh
process, as a user's process would (``GENRIFY_ENGINE=numpy`` / ``torch``): the
NumPy engine's process never imports torch, so it also uses NumPy's FFT for the
signal checks. Rounds alternate the engines; the torch engine is the reference
measured in the same run. Also: the wall time of the same analysis on every
core, and how much less CPU the fast mode's whole analysis takes than the full
mode's on each engine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

ENGINES = ("numpy", "torch")


def worker(song: str, *, fast: bool, reps: int) -> None:
    """In a fresh process: time ``reps`` analyses of ``song`` after one warm-up; print JSON."""
    from genrify.predict import load_classifier

    clf = load_classifier(None, fast=True if fast else None)
    clf.analyse(song)
    cpu, wall = [], []
    for _ in range(reps):
        c0, w0 = time.process_time(), time.perf_counter()
        clf.analyse(song)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    print(json.dumps({"cpu": cpu, "wall": wall, "torch_loaded": "torch" in sys.modules,
                      "engine": clf.runtime.engine}))


def run(song: Path, *, engine: str, fast: bool, reps: int, threads: int | None) -> dict:
    env = C.decode_in_process({**os.environ, "GENRIFY_ENGINE": engine})
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    else:
        env.pop("OMP_NUM_THREADS", None)
    cmd = [sys.executable, __file__, "--worker", str(song), "--reps", str(reps)] + (["--fast"] if fast else [])
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{engine} worker failed: {out.stderr.strip()[-400:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3, help="analyses per process and round")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--fast", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, fast=args.fast, reps=args.reps)
        return 0
    if args.smoke:
        args.rounds, args.reps = 1, 1
    C.machine_header("default model: NumPy engine vs torch engine, one analysis of a 30 s MP3", librosa=False,
                     extra={"load before": " ".join(f"{x:.2f}" for x in os.getloadavg())})
    song = C.synthetic_song(C.CACHE / "predict" / "song.mp3", style="jazz", seed=7)
    cpu_by_mode: dict[str, dict[str, float]] = {}
    for fast, target in ((False, 0.25), (True, 0.06)):
        mode = "fast" if fast else "full"
        cpu: dict[str, list[float]] = {e: [] for e in ENGINES}
        wall_all: dict[str, list[float]] = {e: [] for e in ENGINES}
        for _ in range(args.rounds):
            for engine in ENGINES:
                one = run(song, engine=engine, fast=fast, reps=args.reps, threads=1)
                if one["engine"] != engine or one["torch_loaded"] != (engine == "torch"):
                    raise SystemExit(f"{engine} worker ran the {one['engine']} engine (torch loaded: "
                                     f"{one['torch_loaded']})")
                cpu[engine] += one["cpu"]
                wall_all[engine] += run(song, engine=engine, fast=fast, reps=args.reps, threads=None)["wall"]
        med = {e: statistics.median(v) for e, v in cpu.items()}
        for engine in ENGINES:
            print(f"{mode} mode, {engine} engine, 1 thread: CPU per 30 s clip {C.summary_ms(cpu[engine])}"
                  f"  (target <= {target * 1e3:.0f} ms)")
        print(f"{mode} mode: numpy / torch CPU = {med['numpy'] / med['torch']:.2f}x")
        print(f"{mode} mode, every core ({os.cpu_count()}), wall: numpy {C.summary_ms(wall_all['numpy'])}; "
              f"torch {C.summary_ms(wall_all['torch'])}")
        cpu_by_mode[mode] = med
    print("fast mode vs full mode, CPU per 30 s clip on 1 thread (the whole analysis): full / fast = "
          + ", ".join(f"{e} engine {cpu_by_mode['full'][e] / cpu_by_mode['fast'][e]:.2f}x" for e in ENGINES))
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
