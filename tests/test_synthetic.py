"""The synthetic test corpus: deterministic, well-formed, style-distinct, learnable, written correctly."""

from __future__ import annotations

import csv

import mutagen
import numpy as np
import pytest

from genrify.audio import load_audio
from genrify.errors import ConfigError
from genrify.sources.synthetic import STYLES, generate_clip, track_name, write_demo_corpus

SR = 22050


def _features(y: np.ndarray, sr: int = SR) -> dict[str, float]:
    """Mean spectral centroid (Hz), share of energy below 150 Hz and onsets per second."""
    librosa = pytest.importorskip("librosa")
    S = np.abs(librosa.stft(y))
    low = librosa.fft_frequencies(sr=sr) < 150
    return {
        "centroid": float(librosa.feature.spectral_centroid(S=S, sr=sr).mean()),
        "low_share": float((S[low] ** 2).sum() / (S**2).sum()),
        "onset_rate": len(librosa.onset.onset_detect(y=y, sr=sr)) / (len(y) / sr),
    }


def _read_tags(path) -> dict[str, str]:
    f = mutagen.File(path, easy=True)
    assert f is not None and f.tags is not None, path
    if path.suffix == ".wav":  # ID3 inside the WAVE file (no "easy" interface)
        return {"artist": str(f.tags["TPE1"]), "title": str(f.tags["TIT2"]), "genre": str(f.tags["TCON"])}
    return {key: f.tags[key][0] for key in ("artist", "title", "genre")}


@pytest.mark.parametrize("style", STYLES)
def test_clip_is_deterministic_and_seed_dependent(style):
    a = generate_clip(style, seed=7, duration=3.0)
    b = generate_clip(style, seed=7, duration=3.0)
    c = generate_clip(style, seed=8, duration=3.0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(("sr", "duration"), [(22050, 30.0), (44100, 1.5), (8000, 0.01), (16000, 1 / 16000)])
def test_clip_shape_range_finite(style, sr, duration):
    y = generate_clip(style, seed=1, sr=sr, duration=duration)
    assert y.dtype == np.float32
    assert y.shape == (round(duration * sr),)
    assert np.isfinite(y).all()
    assert np.abs(y).max() <= 1.0


def test_styles_differ_from_each_other_and_from_other_seeds():
    clips = {s: generate_clip(s, seed=0, duration=4.0) for s in STYLES}
    for i, a in enumerate(STYLES):
        for b in STYLES[i + 1 :]:
            assert not np.allclose(clips[a], clips[b])


def test_styles_are_measurably_distinct():
    feats = {s: [_features(generate_clip(s, seed=k, duration=6.0)) for k in range(3)] for s in STYLES}
    mean = {s: {k: np.mean([f[k] for f in fs]) for k in fs[0]} for s, fs in feats.items()}
    # Sustained strings: dull, and hardly any onsets.
    assert all(f["centroid"] < 2000 and f["onset_rate"] < 2.0 for f in feats["classical"])
    # Sub bass under boom-bap: most of the energy below 150 Hz, more than any other style.
    assert all(f["low_share"] > 0.8 for f in feats["hiphop"])
    assert mean["hiphop"]["low_share"] == max(m["low_share"] for m in mean.values())
    # Fast double kick and 8th-note chugs: the busiest onsets.
    assert mean["metal"]["onset_rate"] == max(m["onset_rate"] for m in mean.values())
    # Four-on-the-floor with 16th hats is brighter and busier than the swung ride.
    assert mean["edm"]["centroid"] > mean["jazz"]["centroid"]
    assert mean["edm"]["onset_rate"] > mean["jazz"]["onset_rate"]
    # Every pair of styles differs by a clear margin in at least one feature.
    scale = {"centroid": 300.0, "low_share": 0.1, "onset_rate": 1.0}
    for i, a in enumerate(STYLES):
        for b in STYLES[i + 1 :]:
            assert any(abs(mean[a][k] - mean[b][k]) > scale[k] for k in scale), (a, b, mean[a], mean[b])


def test_mfcc_means_are_learnable():
    librosa = pytest.importorskip("librosa")
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, labels = [], []
    for label, style in enumerate(STYLES):
        for k in range(8):
            y = generate_clip(style, seed=1000 + k, duration=5.0)
            X.append(librosa.feature.mfcc(y=y, sr=SR, n_mfcc=13).mean(axis=1))
            labels.append(label)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    scores = cross_val_score(clf, np.array(X), np.array(labels), cv=StratifiedKFold(4, shuffle=True, random_state=0))
    assert scores.mean() >= 0.9


def test_bad_arguments_raise_config_error():
    with pytest.raises(ConfigError):
        generate_clip("polka", seed=0)
    with pytest.raises(ConfigError):
        generate_clip("jazz", seed=-1)
    with pytest.raises(ConfigError):
        generate_clip("jazz", seed=0, duration=0.0)
    with pytest.raises(ConfigError):
        write_demo_corpus("unused", per_genre=1, fmt="aiff")


def test_track_names_are_synthetic_and_grouped_by_artist():
    artist, title = track_name("jazz", 6)
    assert (artist, title) == ("Synthetic Jazz Ensemble 2", "Swing Study No. 7")
    assert track_name("metal", 0)[0] == track_name("metal", 3)[0] != track_name("metal", 4)[0]


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3", "m4a"])
def test_written_corpus_decodes_with_tags_and_manifest(tmp_path, fmt):
    progress = []
    rows = write_demo_corpus(
        tmp_path, per_genre=1, seed=3, duration=2.0, fmt=fmt, styles=("edm", "jazz"), progress=lambda d, t: progress.append((d, t))
    )
    assert progress == [(1, 2), (2, 2)]
    with open(tmp_path / "manifest.csv", newline="", encoding="utf-8") as fh:
        assert list(csv.DictReader(fh)) == rows
    # Only the finished files remain: no temporary names left behind.
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted([r["path"] for r in rows] + ["manifest.csv"])
    for row in rows:
        path = tmp_path / row["path"]
        assert path.parent.name == row["genre"]
        assert path.name == f"{row['artist']} - {row['title']}.{fmt}"
        y, sr = load_audio(path, sr=None)
        assert sr == SR
        # AAC adds encoder padding; the other formats keep the exact length.
        assert abs(len(y) / sr - 2.0) < (0.05 if fmt == "m4a" else 1e-3)
        assert np.isfinite(y).all() and np.abs(y).max() > 0.1
        assert _read_tags(path) == {"artist": row["artist"], "title": row["title"], "genre": row["genre"]}


def test_written_wav_matches_generated_clip(tmp_path):
    rows = write_demo_corpus(tmp_path, per_genre=2, seed=5, duration=1.0, styles=("classical",))
    again = write_demo_corpus(tmp_path / "again", per_genre=2, seed=5, duration=1.0, styles=("classical",))
    assert rows == again
    a, _ = load_audio(tmp_path / rows[1]["path"], sr=None)
    b, _ = load_audio(tmp_path / "again" / again[1]["path"], sr=None)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).max() <= 1.0
