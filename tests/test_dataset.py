"""Dataset building: the SQLite track index and the feature store, built from real files; resumable
after ``kill -9``. Splits, windows and embeddings have their own files (``test_dataset_*.py``)."""

from __future__ import annotations

import csv
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
from hypothesis import given
from hypothesis import strategies as st

from genrify.config import FeatureConfig
from genrify.dataset import Dataset, FeatureStore, TrackIndex
from genrify.dataset.build import build_dataset
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


def test_a_name_that_is_not_utf8_is_built_like_any_other(small_corpus, tmp_path):
    jazz = small_corpus / "jazz"
    first = sorted(jazz.glob("*.wav"))[0]
    odd = jazz / os.fsdecode(b"caf\xe9.wav")  # Latin-1 bytes: not UTF-8
    sf.write(tmp_path / "plain.wav", generate_clip("jazz", seed=11, sr=22050, duration=3.0), 22050)
    (tmp_path / "plain.wav").rename(odd)
    first.unlink()  # and a vanished file, dropped by the rerun by its name
    out = tmp_path / "odd.gdb"
    summary = build_dataset(small_corpus, out, features=FAST, workers=1)
    assert summary.statuses == {"ok": 6}
    assert _statuses(out)[odd.name].status == "ok"  # the name comes back as it is on disk
    again = build_dataset(small_corpus, out, features=FAST, workers=1)
    assert (again.computed, again.reused) == (0, 6)
    _assert_index_and_store_agree(out)
