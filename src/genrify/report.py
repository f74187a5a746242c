"""Render evaluation dicts: Markdown, JSON and PNG figures. Computes nothing."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from genrify.fileio import write_bytes_atomic, write_text_atomic


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


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
    plt = _pyplot()
    cm = np.asarray(metrics["confusion"])
    labels = metrics["labels"]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(labels), 0.8 + 0.5 * len(labels)))
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
    return _png(fig)


def learning_curves_png(history: dict, *, title: str = "Learning curves") -> bytes:
    """Loss and accuracy per epoch: training dashed, validation solid."""
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
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
    return _png(fig)


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
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
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
    return _png(fig)
