"""PNG renderings: valid images of the requested size, robust to odd inputs, safe across threads."""

from __future__ import annotations

import concurrent.futures
import io

import numpy as np
import pytest

from genrify.report import DPI, feature_image_png, timeline_png

PNG = b"\x89PNG\r\n\x1a\n"


def _size(png: bytes) -> tuple[int, int]:
    import matplotlib.image

    h, w = matplotlib.image.imread(io.BytesIO(png)).shape[:2]
    return w, h


def test_feature_image_png():
    rng = np.random.default_rng(0)
    png = feature_image_png(rng.normal(size=(10, 2584)), sr=44100, hop_length=512, title="MFCC")
    assert png.startswith(PNG)
    assert _size(png) == (int(6.4 * DPI), int(2.4 * DPI))
    # NaN/inf never break a rendering; a wrong shape is a clear error.
    odd = np.full((13, 40), np.nan)
    odd[0, 0] = np.inf
    assert feature_image_png(odd, sr=22050, hop_length=512).startswith(PNG)
    with pytest.raises(ValueError):
        feature_image_png(np.zeros(10), sr=22050, hop_length=512)


def test_feature_image_png_on_a_fixed_scale_with_large_text():
    rng = np.random.default_rng(4)
    image = rng.uniform(-1.0, 5.0, size=(96, 300))
    image[0, :3] = (np.nan, np.inf, -np.inf)  # drawn as 0 and the scale's two ends
    kw = dict(sr=16000, hop_length=256, title="Log-mel", ylabel="mel band", unit="log10(1 + 10⁴·power)")
    png = feature_image_png(image, vmin=0.0, vmax=4.0, width=5.0, height=3.0, fontsize=12, **kw)
    assert png.startswith(PNG) and _size(png) == (int(5.0 * DPI), int(3.0 * DPI))
    # A fixed scale: values beyond it take the end colours, so clipping them first changes nothing.
    assert feature_image_png(np.clip(np.nan_to_num(image, posinf=4.0, neginf=0.0), 0.0, 4.0), vmin=0.0, vmax=4.0,
                             width=5.0, height=3.0, fontsize=12, **kw) == png
    assert feature_image_png(image, width=5.0, height=3.0, fontsize=12, **kw) != png  # its own range: another image


def test_timeline_png():
    rng = np.random.default_rng(1)
    labels = [f"genre{i}" for i in range(10)]
    probs = rng.dirichlet(np.ones(10), size=9)
    starts = np.arange(9) * 3.0
    for kwargs in ({}, {"duration": 30.0}, {"top": 2}):
        assert timeline_png(starts, probs, labels, **kwargs).startswith(PNG)
    assert timeline_png(starts[:1], probs[:1], labels).startswith(PNG)  # one window
    assert timeline_png(np.zeros(0), np.zeros((0, 10)), labels).startswith(PNG)  # none
    with pytest.raises(ValueError):
        timeline_png(starts, probs[:, :3], labels)


def test_rendering_is_thread_safe():
    rng = np.random.default_rng(2)
    images = [rng.normal(size=(10, 200)) for _ in range(8)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        pngs = list(pool.map(lambda im: feature_image_png(im, sr=22050, hop_length=512), images))
    assert pngs == [feature_image_png(im, sr=22050, hop_length=512) for im in images]


def test_timeline_fontsize_reaches_the_legend_and_the_legend_fits():
    import matplotlib.image

    rng = np.random.default_rng(3)
    names = ["Soul & R&B", "Electronic", "Classical"]
    probs = rng.dirichlet(np.ones(3), size=6)

    def picture(**kwargs) -> np.ndarray:
        png = timeline_png(np.arange(6) * 3.0, probs, names, **kwargs)
        return matplotlib.image.imread(io.BytesIO(png))[:, :, :3].mean(axis=2)

    def legend_rows(img: np.ndarray, x0: float) -> int:  # the legend's height: rows with ink right of the axes
        return int((img[:, int(img.shape[1] * x0):] < 0.5).any(axis=1).sum())

    default, large = picture(), picture(fontsize=13)
    # A phone shows the chart at half size: the legend must grow with the rest of the text …
    assert legend_rows(large, 0.70) > 1.3 * legend_rows(default, 0.83)
    # … and still fit: nothing drawn at the picture's right edge (no cut-off "Soul & R&B").
    assert large[:, -int(large.shape[1] * 0.03):].min() > 0.9


def test_timeline_title_is_drawn_above_the_chart_and_stored_in_the_png():
    """A saved timeline names its song and model: the text above the plot and the PNG's Title field."""
    import matplotlib.image
    from PIL import Image

    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(4), size=8)
    labels = ["Jazz", "Rock", "Pop", "Blues"]
    title = "Miles Ahead – Blue Circle · model default.genrify"

    def top_ink(png: bytes) -> int:  # dark pixels in the top middle of the picture, above the chart
        img = matplotlib.image.imread(io.BytesIO(png))[:, :, :3].mean(axis=2)
        h, w = img.shape
        return int((img[: int(h * 0.05), int(w * 0.25): int(w * 0.75)] < 0.5).sum())

    for kwargs in ({}, {"fontsize": 13, "height": 3.0}):
        plain = timeline_png(np.arange(8) * 3.0, probs, labels, duration=24.0, **kwargs)
        titled = timeline_png(np.arange(8) * 3.0, probs, labels, duration=24.0, title=title, **kwargs)
        assert top_ink(plain) == 0 and top_ink(titled) > 50
        assert _size(titled) == _size(plain)
        assert Image.open(io.BytesIO(titled)).text.get("Title") == title
        assert "Title" not in Image.open(io.BytesIO(plain)).text
