"""Start-up: ``genrify --help`` wall time and a cold ``genrify predict`` on one 30 s MP3.

    .venv/bin/python benchmarks/bench_startup.py               # 10 runs each
    .venv/bin/python benchmarks/bench_startup.py --no-predict  # genrify --help and its references only
    .venv/bin/python benchmarks/bench_startup.py --smoke       # 2 runs each

Each run is a fresh process (``genrify`` console script of this environment).
``genrify --help`` is timed in the same loop as its references, alternating
with them: a bare ``python -c pass`` (the interpreter's own start) and
``python -c 'import numpy'`` (the cheapest heavy import). ``--help`` must not
import any heavy library: the script lists which of them the CLI's help path
loads. ``predict`` uses the bundled default model when the
installation has one, else a small CNN trained on synthetic clips (cached).

The default model predicts on the NumPy engine, without importing torch
(:func:`genrify.predict.runtime.choose_engine`); the same cold ``predict`` with
``GENRIFY_ENGINE=torch`` is the reference measured in the same run. Where a cold
``predict`` goes: fresh processes that time, in turn, importing genrify's
prediction code, loading the classifier, and analysing the song (on each
engine); and, for comparison, ``import torch`` alone and the imports the NumPy
engine needs (numpy, soundfile, soxr, PyAV, safetensors).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

HEAVY = ("torch", "numpy", "librosa", "scipy", "sklearn", "soundfile", "soxr", "av", "matplotlib", "fastapi",
         "uvicorn", "httpx", "safetensors", "tqdm")


def wall(cmd: list[str], *, env: dict | None = None) -> float:
    t = C.clock()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = C.clock() - t
    if proc.returncode not in (0,):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
    return elapsed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--model", type=Path, help="model file for predict (default: bundled, else a small CNN)")
    ap.add_argument("--no-predict", action="store_true", help="time genrify --help and its references only")
    ap.add_argument("--smoke", action="store_true", help="2 runs each")
    args = ap.parse_args(argv)
    if args.smoke:
        args.runs = 2
    C.machine_header("start-up: fresh processes", librosa=False)
    exe = Path(sys.executable).with_name("genrify")
    if not exe.exists():
        raise SystemExit(f"{exe}: console script missing (pip install -e .)")

    probe = ("import sys; from genrify.cli import build_parser; build_parser().format_help(); "
             f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    heavy = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    print(f"heavy modules imported by 'genrify --help': {', '.join(heavy) or 'none'}")

    numpy_ref = "python -c 'import numpy'"
    help_cmds = {"genrify --help": [str(exe), "--help"], "bare python": [sys.executable, "-c", "pass"],
                 numpy_ref: [sys.executable, "-c", "import numpy"]}
    for cmd in help_cmds.values():  # once untimed: every command starts from the same file cache
        wall(cmd)
    help_t: dict[str, list[float]] = {name: [] for name in help_cmds}
    for _ in range(args.runs):  # alternating, so all three see the same machine
        for name, cmd in help_cmds.items():
            help_t[name].append(wall(cmd))
    med = {name: C.median(t) for name, t in help_t.items()}
    print(f"genrify --help: {C.summary_ms(help_t['genrify --help'])}  (target <= 300 ms)")
    print(f"  reference, same loop (fresh processes, alternating): bare python {C.summary_ms(help_t['bare python'])}; "
          f"{numpy_ref} {C.summary_ms(help_t[numpy_ref])}; genrify --help takes "
          f"{(med['genrify --help'] - med['bare python']) * 1e3:.1f} ms more than bare python, "
          f"{med['genrify --help'] / med[numpy_ref]:.2f}x {numpy_ref}")
    if args.no_predict:
        return 0 if not heavy else 1

    from genrify.predict import default_model_path

    model = args.model
    if model is None and not default_model_path().is_file():
        model = C.train_demo_model(C.CACHE / "models" / "cnn.genrify", name="cnn")
    song = C.synthetic_song(C.CACHE / "predict" / "song.mp3", style="jazz", seed=7)
    cmd = [str(exe), "predict", str(song)] + (["--model", str(model)] if model else [])
    print(f"model: {model or default_model_path()} ; command: genrify predict {song.name}"
          + (f" --model {model.name}" if model else ""))
    torch_env = {**os.environ, "GENRIFY_ENGINE": "torch"}
    for mode, extra in (("", []), (" --fast", ["--fast"])):
        pred_t, torch_pred_t = [], []
        for _ in range(args.runs):  # alternating, so both see the same machine
            pred_t.append(wall(cmd + extra))
            torch_pred_t.append(wall(cmd + extra, env=torch_env))
        print(f"cold genrify predict{mode}: {C.summary_ms(pred_t)}  (target <= 1500 ms)")
        print(f"  the same with GENRIFY_ENGINE=torch: {C.summary_ms(torch_pred_t)}; "
              f"ratio {C.median(torch_pred_t) / C.median(pred_t):.2f}x")
    torch_t = [wall([sys.executable, "-c", "import torch"]) for _ in range(args.runs)]
    lean_t = [wall([sys.executable, "-c", LEAN_IMPORTS]) for _ in range(args.runs)]
    print(f"for reference: python -c 'import torch' {C.summary_ms(torch_t)}; "
          f"the imports of an inference path without torch ({LEAN_IMPORTS[7:]}) {C.summary_ms(lean_t)}")
    for engine in ("auto", "torch"):
        runs = [stage_times(song, model, engine=engine) for _ in range(args.runs)]
        print(f"  GENRIFY_ENGINE={engine}: the {runs[0][1]} engine, torch imported: {runs[0][2]}")
        for i, name in enumerate(("import genrify.predict", "load the classifier", "analyse the song")):
            print(f"    cold predict, {name}: {C.summary_ms([s[0][i] for s in runs])}")
    return 0 if not heavy else 1


LEAN_IMPORTS = "import numpy, soundfile, soxr, av, safetensors.numpy"
_STAGES = """
import sys, time
t0 = time.perf_counter()
from genrify.predict import load_classifier
t1 = time.perf_counter()
clf = load_classifier(sys.argv[2] if len(sys.argv) > 2 else None, songs=1)  # as predict one.mp3
t2 = time.perf_counter()
clf.analyse(sys.argv[1])
t3 = time.perf_counter()
engine = getattr(getattr(clf.backend, "embedder", None), "engine", "torch")
print(t1 - t0, t2 - t1, t3 - t2, engine, "torch" in sys.modules)
"""


def stage_times(song: Path, model: Path | None, *, engine: str) -> tuple[list[float], str, bool]:
    """Seconds to import genrify's prediction code, load the classifier and analyse ``song``, in a fresh
    process with ``GENRIFY_ENGINE=engine``; the engine it ran and whether torch was imported."""
    cmd = [sys.executable, "-c", _STAGES, str(song)] + ([str(model)] if model else [])
    env = {**os.environ, "GENRIFY_ENGINE": engine}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    *times, used, torch_loaded = proc.stdout.split()
    return [float(x) for x in times], used, torch_loaded == "True"


if __name__ == "__main__":
    sys.exit(main())
