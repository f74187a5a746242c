"""Small PNG renderings for people: the feature image a model sees and genre probability over time.

Both functions return PNG bytes and use matplotlib's object-oriented API on the
Agg canvas (no pyplot, no global figure state), so they are safe to call from
several threads at once. matplotlib is imported on first use. Figures are small
(about 6.4 × 2.4 in at 100 dpi) so one rendering takes a few tens of ms.
"""

from __future__ import annotations

import io

import numpy as np

#: Default rendering resolution (dots per inch).
DPI = 100


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def feature_image_png(
    image: np.ndarray,
    *,
    sr: int,
    hop_length: int,
    title: str | None = None,
    width: float = 6.4,
    height: float = 2.4,
) -> bytes:
    """Render a feature image (MFCC or log-mel), coefficients × time, as a PNG.

    Args:
        image: shape ``(n_features, frames)``; row 0 is drawn at the bottom.
        sr: sample rate in Hz of the audio the features came from.
        hop_length: samples between frames, so frame ``t`` sits at ``t * hop_length / sr`` s.
        title: optional title above the image.
        width, height: figure size in inches (rendered at :data:`DPI`).

    Returns:
        PNG bytes: time in seconds on the x axis, coefficient index on the y axis, a colour bar.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"feature image must be 2-D and non-empty, got shape {image.shape}")
    image = np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0)
    n_features, frames = image.shape
    seconds = frames * hop_length / float(sr)
    fig = _figure(width, height)
    # Fixed margins: constrained layout would triple the rendering time.
    ax = fig.add_axes((0.1, 0.2, 0.76, 0.68 if title else 0.75))
    cax = fig.add_axes((0.875, 0.2, 0.02, 0.68 if title else 0.75))
    mesh = ax.imshow(
        image, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
        extent=(0.0, seconds, -0.5, n_features - 0.5),
    )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("coefficient" if n_features <= 40 else "mel band")
    if title:
        ax.set_title(title, fontsize=10)
    fig.colorbar(mesh, cax=cax)
    return _png(fig)


def timeline_png(
    starts: np.ndarray,
    probabilities: np.ndarray,
    labels: list[str],
    *,
    top: int = 5,
    duration: float | None = None,
    width: float = 6.4,
    height: float = 2.0,
) -> bytes:
    """Render genre probability over time as a stacked area chart (PNG).

    Args:
        starts: shape ``(n_windows,)``, window start times in seconds.
        probabilities: shape ``(n_windows, n_labels)``, each row summing to about 1.
        labels: the ``n_labels`` genre names.
        top: draw the ``top`` genres with the highest mean probability; the rest
            are summed into "other".
        duration: the song's length in seconds. When given, each window is drawn
            as a block from its start to the next start (the last one to ``duration``);
            otherwise the window starts are joined by straight lines.
        width, height: figure size in inches.

    Returns:
        PNG bytes. A single window is drawn as a flat band across the clip.
    """
    starts = np.asarray(starts, dtype=np.float64).reshape(-1)
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != starts.shape[0] or probs.shape[1] != len(labels):
        raise ValueError(
            f"probabilities must have shape (len(starts), len(labels)) = ({starts.shape[0]}, {len(labels)}), "
            f"got {probs.shape}"
        )
    fig = _figure(width, height)
    ax = fig.add_axes((0.09, 0.24, 0.72, 0.7))
    if probs.shape[0] == 0:
        ax.text(0.5, 0.5, "no windows", ha="center", va="center", transform=ax.transAxes)
        return _png(fig)
    probs = np.clip(np.nan_to_num(probs), 0.0, 1.0)
    order = np.argsort(-probs.mean(axis=0), kind="stable")[: max(1, int(top))]
    series = [probs[:, i] for i in order]
    names = [labels[i] for i in order]
    rest = probs.sum(axis=1) - np.sum(series, axis=0)
    if probs.shape[1] > len(order) and rest.max() > 1e-3:
        series.append(np.clip(rest, 0.0, 1.0))
        names.append("other")
    x = starts
    step = None
    if duration is not None and duration > starts[-1]:
        x = np.append(starts, float(duration))
        series = [np.append(sr, sr[-1]) for sr in series]
        step = "post"
    elif x.shape[0] == 1:  # one window and no length: draw it as a band one second wide
        x = np.array([starts[0], starts[0] + 1.0])
        series = [np.repeat(sr, 2) for sr in series]
    ax.stackplot(x, *series, labels=names, alpha=0.9, step=step)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return _png(fig)
