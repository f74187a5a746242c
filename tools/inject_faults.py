"""Build a faulty genre collection from ../shared/data, with the ground truth of every fault.

The collection is a CSV manifest (``path,genre,artist,title``) over gtzan-mini and
gtzan-excerpts, read in place, plus generated files for the faults:

``cross-genre``  a lossless FLAC copy of a clip filed under another genre (same decoded audio)
``reencoded``    an MP3 or M4A copy of a clip under its own genre (the same recording, lossy)
``trimmed``      a 2 s WAV cut from the middle of a clip, under its own genre
``speech``       a speech recording from music-speech, filed as a genre
``swapped``      two clips of different genres whose labels are exchanged

Only generated audio is written under ``--out``; the shared clips are referenced by path.

    python tools/inject_faults.py --out /tmp/faulty --per-kind 4 --seed 0
    genrify dataset build /tmp/faulty/manifest.csv --out /tmp/faulty.gdb
    genrify audit /tmp/faulty.gdb --out /tmp/faulty-report
    python tools/inject_faults.py --out /tmp/faulty --score /tmp/faulty-report/audit.json
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _read_clips(data: Path) -> list[dict]:
    with open(data / "gtzan-artists.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [{"path": str((data / r["path"]).resolve()), "genre": r["genre"], "artist": r["artist"],
             "title": r["title"]} for r in rows if (data / r["path"]).is_file()]


def _encode(y: np.ndarray, sr: int, out: Path, *, codec: str, fmt: str, bit_rate: int | None = None) -> None:
    """Encode mono float audio ``y`` with PyAV (the decoder genrify already ships)."""
    import av

    with av.open(str(out), "w", format=fmt) as box:
        stream = box.add_stream(codec, rate=sr)
        stream.layout = "mono"
        if bit_rate:
            stream.bit_rate = bit_rate
        pcm = np.clip(y, -1, 1).astype(np.float32)
        n = 1024  # one AAC frame; the encoder converts the sample format itself
        for start in range(0, len(pcm), n):
            frame = av.AudioFrame.from_ndarray(pcm[None, start:start + n].copy(), format="fltp", layout="mono")
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                box.mux(packet)
        for packet in stream.encode(None):
            box.mux(packet)


def inject(data: Path, out: Path, *, per_kind: int, seed: int) -> dict:
    """Write ``out/manifest.csv``, the fault files under ``out/files/`` and ``out/truth.json``."""
    import soundfile as sf

    rng = random.Random(seed)
    clips = _read_clips(data)
    rows = [dict(c) for c in clips]
    files = out / "files"
    files.mkdir(parents=True, exist_ok=True)
    genres = sorted({c["genre"] for c in clips})
    mini = [c for c in clips if "gtzan-mini" in c["path"]]
    picked = rng.sample(mini, 3 * per_kind)
    truth: list[dict] = []
    for i, c in enumerate(picked[:per_kind]):
        y, sr = sf.read(c["path"], dtype="float32")
        other = rng.choice([g for g in genres if g != c["genre"]])
        dst = files / f"crossgenre-{i}.flac"
        sf.write(dst, y, sr, format="FLAC")
        rows.append({"path": str(dst), "genre": other, "artist": c["artist"], "title": c["title"]})
        truth.append({"kind": "cross-genre", "copy": str(dst), "original": c["path"], "genre": other,
                      "true_genre": c["genre"]})
    for i, c in enumerate(picked[per_kind:2 * per_kind]):
        y, sr = sf.read(c["path"], dtype="float32")
        codec, fmt, ext = (("libmp3lame", "mp3", "mp3"), ("aac", "mp4", "m4a"))[i % 2]
        dst = files / f"reencoded-{i}.{ext}"
        _encode(y, sr, dst, codec=codec, fmt=fmt, bit_rate=128_000)
        rows.append({"path": str(dst), "genre": c["genre"], "artist": c["artist"], "title": c["title"]})
        truth.append({"kind": "reencoded", "copy": str(dst), "original": c["path"], "genre": c["genre"]})
    for i, c in enumerate(picked[2 * per_kind:]):
        y, sr = sf.read(c["path"], dtype="float32")
        mid = len(y) // 2
        dst = files / f"trimmed-{i}.wav"
        sf.write(dst, y[mid - sr: mid + sr], sr)
        rows.append({"path": str(dst), "genre": c["genre"], "artist": c["artist"], "title": c["title"]})
        truth.append({"kind": "trimmed", "copy": str(dst), "original": c["path"], "genre": c["genre"]})
    speech = sorted((data / "music-speech" / "speech").glob("*.wav"))
    for p in rng.sample(speech, per_kind):
        genre = rng.choice(genres)
        rows.append({"path": str(p.resolve()), "genre": genre, "artist": "", "title": p.stem})
        truth.append({"kind": "speech", "path": str(p.resolve()), "genre": genre})
    used = {c["path"] for c in picked}
    pool = [r for r in rows[: len(clips)] if r["path"] not in used]
    rng.shuffle(pool)
    swapped = 0
    while swapped < per_kind and len(pool) >= 2:
        a = pool.pop()
        b = next((r for r in pool if r["genre"] != a["genre"]), None)
        if b is None:
            break
        pool.remove(b)
        a["genre"], b["genre"] = b["genre"], a["genre"]
        for r, true in ((a, b["genre"]), (b, a["genre"])):
            truth.append({"kind": "swapped", "path": r["path"], "genre": r["genre"], "true_genre": true})
        swapped += 1
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["path", "genre", "artist", "title"])
        w.writeheader()
        w.writerows(rows)
    summary = {"seed": seed, "per_kind": per_kind, "tracks": len(rows), "faults": truth}
    (out / "truth.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


def repeated_songs(data: Path) -> list[set[str]]:
    """Groups of clips that gtzan-artists.csv lists as one song (same artist and title)."""
    songs: dict[tuple[str, str], set[str]] = {}
    for c in _read_clips(data):
        if c["artist"].strip() and c["title"].strip():
            songs.setdefault((c["artist"].casefold().strip(), c["title"].casefold().strip()), set()).add(c["path"])
    return [g for g in songs.values() if len(g) > 1]


def _ratio(hit: int, total: int) -> str:
    return f"{hit}/{total} = {hit / total:.0%}" if total else "n/a (0)"


def score(truth: dict, audit: dict, data: Path) -> list[str]:
    """Precision and recall of every detector of ``audit`` (an audit.json) against ``truth`` (a truth.json).

    A duplicate finding is right when its tracks are an injected copy with its original or a song
    gtzan-artists.csv lists twice; a not-music finding when the track is an injected speech file;
    a mislabel when the track's label was swapped.
    """
    faults, repeats = truth["faults"], repeated_songs(data)
    found = {k: [f for f in audit["findings"] if f["kind"] == k] for k in ("cross-genre-duplicate", "duplicate",
                                                                          "not-music", "mislabelled")}
    lines = []
    for kind, injected in (("cross-genre-duplicate", ["cross-genre"]), ("duplicate", ["reencoded", "trimmed"])):
        pairs = [{f["copy"], f["original"]} for f in faults if f["kind"] in injected]
        groups = [{t["path"] for t in f["tracks"]} for f in found[kind]]
        groups = [g for g in groups if len(g) > 1]  # identical files the build set aside are listed alone
        recall = sum(any(p <= g for g in groups) for p in pairs)
        right = sum(any(len(g & p) >= 2 for p in pairs + repeats) for g in groups)
        known = sum(any(len(g & p) >= 2 for p in repeats) for g in groups)
        lines.append(f"{kind}: recall {_ratio(recall, len(pairs))} of injected {'/'.join(injected)} copies; "
                     f"precision {_ratio(right, len(groups))} ({known} are songs gtzan-artists.csv lists twice)")
    for kind, injected, key in (("not-music", "speech", "path"), ("mislabelled", "swapped", "path")):
        truth_paths = {f[key] for f in faults if f["kind"] == injected}
        flagged = {t["path"] for f in found[kind] for t in f["tracks"]}
        hit = len(truth_paths & flagged)
        lines.append(f"{kind}: recall {_ratio(hit, len(truth_paths))} of {injected} tracks; "
                     f"precision {_ratio(hit, len(flagged))}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--per-kind", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--score", type=Path, metavar="AUDIT_JSON",
                    help="instead of injecting: score an audit.json of OUT's collection against OUT/truth.json")
    args = ap.parse_args(argv)
    if args.score:
        truth = json.loads((args.out / "truth.json").read_text(encoding="utf-8"))
        print("\n".join(score(truth, json.loads(args.score.read_text(encoding="utf-8")), args.data)))
        return 0
    summary = inject(args.data, args.out, per_kind=args.per_kind, seed=args.seed)
    kinds = {}
    for f in summary["faults"]:
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    print(f"{summary['tracks']} tracks in {args.out / 'manifest.csv'}; faults: {kinds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
