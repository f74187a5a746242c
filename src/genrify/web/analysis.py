"""Analysing a song for the web: the classifier's answer and the page's pictures of it (blocking work,
run on the analysis lane), answered from the analysis cache (:mod:`genrify.web.cache`) when it can.

The pictures are the model's input (:func:`genrify.predict.inputs.model_input`) on its fixed colour
scale and the genres over time, both drawn by :mod:`genrify.report`, sized for the page.
"""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path
from typing import Any

from genrify.web.cache import AnalysisCache, cached_answer

log = logging.getLogger("genrify.web")

#: The page's timeline chart: font size (points at 100 dpi) and height (inches) of its axis text and figure.
TIMELINE_FONT_PT = 13
TIMELINE_HEIGHT_IN = 3.0
#: The page's picture of the model's input: narrow, with large text, because a phone shows it at
#: about two thirds of its width; width and height in inches, text in points (at 100 dpi).
INPUT_WIDTH_IN = 5.0
INPUT_HEIGHT_IN = 3.0
INPUT_FONT_PT = 12


def png_b64(data: bytes) -> str:
    """PNG bytes as the base64 text the API's ``images`` carry."""
    return base64.b64encode(data).decode("ascii")


def analyse_audio(audio: Path | bytes, *, classifier: Any, cache: AnalysisCache | None = None, top_k: int,
                  images: bool, name: str | None = None, legacy_mfcc: bool = False, key: Any = None) -> dict:
    """Decode once, analyse, and optionally render the model's input and the timeline (blocking).

    Returns the analysis's JSON view (:meth:`~genrify.predict.Analysis.to_dict`, ``top_k``
    genres listed) with ``images`` (base64 PNGs: ``features``, the model's input on a fixed
    colour scale (:mod:`genrify.predict.inputs`), titled by ``features_title``; ``timeline``,
    absent under "not music") and ``elapsed_ms``: ``/api/predict`` without its ``song`` part.
    ``legacy_mfcc``: ``features`` is the 2017 widget's MFCC image instead. ``cached``: the answer came
    from ``cache`` (same bytes, model, mode and options; ``key``: its key if already computed).
    """
    t0 = time.perf_counter()
    out, cached = cached_answer(cache, classifier, audio, top_k=top_k, images=images, legacy_mfcc=legacy_mfcc,
                                key=key, compute=lambda: _analysis(classifier, audio, top_k=top_k, images=images,
                                                                   name=name, legacy_mfcc=legacy_mfcc))
    out.update(cached=cached, elapsed_ms=round((time.perf_counter() - t0) * 1000, 1))
    return out


def _analysis(clf: Any, audio: Path | bytes, *, top_k: int, images: bool, name: str | None,
              legacy_mfcc: bool) -> dict:
    """What :func:`analyse_audio` answers, analysed now (never from the cache)."""
    from genrify import report
    from genrify.predict.inputs import model_input

    label = name or (audio.name if isinstance(audio, Path) else "upload")
    y = clf.load(audio, name=label)
    analysis = clf.analyse(y, sr=clf.sr, top_k=top_k, name=label)
    out = analysis.to_dict()
    if images and legacy_mfcc:
        image, sr, hop = clf.feature_image(y, sr=clf.sr)
        out["images"] = {"features": png_b64(report.feature_image_png(image, sr=sr, hop_length=hop))}
    elif images:
        shown = model_input(clf, y=y)
        view = shown.view
        out["images"] = {"features": png_b64(report.feature_image_png(
            shown.image, sr=shown.sr, hop_length=shown.hop_length, title=view.title, ylabel=view.ylabel,
            unit=view.unit, vmin=view.vmin, vmax=view.vmax, width=INPUT_WIDTH_IN, height=INPUT_HEIGHT_IN,
            fontsize=INPUT_FONT_PT)), "features_title": view.title}
        if out.get("verdict") != "not_music":  # a genre timeline of something that is not music misleads
            # Larger text than the report's (legend included): a phone shows the chart at about half its width.
            out["images"]["timeline"] = png_b64(report.timeline_png(
                analysis.window_starts, analysis.window_probabilities, analysis.labels, top=5,
                duration=float(analysis.duration), height=TIMELINE_HEIGHT_IN, fontsize=TIMELINE_FONT_PT))
    return out


def warm_up_pictures() -> None:
    """Render one tiny image so the first request does not pay for matplotlib's start-up (fonts, caches)."""
    import numpy as np

    from genrify import report

    try:
        report.feature_image_png(np.zeros((2, 2)), sr=22050, hop_length=512)
    except Exception as exc:  # only an optimisation
        log.warning("plot warm-up failed: %s", exc)
