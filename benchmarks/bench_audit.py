"""How long ``genrify audit`` takes on a large dataset whose embeddings are stored.

Writes a synthetic dataset of N tracks (a real SQLite index through genrify's own
:class:`~genrify.dataset.TrackIndex`, and per-window embeddings of 8 windows each in
the real store layout: genre and artist clusters plus noise, 2 % of tracks duplicated
under another genre), then times :func:`genrify.audit.audit_dataset` without
fingerprints (the stored-embedding path: nothing is decoded). Reference, same run:
reading every stored embedding, the floor of any audit. Wall and CPU seconds
both: on a shared machine the wall time mostly measures the other processes. Fingerprint matching (the
inverted index) is timed on N synthetic fingerprints of 120 frames, and reusing the stored audit
(what ``serve --audit`` does while it is current) against the audit itself.

    python benchmarks/bench_audit.py --tracks 5000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, machine_header  # noqa: E402


def make_dataset(root: Path, n: int, *, seed: int = 0) -> int:
    """Write the synthetic dataset; returns how many duplicates it holds."""
    from genrify.config import AudioConfig, FeatureConfig
    from genrify.dataset import FeatureStore, TrackIndex
    from genrify.dataset.embeddings import BACKBONE

    rng = np.random.default_rng(seed)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    index = TrackIndex(root / "index.sqlite", create=True)
    index.set_meta("features", asdict(FeatureConfig()))
    index.set_meta("audio", asdict(AudioConfig()))
    store = FeatureStore(root / "embeddings" / BACKBONE)
    genres = [f"genre{g}" for g in range(10)]
    centres = rng.normal(size=(10, 1506)).astype(np.float32)
    artists = rng.normal(size=(n // 10, 1506)).astype(np.float32)
    n_dup = n // 50
    with index.conn:
        for i in range(n):
            g = i % 10
            a = (i // 10) % max(1, len(artists) // 10) * 10 + g
            if i >= n - n_dup:  # a copy of an earlier track under the next genre
                src = i - (n - n_dup) + 1
                w, g, a = np.asarray(store.read(f"{src:064x}")), (src % 10 + 1) % 10, src
            else:
                w = (centres[g] + 0.7 * artists[a % len(artists)] + rng.normal(size=(8, 1506))).astype(np.float32)
            sha = f"{i:064x}"
            store.write(sha, w)
            path = f"/synthetic/{genres[g]}/{i}.wav"
            index.upsert(path=path, genre=genres[g], artist=f"artist{a}", title=f"t{i}", size=1, mtime=0.0)
            index.set_result(path, status="ok", sha256=sha, duration=30.0, n_frames=1)
    index.close()
    return n_dup


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracks", type=int, default=5000)
    ap.add_argument("--smoke", action="store_true", help="100 tracks")
    args = ap.parse_args()
    n = 100 if args.smoke else args.tracks
    machine_header("genrify audit on stored embeddings", librosa=False)
    from genrify.audit import audit_dataset
    from genrify.audit.fingerprints import matching_pairs
    from genrify.dataset import Dataset
    from genrify.dataset.embeddings import embedding_store

    root = CACHE / f"audit-{n}.gdb"
    t = time.perf_counter()
    n_dup = make_dataset(root, n)
    print(f"wrote {n} tracks ({n_dup} cross-genre copies) in {time.perf_counter() - t:.1f} s")
    ds = Dataset(root)
    t, cpu = time.perf_counter(), time.process_time()
    store = embedding_store(ds)
    total = sum(np.asarray(store.read(tr.sha256)).sum() for tr in ds.tracks())
    read_s, read_cpu = time.perf_counter() - t, time.process_time() - cpu
    ds.close()
    t, cpu = time.perf_counter(), time.process_time()
    result = audit_dataset(root, fingerprints=False)
    audit_s, audit_cpu = time.perf_counter() - t, time.process_time() - cpu
    found = result["counts"]["cross-genre-duplicate"]
    print(f"reference: reading every stored embedding: {read_s:.1f} s wall, {read_cpu:.1f} s CPU (checksum {total:.0f})")
    print(f"audit (no fingerprints): {audit_s:.1f} s wall, {audit_cpu:.1f} s CPU for {n} tracks; found {found} of {n_dup} cross-genre copies, "
          f"{result['counts']['mislabelled']} mislabel suspects")
    from genrify.audit import stored_audit

    t, cpu = time.perf_counter(), time.process_time()
    stored, why = stored_audit(root, fingerprints=False)  # what 'serve --audit' does at start
    reuse_s, reuse_cpu = time.perf_counter() - t, time.process_time() - cpu
    assert stored is not None, why
    print(f"the stored audit, checked current and read (serve --audit): {reuse_s:.2f} s wall, {reuse_cpu:.2f} s CPU "
          f"({audit_s / max(reuse_s, 1e-9):.0f}x less wall time than the audit)")
    rng = np.random.default_rng(1)
    fps = [rng.integers(0, 2**32, size=120, dtype=np.uint64).astype(np.uint32) for _ in range(n)]
    fps += [fps[i][10:60] for i in range(n // 50)]
    t = time.perf_counter()
    pairs = matching_pairs(fps)
    print(f"fingerprint matching: {time.perf_counter() - t:.1f} s for {len(fps)} fingerprints; "
          f"{len(pairs)} of {n // 50} planted copies matched")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
