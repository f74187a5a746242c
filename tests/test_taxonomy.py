"""The taxonomy as data, and the taxonomy model's arithmetic (pure arrays) and fitting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genrify.errors import ConfigError
from genrify.models.backbones import BACKBONES
from genrify.predict.taxonomy import genre_window_probabilities, mix, noisy_or, song_pool, style_probabilities
from genrify.taxonomy import canonical_name, default_taxonomy, parse_taxonomy

from conftest import SHARED_DATA

REQUIRED = {"blues", "classical", "country", "disco", "electronic", "folk", "hip-hop", "jazz", "metal", "pop", "punk",
            "reggae", "rock", "soul-rnb"}


def test_the_shipped_tree_has_the_fourteen_top_level_genres_and_styles_with_evidence():
    tax = default_taxonomy()
    assert set(tax.ids) == REQUIRED
    assert {s.id for g in tax.genres for s in g.styles} >= {"ambient", "house", "techno", "hard-rock", "opera"}
    for genre in tax.genres:
        for node in (genre, *genre.styles):
            assert node.gtzan or node.tags, node.id


@pytest.mark.parametrize("backbone", ["msd_musicnn", "mtt_musicnn", "msd_vgg", "mtt_vgg"])
def test_every_tag_the_tree_names_exists_in_its_tagger(backbone):
    tax = default_taxonomy()
    tags = list(BACKBONES[backbone].tags)
    family = backbone.split("_")[0] + "_musicnn"  # the vgg taggers share their dataset's tags
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
    bare = {"genres": [{"id": "a", "name": "A", "evidence": {}}]}
    with pytest.raises(ConfigError, match="no evidence"):
        parse_taxonomy(json.dumps(bare))
    tax = parse_taxonomy(json.dumps({"genres": [{"id": "a", "name": "A", "evidence": {"msd_musicnn": ["nope"]}}]}))
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


def test_mixing_gives_tagger_only_genres_their_evidence_and_shares_the_rest():
    p_ev = np.array([[0.1, 0.2, 0.6, 0.1]])  # genres 0, 1, 3 labelled; 2 tagger-only
    p_lab = np.array([[0.5, 0.25, 0.25]])
    p = mix(p_ev, p_lab, np.array([0, 1, 3]))
    np.testing.assert_allclose(p, [[0.2, 0.1, 0.6, 0.1]])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


@pytest.fixture(scope="module")
def fitted():
    """A taxonomy model fitted on real tagger outputs of real GTZAN clips (two artists per genre)."""
    from genrify.audio import load_audio
    from genrify.models.embedder import MusicnnEmbedder
    from genrify.train.taxonomy import fit_taxonomy

    tax = default_taxonomy()
    embedder = MusicnnEmbedder(max_patches=3, also=("mtt_musicnn",))
    genres = ["classical", "metal", "jazz"]
    songs, y, groups = [], [], []
    for g in genres:
        for k in range(6):
            audio, _ = load_audio(SHARED_DATA / "gtzan-mini" / g / f"{g}.0000{k}.wav", sr=16000)
            songs.append(embedder.embed(audio).taggrams)
            y.append(tax.ids.index(g))
            groups.append(f"{g}-{k}")
    tags = {b: list(BACKBONES[b].tags) for b in ("msd_musicnn", "mtt_musicnn")}
    tensors = fit_taxonomy(songs, np.array(y), groups, taxonomy=tax, tags=tags, C=0.05, folds=3)
    return tax, tensors, songs, np.array(y)


@pytest.mark.slow
def test_a_fitted_model_gives_probabilities_over_every_genre_and_styles_under_their_genre(fitted):
    tax, tensors, songs, y = fitted
    backbones = ["msd_musicnn", "mtt_musicnn"]
    P = np.stack([song_pool(genre_window_probabilities(s, tensors, backbones)) for s in songs])
    assert P.shape == (len(songs), 14)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-6)
    assert (P.argmax(axis=1) == y).mean() >= 0.8  # training songs: the fit must at least describe them
    assert float(tensors["evidence.alpha"][0]) > 0
    assert float(tensors["calibration.temperature"][0]) > 0
    styles = style_probabilities(songs[0], P[0], tensors, backbones)
    parent = tensors["styles.parent"]
    assert styles.shape == (len(tax.styles()),)
    assert np.all(styles <= P[0][parent] + 1e-9)  # a style is never likelier than its genre
