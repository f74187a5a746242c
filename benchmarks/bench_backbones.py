"""What each backbone configuration costs: CPU per 30 s song on one thread, decode included.

    .venv/bin/python benchmarks/bench_backbones.py                      # 5 rounds x 3 reps
    .venv/bin/python benchmarks/bench_backbones.py --smoke              # 1 round x 1 rep
    .venv/bin/python benchmarks/bench_backbones.py --only "musicnn full,mn04 fast" --json /tmp/b.json

What is counted: CPU time (``time.process_time``) of one analysis of a 30 s MP3
(``_common.synthetic_song``, the song bench_engines uses), on one thread
(``OMP_NUM_THREADS=1``), with the decoder in the measuring process
(``GENRIFY_DECODE_IN_PROCESS=1``, ``_common.decode_in_process``) so that its CPU
counts too. One analysis of a backbone row is ``genrify.audio.load_audio(song,
sr=16000 or 32000)`` then ``MusicnnEmbedder.embed(y, sr=)``: the resampling each
backbone needs (musicnn hears 16 kHz, mn04 32 kHz), its front end (musicnn's
log-mel, mn04's Kaldi mels) and its network on every window (full: up to 10
windows of 3 s, ``max_patches=10``; fast: 3). The musicnn rows decode at 16 kHz,
the mn04 and both-backbone rows at 32 kHz. ``default model full`` /
``default model --fast`` time the shipped default model's whole
``GenreClassifier.analyse`` (``load_classifier(None, fast=None / True)``,
``GENRIFY_ENGINE=torch``): decode, embeddings, heads and signal checks. The two
``decode`` rows time ``load_audio`` alone at each rate, so the reader sees what
the backbones add to it. Not counted: process start, imports, loading weights,
the one warm-up analysis each process runs before its ``reps`` timed ones.

Each configuration runs in its own fresh process per round; rounds alternate
the configurations (the order reverses every other round). ``musicnn full``
(today's default's backbone cost) is the reference: every ratio is against its
median measured in the same run. If the shipped model cannot be loaded (e.g.
being retrained), its two rows are skipped with a one-line note.
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

REFERENCE = "musicnn full"
#: name -> (decode rate, MusicnnEmbedder keyword arguments | None for decode alone | "fast"/"full" for the
#: default model's whole analysis)
CONFIGS: dict[str, tuple[int | None, object]] = {
    "decode 16 kHz": (16000, None),
    "decode 32 kHz": (32000, None),
    "musicnn full": (16000, {"max_patches": 10}),
    "musicnn fast": (16000, {"max_patches": 3}),
    "mn04 full": (32000, {"max_patches": 10, "also": ("mn04",), "musicnn": False}),
    "mn04 fast": (32000, {"max_patches": 3, "also": ("mn04",), "musicnn": False}),
    "both full": (32000, {"max_patches": 10, "also": ("msd_musicnn", "mn04")}),
    "both fast": (32000, {"max_patches": 3, "also": ("msd_musicnn", "mn04")}),
    "default model full": (None, "full"),
    "default model --fast": (None, "fast"),
}


def worker(name: str, song: str, *, reps: int) -> None:
    """In a fresh process: one warm-up, then ``reps`` timed analyses of ``song`` for ``name``; print JSON."""
    from genrify.audio import load_audio

    rate, spec = CONFIGS[name]
    info: dict = {}
    if spec is None:
        def analyse():
            load_audio(song, sr=rate)
    elif isinstance(spec, dict):
        from genrify.models.embedder import MusicnnEmbedder

        emb = MusicnnEmbedder(**spec)
        want = ({"msd_musicnn"} if spec.get("musicnn", True) else set()) | set(spec.get("also", ()))

        def analyse():
            y, sr = load_audio(song, sr=rate)
            out = emb.embed(y, sr=sr)
            info.update(windows=len(out.starts), backbones=sorted(out.taggrams))
    else:
        from genrify.predict import load_classifier

        try:
            clf = load_classifier(None, fast=True if spec == "fast" else None)
            clf.analyse(song)
        except Exception as exc:  # noqa: BLE001 - the model file may be mid-retrain: report, skip the row
            first = (str(exc).splitlines() or [""])[0][:160]
            print(json.dumps({"skip": f"{type(exc).__name__}: {first}"}))
            return
        info.update(engine=clf.runtime.engine)

        def analyse():
            clf.analyse(song)
    analyse()
    cpu = []
    for _ in range(reps):
        c0 = time.process_time()
        analyse()
        cpu.append(time.process_time() - c0)
    if isinstance(spec, dict) and set(info["backbones"]) != want:
        raise SystemExit(f"{name}: computed {info['backbones']}, expected {sorted(want)}")
    if "torch" in sys.modules:
        import torch

        info["threads"] = torch.get_num_threads()
    print(json.dumps({"cpu": cpu, **info}))


def run(name: str, song: Path, *, reps: int) -> dict:
    env = C.decode_in_process({**os.environ, "OMP_NUM_THREADS": "1", "GENRIFY_ENGINE": "torch"})
    cmd = [sys.executable, __file__, "--worker", name, "--song", str(song), "--reps", str(reps)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{name} worker failed: {out.stderr.strip()[-400:]}")
    one = json.loads(out.stdout.strip().splitlines()[-1])
    if one.get("threads", 1) != 1:
        raise SystemExit(f"{name} worker ran torch on {one['threads']} threads, not 1")
    if one.get("engine", "torch") != "torch":
        raise SystemExit(f"{name} worker ran the {one['engine']} engine, not torch")
    return one


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3, help="timed analyses per process and round")
    ap.add_argument("--smoke", action="store_true", help="1 round, 1 rep: checks that it runs")
    ap.add_argument("--only", help="comma-separated configuration names: " + ", ".join(CONFIGS))
    ap.add_argument("--json", type=Path, help="write the medians (ms) and ratios here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--song", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.song, reps=args.reps)
        return 0
    if args.smoke:
        args.rounds, args.reps = 1, 1
    names = list(CONFIGS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in CONFIGS]
        if unknown:
            ap.error(f"unknown configuration(s) {unknown}; choose from: {', '.join(CONFIGS)}")
    C.machine_header("backbone configurations: CPU per 30 s MP3 on 1 thread, decode included", librosa=False,
                     extra={"load before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                            "rounds x reps": f"{args.rounds} x {args.reps}"})
    song = C.synthetic_song(C.CACHE / "predict" / "song.mp3", style="jazz", seed=7)
    cpu: dict[str, list[float]] = {n: [] for n in names}
    notes: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for r in range(args.rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            if name in skipped:
                continue
            one = run(name, song, reps=args.reps)
            if "skip" in one:
                skipped[name] = one["skip"]
                print(f"{name}: skipped, the shipped default model could not be loaded ({one['skip']})")
                continue
            cpu[name] += one.pop("cpu")
            notes[name] = one
    med = {n: statistics.median(v) * 1e3 for n, v in cpu.items() if v}
    ref = med.get(REFERENCE)
    for name in names:
        if name not in med:
            continue
        ratio = f"{med[name] / ref:.2f}x {REFERENCE}" if ref else f"(no ratio: {REFERENCE} not measured)"
        extra = f"; {notes[name]['windows']} windows" if "windows" in notes.get(name, {}) else ""
        print(f"{name:<21} CPU per 30 s song, 1 thread: {C.summary_ms(cpu[name])}  = {ratio}{extra}")
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "median_cpu_ms": med, "reference": REFERENCE,
            "ratio_to_reference": {n: m / ref for n, m in med.items()} if ref else {},
            "skipped": skipped, "rounds": args.rounds, "reps": args.reps, "commit": C.git_commit(),
            "cpu": f"{os.cpu_count()} cores, {C.cpu_model()}"}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
