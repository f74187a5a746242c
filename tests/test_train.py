"""Training: reproducible with a seed, early stopping keeps the best epoch, balanced class
weights, normalisation from the training split only, and the models really learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from genrify.config import ModelConfig, RunConfig, TrainConfig, WindowConfig

from genrify.dataset import Dataset
from genrify.dataset.splits import group_kfold, train_val_split
from genrify.dataset.windows import window_frames
from genrify.train.loop import WindowSet, class_weights, evaluate_windows, fit
from genrify.train.nets import load_dataset_images, normalisation_stats, track_probabilities, train_tracks

# Small synthetic sets give sklearn's stratified splitter genres with few artists.
pytestmark = pytest.mark.filterwarnings("ignore:The least populated class")


def _windows(n: int, *, seed: int, n_classes: int = 3, f: int = 6, t: int = 40, signal: float = 1.0) -> WindowSet:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = rng.normal(size=(n, f, t)).astype(np.float32)
    x[:, 0, :] += signal * y[:, None]  # learnable from the first feature row
    return WindowSet(x=x, y=y.astype(np.int64), track=np.arange(n))


def _config(name: str, **train) -> RunConfig:
    return RunConfig(model=ModelConfig(name=name, hidden=(32,), channels=(4, 8, 8), dense=16, column_step=4),
                     train=TrainConfig(**{"epochs": 4, "batch_size": 16, "patience": 10, **train}))


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_same_seed_gives_identical_weights_and_history(name):
    train, val = _windows(64, seed=1), _windows(24, seed=2)
    runs = [fit(train, val, config=_config(name, seed=s), n_classes=3) for s in (7, 7, 8)]
    (m1, h1), (m2, h2), (m3, h3) = runs
    assert h1.to_dict() == h2.to_dict()
    s1, s2, s3 = m1.state_dict(), m2.state_dict(), m3.state_dict()
    for k in s1:
        torch.testing.assert_close(s1[k], s2[k], rtol=0, atol=0)
    assert any(not torch.equal(s1[k], s3[k]) for k in s1 if s1[k].is_floating_point())


def test_early_stopping_keeps_the_best_epoch():
    """Random labels: the model can only overfit, so validation loss turns up early."""
    rng = np.random.default_rng(0)
    train = WindowSet(x=rng.normal(size=(48, 6, 40)).astype(np.float32), y=rng.integers(0, 3, 48), track=np.arange(48))
    val = WindowSet(x=rng.normal(size=(30, 6, 40)).astype(np.float32), y=rng.integers(0, 3, 30), track=np.arange(30))
    config = _config("mlp", epochs=60, patience=3, lr=1e-2, weight_decay=0.0)
    model, h = fit(train, val, config=config, n_classes=3)
    best = h.best_epoch
    assert len(h.val_loss) < 60  # it stopped early ...
    assert len(h.val_loss) == best + 1 + 3  # ... exactly `patience` epochs after the best one
    assert h.val_loss[best] == min(h.val_loss)
    assert all(v >= h.val_loss[best] - 1e-4 for v in h.val_loss[best + 1:])
    # The returned weights are the best epoch's, not the last epoch's.
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights(train.y, 3))
    loss, acc = evaluate_windows(model, val, loss_fn=loss_fn, batch_size=64)
    assert loss == pytest.approx(h.val_loss[best], rel=1e-5)
    assert acc == pytest.approx(h.val_acc[best])
    assert not model.training


@given(st.lists(st.integers(0, 5), min_size=1, max_size=200), st.integers(6, 9))
def test_class_weights_are_total_over_k_times_count(labels, k):
    y = np.array(labels)
    w = class_weights(y, k).numpy()
    assert w.shape == (k,)
    counts = np.bincount(y, minlength=k)
    for c in range(k):
        if counts[c]:
            assert w[c] == pytest.approx(len(y) / (k * counts[c]), rel=1e-6)
        else:
            assert w[c] == 0
    # Every present class carries the same total weight.
    present = counts > 0
    np.testing.assert_allclose((w * counts)[present], len(y) / k, rtol=1e-5)


@given(st.lists(st.integers(1, 30), min_size=1, max_size=6), st.integers(0, 1000))
def test_normalisation_stats_are_per_feature_over_all_frames(lengths, seed):
    rng = np.random.default_rng(seed)
    images = [(rng.normal(size=(4, n)) * np.array([[1], [10], [100], [0]]) + np.array([[0], [-5], [50], [3]])).astype(np.float32) for n in lengths]
    mean, std = normalisation_stats(images)
    allframes = np.concatenate(images, axis=1).astype(np.float64)
    np.testing.assert_allclose(mean, allframes.mean(1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(std, np.maximum(allframes.std(1), 1e-3), rtol=1e-3, atol=1e-3)
    assert (std > 0).all()  # a constant feature does not divide by zero


def test_normalisation_statistics_come_from_the_training_split_only():
    rng = np.random.default_rng(0)
    labels = ["a", "b"]
    y = np.array([i % 2 for i in range(20)])
    groups = [f"track:{i}" for i in range(20)]
    config = RunConfig(window=WindowConfig(seconds=0.5, hop_seconds=0.5, train_hop_seconds=0.25),
                       model=ModelConfig(name="mlp", hidden=(8,), column_step=4),
                       train=TrainConfig(epochs=1, seed=3))
    # The split depends only on labels, groups and seed: make held-out tracks wildly different.
    _, va_expected = train_val_split([labels[i] for i in y], groups, val_fraction=0.2, seed=3)
    images = []
    for i in range(20):
        im = rng.normal(size=(10, 60)).astype(np.float32)
        images.append(im + 1000.0 if i in set(va_expected.tolist()) else im)
    mf, _, va = train_tracks(images, y, groups, config=config, labels=labels)
    np.testing.assert_array_equal(np.sort(va), np.sort(va_expected))
    train_frames = np.concatenate([images[i] for i in range(20) if i not in set(va.tolist())], axis=1)
    np.testing.assert_allclose(mf.tensors["norm.mean"], train_frames.mean(1), atol=1e-3)
    np.testing.assert_allclose(mf.tensors["norm.std"], train_frames.std(1), rtol=1e-3)
    assert np.abs(mf.tensors["norm.mean"]).max() < 1.0  # the +1000 of the held-out tracks is not in it
    assert mf.extra["seed"] == 3 and len(mf.extra["history"]["train_loss"]) == 1


def test_training_needs_two_genres():
    from genrify.errors import DatasetError

    with pytest.raises(DatasetError, match="two genres"):
        train_tracks([np.zeros((10, 300), np.float32)] * 4, np.zeros(4, np.int64), ["a", "b", "c", "d"],
                     config=RunConfig(), labels=["rock"])


@pytest.fixture(scope="module")
def synthetic_tracks(synthetic_dataset):
    ds = Dataset(synthetic_dataset)
    try:
        tracks, images, y, groups, labels = load_dataset_images(ds)
        images = [np.asarray(im) for im in images]
    finally:
        ds.close()
    return tracks, images, y, groups, labels


@pytest.mark.parametrize(("name", "epochs"), [("mlp", 20), ("cnn", 10)])
def test_models_learn_the_synthetic_corpus(synthetic_tracks, name, epochs):
    """Train on two thirds of the artists, test on the other third (never seen, not even
    for early stopping): accuracy must be well above chance (20 %)."""
    tracks, images, y, groups, labels = synthetic_tracks
    tr, te = group_kfold([labels[i] for i in y], groups, folds=3, seed=0)[0]
    assert {groups[i] for i in tr}.isdisjoint({groups[i] for i in te})
    config = RunConfig(model=ModelConfig(name=name, hidden=(128,), dense=64),
                       train=TrainConfig(epochs=epochs, patience=epochs, batch_size=16, seed=0))
    mf, history, _ = train_tracks([images[i] for i in tr], y[tr], [groups[i] for i in tr], config=config,
                                  labels=labels)
    assert history.train_loss[-1] < history.train_loss[0]
    probs = track_probabilities(mf, [images[i] for i in te])
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    accuracy = float((probs.argmax(1) == y[te]).mean())
    assert accuracy >= 0.6, (name, accuracy, len(te))


# --------------------------------------------------------------------------- heads over musicnn embeddings


@pytest.fixture(scope="module")
def real_embeddings(real_embedded_windows):
    """(per-window embeddings, label ids, groups, labels) of the real embedded dataset."""
    tracks, E = real_embedded_windows
    labels = sorted({t.genre for t in tracks})
    y = np.array([labels.index(t.genre) for t in tracks])
    return E, y, [t.group for t in tracks], labels


def _few_shot_split(y: np.ndarray, *, shots: int = 5):
    """The first ``shots`` songs of each genre train; the rest are held out."""
    train = np.concatenate([np.flatnonzero(y == k)[:shots] for k in np.unique(y)])
    return np.sort(train), np.setdiff1d(np.arange(len(y)), train)


def _finetune_config(**train) -> RunConfig:
    return RunConfig(model=ModelConfig(name="musicnn-finetune", backbone="msd_musicnn"),
                     train=TrainConfig(**{"epochs": 40, "patience": 8, **train}))


def test_probe_learns_genres_from_five_real_songs_each(real_embeddings):
    from genrify.predict.heads import probe_logits, song_softmax
    from genrify.train.probe import fit_probe

    E, y, _, labels = real_embeddings
    tr, te = _few_shot_split(y)
    tensors = fit_probe([E[i] for i in tr], y[tr], C=0.005, n_classes=len(labels))
    probs = song_softmax([probe_logits(tensors, E[i]) for i in te])
    accuracy = float(np.mean(probs.argmax(1) == y[te]))
    assert accuracy >= 0.75, accuracy  # 4 genres, chance 0.25


def test_finetune_head_starts_as_musicnn_back_end(real_embedded, gtzan_mini):
    """Before any training, the head's hidden layer is musicnn's own penultimate layer."""
    from genrify.audio import load_audio
    from genrify.features.musicnn import MusicnnLogMel, musicnn_patches
    from genrify.models.musicnn import MusicnnBackEnd, load_musicnn

    backbone = load_musicnn()
    head = MusicnnBackEnd(n_classes=4).eval()
    y, _ = load_audio(sorted((gtzan_mini / "jazz").glob("*.wav"))[0], sr=16000)
    with torch.inference_mode():
        out = backbone.forward_features(musicnn_patches(MusicnnLogMel()(torch.from_numpy(y))))
        emb = torch.cat([out["max_pool"], out["mean_pool"]], dim=1)
        hidden = head.dense_bn(torch.relu(head.dense(head.pool_bn(emb))))
    torch.testing.assert_close(hidden, out["penultimate"], rtol=1e-5, atol=1e-5)
    assert head(emb).shape == (len(emb), 4)
    trainable = {n for n, p in head.named_parameters() if p.requires_grad}
    assert trainable == {"dense.weight", "dense.bias", "classifier.weight", "classifier.bias"}


def test_finetune_learns_genres_from_five_real_songs_each(real_embeddings):
    from genrify.models.musicnn import MusicnnBackEnd
    from genrify.predict.heads import head_logits, load_head, song_softmax
    from genrify.train.finetune import train_finetune

    E, y, groups, labels = real_embeddings
    tr, te = _few_shot_split(y)
    mf, history, val = train_finetune([E[i] for i in tr], y[tr], [groups[i] for i in tr], config=_finetune_config(),
                                      labels=labels)
    assert 0 < len(val) < len(tr) and 0 <= history.best_epoch < len(history.train_loss)
    assert mf.extra["epochs"] == history.best_epoch + 1  # then retrained on all 20 songs for that many
    head = load_head(mf)
    probs = song_softmax(head_logits(head, [E[i] for i in te]))
    accuracy = float(np.mean(probs.argmax(1) == y[te]))
    assert accuracy >= 0.75, accuracy
    # Only the dense layer and the new classifier moved; musicnn's batch norms kept their statistics.
    pretrained = MusicnnBackEnd(n_classes=len(labels))
    for name in ("pool_bn.running_mean", "pool_bn.weight", "dense_bn.running_var", "dense_bn.bias"):
        np.testing.assert_array_equal(mf.tensors[f"model.{name}"], pretrained.state_dict()[name].numpy())
    assert not np.array_equal(mf.tensors["model.dense.weight"], pretrained.dense.weight.detach().numpy())
    assert float(mf.tensors["calibration.temperature"][0]) == 1.0  # fewer than 10 validation songs: not calibrated


def test_finetune_is_reproducible(real_embeddings):
    from genrify.train.finetune import train_finetune

    E, y, groups, labels = real_embeddings
    runs = [train_finetune(E, y, groups, config=_finetune_config(epochs=3, seed=s), labels=labels) for s in (3, 3, 4)]
    (a, ha, _), (b, hb, _), (c, _, _) = runs
    assert ha.to_dict() == hb.to_dict()
    for k in a.tensors:
        np.testing.assert_array_equal(a.tensors[k], b.tensors[k])
    assert not np.array_equal(a.tensors["model.classifier.weight"], c.tensors["model.classifier.weight"])


def test_finetune_cross_validation_scores_every_song_out_of_fold(real_embeddings):
    from genrify.predict.heads import song_softmax
    from genrify.train.finetune import finetune_oof_logits

    E, y, groups, labels = real_embeddings
    oof = finetune_oof_logits(E, y, groups, config=_finetune_config(epochs=15), labels=labels, folds=3)
    assert len(oof) == len(y) and all(z.shape == (len(e), len(labels)) for z, e in zip(oof, E))
    assert float(np.mean(song_softmax(oof).argmax(1) == y)) >= 0.75


def test_splits_group_by_artist_unless_asked_to_group_by_track():
    from genrify.dataset.index import Track

    def track(i, artist):
        return Track(id=i, path=f"/x/{i}.wav", sha256=f"h{i}", genre="rock", artist=artist, title=None,
                     duration=1.0, n_frames=10, status="ok", error=None)

    a, b, c = track(1, "Queen"), track(2, "queen"), track(3, None)
    assert a.group_for("artist") == b.group_for("artist") == "artist:queen"
    assert c.group_for("artist") == "track:h3"
    assert a.group_for("track") != b.group_for("track")
    from genrify.config import TrainConfig
    from genrify.errors import ConfigError

    with pytest.raises(ConfigError, match="grouping"):
        TrainConfig(group_by="album")


def _not_music_clips(shared_data, tmp_path) -> dict:
    """Real speech (GTZAN music/speech, LibriSpeech) and generated noise, tone and silence, as files."""
    import soundfile as sf

    sr = 22050
    t = np.arange(8 * sr) / sr
    made = {"white noise": np.random.default_rng(0).normal(0, 0.2, t.size),
            "a 440 Hz tone": 0.3 * np.sin(2 * np.pi * 440 * t), "silence": np.zeros(t.size)}
    clips = {name: tmp_path / f"{name}.wav" for name in made}
    for name, y in made.items():
        sf.write(clips[name], y.astype(np.float32), sr)
    speech = sorted((shared_data / "music-speech" / "speech").glob("*.wav"))[:2]
    speech += [shared_data / "cc-audio" / "198-209-0000.ogg"]
    clips.update({p.name: p for p in speech})
    return clips


@pytest.mark.slow
def test_a_self_trained_probe_says_not_music_as_the_bundled_models_do(real_embedded, shared_data, tmp_path):
    """``musicnn-probe`` trained on four genres ships the music probe: speech, noise, a tone and
    silence are "not music", while real songs of its genres keep their genre."""
    import shutil

    from genrify.config import musicnn_run_config
    from genrify.predict import GenreClassifier
    from genrify.train.run import train_and_report

    shutil.copytree(real_embedded, tmp_path / "real.gdb", symlinks=True)
    config = musicnn_run_config(RunConfig(model=ModelConfig(name="musicnn-probe", backbone="msd_musicnn", C=0.005)))
    dataset = Dataset(tmp_path / "real.gdb")
    try:
        train_and_report(dataset, config, out=tmp_path / "probe.genrify", prefix=tmp_path / "probe",
                         say=lambda *a, **k: None)
    finally:
        dataset.close()
    clf = GenreClassifier.from_file(tmp_path / "probe.genrify")
    assert clf.model_file.extra["music_probe"] == "the bundled default model's"
    for name, path in _not_music_clips(shared_data, tmp_path).items():
        a = clf.analyse(path)
        assert a.verdict == "not_music", (name, a.verdict, a.top, a.details)
    for genre in ("metal", "classical"):  # songs the probe never saw
        song = sorted((shared_data / "gtzan-excerpts" / genre).glob("*.wav"))[0]
        a = clf.analyse(song)
        assert a.verdict != "not_music" and a.details["music_probability"] > 0.5, (song, a.message)


def test_a_not_music_class_trains_the_music_probe_and_wins_the_verdict(real_embeddings):
    """A dataset with a not-music class fits its own music probe on it (music = every other
    genre), and a model whose not-music class wins a song calls the song not music."""
    from genrify.config import musicnn_run_config
    from genrify.predict.checks import not_music_class
    from genrify.predict.heads import probe_logits, sigmoid
    from genrify.train.run import Prepared, music_probe

    assert [not_music_class(x) for x in (["jazz", "Not Music"], ["non-music", "rock"], ["jazz", "musical"])] == [1, 0, None]
    E, y, groups, labels = real_embeddings
    # Stand-in for a user's not-music folder: the classical songs, labelled "not-music".
    named = [("not-music" if lab == "classical" else lab) for lab in labels]
    p = Prepared(musicnn_run_config(RunConfig()), [], named, y, groups, E)
    t = music_probe(p)
    k = named.index("not-music")
    p_music = np.array([sigmoid(probe_logits(t, e, prefix="music")[:, 0]).mean() for e in E])
    assert (p_music[y == k] < 0.5).all() and (p_music[y != k] > 0.5).all()


def test_too_few_songs_for_a_validation_split_says_what_to_do():
    from genrify.errors import DatasetError

    labels = [g for g in ("blues", "jazz", "rock", "pop", "metal", "disco") for _ in range(3)]
    groups = [f"artist{i}" for i in range(len(labels))]
    with pytest.raises(DatasetError) as info:
        train_val_split(labels, groups, val_fraction=0.2)
    message = str(info.value)
    assert "--val-fraction 0.34" in message and "musicnn-probe" in message and "add songs" in message
    assert "n_splits" not in message  # not scikit-learn's words
    tr, va = train_val_split(labels, groups, val_fraction=0.34)  # the advice works: one song in three held out
    assert len(va) == 6 and len(tr) == 12
    with pytest.raises(DatasetError, match=r"--folds 3"):
        group_kfold(labels, groups, folds=5)
