"""Everything genrify renders for people: evaluation reports (Markdown, JSON, PNG figures) and
the pictures of a song (the feature image a model sees, genre probability over time).

Computes nothing. Figures use matplotlib's object-oriented API on the Agg canvas
(no pyplot, no global figure state), so they are safe to call from several
threads at once; matplotlib is imported on first use."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from genrify.fileio import write_bytes_atomic, write_text_atomic


#: Default rendering resolution (dots per inch).
DPI = 100


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig, *, tight: bool = False, title: str | None = None) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, **({"bbox_inches": "tight"} if tight else {}),
                **({"metadata": {"Title": title}} if title else {}))  # image viewers and file managers show it
    return buf.getvalue()


def _axes(width: float, height: float, *, ncols: int = 1):
    """A figure with ``ncols`` subplots, for the report figures (laid out tight when saved)."""
    fig = _figure(width, height)
    axes = fig.subplots(1, ncols)
    return fig, axes


def feature_image_png(
    image: np.ndarray,
    *,
    sr: int,
    hop_length: int,
    title: str | None = None,
    ylabel: str | None = None,
    unit: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    width: float = 6.4,
    height: float = 2.4,
    fontsize: float | None = None,
) -> bytes:
    """Render a feature image (MFCC or log-mel), coefficients × time, as a PNG.

    Args:
        image: shape ``(n_features, frames)``; row 0 is drawn at the bottom.
        sr: sample rate in Hz of the audio the features came from.
        hop_length: samples between frames, so frame ``t`` sits at ``t * hop_length / sr`` s.
        title: optional title above the image.
        ylabel: the rows' label (default: "coefficient" up to 40 rows, else "mel band").
        unit: optional label of the colour bar (what a value measures).
        vmin, vmax: a fixed colour scale (values beyond it get the end colours, shown by
            the colour bar's pointed ends); ``None``: the image's own minimum / maximum.
            :class:`genrify.predict.inputs.InputView` holds these four for each kind of model input.
        width, height: figure size in inches (rendered at :data:`DPI`).
        fontsize: points for the title and the time axis (the other text 1–2 points smaller),
            with margins to fit; ``None``: matplotlib's sizes. Larger for a picture shown small.

    Returns:
        PNG bytes: time in seconds on the x axis, the rows on the y axis, a colour bar.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"feature image must be 2-D and non-empty, got shape {image.shape}")
    # An infinite value would stretch a scale of its own to nothing; on a fixed one it is an end colour.
    image = np.nan_to_num(image, nan=0.0, posinf=0.0 if vmax is None else vmax,
                          neginf=0.0 if vmin is None else vmin)
    n_features, frames = image.shape
    seconds = frames * hop_length / float(sr)
    fig = _figure(width, height)
    # Fixed margins: constrained layout would triple the rendering time. Larger text needs wider ones.
    if fontsize is None:
        top = 0.68 if title else 0.75
        ax, cax = fig.add_axes((0.1, 0.2, 0.76, top)), fig.add_axes((0.875, 0.2, 0.02, top))
    else:
        top = 0.71 if title else 0.78
        ax, cax = fig.add_axes((0.14, 0.17, 0.66, top)), fig.add_axes((0.83, 0.17, 0.025, top))
    small = None if fontsize is None else fontsize - 1
    mesh = ax.imshow(
        image, origin="lower", aspect="auto", cmap="magma", interpolation="nearest", vmin=vmin, vmax=vmax,
        extent=(0.0, seconds, -0.5, n_features - 0.5),
    )
    if title:
        ax.set_title(title, fontsize=fontsize or 10)
    ax.set_xlabel("time (s)", fontsize=fontsize)
    ax.set_ylabel(ylabel or ("coefficient" if n_features <= 40 else "mel band"), fontsize=small)
    extend = {(True, False): "min", (False, True): "max", (True, True): "both"}.get(
        (vmin is not None, vmax is not None))  # the pointed ends say where the fixed scale cuts values off
    bar = fig.colorbar(mesh, cax=cax, extend=extend)
    if fontsize is not None:
        ax.tick_params(labelsize=small)
        bar.ax.tick_params(labelsize=fontsize - 2)
    if unit:
        bar.set_label(unit, fontsize=None if fontsize is None else fontsize - 2)
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
    fontsize: float | None = None,
    title: str | None = None,
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
        fontsize: points for the axis labels, ticks and legend (default: matplotlib's, legend 8);
            larger for a picture shown small, as on a phone.
        title: optional line above the chart (e.g. the song and the model), also stored as
            the PNG's ``Title``; a plot saved to a file needs it, the web page has its own heading.

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
    # Larger text needs room: the legend's longest name ("Soul & R&B") and the y label must fit; so does a title.
    top = 0.6 if title else 0.7
    ax = fig.add_axes((0.09, 0.24, 0.72, top) if not fontsize else (0.12, 0.22, 0.56, top))
    if title:
        # parse_math off: a song title is plain text ("Ke$ha", "$uicideboy$" are not formulas).
        fig.suptitle(title, x=0.5, y=0.985, va="top", fontsize=fontsize or 10, parse_math=False)
    if probs.shape[0] == 0:
        ax.text(0.5, 0.5, "no windows", ha="center", va="center", transform=ax.transAxes)
        return _png(fig, title=title)
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
    ax.set_xlabel("time (s)", fontsize=fontsize)
    ax.set_ylabel("probability", fontsize=fontsize)
    if fontsize is not None:
        ax.tick_params(labelsize=fontsize)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=fontsize or 8, frameon=False)
    return _png(fig, title=title)


def markdown(metrics: dict, *, title: str, context: list[str] = ()) -> str:
    """A Markdown report of :func:`genrify.evaluate.evaluate`'s dict."""
    lines = [f"# {title}", ""]
    lines += [f"- {c}" for c in context]
    lines += [f"- songs evaluated: {metrics['n']}",
              f"- accuracy: **{metrics['accuracy']:.3f}** (chance {metrics['chance']:.3f})",
              f"- macro-F1: **{metrics['macro_f1']:.3f}**"]
    if "ece" in metrics:
        lines.append(f"- expected calibration error: {metrics['ece']:.3f}")
    if "fold_accuracy" in metrics:
        lines.append(f"- per-fold accuracy: {', '.join(f'{a:.2f}' for a in metrics['fold_accuracy'])}")
    lines += ["", "| genre | precision | recall | F1 | n |", "|---|---|---|---|---|"]
    for g, m in metrics["per_genre"].items():
        lines.append(f"| {g} | {m['precision']:.2f} | {m['recall']:.2f} | {m['f1']:.2f} | {m['support']} |")
    return "\n".join(lines) + "\n"


def text_summary(metrics: dict) -> str:
    """A compact plain-text table for the terminal."""
    rows = [f"{'genre':<14}{'precision':>10}{'recall':>8}{'f1':>7}{'n':>6}"]
    for g, m in metrics["per_genre"].items():
        rows.append(f"{g:<14}{m['precision']:>10.2f}{m['recall']:>8.2f}{m['f1']:>7.2f}{m['support']:>6}")
    rows.append(f"accuracy {metrics['accuracy']:.3f}  macro-F1 {metrics['macro_f1']:.3f}  "
                f"(chance {metrics['chance']:.3f}, {metrics['n']} songs)")
    return "\n".join(rows)


def confusion_png(metrics: dict, *, title: str = "Confusion matrix") -> bytes:
    cm = np.asarray(metrics["confusion"])
    labels = metrics["labels"]
    fig, ax = _axes(1.0 + 0.55 * len(labels), 0.8 + 0.5 * len(labels))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=8)
    ax.set_title(title)
    return _png(fig, tight=True)


def learning_curves_png(history: dict, *, title: str = "Learning curves") -> bytes:
    """Loss and accuracy per epoch: training dashed, validation solid."""
    fig, (a1, a2) = _axes(9, 3.2, ncols=2)
    ep = np.arange(1, len(history["train_loss"]) + 1)
    a1.plot(ep, history["train_loss"], "--", label="train")
    a2.plot(ep, history["train_acc"], "--", label="train")
    if history.get("val_loss"):
        a1.plot(ep[: len(history["val_loss"])], history["val_loss"], "-", label="validation")
        a2.plot(ep[: len(history["val_acc"])], history["val_acc"], "-", label="validation")
    if history.get("best_epoch", -1) >= 0:
        for a in (a1, a2):
            a.axvline(history["best_epoch"] + 1, color="grey", lw=0.8, ls=":")
    a1.set(xlabel="epoch", ylabel="loss")
    a2.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    a1.legend()
    fig.suptitle(title)
    return _png(fig, tight=True)


def write_report(metrics: dict, out_prefix: str | Path, *, title: str, context: list[str] = ()) -> list[Path]:
    """Write ``<prefix>.md``, ``<prefix>.json`` and ``<prefix>-confusion.png``; returns the paths."""
    prefix = Path(out_prefix)
    md = prefix.with_suffix(".md")
    js = prefix.with_suffix(".json")
    png = prefix.parent / f"{prefix.name}-confusion.png"
    slim = {k: v for k, v in metrics.items() if k != "oof_probabilities"}
    write_text_atomic(md, markdown(metrics, title=title, context=context) + f"\n![confusion matrix]({png.name})\n")
    write_text_atomic(js, json.dumps({"title": title, "context": list(context), **slim}, indent=2))
    write_bytes_atomic(png, confusion_png(metrics, title=title))
    return [md, js, png]


def reliability_png(curves: dict[str, tuple[np.ndarray, np.ndarray]], *, n_bins: int = 10,
                    title: str = "Reliability diagram") -> bytes:
    """Accuracy against confidence per bin, one line per ``name: (probabilities, y_true)``."""
    fig, ax = _axes(4.5, 4.2)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect")
    edges = np.linspace(0, 1, n_bins + 1)
    for name, (probs, y) in curves.items():
        conf, correct = probs.max(axis=1), probs.argmax(axis=1) == y
        xs, ys = [], []
        for lo, hi in zip(edges[:-1], edges[1:]):
            m = (conf > lo) & (conf <= hi)
            if m.sum() >= 3:
                xs.append(conf[m].mean())
                ys.append(correct[m].mean())
        ax.plot(xs, ys, "o-", label=name)
    ax.set(xlabel="confidence (top probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(fontsize=8)
    return _png(fig, tight=True)


def scatter_png(points: np.ndarray, groups: list[str], *, title: str, xlabel: str, ylabel: str) -> bytes:
    """A 2-D scatter of ``points (n, 2)``, one colour per distinct ``groups[i]`` (sorted), with a legend."""
    fig, ax = _axes(6, 5)
    groups_arr = np.asarray(groups)
    for g in sorted(set(groups)):
        m = groups_arr == g
        ax.scatter(points[m, 0], points[m, 1], s=14, label=g, alpha=0.8)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8, markerscale=1.5)
    return _png(fig, tight=True)


def label_pairs_png(pairs: dict, *, title: str = "Suspicious label pairs") -> bytes:
    """A confusion-style map of an audit's suspicious label pairs: ``pairs["matrix"][i][j]`` tracks filed
    under ``pairs["labels"][i]`` that sound like (or duplicate a track of) ``labels[j]``."""
    m = np.asarray(pairs["matrix"])
    labels = pairs["labels"]
    fig, ax = _axes(1.4 + 0.55 * len(labels), 1.0 + 0.5 * len(labels))
    ax.imshow(m, cmap="Oranges", vmin=0, vmax=max(1, int(m.max())))
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("sounds like / duplicates a track of")
    ax.set_ylabel("filed under")
    for i, j in zip(*np.nonzero(m)):
        ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8,
                color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_title(title)
    return _png(fig, tight=True)
