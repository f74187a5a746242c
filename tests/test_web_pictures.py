"""The page's picture is the model's actual input, on a colour scale that does not move with the song."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from genrify.web import pictures

CC_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "data" / "cc-audio"


@pytest.fixture(scope="module")
def song():
    """Real music: 8 s of Kevin MacLeod's "Vibe Ace" (CC BY), decoded at 22.05 kHz."""
    from genrify.audio import load_audio

    path = CC_AUDIO / "Kevin_MacLeod_-_Vibe_Ace.ogg"
    if not path.is_file():
        pytest.skip(f"{path} is missing (the shared development data)")
    y, sr = load_audio(path, sr=22050, max_duration=8.0)
    return y, sr


def _pixels(png: bytes) -> np.ndarray:
    from matplotlib.image import imread

    return imread(io.BytesIO(png))[..., :3]


def test_the_default_model_shows_musicnns_log_mel(song):
    from genrify.config import MUSICNN_FEATURES
    from genrify.features.musicnn import musicnn_logmel
    from genrify.predict import load_classifier

    clf = load_classifier(None)
    y = clf.load(song[0], sr=song[1])
    image, sr, hop, picture = pictures.model_input(clf, y)
    assert picture is pictures.MUSICNN_PICTURE and picture.title.startswith("Log-mel spectrogram")
    assert (sr, hop, image.shape[0]) == (MUSICNN_FEATURES.sr, MUSICNN_FEATURES.hop_length, MUSICNN_FEATURES.n_mels)
    np.testing.assert_allclose(image, musicnn_logmel(y=y).T)  # exactly what the backbone is fed


@pytest.mark.slow
def test_the_2017_network_shows_its_mfccs(song, tiny_cnn_model):
    from genrify.features import FeatureExtractor
    from genrify.predict import GenreClassifier

    clf = GenreClassifier.from_file(tiny_cnn_model)  # a 2017-style window CNN over MFCCs
    assert clf.backend.kind == "window" and clf.config.features.kind == "mfcc"
    y = clf.load(song[0], sr=song[1])
    image, _, _, picture = pictures.model_input(clf, y)
    assert picture is pictures.MFCC_PICTURE
    np.testing.assert_allclose(image, FeatureExtractor(clf.config.features).transform(y))


def test_the_colour_scale_is_fixed_not_per_song(song):
    from genrify.predict import load_classifier

    clf = load_classifier(None)
    y = clf.load(song[0], sr=song[1])
    loud, quiet = (pictures.model_input(clf, gain * y) for gain in (1.0, 0.01))
    kw = dict(sr=loud[1], hop_length=loud[2], picture=loud[3])
    a, b = _pixels(pictures.picture_png(loud[0], **kw)), _pixels(pictures.picture_png(quiet[0], **kw))
    # 40 dB quieter is a visibly darker picture (a per-song scale would stretch both to the same colours).
    assert a.mean() - b.mean() > 0.02
    same = _pixels(pictures.picture_png(loud[0], **kw))
    assert np.array_equal(a, same)


def test_the_web_answer_and_the_legacy_route_keep_their_pictures(song, tmp_path):
    import soundfile as sf

    from genrify.predict import load_classifier
    from genrify.web.service import analyse_audio

    class State:  # analyse_audio reads only the classifier
        classifier = load_classifier(None)

    path = tmp_path / "song.wav"
    sf.write(path, song[0], song[1])
    new = analyse_audio(State, path, top_k=2, images=True)
    legacy = analyse_audio(State, path, top_k=2, images=True, legacy_mfcc=True)
    assert new["images"]["features_title"] == pictures.MUSICNN_PICTURE.title and "timeline" in new["images"]
    assert set(legacy["images"]) == {"features"} and legacy["images"]["features"] != new["images"]["features"]
