"""Bounds on hostile inputs, each beside what the same input costs without its bound, in the same run.

    python benchmarks/bench_bounds.py                          # every part (~3 min, ~700 MB under /tmp)
    python benchmarks/bench_bounds.py --parts decode,model     # some of them
    python benchmarks/bench_bounds.py --decode-seconds 120     # a shorter decoding bomb
    python benchmarks/bench_bounds.py --smoke                  # every part, inputs a tenth the size (seconds)

Every figure is measured in a fresh interpreter (growth of that process's VmHWM, ``perf_counter`` time),
so one measurement's memory never hides another's. Parts:

* ``decode``: 600 s of 8-channel 384 kHz FLAC silence (2 MB, written by soundfile):
  ``load_audio(path, sr=16000, max_duration=600, isolate=False)`` with ``DECODE_WORK_SAMPLES`` as shipped,
  against the same call with the budget raised past the file (the reference: decoding it whole).
* ``tags``: a FLAC carrying 40 pictures of 16 MB (671 MB): ``genrify library scan`` (tags read in a decoder
  worker) against ``GENRIFY_DECODE_IN_PROCESS=1`` (read by mutagen in genrify's own process), peak RSS of
  genrify's process; ``read_genres`` + ``write_genre`` (refused by ``tag_bytes`` before mutagen loads the
  tags) against mutagen loading and saving the same file (what rewriting its tags costs).
* ``scan``: ``genrify library scan`` of 200 tagged 3 s MP3s, tags read in a worker against in process
  (the time the scan reports, a fresh ``--db`` each time).
* ``model``: hostile model files given to ``load_model_file`` (a 99 MB header of spaces, a 90 MB header of
  ``{},{},…``, 600 MB of weights with a wrong checksum, sparse) against what reading them first costs
  (``json.loads`` of the header; ``hashlib.sha256`` of the file read whole).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, machine_header  # noqa: E402

PARTS = ("decode", "tags", "scan", "model")

#: Run in a fresh interpreter: ``BODY`` (the measured statements, setting ``what``) between two readings of
#: the process's peak RSS and time; prints one JSON line.
#: The peak is VmHWM, the high-water mark of this process's own memory: ``ru_maxrss`` starts from the peak of
#: the process that started this one (it is kept across exec), which would hide what the body costs.
_PROBE = """
import json, sys, time
def peak_kb():
    return int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
{setup}
before, t0 = peak_kb(), time.perf_counter()
what = "done"
{body}
seconds = time.perf_counter() - t0
grown = (peak_kb() - before) / 1024
print(json.dumps({{"mb": grown, "s": seconds, "what": str(what)}}))
"""


def probe(body: str, *, setup: str = "", args: tuple = (), env: dict | None = None) -> dict:
    """Run ``body`` in a fresh interpreter (``sys.argv[1:]`` = ``args``): its peak RSS growth (MB), seconds
    and ``what`` (a refusal, a count)."""
    code = _PROBE.format(setup=setup, body=body)
    environ = dict(os.environ, PYTHONPATH=str(REPO / "src"), **(env or {}))
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=environ, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"probe failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def warm(path: Path) -> Path:
    """Read ``path`` once, so that both sides of a comparison find it in the page cache (the first read of a
    file just written, sparse ones most, costs seconds that belong to neither)."""
    with open(path, "rb", buffering=0) as f:
        buf = memoryview(bytearray(1 << 20))
        while f.readinto(buf):
            pass
    return path


def row(name: str, now: dict, ref: dict, ref_name: str) -> None:
    print(f"  {name}: {now['mb']:8.1f} MB  {now['s']:7.2f} s  ({now['what'][:110]})")
    print(f"  {ref_name}: {ref['mb']:8.1f} MB  {ref['s']:7.2f} s  ({ref['what'][:110]})")
    mem = ref["mb"] / now["mb"] if now["mb"] > 0.5 else float("inf")
    print(f"  ratio reference / bounded: memory {mem:.1f}x, time {ref['s'] / max(now['s'], 1e-3):.1f}x")


# ---------------------------------------------------------------------------- decode


def part_decode(work: Path, seconds: int) -> None:
    import numpy as np
    import soundfile as sf

    path = work / "bomb.flac"
    block = np.zeros((384_000, 8), np.int16)
    with sf.SoundFile(path, "w", samplerate=384_000, channels=8, subtype="PCM_16", format="FLAC") as f:
        for _ in range(seconds):
            f.write(block)
    print(f"decode: {seconds} s of 8-channel 384 kHz FLAC silence, {warm(path).stat().st_size / 1e6:.1f} MB")
    body = ("y, sr = load_audio(sys.argv[1], sr=16000, max_duration=600, isolate=False)\n"
            "what = f'{len(y) / sr:.1f} s decoded'")
    setup = "import logging; logging.disable(logging.WARNING)\nfrom genrify.audio import load_audio"
    now = probe(body, setup=setup, args=(path,))
    whole = probe(body, setup=setup + "\nimport genrify.audio.decode as d; d.DECODE_WORK_SAMPLES = 2**62",
                  args=(path,))
    row("with the work budget", now, whole, "decoded whole     ")


# ---------------------------------------------------------------------------- tags


def _flac_with_pictures(path: Path, *, pictures: int) -> Path:
    """A 1 s tagged FLAC carrying ``pictures`` cover images of 16 MB each, as ``tests/test_audio_tags.py``
    writes it (the helper lives with the tests; the benchmark imports it from there)."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from test_audio_tags import _flac_with_pictures as write
    finally:
        sys.path.remove(str(REPO / "tests"))
    return write(path, pictures=pictures)


def part_tags(work: Path, *, pictures: int = 40) -> None:
    folder = work / "pictures"
    folder.mkdir()
    path = _flac_with_pictures(folder / "covers.flac", pictures=pictures)
    print(f"tags: a FLAC with {pictures} pictures of 16 MB, {warm(path).stat().st_size / 1e6:.0f} MB")
    scan = ("from genrify.cli import main\n"
            "code = main(['library', 'scan', sys.argv[1], '--db', sys.argv[2]])\n"
            "what = f'exit {code}'")
    now = probe(scan, args=(folder, work / "scan-worker.sqlite"))
    inproc = probe(scan, args=(folder, work / "scan-inproc.sqlite"), env={"GENRIFY_DECODE_IN_PROCESS": "1"})
    row("library scan, tags in a worker", now, inproc, "library scan, tags in process ")
    copy = work / "copy.flac"
    shutil.copy(path, copy)
    warm(copy)
    write = ("from genrify.errors import GenrifyError\n"
             "from genrify.sources.tags import read_genres, write_genre\n"
             "from genrify.tagging.journal import TagJournal\n"
             "try:\n"
             "    read_genres(sys.argv[1])\n"
             "    with TagJournal(path=sys.argv[2]) as journal:\n"
             "        write_genre(sys.argv[1], 'Jazz', journal=journal)\n"
             "    what = 'written'\n"
             "except GenrifyError as exc:\n"
             "    what = str(exc)")
    now = probe(write, args=(copy, work / "journal.sqlite"))
    mutagen = probe("f = FLAC(sys.argv[1]); f['genre'] = 'Jazz'; f.save(); what = 'written by mutagen'",
                    setup="from mutagen.flac import FLAC", args=(copy,))
    row("read + write_genre", now, mutagen, "mutagen load + save")


# ---------------------------------------------------------------------------- scan


def part_scan(work: Path, *, per_genre: int = 40, runs: int = 2) -> None:
    from genrify.sources.synthetic import write_demo_corpus

    corpus = work / "mp3s"
    write_demo_corpus(corpus, per_genre=per_genre, duration=3.0, fmt="mp3")
    n = sum(1 for f in corpus.rglob("*.mp3") if warm(f))
    print(f"scan: library scan of {n} tagged 3 s MP3s")
    scan = ("from genrify.cli import main\n"
            "code = main(['library', 'scan', sys.argv[1], '--db', sys.argv[2]])\n"
            "what = f'exit {code}'")
    for attempt in range(1, runs + 1):
        now = probe(scan, args=(corpus, work / f"w{attempt}.sqlite"))
        inproc = probe(scan, args=(corpus, work / f"p{attempt}.sqlite"), env={"GENRIFY_DECODE_IN_PROCESS": "1"})
        row(f"tags in a worker (run {attempt})", now, inproc, f"tags in process  (run {attempt})")


# ---------------------------------------------------------------------------- model


def _raw_model(path: Path, header: bytes, *, data_bytes: int = 0) -> Path:
    """A model file laid out as ``tests/test_models.py`` writes its hostile ones (``helpers.modelfiles``)."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from helpers.modelfiles import write_raw_model
    finally:
        sys.path.remove(str(REPO / "tests"))
    return write_raw_model(path, header, data_bytes=data_bytes)


def part_model(work: Path, *, scale: int = 1) -> None:
    """``scale``: divides the sizes of the files over the header cap (the 8 MiB ones stay: they are the cap)."""
    from genrify.config import RunConfig
    from genrify.models.modelfile import MAX_HEADER_BYTES

    n = 150_000_000 // scale
    metadata = {"format": "genrify-model", "version": "1", "config": RunConfig().to_json(), "labels": '["a"]',
                "extra": "{}", "sha256": "0" * 64}
    header = json.dumps({"__metadata__": metadata,
                         "model.w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}).encode()
    meta = b'{"__metadata__": {"format": "genrify-model", "version": "1"}, '
    fill = MAX_HEADER_BYTES - len(meta) - 16
    entries = b",".join(b'"k%07d":{}' % i for i in range(fill // 14))
    files = {
        f"{99 // scale} MB header of spaces": _raw_model(work / "spaces.genrify",
                                                         b"{" + b" " * (99_000_000 // scale) + b"}"),
        f"{90 // scale} MB header of {{}},{{}},...": _raw_model(work / "objects.genrify",
                                                            b'{"x": [' + b"{}," * (30_000_000 // scale) + b"{}]}"),
        "8 MiB header of {},{},... (the largest read)": _raw_model(
            work / "objects8.genrify", meta + b'"x": [' + b"{}," * (fill // 3 - 4) + b"{}]}"),
        f"8 MiB header of {fill // 14:,} tensor entries": _raw_model(work / "entries8.genrify", meta + entries + b"}"),
        f"{600 // scale} MB of weights, wrong checksum": _raw_model(
            work / "big.genrify", header + b" " * (-len(header) % 8), data_bytes=4 * n),
    }
    load = ("try:\n"
            "    load_model_file(sys.argv[1]); what = 'loaded'\n"
            "except ModelFileError as exc:\n"
            "    what = str(exc)")
    setup = "import safetensors.numpy\nfrom genrify.errors import ModelFileError\n" \
            "from genrify.models.modelfile import load_model_file"
    read_first = {
        "header": ("import struct\n"
                   "with open(sys.argv[1], 'rb') as f:\n"
                   "    size = struct.unpack('<Q', f.read(8))[0]\n"
                   "    parsed = json.loads(f.read(size))\n"
                   "what = f'header parsed ({type(parsed).__name__})'"),
        "whole": ("import hashlib\n"
                  "digest = hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest()\n"
                  "what = 'read whole and hashed'"),
    }
    for name, path in files.items():
        print(f"model: {name}")
        warm(path)
        now = probe(load, setup=setup, args=(path,))
        ref = probe(read_first["whole" if "checksum" in name else "header"], args=(path,))
        row("load_model_file", now, ref, "read it first  ")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    ap.add_argument("--decode-seconds", type=int, default=600, help="length of the decoding bomb (default 600)")
    ap.add_argument("--smoke", action="store_true", help="inputs a tenth the size, one scan run (seconds; CI)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.decode_seconds = min(args.decode_seconds, 60)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown part {', '.join(unknown)}: expected {', '.join(PARTS)}")
    machine_header("bounds on hostile inputs, each against the same input without its bound", librosa=False,
                   extra={"load": f"{os.getloadavg()[0]:.2f} (1-min load average before the run)"})
    small = 10 if args.smoke else 1
    runs = {"decode": lambda w: part_decode(w, args.decode_seconds),
            "tags": lambda w: part_tags(w, pictures=40 // small),
            "scan": lambda w: part_scan(w, per_genre=40 // small, runs=1 if args.smoke else 2),
            "model": lambda w: part_model(w, scale=small)}
    for part in parts:
        with tempfile.TemporaryDirectory(prefix=f"genrify-bounds-{part}-") as tmp:
            runs[part](Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
