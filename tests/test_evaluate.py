"""Evaluation: metrics against hand-computed cases, calibration error, report files, and
cross-validation that never scores a song with a model trained on it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from genrify import report
from genrify.config import FeatureConfig, ModelConfig, RunConfig, TrainConfig, WindowConfig
from genrify.dataset.splits import group_kfold
from genrify.evaluate import evaluate, expected_calibration_error
from genrify.train.nets import cross_validate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.filterwarnings("ignore:The least populated class")


def test_metrics_match_a_hand_computed_case():
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0])
    m = evaluate(y_true, y_pred, labels=["blues", "jazz", "rock"])
    assert list(m)[:4] == ["n", "accuracy", "macro_f1", "chance"]  # an ordered dict of named scores
    assert m["n"] == 5
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["chance"] == pytest.approx(1 / 3)
    blues, jazz, rock = (m["per_genre"][g] for g in ("blues", "jazz", "rock"))
    assert (blues["precision"], blues["recall"], blues["f1"], blues["support"]) == pytest.approx((1 / 2, 1 / 2, 1 / 2, 2))
    assert (jazz["precision"], jazz["recall"], jazz["f1"], jazz["support"]) == pytest.approx((2 / 3, 1.0, 0.8, 2))
    assert (rock["precision"], rock["recall"], rock["f1"], rock["support"]) == (0.0, 0.0, 0.0, 1)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert m["labels"] == ["blues", "jazz", "rock"]
    assert "ece" not in m
    json.dumps(m)  # plain JSON types only


def test_a_genre_absent_from_the_data_is_reported_with_zero_support():
    m = evaluate(np.array([0, 0, 1]), np.array([0, 0, 1]), labels=["a", "b", "c"])
    assert m["accuracy"] == 1.0 and m["per_genre"]["c"]["support"] == 0
    assert np.asarray(m["confusion"]).shape == (3, 3)


def test_ece_is_zero_when_calibrated_and_large_when_overconfident():
    n = 1000
    y = np.zeros(n, dtype=int)
    probs = np.tile([0.8, 0.2], (n, 1))
    calibrated_y = y.copy()
    calibrated_y[:200] = 1  # 80 % of the 0.8-confident answers are right
    assert expected_calibration_error(probs, calibrated_y) == pytest.approx(0.0, abs=1e-9)
    over = np.tile([0.99, 0.01], (n, 1))
    half_y = np.where(np.arange(n) % 2 == 0, 0, 1)  # right half of the time at 99 % confidence
    assert expected_calibration_error(over, half_y) == pytest.approx(0.49, abs=1e-6)
    # Two confidence levels, each calibrated within its bin.
    mixed = np.concatenate([np.tile([0.6, 0.4], (500, 1)), np.tile([0.9, 0.1], (500, 1))])
    mixed_y = np.concatenate([np.r_[np.zeros(300), np.ones(200)], np.r_[np.zeros(450), np.ones(50)]]).astype(int)
    assert expected_calibration_error(mixed, mixed_y) == pytest.approx(0.0, abs=1e-9)
    m = evaluate(half_y, over.argmax(1), labels=["x", "y"], probabilities=over)
    assert m["ece"] == pytest.approx(0.49, abs=1e-6)


@given(st.integers(1, 60), st.integers(2, 6), st.integers(0, 10_000))
def test_ece_is_between_zero_and_one(n, k, seed):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k), size=n)
    y = rng.integers(0, k, size=n)
    ece = expected_calibration_error(p, y)
    assert 0.0 <= ece <= 1.0
    # Always answering with certainty 1 and always right is perfectly calibrated.
    assert expected_calibration_error(np.eye(k)[y], y) == pytest.approx(0.0)


def test_report_files_are_written_and_valid(tmp_path):
    m = evaluate(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 2]), labels=["a", "b", "c"],
                 probabilities=np.array([[0.9, 0.05, 0.05], [0.2, 0.3, 0.5], [0.1, 0.1, 0.8], [0.0, 0.4, 0.6]]))
    m["fold_accuracy"] = [0.5, 1.0]
    m["oof_probabilities"] = [[0.0]]
    paths = report.write_report(m, tmp_path / "reports" / "run", title="Test run", context=["held-out only"])
    md, js, png = paths
    assert (md.name, js.name, png.name) == ("run.md", "run.json", "run-confusion.png")
    assert all(p.is_file() for p in paths)
    data = json.loads(js.read_text())
    assert data["title"] == "Test run" and data["context"] == ["held-out only"]
    assert data["accuracy"] == pytest.approx(0.75) and data["confusion"] == m["confusion"]
    assert "oof_probabilities" not in data  # bulky per-song data stays out of the report
    text = md.read_text()
    assert "# Test run" in text and "0.750" in text and "| c |" in text and "run-confusion.png" in text
    assert "held-out only" in text and "per-fold accuracy: 0.50, 1.00" in text
    assert png.read_bytes().startswith(PNG_MAGIC)
    curves = report.learning_curves_png({"train_loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.7, 0.8],
                                         "train_acc": [0.3, 0.6, 0.7], "val_acc": [0.3, 0.5, 0.4], "best_epoch": 1})
    assert curves.startswith(PNG_MAGIC)
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["run-confusion.png", "run.json", "run.md"]
    assert "accuracy 0.750" in report.text_summary(m)


def _small_collection(n: int = 30, k: int = 3, seed: int = 0):
    """Songs of ``k`` genres (genre = a shift of the first feature), two songs per artist."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    images = []
    for i in range(n):
        im = rng.normal(size=(6, int(rng.integers(15, 50)))).astype(np.float32)
        im[0] += 1.5 * y[i]
        images.append(im)
    groups = [f"artist:{i % (n // 2)}" for i in range(n)]  # songs i and i + n/2 share an artist
    return images, y, groups, [f"g{i}" for i in range(k)]


def _small_config() -> RunConfig:
    return RunConfig(features=FeatureConfig(n_mfcc=6),
                     window=WindowConfig(seconds=0.25, hop_seconds=0.25, train_hop_seconds=0.125),
                     model=ModelConfig(name="mlp", hidden=(16,), column_step=4),
                     train=TrainConfig(epochs=3, batch_size=16, seed=5))


def test_cross_validation_scores_each_song_with_a_model_that_never_saw_it():
    """Each song's out-of-fold probabilities are exactly those of a model trained (seeded,
    so reproducibly) on the other folds only: had the song, or its artist, been in that
    model's training data, the weights and so the probabilities would differ."""
    from genrify.train.nets import track_probabilities, train_tracks

    images, y, groups, labels = _small_collection()
    config = _small_config()
    cv = cross_validate(images, y, groups, config=config, labels=labels, folds=3)
    assert cv["n"] == 30 and cv["folds"] == 3 and len(cv["fold_accuracy"]) == 3
    oof = np.asarray(cv["oof_probabilities"])
    assert oof.shape == (30, 3)
    np.testing.assert_allclose(oof.sum(1), 1.0, rtol=1e-5)  # every song got its out-of-fold prediction
    assert cv["accuracy"] == pytest.approx(float((oof.argmax(1) == y).mean()))

    splits = group_kfold([labels[i] for i in y], groups, folds=3, seed=config.train.seed)
    assert sorted(np.concatenate([te for _, te in splits]).tolist()) == list(range(30))
    for (tr, te), acc in zip(splits, cv["fold_accuracy"]):
        assert set(tr.tolist()).isdisjoint(te.tolist())
        assert {groups[i] for i in tr}.isdisjoint({groups[i] for i in te})  # no artist on both sides
        mf, _, _ = train_tracks([images[i] for i in tr], y[tr], [groups[i] for i in tr], config=config, labels=labels)
        probs = track_probabilities(mf, [images[i] for i in te])
        np.testing.assert_allclose(oof[te], probs, rtol=1e-5, atol=1e-6)
        assert acc == pytest.approx(float((probs.argmax(1) == y[te]).mean()))


def test_macro_f1_averages_only_the_genres_present():
    """A model genre with no songs in the data has no F1: it is named, not averaged in as 0."""
    m = evaluate(np.array([0, 0, 1]), np.array([0, 0, 1]), labels=["a", "b", "c", "d"])
    assert m["macro_f1"] == 1.0 and m["absent"] == ["c", "d"]
    wrong = evaluate(np.array([0, 1]), np.array([2, 1]), labels=["a", "b", "c"])  # a wrong answer still counts
    assert wrong["macro_f1"] == pytest.approx((0.0 + 1.0) / 2) and wrong["absent"] == ["c"]
