"""The picture of a song's model input (:mod:`genrify.predict.inputs`) is the model's actual input, drawn by
:func:`genrify.report.feature_image_png` on a colour scale that does not move with the song."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from genrify.predict import inputs
from genrify.report import feature_image_png

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
    shown = inputs.model_input(clf, y=y)
    assert shown.view is inputs.MUSICNN_LOGMEL and shown.view.title.startswith("Log-mel spectrogram")
    assert (shown.sr, shown.hop_length, shown.image.shape[0]) == (
        MUSICNN_FEATURES.sr, MUSICNN_FEATURES.hop_length, MUSICNN_FEATURES.n_mels)
    from genrify.audio import resample

    fed = resample(y, orig_sr=clf.sr, target_sr=MUSICNN_FEATURES.sr)  # the default hears 32 kHz; musicnn 16 kHz
    np.testing.assert_allclose(shown.image, musicnn_logmel(y=fed).T)  # exactly what the backbone is fed


@pytest.mark.slow
def test_the_2017_network_shows_its_mfccs(song, tiny_cnn_model):
    from genrify.features import FeatureExtractor
    from genrify.predict import GenreClassifier

    clf = GenreClassifier.from_file(tiny_cnn_model)  # a 2017-style window CNN over MFCCs
    assert clf.backend.kind == "window" and clf.config.features.kind == "mfcc"
    y = clf.load(song[0], sr=song[1])
    shown = inputs.model_input(clf, y=y)
    assert shown.view is inputs.WINDOW_MFCC
    np.testing.assert_allclose(shown.image, FeatureExtractor(clf.config.features).transform(y))


def test_the_colour_scale_is_fixed_not_per_song(song):
    from genrify.predict import load_classifier

    clf = load_classifier(None)
    y = clf.load(song[0], sr=song[1])
    loud, quiet = (inputs.model_input(clf, y=gain * y) for gain in (1.0, 0.01))
    view = loud.view
    kw = dict(sr=loud.sr, hop_length=loud.hop_length, title=view.title, ylabel=view.ylabel, unit=view.unit,
              vmin=view.vmin, vmax=view.vmax)
    a, b = _pixels(feature_image_png(loud.image, **kw)), _pixels(feature_image_png(quiet.image, **kw))
    # 40 dB quieter is a visibly darker picture (a per-song scale would stretch both to the same colours).
    assert a.mean() - b.mean() > 0.02
    same = _pixels(feature_image_png(loud.image, **kw))
    assert np.array_equal(a, same)
