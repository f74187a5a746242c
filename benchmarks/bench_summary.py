"""Every figure the README quotes, measured again: each benchmark run several times, its headline lines kept.

    .venv/bin/python benchmarks/bench_summary.py                     # every benchmark, 3 runs each
    .venv/bin/python benchmarks/bench_summary.py --runs 2 --only musicnn_tf,serve
    .venv/bin/python benchmarks/bench_summary.py --smoke             # the machinery only: bench_startup --smoke, once

Each benchmark script measures genrify and its reference side by side in one
run and prints both with their ratio; this script only runs them (one after
the other, never two at once), and for every run prints the 1-minute load
average before and after it and the lines that carry the figures. Several
runs of the same command show the run-to-run spread the README states beside
each figure. Runs go round by round: every benchmark once, then every one again. The full
output of every run is kept under ``--logs`` (default
``/tmp/genrify-bench/summary``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

HERE = Path(__file__).resolve().parent

#: name → (benchmarks/bench_<script>.py, its arguments, extra environment, regex of the lines that carry figures).
BENCHMARKS: dict[str, tuple[str, list[str], dict[str, str], str]] = {
    "musicnn_tf": ("musicnn_tf", ["--threads", "1"], {"OMP_WAIT_POLICY": "PASSIVE"},
                   r"^\| 1 \||thread\(s\):|int8 vs genrify full"),
    "musicnn": ("musicnn", [], {}, r"^  (full|fast|network)"),
    "int8": ("int8", ["--no-accuracy"], {}, r"^  (float32|int8|bfloat16)|max \|tag|machine decision"),
    "predict": ("predict", [], {}, r"end to end|ratio|librosa pipeline"),
    "features": ("features", ["--rounds", "2"], {}, r"^-- |^ratio|max \|difference\|"),
    "library": ("library", ["--n", "400"], {}, r"^build,|^predict,|scaling|^reference"),
    "serve": ("serve", ["--seconds", "60"], {}, r"throughput|latency|503|cache|cached"),
    "serve-new": ("serve", ["--seconds", "60", "--new-songs"], {}, r"throughput|latency|503|cache|cached|new song"),
    "serve-no-cache": ("serve", ["--seconds", "60", "--no-cache"], {}, r"throughput|latency|503|cache|cached"),
    "serve-fast-new": ("serve", ["--seconds", "60", "--fast", "--new-songs"], {},
                       r"throughput|latency|503|cache|cached|new song"),
    "startup": ("startup", ["--runs", "5"], {}, r"--help:|cold|reference|GENRIFY_ENGINE"),
    "engines": ("engines", [], {}, r"mode"),
    "threads": ("threads", [], {}, r"^idle|^beside|thread"),
}


def load1() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def run_one(name: str, *, smoke: bool, logs: Path, index: int) -> bool:
    """Run ``benchmarks/bench_<name>.py`` once and print its figure lines; whether it exited 0."""
    script, args, env, pattern = BENCHMARKS[name]
    cmd = [sys.executable, str(HERE / f"bench_{script}.py"), *(["--smoke"] if smoke else args)]
    before = load1()
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    elapsed = time.monotonic() - t0
    log = logs / f"{name}-{index}.log"
    log.write_text(proc.stdout + proc.stderr)
    shown = " ".join(f"{k}={v}" for k, v in env.items())
    print(f"\n## {name}, run {index}: {shown + ' ' if shown else ''}{Path(sys.executable).name} "
          f"benchmarks/bench_{script}.py {' '.join(cmd[2:])}")
    print(f"load average (1 min) before {before}, after {load1()}; {elapsed:.0f} s; exit {proc.returncode}; "
          f"full output: {log}")
    for line in proc.stdout.splitlines():
        if re.search(pattern, line):
            print("  " + line.strip())
    if proc.returncode != 0:
        print("  " + "\n  ".join((proc.stdout + proc.stderr).strip().splitlines()[-5:]))
    return proc.returncode == 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs of each benchmark (default 3)")
    ap.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    ap.add_argument("--logs", type=Path, default=C.CACHE / "summary", help="folder for each run's full output")
    ap.add_argument("--smoke", action="store_true", help="the machinery only: bench_startup --smoke, once")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(BENCHMARKS)
    if args.smoke:
        names, args.runs = ["startup"], 1
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(unknown)}")
    args.logs.mkdir(parents=True, exist_ok=True)
    print(f"== every README figure, {args.runs} run(s) each")
    print(f"machine: {os.cpu_count()} cores (nproc), {C.cpu_model()}; commit {C.git_commit()}")
    # Round by round (every benchmark once, then again): a slow drift of the machine's load
    # spreads over all benchmarks instead of landing on one.
    ok = [run_one(name, smoke=args.smoke, logs=args.logs, index=i) for i in range(1, args.runs + 1)
          for name in names]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
