"""Dataset splits: seeded, stratified by genre, and never splitting a group (an artist, or a track
with all of its windows) across the two sides."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genrify.dataset import Dataset
from genrify.dataset.splits import group_kfold, train_val_split
from genrify.errors import DatasetError


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
