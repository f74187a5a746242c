"""The web's analysis of a song (:mod:`genrify.web.analysis`): the classifier's answer with the page's pictures."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest

from genrify.predict import inputs

CC_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "data" / "cc-audio"


def test_the_web_answer_and_the_legacy_route_keep_their_pictures(tmp_path):
    """Real music: 8 s of Kevin MacLeod's "Vibe Ace" (CC BY)."""
    import soundfile as sf
    from matplotlib.image import imread

    from genrify.audio import load_audio
    from genrify.predict import load_classifier
    from genrify.web.analysis import INPUT_HEIGHT_IN, INPUT_WIDTH_IN, analyse_audio

    source = CC_AUDIO / "Kevin_MacLeod_-_Vibe_Ace.ogg"
    if not source.is_file():
        pytest.skip(f"{source} is missing (the shared development data)")
    y, sr = load_audio(source, sr=22050, max_duration=8.0)
    path = tmp_path / "song.wav"
    sf.write(path, y, sr)
    clf = load_classifier(None)
    new = analyse_audio(path, classifier=clf, top_k=2, images=True)
    legacy = analyse_audio(path, classifier=clf, top_k=2, images=True, legacy_mfcc=True)
    assert new["images"]["features_title"] == inputs.MUSICNN_LOGMEL.title and "timeline" in new["images"]
    assert set(legacy["images"]) == {"features"} and legacy["images"]["features"] != new["images"]["features"]
    picture = imread(io.BytesIO(base64.b64decode(new["images"]["features"])))
    assert picture.shape[:2] == (round(INPUT_HEIGHT_IN * 100), round(INPUT_WIDTH_IN * 100))  # 100 dpi
    assert new["cached"] is False and legacy["top"] == new["top"]
    assert np.isfinite(new["elapsed_ms"])
