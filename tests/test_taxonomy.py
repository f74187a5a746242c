"""The taxonomy as data, and the taxonomy model's arithmetic (pure arrays) and fitting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genrify.errors import ConfigError
from genrify.models.backbones import BACKBONES
from genrify.predict.taxonomy import genre_window_probabilities, head_inputs, noisy_or, song_pool, style_shares
from genrify.taxonomy import canonical_name, default_taxonomy, parse_taxonomy


REQUIRED = {"blues", "classical", "country", "disco", "electronic", "folk", "hip-hop", "jazz", "latin", "metal", "pop",
            "reggae", "rock", "soul-rnb"}


def test_every_top_level_genre_has_labelled_audio_and_every_style_a_taggers_evidence():
    tax = default_taxonomy()
    assert set(tax.ids) == REQUIRED
    assert {s.id for g in tax.genres for s in g.styles} >= {"ambient", "house", "techno", "hard-rock", "opera", "punk",
                                                             "gospel", "salsa", "drum-and-bass"}
    for genre in tax.genres:
        assert genre.gtzan or genre.allmusic, genre.id
        for style in genre.styles:
            assert style.tags, style.id


def test_allmusic_labels_map_to_sets_of_genres():
    tax = default_taxonomy()
    names = lambda m: {tax.genres[i].name for i in np.flatnonzero(m)}  # noqa: E731
    assert names(tax.label_set(allmusic=["Pop/Rock"])) == {"Pop", "Rock"}
    assert names(tax.label_set(allmusic=["R&B", "International"])) == {"Soul & R&B"}
    assert names(tax.label_set(gtzan="hiphop")) == {"Hip-Hop"}
    assert names(tax.label_set(allmusic=["Stage & Screen"])) == set()


@pytest.mark.parametrize("backbone", ["msd_musicnn", "mtt_musicnn", "msd_vgg", "mtt_vgg", "mn04"])
def test_every_tag_the_tree_names_exists_in_its_tagger(backbone):
    tax = default_taxonomy()
    tags = list(BACKBONES[backbone].tags)
    family = backbone if backbone == "mn04" else backbone.split("_")[0] + "_musicnn"  # the vgg taggers share tags
    tax.evidence_matrix(family, tags)
    tax.evidence_matrix(family, tags, [s for _, s in tax.styles()])


def test_gtzan_labels_map_to_genres_and_aliases_give_canonical_names():
    tax = default_taxonomy()
    gtzan = {g.gtzan for g in tax.genres if g.gtzan}
    assert gtzan == {"blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"}
    assert tax.canonical("hiphop").name == "Hip-Hop"
    assert tax.canonical("  R&B ").name == "R&B"
    assert tax.canonical("Heavy Metal").name == "Heavy Metal"
    assert tax.parent(tax.canonical("heavy metal")).name == "Metal"
    assert tax.canonical("polka") is None


def test_canonical_name_is_the_taxonomys_spelling_and_leaves_unknown_names_alone():
    tax = default_taxonomy()
    for node in (n for g in tax.genres for n in (g, *g.styles)):
        for spelling in (node.id, node.name, node.name.upper(), *node.aliases):
            assert canonical_name(spelling) in {node.name, *(s.name for s in tax.parent(node).styles)}
            assert canonical_name(canonical_name(spelling)) == canonical_name(spelling)  # a fixed point
    assert canonical_name("hiphop") == canonical_name("Hip Hop") == "Hip-Hop"
    assert canonical_name("Art Music") == "Art Music" and canonical_name("polka") == "polka"


def test_a_malformed_tree_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match="malformed"):
        parse_taxonomy("{not json")
    twice = {"genres": [{"id": "a", "name": "A", "evidence": {"gtzan": "a"}},
                        {"id": "a", "name": "A2", "evidence": {"gtzan": "b"}}]}
    with pytest.raises(ConfigError, match="unique"):
        parse_taxonomy(json.dumps(twice))
    bare = {"genres": [{"id": "a", "name": "A", "evidence": {"msd_musicnn": ["rock"]}}]}
    with pytest.raises(ConfigError, match="no labelled audio"):
        parse_taxonomy(json.dumps(bare))
    style = {"genres": [{"id": "a", "name": "A", "evidence": {"gtzan": "a"},
                         "styles": [{"id": "s", "name": "S", "evidence": {}}]}]}
    with pytest.raises(ConfigError, match="no tagger tags"):
        parse_taxonomy(json.dumps(style))
    tax = parse_taxonomy(json.dumps({"genres": [{"id": "a", "name": "A",
                                                 "evidence": {"allmusic": ["A"], "msd_musicnn": ["nope"]}}]}))
    with pytest.raises(ConfigError, match="does not have"):
        tax.evidence_matrix("msd_musicnn", ["rock"])


def test_noisy_or_combines_the_mapped_tags_of_every_backbone():
    taggrams = {"a": np.array([[0.5, 0.5, 0.9]]), "b": np.array([[0.2]])}
    matrices = {"a": np.array([[1, 1, 0], [0, 0, 1]], np.float32), "b": np.array([[1], [0]], np.float32)}
    q = noisy_or(taggrams, matrices)
    np.testing.assert_allclose(q, [[1 - 0.5 * 0.5 * 0.8, 0.9]], rtol=1e-6)


def test_song_pooling_is_the_normalised_geometric_mean_of_the_windows():
    w = np.array([[0.8, 0.2], [0.2, 0.8], [0.5, 0.5]])
    np.testing.assert_allclose(song_pool(w), [0.5, 0.5])
    w = np.array([[0.9, 0.1], [0.6, 0.4]])
    g = np.sqrt(w.prod(axis=0))
    np.testing.assert_allclose(song_pool(w), g / g.sum())


def test_head_inputs_put_each_backbones_tag_logits_and_embeddings_side_by_side():
    taggrams = {"a": np.array([[0.5, 0.9]]), "b": np.array([[0.2]])}
    x = head_inputs(taggrams, {"b": np.array([[3.0, 4.0]])}, ["a.tags", "b.embedding"])
    np.testing.assert_allclose(x, [[0.0, np.log(9.0), 3.0, 4.0]])


def test_the_set_likelihood_head_learns_which_genre_of_a_set_a_song_is():
    from genrify.train.taxonomy import fit_set_head, fit_taxonomy_head

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 4)) * 3
    genre = np.repeat(np.arange(3), 40)
    X = centres[genre] + rng.normal(size=(120, 4))
    S = np.eye(3, dtype=bool)[genre]
    S[::2, 1] |= S[::2, 0]  # every other song of genre 0 is only known to be "0 or 1"
    S = np.hstack([S, np.zeros((120, 1), bool)])  # a fourth genre no song has: it never wins
    songs = [x[None] for x in X]  # one window each
    t = fit_set_head(songs, S, l2=1e-3)
    P = genre_window_probabilities(X, t)
    assert (P.argmax(axis=1) == genre).mean() >= 0.9
    assert P[:, 3].max() < 1e-6
    calibrated = fit_taxonomy_head(songs, S, [str(i) for i in range(120)], l2=1e-3, folds=3)
    assert calibrated["head.calibration.scale"].shape == (4,) and calibrated["head.calibration.scale"][3] == 1
    np.testing.assert_allclose(genre_window_probabilities(X, calibrated).sum(axis=1), 1.0, rtol=1e-9)


def test_the_calibration_learns_how_much_surer_more_windows_make_a_song():
    from genrify.train.taxonomy import fit_calibration

    rng = np.random.default_rng(2)
    n = rng.choice([1, 10], size=400)
    truth = rng.integers(0, 2, 400)
    # held-out logits whose true confidence grows with the number of windows: z = ±n^0.5
    z = np.where(truth[:, None] == np.arange(2)[None], 1.0, -1.0) * np.sqrt(n)[:, None] * 0.5
    flip = rng.random(400) < 1 / (1 + np.exp(np.sqrt(n)))  # right as often as softmax(z·2) says
    S = np.eye(2, dtype=bool)[np.where(flip, 1 - truth, truth)]
    scale, bias, power = fit_calibration(z / np.sqrt(n)[:, None], S, n, l2=1e-4)
    assert 0.3 < power < 0.7, power


def test_a_linear_heads_song_pool_is_the_softmax_of_its_mean_window_logits():
    from genrify.predict.heads import window_softmax
    from genrify.predict.taxonomy import genre_logits
    from genrify.train.taxonomy import fit_set_head

    rng = np.random.default_rng(1)
    t = fit_set_head(list(rng.normal(size=(30, 1, 5))), np.eye(3, dtype=bool)[rng.integers(0, 3, 30)], l2=1e-2)
    windows = rng.normal(size=(7, 5))
    pooled = song_pool(genre_window_probabilities(windows, t))
    np.testing.assert_allclose(pooled, window_softmax(genre_logits(windows.mean(axis=0, keepdims=True), t))[0],
                               rtol=1e-6)


def test_style_shares_are_the_mean_noisy_or_of_their_evidence():
    tensors = {"styles.parent": np.array([0, 0]), "styles.a": np.array([[1, 0], [0, 1]], np.float32)}
    shares = style_shares({"a": np.array([[0.8, 0.0], [0.4, 0.2]])}, tensors, ["a"])
    np.testing.assert_allclose(shares, [0.6, 0.1])


def test_every_style_of_the_shipped_model_can_be_named_from_its_evidence():
    """A style is named when its share of its genre reaches the threshold; each style of the shipped
    taxonomy has evidence in a backbone the shipped model listens through, so its tags can carry it."""
    from genrify.models.modelfile import load_model_file
    from genrify.predict import default_model_path
    from genrify.predict.classifier import STYLE_MIN_SHARE

    model = load_model_file(default_model_path())
    tax = default_taxonomy()
    backbones = [b for b in ("msd_musicnn", "mn04") if f"styles.{b}" in model.tensors]
    assert backbones
    for k, (genre, style) in enumerate(tax.styles()):
        taggrams = {}
        for b in backbones:
            m = model.tensors[f"styles.{b}"]
            taggrams[b] = np.where(m[k] > 0, 0.9, 0.01)[None, :].astype(np.float32)
        shares = style_shares(taggrams, model.tensors, backbones)
        assert shares[k] >= STYLE_MIN_SHARE, (genre.id, style.id, shares[k])
        assert model.tensors["styles.parent"][k] == tax.ids.index(genre.id)
