"""Library throughput: dataset build and batch prediction over N 30 s MP3s, 1 and 2 worker processes.

    .venv/bin/python benchmarks/bench_library.py             # N = 2000
    .venv/bin/python benchmarks/bench_library.py --n 500
    .venv/bin/python benchmarks/bench_library.py --smoke     # N = 10

The corpus (44.1 kHz, 30 s, MP3, ROOT/<genre>/*.mp3) is generated once, untimed,
under $GENRIFY_BENCH_CACHE (default /tmp/genrify-bench/library) and reused. To
keep generation short, 25 clips are synthesised and encoded (5 per style) and
every further file is a copy of one with its own ID3 title, so each file has
its own content hash and is decoded and analysed on its own (the build skips
nothing). Each build starts from an empty dataset folder. Batch prediction is
``genrify.predict.analyse_many`` (what ``genrify predict FOLDER --workers N``
runs: N processes, each loads the CNN once and uses one torch thread; 1 worker
runs in this process); its rate is given with and without the start-up (until
the first answer). As a reference for the scaling, two independent processes
(no pool) then predict halves of the first 300 songs side by side. Peak memory is the largest resident set of this process plus all its
children, sampled every 50 ms from /proc (RSS counts shared libraries once per
process; PSS shares them out, the better measure of what the processes cost).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

_REFERENCE = """
import sys, time, torch
torch.set_num_threads(1)
from genrify.predict import GenreClassifier
clf = GenreClassifier.from_file(sys.argv[1])
paths = sys.argv[2:]
clf.predict(paths[0])
t = time.perf_counter()
for p in paths[1:]:
    clf.predict(p)
print((len(paths) - 1) / (time.perf_counter() - t))
"""


def corpus(n: int) -> Path:
    from mutagen.id3 import ID3, TIT2
    from mutagen.mp3 import MP3

    from genrify.sources.synthetic import STYLES

    root = C.CACHE / "library"
    base = C.CACHE / "library-base"
    for i in range(n):
        style = STYLES[i % len(STYLES)]
        path = root / style / f"song-{i:05d}.mp3"
        if path.is_file():
            continue
        src = C.synthetic_song(base / f"{style}-{(i // len(STYLES)) % 5}.mp3", style=style, seed=i % 25)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.copyfile(src, tmp)
        audio = MP3(tmp)
        if audio.tags is None:
            audio.add_tags()
        assert isinstance(audio.tags, ID3)
        audio.tags.add(TIT2(encoding=3, text=f"Library song {i}"))
        audio.save()
        tmp.replace(path)
    return root


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="number of songs (default 2000)")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--smoke", action="store_true", help="10 songs")
    args = ap.parse_args(argv)
    if args.smoke:
        args.n = 10
    from genrify.config import FeatureConfig
    from genrify.dataset.build import build_dataset
    from genrify.predict import analyse_many

    limiter = C.limit_threads(1)  # noqa: F841 (the 1-worker build runs in this process)
    C.machine_header("library: dataset build and batch prediction", librosa=False)
    root = corpus(args.n)
    from genrify.sources.synthetic import STYLES

    paths = [str(root / STYLES[i % len(STYLES)] / f"song-{i:05d}.mp3") for i in range(args.n)]
    manifest = Path(tempfile.mkdtemp(prefix="genrify-bench-")) / "manifest.csv"
    manifest.write_text("path,genre\n" + "".join(f"{p},{Path(p).parent.name}\n" for p in paths))
    model = C.train_demo_model(C.CACHE / "models" / "cnn.genrify", name="cnn")
    print(f"{args.n} songs (30 s MP3, 44.1 kHz) listed in {manifest}; model {model}")
    workers = [int(w) for w in args.workers.split(",")]
    rates: dict[tuple[str, int], float] = {}
    for w in workers:
        out = manifest.parent / f"dataset-{w}"
        shutil.rmtree(out, ignore_errors=True)
        with C.PeakRSS() as mem:
            t = C.clock()
            summary = build_dataset(manifest, out, features=FeatureConfig(), workers=w)
            dt = C.clock() - t
        rates[("build", w)] = args.n / dt
        print(f"build,   {w} worker(s): {dt:7.1f} s, {args.n / dt:6.1f} songs/s, peak RSS {mem.peak / 2**20:6.0f} MiB, "
              f"PSS {mem.peak_pss / 2**20:6.0f} MiB  [{summary.lines()[0]}]")
        shutil.rmtree(out, ignore_errors=True)
    for w in workers:
        with C.PeakRSS() as mem:
            t = C.clock()
            first = None
            done_n = 0
            for r in analyse_many(paths, model=model, top_k=2, workers=w):
                if r.error is not None:
                    raise SystemExit(f"prediction failed: {r.error}")
                done_n += 1
                if first is None:
                    first = C.clock()  # workers started, model loaded, first song through
            end = C.clock()
        rates[("predict", w)] = (done_n - 1) / (end - first)
        print(f"predict, {w} worker(s): {end - t:7.1f} s wall ({done_n / (end - t):6.1f} songs/s including "
              f"{first - t:.1f} s start-up), {rates[('predict', w)]:6.1f} songs/s after the first song, "
              f"peak RSS {mem.peak / 2**20:6.0f} MiB, PSS {mem.peak_pss / 2**20:6.0f} MiB")
    if 1 in workers and 2 in workers:
        for stage in ("build", "predict"):
            print(f"{stage} scaling 1 -> 2 workers: {rates[(stage, 2)] / rates[(stage, 1)]:.2f}x (target >= 1.7x)")
        # Reference: what the cores give without any pool, two independent processes
        # predicting their own halves of the first songs side by side.
        half = min(300, args.n) // 2
        procs = [subprocess.Popen([sys.executable, "-c", _REFERENCE, str(model), *paths[k * half:(k + 1) * half]],
                                  stdout=subprocess.PIPE, text=True) for k in range(2)]
        ref = [float(p.communicate()[0]) for p in procs]
        print(f"reference, 2 independent processes, no pool: {ref[0]:.1f} + {ref[1]:.1f} songs/s after their first "
              f"song = {sum(ref) / rates[('predict', 1)]:.2f}x the 1-worker rate")
    shutil.rmtree(manifest.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
