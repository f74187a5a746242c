"""Dataset: the SQLite track index and the feature store, built from real files; resumable
after ``kill -9``; splits that keep artists and tracks on one side; window cutting."""

from __future__ import annotations

import csv
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from genrify.config import FeatureConfig
from genrify.dataset import Dataset, FeatureStore, TrackIndex
from genrify.dataset.build import build_dataset
from genrify.dataset.splits import group_kfold, train_val_split
from genrify.dataset.windows import cut_windows, window_starts
from genrify.errors import DatasetError
from genrify.sources.folder import normalise_label, scan_labelled
from genrify.sources.synthetic import generate_clip, write_demo_corpus

#: Fast features for the small builds here (22.05 kHz, the clips' own rate).
FAST = FeatureConfig(sr=22050)


def _statuses(out: Path) -> dict[str, dict]:
    index = TrackIndex(out / "index.sqlite")
    try:
        return {Path(t.path).name: t for t in index.tracks()}
    finally:
        index.close()


def _assert_index_and_store_agree(out: Path) -> None:
    """Every usable track has its feature file, every feature file belongs to a track, no half files."""
    index = TrackIndex(out / "index.sqlite")
    try:
        tracks = index.tracks()
    finally:
        index.close()
    store = FeatureStore(out / "features")
    shas = {t.sha256 for t in tracks if t.status in ("ok", "duplicate", "ambiguous")}
    for t in tracks:
        if t.status == "ok":
            assert t.sha256 and store.has(t.sha256), t
            image = store.read(t.sha256)
            assert image.shape[-1] == t.n_frames and np.isfinite(image).all()
    on_disk = {p.stem for p in (out / "features").glob("*.npy")}
    assert on_disk == shas
    leftovers = [p for p in out.rglob("*") if p.name.endswith((".part", ".tmp"))]
    assert leftovers == []


@pytest.fixture
def small_corpus(tmp_path) -> Path:
    root = tmp_path / "corpus"
    write_demo_corpus(root, per_genre=2, duration=3.0, fmt="wav", styles=("jazz", "metal", "edm"))
    return root


# --------------------------------------------------------------------------- building


def test_build_from_folder_indexes_every_track(synthetic_corpus, synthetic_dataset):
    ds = Dataset(synthetic_dataset)
    try:
        tracks = ds.tracks()
        assert len(tracks) == 30
        assert ds.labels() == ["classical", "edm", "hiphop", "jazz", "metal"]
        for t in tracks:
            assert Path(t.path).is_file() and Path(t.path).is_relative_to(synthetic_corpus.resolve())
            assert t.artist and t.artist.startswith("Synthetic ") and t.title
            assert t.duration == pytest.approx(6.0, abs=0.01)
            image = ds.features(t)
            assert isinstance(image, np.memmap)  # memory-mapped, never unpickled
            assert image.shape == (10, FeatureConfig().frames_for(6.0)) == (10, t.n_frames)
        # Content hashes really are the files' SHA-256.
        import hashlib

        t = tracks[0]
        assert t.sha256 == hashlib.sha256(Path(t.path).read_bytes()).hexdigest()
        assert ds.feature_config == FeatureConfig()
    finally:
        ds.close()
    _assert_index_and_store_agree(synthetic_dataset)


def test_build_from_csv_manifest_normalises_labels(small_corpus, tmp_path):
    rows = list(csv.DictReader(open(small_corpus / "manifest.csv", encoding="utf-8")))
    spelled = {"jazz": "  JAZZ ", "metal": "Métal", "edm": "E.D.M."}
    manifest = tmp_path / "list.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["path", "genre", "artist", "title"])
        w.writeheader()
        for r in rows:
            # Relative to the manifest's folder, and one absolute path.
            path = os.path.relpath(small_corpus / r["path"], tmp_path) if r is not rows[0] else str(small_corpus / r["path"])
            w.writerow({**r, "path": path, "genre": spelled[r["genre"]], "artist": "Someone Else"})
    summary = build_dataset(manifest, tmp_path / "m.gdb", features=FAST, workers=1)
    assert summary.statuses == {"ok": 6}
    tracks = _statuses(tmp_path / "m.gdb")
    assert {t.genre for t in tracks.values()} == {"jazz", "metal", "edm"}
    assert {t.artist for t in tracks.values()} == {"Someone Else"}  # the manifest's columns win


def test_folder_labels_normalised_and_non_audio_ignored(tmp_path):
    y = generate_clip("edm", seed=1, sr=22050, duration=1.5)
    for folder in ("Hip-Hop", "hip hop", "Rock & Roll"):
        (tmp_path / "src" / folder).mkdir(parents=True)
        sf.write(tmp_path / "src" / folder / f"{folder} - x.wav", y * (1 + len(folder) / 10), 22050)
    (tmp_path / "src" / "Hip-Hop" / "cover.jpg").write_bytes(b"\xff\xd8 not audio")
    (tmp_path / "src" / "Hip-Hop" / ".hidden.wav").write_bytes(b"")
    items = scan_labelled(tmp_path / "src")
    assert sorted(i.genre for i in items) == ["hiphop", "hiphop", "rockroll"]
    assert {i.artist for i in items} == {"Hip-Hop", "hip hop", "Rock & Roll"}


@given(st.text(max_size=30))
def test_normalise_label_properties(label):
    out = normalise_label(label)
    assert out == normalise_label(out)  # idempotent
    assert all(c.isascii() and (c.islower() or c.isdigit()) for c in out)
    assert normalise_label(label.upper()) == normalise_label(label.lower()) or not label.isascii()


def test_bad_files_are_recorded_with_reason_and_build_continues(small_corpus, tmp_path):
    jazz = small_corpus / "jazz"
    (jazz / "zero.wav").write_bytes(b"")
    (jazz / "notes.mp3").write_text("these are my notes, not an mp3\n" * 20)
    sf.write(jazz / "short.wav", generate_clip("jazz", seed=9, sr=22050, duration=0.3), 22050)
    (jazz / "garbage.flac").write_bytes(os.urandom(5000))
    out = tmp_path / "bad.gdb"
    summary = build_dataset(small_corpus, out, features=FAST, workers=2)
    assert summary.total == 10
    assert summary.statuses == {"ok": 6, "error": 4}
    tracks = _statuses(out)
    assert "0 bytes" in tracks["zero.wav"].error or "empty" in tracks["zero.wav"].error
    assert "too short" in tracks["short.wav"].error
    assert tracks["notes.mp3"].error and tracks["garbage.flac"].error
    text = "\n".join(summary.lines())
    assert "6 ok" in text and "4 error" in text
    for name in ("zero.wav", "notes.mp3", "short.wav", "garbage.flac"):
        assert f"{name}: {tracks[name].error}" in text
    for t in tracks.values():
        assert (t.status == "ok") == (t.error is None)
    _assert_index_and_store_agree(out)
    # Bad tracks never reach training.
    ds = Dataset(out)
    try:
        assert len(ds.tracks()) == 6
    finally:
        ds.close()


def test_rerun_recomputes_nothing(synthetic_dataset, tmp_path):
    out = tmp_path / "copy.gdb"
    shutil.copytree(synthetic_dataset, out)
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "features").glob("*.npy")}
    index = TrackIndex(out / "index.sqlite")
    source = Path(index.get_meta("source"))
    index.close()
    summary = build_dataset(source, out, features=FeatureConfig(), workers=1)
    assert (summary.computed, summary.reused) == (0, 30)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "features").glob("*.npy")} == mtimes


def test_changing_one_file_recomputes_only_it(small_corpus, tmp_path):
    out = tmp_path / "d.gdb"
    first = build_dataset(small_corpus, out, features=FAST, workers=1)
    assert (first.computed, first.reused) == (6, 0)
    before = _statuses(out)
    target = sorted((small_corpus / "metal").glob("*.wav"))[0]
    sf.write(target, generate_clip("metal", seed=12345, sr=22050, duration=3.5), 22050)
    second = build_dataset(small_corpus, out, features=FAST, workers=1)
    assert (second.computed, second.reused) == (1, 5)
    after = _statuses(out)
    for name, t in after.items():
        assert t.status == "ok"
        assert (t.sha256 != before[name].sha256) == (name == target.name)
    assert after[target.name].duration == pytest.approx(3.5, abs=0.01)
    # A removed file leaves the index; other results stay.
    victim = sorted((small_corpus / "jazz").glob("*.wav"))[0]
    victim.unlink()
    third = build_dataset(small_corpus, out, features=FAST, workers=1)
    assert (third.computed, third.removed, third.total) == (0, 1, 5)
    assert victim.name not in _statuses(out)


def test_changing_feature_settings_recomputes_everything(small_corpus, tmp_path):
    out = tmp_path / "d.gdb"
    build_dataset(small_corpus, out, features=FAST, workers=1)
    summary = build_dataset(small_corpus, out, features=FeatureConfig(sr=22050, kind="logmel", n_mels=32), workers=1)
    assert summary.computed == 6
    ds = Dataset(out)
    try:
        assert {ds.features(t).shape[0] for t in ds.tracks()} == {32}
    finally:
        ds.close()
    _assert_index_and_store_agree(out)


def test_same_audio_under_two_genres_is_ambiguous_twice_in_one_is_duplicate(small_corpus, tmp_path):
    jazz = sorted((small_corpus / "jazz").glob("*.wav"))
    metal = sorted((small_corpus / "metal").glob("*.wav"))
    shutil.copy(jazz[0], small_corpus / "metal" / "stolen jazz.wav")  # same bytes, other genre
    shutil.copy(metal[1], small_corpus / "metal" / "zz copy.wav")  # same bytes, same genre
    out = tmp_path / "d.gdb"
    summary = build_dataset(small_corpus, out, features=FAST, workers=1)
    assert summary.statuses == {"ok": 5, "ambiguous": 2, "duplicate": 1}
    tracks = _statuses(out)
    assert tracks[jazz[0].name].status == tracks["stolen jazz.wav"].status == "ambiguous"
    assert "metal" in tracks[jazz[0].name].error and "jazz" in tracks["stolen jazz.wav"].error
    assert tracks[metal[1].name].status == "ok"
    assert tracks["zz copy.wav"].status == "duplicate" and metal[1].name in tracks["zz copy.wav"].error
    _assert_index_and_store_agree(out)


def test_source_without_audio_is_a_dataset_error(tmp_path):
    (tmp_path / "empty" / "rock").mkdir(parents=True)
    (tmp_path / "empty" / "rock" / "readme.txt").write_text("nothing here")
    with pytest.raises(DatasetError, match="no audio files"):
        build_dataset(tmp_path / "empty", tmp_path / "out.gdb")
    assert not (tmp_path / "out.gdb").exists()
    with pytest.raises(DatasetError, match="no such"):
        build_dataset(tmp_path / "missing", tmp_path / "out.gdb")
    with pytest.raises(DatasetError):
        Dataset(tmp_path / "empty")


def test_a_flat_folder_of_songs_is_told_to_make_genre_sub_folders(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("a.mp3", "b.wav"):
        (flat / name).write_bytes(b"\0" * 100)
    with pytest.raises(DatasetError, match=r"flat: no genre sub-folders \(2 audio files lie directly in it\).*ROOT/<genre>/"):
        scan_labelled(flat)


def test_stale_partial_feature_files_are_cleaned_by_the_next_build(small_corpus, tmp_path):
    """What a ``kill -9`` in the middle of a feature write leaves behind (a hidden ``.part``)
    is removed by the next build."""
    out = tmp_path / "d.gdb"
    build_dataset(small_corpus, out, features=FAST, workers=1)
    stale = out / "features" / ".0123abcd.npy.k1ll3d.part"
    stale.write_bytes(b"\x93NUMPY half a file")
    build_dataset(small_corpus, out, features=FAST, workers=1)
    assert not stale.exists()
    _assert_index_and_store_agree(out)


def _finished(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT COUNT(*) FROM tracks WHERE status != 'pending'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_kill_9_half_way_then_rerun_completes_and_recomputes_only_the_rest(tmp_path, run_genrify):
    from conftest import genrify_env

    corpus = tmp_path / "corpus"
    write_demo_corpus(corpus, per_genre=8, duration=12.0, fmt="wav")  # 40 clips
    out = tmp_path / "killed.gdb"
    log = open(tmp_path / "build.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "genrify", "dataset", "build", str(corpus), "--out", str(out),
                             "--workers", "1"], env=genrify_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            if _finished(out / "index.sqlite") >= 4:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, (tmp_path / "build.log").read_text())

    index = TrackIndex(out / "index.sqlite")
    try:
        tracks = index.tracks()
        done = {t.path: t.sha256 for t in tracks if t.status == "ok"}
    finally:
        index.close()
    assert len(tracks) == 40
    assert 4 <= len(done) < 40
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "features").glob("*.npy")}
    assert {f"{sha}.npy" for sha in done.values()} <= set(mtimes)

    summary = build_dataset(corpus, out, workers=1)
    assert summary.statuses == {"ok": 40}
    assert (summary.reused, summary.computed) == (len(done), 40 - len(done))
    # What was finished before the kill was not rewritten.
    now = {p.name: p.stat().st_mtime_ns for p in (out / "features").glob("*.npy")}
    assert all(now[name] == t for name, t in mtimes.items())
    after = _statuses(out)
    assert {t.path: t.sha256 for t in after.values() if t.path in done} == done
    _assert_index_and_store_agree(out)
    # And a third run has nothing left to do.
    again = build_dataset(corpus, out, workers=1)
    assert (again.computed, again.reused) == (0, 40)


# --------------------------------------------------------------------------- splits


@st.composite
def _collections(draw):
    """Tracks with a genre and a group (artist, or the track itself)."""
    n_genres = draw(st.integers(2, 5))
    labels, groups = [], []
    for g in range(n_genres):
        for a in range(draw(st.integers(2, 5))):
            n = draw(st.integers(1, 4))
            known = draw(st.booleans())
            for i in range(n):
                labels.append(f"genre{g}")
                groups.append(f"artist:{g}-{a}" if known else f"track:{g}-{a}-{i}")
    return labels, groups


@pytest.mark.filterwarnings("ignore:The least populated class")
@settings(max_examples=40, deadline=None)
@given(data=_collections(), folds=st.integers(2, 4), seed=st.integers(0, 10_000))
def test_group_kfold_partitions_tracks_and_never_splits_a_group(data, folds, seed):
    labels, groups = data
    if len(set(groups)) < folds or max(labels.count(g) for g in set(labels)) < folds:
        with pytest.raises(DatasetError):
            group_kfold(labels, groups, folds=folds, seed=seed)
        return
    splits = group_kfold(labels, groups, folds=folds, seed=seed)
    assert len(splits) == folds
    tested = np.concatenate([te for _, te in splits])
    assert sorted(tested.tolist()) == list(range(len(labels)))  # each track tested exactly once
    for tr, te in splits:
        assert set(tr.tolist()).isdisjoint(te.tolist())
        assert len(tr) + len(te) == len(labels)
        assert {groups[i] for i in tr}.isdisjoint({groups[i] for i in te})
    again = group_kfold(labels, groups, folds=folds, seed=seed)
    for (a, b), (c, d) in zip(splits, again):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


@pytest.mark.filterwarnings("ignore:The least populated class")
@settings(max_examples=40, deadline=None)
@given(data=_collections(), seed=st.integers(0, 10_000))
def test_train_val_split_is_seeded_and_grouped(data, seed):
    labels, groups = data
    try:
        tr, va = train_val_split(labels, groups, seed=seed)
    except DatasetError as exc:  # too few tracks in every genre: a clear error, never a crash
        assert max(labels.count(g) for g in set(labels)) < min(5, len(set(groups))), exc
        return
    assert len(va) > 0 and len(tr) > 0
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(len(labels)))
    assert {groups[i] for i in tr}.isdisjoint({groups[i] for i in va})
    tr2, va2 = train_val_split(labels, groups, seed=seed)
    np.testing.assert_array_equal(va, va2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_train_val_split_is_stratified_with_twenty_percent_held_out(seed):
    labels = [g for g in ("blues", "jazz", "metal", "pop", "rock") for _ in range(10)]
    groups = [f"track:{i}" for i in range(50)]
    tr, va = train_val_split(labels, groups, seed=seed)
    assert len(va) == 10
    assert np.unique(np.array(labels)[va], return_counts=True)[1].tolist() == [2, 2, 2, 2, 2]
    others = [train_val_split(labels, groups, seed=s)[1].tolist() for s in range(5)]
    assert len({tuple(sorted(o)) for o in others}) > 1  # the seed matters


def test_split_by_artist_on_the_synthetic_corpus(synthetic_dataset):
    ds = Dataset(synthetic_dataset)
    try:
        tracks = ds.tracks()
    finally:
        ds.close()
    groups = [t.group for t in tracks]
    assert len(set(groups)) == 10  # four clips per invented artist
    tr, va = train_val_split([t.genre for t in tracks], groups, seed=0)
    artists_tr = {tracks[i].artist for i in tr}
    artists_va = {tracks[i].artist for i in va}
    assert artists_tr.isdisjoint(artists_va) and artists_va


def test_all_windows_of_a_track_fall_on_its_side():
    from genrify.train.nets import make_windows

    rng = np.random.default_rng(0)
    images = [rng.normal(size=(4, int(rng.integers(5, 80)))).astype(np.float32) for _ in range(20)]
    labels = np.array([i % 2 for i in range(20)])
    tr, va = train_val_split([str(x) for x in labels], [f"track:{i}" for i in range(20)], seed=0)
    mean, std = np.zeros(4, np.float32), np.ones(4, np.float32)
    train = make_windows([images[i] for i in tr], labels[tr], mean=mean, std=std, size=16, hop=8)
    val = make_windows([images[i] for i in va], labels[va], mean=mean, std=std, size=16, hop=8)

    def source(window):
        hits = set()
        for i, im in enumerate(images):
            tiled = np.tile(im, (1, 16 // im.shape[1] + 1))
            for s in range(tiled.shape[1] - 15):
                if np.array_equal(tiled[:, s: s + 16], window):
                    hits.add(i)
        return hits

    for ws, side in ((train, set(tr.tolist())), (val, set(va.tolist()))):
        for w in ws.x:
            found = source(w)
            assert found and found <= side


# --------------------------------------------------------------------------- windows


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 3000), size=st.integers(1, 400), hop=st.integers(1, 400))
def test_window_starts_cover_the_whole_clip(n, size, hop):
    starts = window_starts(n, size=size, hop=hop)
    assert starts[0] == 0
    assert starts[-1] == max(n - size, 0)  # the tail is covered, never dropped
    assert (np.diff(starts) > 0).all() and (np.diff(starts) <= hop).all()
    expected = 1 if n <= size else math.ceil((n - size) / hop) + 1
    assert len(starts) == expected
    if n >= size and hop <= size:  # with hop > size the gaps between windows are by request
        covered = np.zeros(n, bool)
        for s in starts:
            covered[s: s + size] = True
        assert covered.all()


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 300), size=st.integers(1, 120), hop=st.integers(1, 120), f=st.integers(1, 5))
def test_cut_windows_are_slices_and_short_clips_wrap(n, size, hop, f):
    image = np.arange(f * n, dtype=np.float32).reshape(f, n)
    windows, starts = cut_windows(image, size=size, hop=hop)
    assert windows.shape == (len(starts), f, size)
    if n >= size:
        for w, s in zip(windows, starts):
            np.testing.assert_array_equal(w, image[:, s: s + size])
    else:
        assert len(windows) == 1
        np.testing.assert_array_equal(windows[0], image[:, np.arange(size) % n])  # repeated, not zero padded


# --------------------------------------------------------------------------- musicnn embeddings


def _copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def test_embeddings_are_stored_per_window_and_per_track(real_embedded, real_embedded_windows):
    from genrify.dataset.embeddings import embedding_store
    from genrify.models.embedder import EMBEDDING_DIM

    tracks, windows = real_embedded_windows
    for t, w in zip(tracks, windows):
        # every non-overlapping 3 s window of a 15–30 s clip
        assert w.shape[1] == EMBEDDING_DIM and 5 <= len(w) <= 10 and np.isfinite(w).all(), t.path
    ds = Dataset(real_embedded)
    store = embedding_store(ds)
    ds.close()
    table = np.load(store.root / "tracks.npy", allow_pickle=False)
    import json

    meta = json.loads((store.root / "tracks.json").read_text())
    assert [m["sha256"] for m in meta] == [t.sha256 for t in tracks]
    np.testing.assert_allclose(table, np.stack([w.mean(axis=0) for w in windows]), rtol=1e-5, atol=1e-6)


def test_embedding_is_resumable_and_computes_only_what_is_missing(real_embedded, tmp_path):
    from genrify.dataset.embeddings import embedding_store
    from genrify.train.embed import embed_dataset

    copy = _copy_dataset(real_embedded, tmp_path / "copy.gdb")
    ds = Dataset(copy)
    try:
        store = embedding_store(ds)
        first = ds.tracks()[0]
        kept = np.asarray(store.read(first.sha256)).copy()
        again = embed_dataset(ds, workers=1)
        assert again["embedded"] == 0 and again["reused"] == again["tracks"] == 28
        (store.root / f"{first.sha256}.npy").unlink()
        resumed = embed_dataset(ds, workers=1)
        assert resumed["embedded"] == 1 and resumed["reused"] == 27
        np.testing.assert_allclose(np.asarray(store.read(first.sha256)), kept, rtol=1e-5, atol=1e-5)
    finally:
        ds.close()


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv", ".parquet"])
def test_embedding_export_formats(real_embedded, tmp_path, suffix):
    from genrify.dataset.embeddings import embedding_store, export_embeddings

    ds = Dataset(real_embedded)
    try:
        table = np.load(embedding_store(ds).root / "tracks.npy", allow_pickle=False)
        genres = [t.genre for t in ds.tracks()]
        out = export_embeddings(ds, tmp_path / f"emb{suffix}")
    finally:
        ds.close()
    if suffix == ".npy":
        np.testing.assert_array_equal(np.load(out, allow_pickle=False), table)
    elif suffix == ".npz":
        with np.load(out, allow_pickle=False) as z:
            np.testing.assert_array_equal(z["embeddings"], table)
            assert list(z["genre"]) == genres
    elif suffix == ".csv":
        with open(out, newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0][:3] == ["path", "genre", "sha256"] and len(rows[0]) == 3 + table.shape[1]
        assert [r[1] for r in rows[1:]] == genres
        np.testing.assert_allclose(np.array([r[3:] for r in rows[1:]], dtype=np.float32), table, rtol=1e-5, atol=1e-6)
    else:
        import pyarrow.parquet as pq

        t = pq.read_table(out)
        assert t.column("genre").to_pylist() == genres
        np.testing.assert_array_equal(np.array(t.column("embedding").to_pylist(), dtype=np.float32), table)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # nothing half-written beside it


def test_embedding_export_refuses_unknown_format(real_embedded, tmp_path):
    from genrify.dataset.embeddings import export_embeddings

    ds = Dataset(real_embedded)
    try:
        with pytest.raises(DatasetError, match="unsupported export format"):
            export_embeddings(ds, tmp_path / "emb.xlsx")
    finally:
        ds.close()
    assert list(tmp_path.iterdir()) == []
