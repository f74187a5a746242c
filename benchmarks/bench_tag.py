"""Tagging a library with ``genrify tag``: dry runs beside an earlier checkout; songs/s, memory, rerun, kill -9.

    .venv/bin/python benchmarks/bench_tag.py --files 2000 --before-src /work/wt-tag-base/src
    .venv/bin/python benchmarks/bench_tag.py --n 2000      # the write suite at the issue's size
    .venv/bin/python benchmarks/bench_tag.py --n 200       # a size for a shared 2-core machine
    .venv/bin/python benchmarks/bench_tag.py --smoke       # a few short songs: only checks the script runs

``--files N``: the job's own overhead. N short generated clips (3 s, 22.05 kHz WAV,
five styles, cached under $GENRIFY_BENCH_CACHE, default /tmp/genrify-bench) and a
small window model (the benchmarks' demo CNN, a few milliseconds per clip), so that
what the job does around the analysis shows. ``genrify tag DIR`` (a dry run) runs as a
subprocess twice per checkout, each with its own fresh results index: first (every
file stat-ed, hashed, analysed and indexed), then repeated (every file known by
path, size and time). "before" is the checkout whose ``src`` is ``--before-src``
(default: the tree of ``--before``, 64c6a5c, exported with ``git archive``), "after"
this one; the runs alternate between the two, so load drifting on a shared machine
touches both. Printed: files/s of each, after/before, and whether both printed the
same table.

Without ``--files``: the library is ``--n`` synthetic 30 s MP3s (44.1 kHz, five styles),
copied fresh for each run.
Each figure runs ``genrify tag DIR --write --overwrite`` as a subprocess with the
bundled model and its own results index, and prints beside it the reference
measured in the same run: ``genrify predict --json`` over the same files with
the same ``--fast`` / ``--workers`` (the analysis alone, nothing hashed,
indexed or written). Memory is the peak RSS of the whole process tree (the
command and its workers), sampled every 0.5 s. The rerun is timed in this
process (``run_tag_job`` over the unchanged library), beside one ``os.stat`` of
every file. For kill -9, ``genrify tag --write`` is killed (its whole process
group) once half the songs are in the index; the rerun's count of analysed
songs must equal the songs not yet indexed, and every file must decode to the
same samples as before.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

STYLES = ("hiphop", "edm", "classical", "metal", "jazz")


def library(n: int, duration: float) -> list[Path]:
    """The first ``n`` of the cached synthetic MP3s, ``<style>/<style>-<i>.mp3`` (made when missing)."""
    root = C.CACHE / "tag" / f"songs-{duration:g}"
    songs = []
    for i in range(n):
        style = STYLES[i % len(STYLES)]
        songs.append(C.synthetic_song(root / style / f"{style}-{i:05d}.mp3", style=style, seed=i, duration=duration))
    return songs


def fresh_copy(songs: list[Path], dst: Path) -> Path:
    """A fresh library of ``songs`` at ``dst`` (one folder per style)."""
    if dst.exists():
        shutil.rmtree(dst)
    for song in songs:
        (dst / song.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(song, dst / song.parent.name / song.name)
    return dst


def genrify(*args, env) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run ``python -m genrify ARGS``; (seconds, peak RSS bytes of the tree, the finished process)."""
    t0 = C.clock()
    with C.PeakRSS() as mem:
        proc = subprocess.run([sys.executable, "-m", "genrify", *map(str, args)], env=env, capture_output=True,
                              text=True)
    return C.clock() - t0, mem.peak, proc


def count_analysed(stdout: str) -> int:
    line = next(line for line in stdout.splitlines() if " analysed, " in line)
    return int(line.split(" files: ", 1)[1].split(" analysed", 1)[0])


def speed(src: list[Path], work: Path, n: int, *, fast: bool, workers: int, env) -> bool:
    lib = fresh_copy(src, work / "lib")
    opts = (["--fast"] if fast else []) + ["--workers", workers]
    secs, peak, proc = genrify("tag", lib, "--write", "--overwrite", "--min-certainty", "0", "--index",
                               work / f"index-{fast}-{workers}.sqlite", *opts, env=env)
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:])
        return False
    ref_secs, ref_peak, ref = genrify("predict", lib, "--json", *opts, env=env)
    name = f"{'--fast ' if fast else ''}--workers {workers}"
    print(f"genrify tag --write {name}: {n / secs:6.2f} songs/s ({secs:.1f} s, {count_analysed(proc.stdout)} "
          f"analysed), peak RSS {peak / 2**20:.0f} MiB | reference genrify predict --json {name}: "
          f"{n / ref_secs:6.2f} songs/s ({ref_secs:.1f} s), peak RSS {ref_peak / 2**20:.0f} MiB")
    return ref.returncode == 0


def rerun(work: Path, n: int) -> bool:
    from genrify.tagging import ResultsIndex, TagJobConfig, run_tag_job

    lib, index = work / "lib", work / "index-True-2.sqlite"
    analysed = 0
    for run in ("first (cold: opens the index, reads the taxonomy)", "second"):
        t0 = C.clock()
        with ResultsIndex(index) as idx:
            summary = run_tag_job([lib], index=idx, config=TagJobConfig(fast=True, workers=2))
        secs = C.clock() - t0
        analysed += summary.analysed
        t0 = C.clock()
        for dirpath, _, names in os.walk(lib):
            for name in names:
                os.stat(os.path.join(dirpath, name))
        stat_secs = C.clock() - t0
        print(f"rerun over the unchanged library, {run}, in process: {n / secs:8.0f} files/s ({secs:.3f} s, "
              f"{summary.analysed} analysed) | reference os.walk + os.stat of every file: {n / stat_secs:8.0f} files/s")
    return analysed == 0


def kill_halfway(src: list[Path], work: Path, n: int, env) -> bool:
    from genrify.audio import load_audio
    from genrify.tagging import committed_songs

    lib = fresh_copy(src, work / "killed")
    index = work / "index-killed.sqlite"
    songs = sorted(lib.rglob("*.mp3"))
    before = {p: load_audio(p, sr=None)[0] for p in songs}
    cmd = [sys.executable, "-m", "genrify", "tag", str(lib), "--write", "--overwrite", "--min-certainty", "0",
           "--fast", "--workers", "2", "--index", str(index)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    while proc.poll() is None and committed_songs(index) < n // 2:
        time.sleep(0.05)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the command and its analysis workers
    except ProcessLookupError:  # it finished first (a tiny library)
        pass
    proc.wait()
    done = committed_songs(index)
    secs, _, again = genrify("tag", lib, "--write", "--overwrite", "--min-certainty", "0", "--fast",
                             "--workers", "2", "--index", index, env=env)
    analysed = count_analysed(again.stdout)
    broken = [p for p in songs if not _same(load_audio(p, sr=None)[0], before[p])]
    left = [p for p in lib.rglob("*.part")]
    print(f"kill -9 after {done} of {n} songs indexed, then rerun: {analysed} analysed (expected {n - done}), "
          f"{len(broken)} of {n} files decode differently, {len(left)} temporary copies left")
    return analysed == n - done and not broken


def _same(a, b) -> bool:
    import numpy as np

    return a.shape == b.shape and np.array_equal(a, b)


# ---------------------------------------------------------------------------- dry runs, before and after

BEFORE = "64c6a5c"


def clips(n: int) -> Path:
    """A folder of ``n`` short generated clips, ``<style>/<style>-<i>.wav`` (made when missing)."""
    root = C.CACHE / "tag" / "clips-3s"
    for i in range(n):
        style = STYLES[i % len(STYLES)]
        C.synthetic_song(root / style / f"{style}-{i:05d}.wav", style=style, seed=i, sr=22050, duration=3.0)
    lib = C.CACHE / "tag" / f"library-{n}"
    if not lib.exists():  # the first n clips, as links: one cache of clips serves every n
        tmp = lib.with_name(lib.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for i in range(n):
            style = STYLES[i % len(STYLES)]
            (tmp / style).mkdir(parents=True, exist_ok=True)
            os.link(root / style / f"{style}-{i:05d}.wav", tmp / style / f"{style}-{i:05d}.wav")
        tmp.rename(lib)
    return lib


def exported_src(rev: str) -> Path:
    """The ``src`` tree of ``rev``, exported once into the bench cache (no worktree is registered)."""
    out = C.CACHE / "tag" / f"src-{rev}"
    if not (out / "src" / "genrify").is_dir():
        out.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(C.REPO), "archive", rev, "src"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out / "src"


def dry_run(src: Path, lib: Path, index: Path, model: Path, workers: int) -> tuple[float, str]:
    """``genrify tag LIB`` (a dry run) with ``src`` first on the path: (seconds, its stdout)."""
    env = os.environ | {"PYTHONPATH": str(src), "GENRIFY_DATA_DIR": str(index.parent / "data")}
    t0 = C.clock()
    proc = subprocess.run([sys.executable, "-m", "genrify", "tag", str(lib), "--index", str(index), "--model",
                           str(model), "--workers", str(workers)], env=env, capture_output=True, text=True)
    secs = C.clock() - t0
    if proc.returncode != 0:
        raise SystemExit(f"genrify tag failed with {src}: {proc.stderr[-2000:]}")
    return secs, proc.stdout


def before_and_after(n: int, *, before: Path, workers: int, repeats: int) -> bool:
    """files/s of a first and a repeated dry run, ``before`` against this checkout, alternating."""
    lib = clips(n)
    model = C.train_demo_model(C.CACHE / "tag" / "cnn-22k.genrify", sr=22050)
    work = C.CACHE / "tag" / "dry"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    sides = {"before": before, "after": C.REPO / "src"}
    print(f"model: the benchmarks' demo CNN ({model.name}, 3 s windows over MFCCs, trained on synthetic clips); "
          f"{n} clips of 3 s, 22.05 kHz WAV; genrify tag DIR --workers {workers} (a dry run); "
          f"before = {before}, after = {sides['after']}; load average {os.getloadavg()[0]:.2f}")
    first, again, tables = {}, {k: [] for k in sides}, {}
    for side in ("before", "after"):
        first[side], tables[side] = dry_run(sides[side], lib, work / side / "index.sqlite", model, workers)
        print(f"  first run, {side:6}: {n / first[side]:8.1f} files/s ({first[side]:.1f} s; "
              f"{tables[side].strip().splitlines()[-1]})", flush=True)
    for _ in range(repeats):
        for side in ("before", "after"):
            secs, out = dry_run(sides[side], lib, work / side / "index.sqlite", model, workers)
            again[side].append(secs)
            assert f"{n} files: 0 analysed, {n} known" in out, out[-500:]
    for side in ("before", "after"):
        secs = C.median(again[side])
        print(f"  repeated run, {side:6}: {n / secs:8.1f} files/s (median of {repeats}: {secs:.2f} s, "
              f"all {n} known from the index; the process's start included)")
    same = tables["before"] == tables["after"]
    print(f"after/before: first run {first['before'] / first['after']:.2f}x files/s, repeated run "
          f"{C.median(again['before']) / C.median(again['after']):.2f}x; the two first runs printed "
          f"{'the same table' if same else 'DIFFERENT tables'}; load average {os.getloadavg()[0]:.2f}")
    return same


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="songs in the library (default 2000)")
    ap.add_argument("--full", action="store_true", help="also time the full (not --fast) analysis")
    ap.add_argument("--smoke", action="store_true", help="4 songs of 3 s: only checks the script runs")
    ap.add_argument("--files", type=int, default=None,
                    help="only the dry runs: N short clips, first and repeated, before against after")
    ap.add_argument("--before", default=BEFORE, help=f"the reference commit of --files (default {BEFORE})")
    ap.add_argument("--before-src", type=Path, default=None,
                    help="the reference checkout's src folder (default: --before exported from git)")
    ap.add_argument("--workers", type=int, default=2, help="--workers of the dry runs (default 2)")
    args = ap.parse_args(argv)
    if args.files is not None or args.smoke:
        n = 4 if args.smoke else args.files
        C.machine_header(f"tag: genrify tag dry runs over {n} short clips, before and after", librosa=False)
        # --smoke: this checkout on both sides (a CI checkout may not hold the reference commit)
        before = C.REPO / "src" if args.smoke else args.before_src or exported_src(args.before)
        ok = before_and_after(n, before=before, workers=args.workers, repeats=1 if args.smoke else 3)
        if not args.smoke:
            return 0 if ok else 1
    n, duration = (4, 3.0) if args.smoke else (args.n, 30.0)
    C.machine_header(f"tag: genrify tag over {n} synthetic {duration:g} s MP3s, bundled model", librosa=False)
    work = C.CACHE / "tag" / "work"
    if work.exists():  # indexes of an earlier run would make songs "known"
        shutil.rmtree(work)
    work.mkdir(parents=True)
    env = os.environ | {"GENRIFY_DATA_DIR": str(work / "data")}
    src = library(n, duration)
    ok = speed(src, work, n, fast=True, workers=2, env=env)
    ok = rerun(work, n) and ok
    if args.full and not args.smoke:
        ok = speed(src, work, n, fast=False, workers=2, env=env) and ok
    ok = kill_halfway(src, work, n, env) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
