"""Build a dataset: scan a labelled collection, compute features once, in parallel, resumably.

A rerun after an interruption (even ``kill -9``) recomputes only what is
missing: finished feature files are keyed by content hash and written
atomically, and the index records each result as soon as it arrives. One bad
file never aborts a build; its reason is recorded and summarised.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

from genrify.config import AudioConfig, FeatureConfig
from genrify.dataset.index import TrackIndex
from genrify.dataset.store import FeatureStore
from genrify.errors import DatasetError, GenrifyError
from genrify.fileio import read_regular
from genrify.sources.folder import scan_labelled


@dataclass
class BuildSummary:
    """What a build did: counts by status and the reasons tracks were excluded."""

    total: int = 0
    computed: int = 0
    reused: int = 0
    removed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.total} tracks: " + ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items())),
               f"features computed for {self.computed}, reused for {self.reused}" +
               (f", {self.removed} vanished tracks dropped" if self.removed else "")]
        for path, reason in self.problems[:20]:
            out.append(f"  skipped {path}: {reason}")
        if len(self.problems) > 20:
            out.append(f"  ... and {len(self.problems) - 20} more (see the index)")
        return out


def build_dataset(source: str | os.PathLike, out: str | os.PathLike, *,
                  features: FeatureConfig = FeatureConfig(), audio: AudioConfig | None = None,
                  workers: int | None = None, progress: bool = False) -> BuildSummary:
    """Index ``source`` (a labelled folder or CSV manifest) into the dataset folder ``out``.

    ``workers`` processes compute features (default: all cores). Existing results
    are reused when the file (size, mtime) and the feature configuration are unchanged.
    """
    audio = audio or AudioConfig(sr=features.sr)
    if audio.sr != features.sr:
        raise DatasetError(f"audio sr {audio.sr} differs from feature sr {features.sr}")
    items = scan_labelled(source)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a dataset folder")
    out.mkdir(parents=True, exist_ok=True)
    index = TrackIndex(out / "index.sqlite", create=True)
    store = FeatureStore(out / "features")
    # Half-written feature files left by a killed build (atomic writes end in ".part").
    for stale in store.root.glob(".*.part"):
        stale.unlink(missing_ok=True)
    try:
        previous = index.get_meta("features")
        if previous is not None and previous != asdict(features):
            # Different features invalidate every stored result.
            index.conn.execute("UPDATE tracks SET status='pending', sha256=NULL")
            store = FeatureStore(out / "features")
            for old in store.root.glob("*.npy"):
                old.unlink()
        index.set_meta("features", asdict(features))
        index.set_meta("audio", asdict(audio))
        index.set_meta("source", str(Path(source).resolve()))

        summary = BuildSummary(total=len(items))
        keep, unindexable = set(), []
        with index.conn:
            for item in items:
                # Links to regular files are keyed by their target; anything else by its own name, so a
                # link to a device is reported under the name the user gave it, not as "/dev/zero".
                path = str(item.path.resolve()) if item.path.is_file() else str(item.path.absolute())
                if not _utf8(path, item.genre, item.artist, item.title):  # the index holds UTF-8 text only
                    unindexable.append((path, "its name is not UTF-8 text, which the index cannot hold"))
                    continue
                keep.add(path)
                try:
                    st = os.stat(path)
                    size, mtime = st.st_size, st.st_mtime
                except OSError:
                    size, mtime = None, None
                index.upsert(path=path, genre=item.genre, artist=item.artist, title=item.title, size=size, mtime=mtime)
            summary.removed = index.remove_missing(keep)
        # A result whose feature file vanished is pending again.
        with index.conn:
            for t in index.tracks(status=("ok", "ambiguous", "duplicate")):
                if not t.sha256 or not store.has(t.sha256):
                    index.set_result(t.path, status="pending")

        pending = index.tracks(status="pending")
        summary.reused = len(items) - len(pending)
        _compute_all(pending, index=index, store=store, features=features, audio=audio, workers=workers,
                     progress=progress)
        summary.computed = len(pending)
        _mark_duplicates(index)
        summary.statuses = index.counts()
        summary.problems = [(t.path, t.error or t.status) for t in index.tracks(status=("error", "ambiguous", "duplicate"))]
        summary.problems += unindexable
        return summary
    finally:
        index.close()


def _utf8(*texts: str | None) -> bool:
    """Whether every text can be stored as UTF-8 (a file name's undecodable bytes cannot)."""
    try:
        for text in texts:
            (text or "").encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _compute_all(pending, *, index, store, features, audio, workers, progress):
    if not pending:
        return
    from tqdm import tqdm

    workers = max(1, min(workers or os.cpu_count() or 1, len(pending)))
    bar = tqdm(total=len(pending), desc="features", unit="track", disable=not progress, leave=False)
    feature_args, audio_args = asdict(features), asdict(audio)
    jobs = ((t.path, feature_args, audio_args, str(store.root)) for t in pending)
    try:
        if workers == 1:
            results = (compute_track(*job) for job in jobs)
            for result in results:
                _record(index, result)
                bar.update()
        else:
            # spawn: forking a process that already runs torch's thread pool can deadlock.
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
                # A bounded number of tracks in flight: memory stays flat whatever the collection's size.
                in_flight = {pool.submit(compute_track, *job) for job in islice(jobs, 4 * workers)}
                while in_flight:
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    for fut in done:
                        _record(index, fut.result())
                        bar.update()
                    in_flight |= {pool.submit(compute_track, *job) for job in islice(jobs, len(done))}
    finally:
        index.commit()
        bar.close()


def _record(index: TrackIndex, result: dict) -> None:
    index.set_result(result["path"], status=result["status"], sha256=result.get("sha256"),
                     duration=result.get("duration"), n_frames=result.get("n_frames"), error=result.get("error"))
    # Committing each result is what makes a killed build resumable.
    index.commit()


def _init_worker():
    import torch

    torch.set_num_threads(1)


_EXTRACTORS: dict = {}


def compute_track(path: str, features: dict, audio: dict, store_root: str) -> dict:
    """Decode one file, compute its feature image and store it; never raises for bad input.

    A file that is not a regular file, or is larger than :data:`~genrify.fileio.MAX_FILE_BYTES`,
    is an ``error`` with that reason.
    """
    from genrify.audio import load_audio

    feature_cfg, audio_cfg = FeatureConfig(**features), AudioConfig(**audio)
    store = FeatureStore(store_root)
    try:
        # Only a regular file, of bounded size: a FIFO would block the worker, a link to /dev/zero never ends.
        data = read_regular(path)
    except OSError as exc:
        return {"path": path, "status": "error", "error": f"cannot read file ({exc.strerror or exc})"}
    sha = hashlib.sha256(data).hexdigest()
    try:
        y, sr = load_audio(data, sr=audio_cfg.sr, max_duration=audio_cfg.max_duration, name=Path(path).name)
    except GenrifyError as exc:
        return {"path": path, "status": "error", "sha256": sha, "error": str(exc).split(": ", 1)[-1]}
    duration = len(y) / sr
    if duration < audio_cfg.min_duration:
        return {"path": path, "status": "error", "sha256": sha, "duration": duration,
                "error": f"too short ({duration:.2f} s < {audio_cfg.min_duration:g} s)"}
    if store.has(sha):
        n_frames = int(store.read(sha).shape[-1])
    else:
        key = tuple(sorted(features.items()))
        if key not in _EXTRACTORS:
            from genrify.features import FeatureExtractor

            _EXTRACTORS[key] = FeatureExtractor(feature_cfg)
        image = _EXTRACTORS[key].transform(y)
        store.write(sha, image.astype("float32"))
        n_frames = int(image.shape[-1])
    return {"path": path, "status": "ok", "sha256": sha, "duration": duration, "n_frames": n_frames}


def _mark_duplicates(index: TrackIndex) -> None:
    """The same audio filed twice is kept once; filed under two genres it is excluded."""
    rows = index.tracks(status=("ok", "ambiguous", "duplicate"))
    by_sha: dict[str, list] = {}
    for t in rows:
        by_sha.setdefault(t.sha256, []).append(t)
    with index.conn:
        for sha, group in by_sha.items():
            genres = Counter(t.genre for t in group)
            for i, t in enumerate(group):
                if len(genres) > 1:
                    other = sorted(set(genres) - {t.genre})
                    index.set_result(t.path, status="ambiguous", sha256=sha, duration=t.duration, n_frames=t.n_frames,
                                     error=f"same audio also filed under {', '.join(other)}")
                elif i > 0:
                    index.set_result(t.path, status="duplicate", sha256=sha, duration=t.duration, n_frames=t.n_frames,
                                     error=f"same audio as {group[0].path}")
                else:
                    index.set_result(t.path, status="ok", sha256=sha, duration=t.duration, n_frames=t.n_frames)
