"""Compare the two heads over musicnn, the linear probe and the fine-tuned back end, on real music.

    .venv/bin/python tools/evaluate_finetune.py [--shared ../shared] [--work /tmp/genrify-default]

Same data and the same 5 outer folds as ``tools/train_default_model.py`` (270 GTZAN
songs: ``gtzan-mini`` "long" clips and ``gtzan-excerpts``; folds stratified by genre
and source, grouped by song, seed 0), reusing its dataset and embeddings when they
exist under ``--work``. For each fold, from the training part only, each head is
trained on ``k`` songs per genre (``k`` = 5, 10 and all, the same songs for both)
and scores the fold's test songs:

- ``musicnn-probe``: class-balanced logistic regression (C = 0.005), as the
  default model; its temperature from an inner 4-fold cross-validation when every
  genre has at least 3 training songs;
- ``musicnn-finetune``: ``genrify.train.finetune.train_finetune`` with its defaults
  (20 % grouped validation split for early stopping and the temperature).

Prints accuracy and macro-F1 for long clips and excerpts, the ECE of the
calibrated probabilities, and the training time per fold; writes
``docs/results/finetune.json`` and ``docs/results/finetune.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tools"))

from genrify.config import AudioConfig, FeatureConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from genrify.dataset import Dataset  # noqa: E402
from genrify.dataset.build import build_dataset  # noqa: E402
from genrify.dataset.embeddings import load_embeddings  # noqa: E402
from genrify.dataset.splits import group_kfold  # noqa: E402
from genrify.evaluate import evaluate, expected_calibration_error  # noqa: E402
from genrify.fileio import write_text_atomic  # noqa: E402
from genrify.predict.heads import head_logits, load_head, probe_logits, song_softmax  # noqa: E402
from genrify.train.calibrate import fit_temperature  # noqa: E402
from genrify.train.embed import embed_dataset  # noqa: E402
from genrify.train.finetune import train_finetune  # noqa: E402
from genrify.train.probe import fit_probe  # noqa: E402
from train_default_model import C, MAX_WINDOWS, SEED, manifest  # noqa: E402

SHOTS = (5, 10, None)  # songs per genre from each training fold; None = all


def probe_fold(E, y, strata, tr, labels):
    tensors = fit_probe([E[i] for i in tr], y[tr], C=C, seed=SEED, n_classes=len(labels))
    per_genre = np.bincount(y[tr], minlength=len(labels)).min()
    temperature = 1.0
    if per_genre >= 3:
        inner = [None] * len(tr)
        for itr, ite in group_kfold([str(strata[i]) for i in tr], [str(i) for i in tr], folds=min(4, per_genre),
                                    seed=SEED + 1):
            t = fit_probe([E[tr[i]] for i in itr], y[tr[itr]], C=C, seed=SEED, n_classes=len(labels))
            for i in ite:
                inner[i] = probe_logits(t, E[tr[i]])
        temperature = fit_temperature(inner, y[tr])
    return (lambda e: probe_logits(tensors, e)), temperature


def finetune_fold(E, y, groups, tr, labels):
    config = RunConfig(model=ModelConfig(name="musicnn-finetune", backbone="msd_musicnn"), train=TrainConfig(seed=SEED))
    mf, _, _ = train_finetune([E[i] for i in tr], y[tr], [groups[i] for i in tr], config=config, labels=labels)
    head = load_head(mf)
    return (lambda e: head_logits(head, [e])[0]), float(mf.tensors["calibration.temperature"][0])


def subsample(tr, y, k, rng):
    if k is None:
        return tr
    keep = [rng.permutation(tr[y[tr] == g])[:k] for g in np.unique(y[tr])]
    return np.sort(np.concatenate(keep))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--work", default="/tmp/genrify-default")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    shared, work = Path(args.shared), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    build_dataset(manifest(shared, work), work / "gtzan.gdb",
                  features=FeatureConfig(kind="mfcc", sr=16000, n_fft=512, hop_length=256, n_mels=96),
                  audio=AudioConfig(sr=16000), workers=2)
    ds = Dataset(work / "gtzan.gdb")
    embed_dataset(ds, workers=2)
    tracks = ds.tracks()
    labels = sorted({t.genre for t in tracks})
    y = np.array([labels.index(t.genre) for t in tracks])
    source = np.array(["long" if "gtzan-mini" in t.path else "excerpt" for t in tracks])
    E = [e[:MAX_WINDOWS] for e in load_embeddings(ds, tracks)]
    groups = [t.sha256 for t in tracks]
    strata = np.array([f"{g}-{s}" for g, s in zip(y, source)])
    folds = group_kfold([str(s) for s in strata], groups, folds=5, seed=SEED)

    results = {"songs": len(tracks), "labels": labels, "seed": SEED, "folds": 5, "probe_C": C, "rows": []}
    lines = ["| head | songs per genre (per training fold) | long: accuracy / macro-F1 | excerpts: accuracy / macro-F1 "
             "| ECE (calibrated) | training s per fold |", "|---|---|---|---|---|---|"]
    for k in SHOTS:
        for head in ("musicnn-probe", "musicnn-finetune"):
            rng = np.random.default_rng(SEED)
            probs = np.zeros((len(y), len(labels)))
            seconds = []
            for tr, te in folds:
                sub = subsample(tr, y, k, rng)
                t0 = time.perf_counter()
                if head == "musicnn-probe":
                    logits, temperature = probe_fold(E, y, strata, sub, labels)
                else:
                    logits, temperature = finetune_fold(E, y, groups, sub, labels)
                seconds.append(time.perf_counter() - t0)
                for i in te:
                    probs[i] = song_softmax([logits(E[i])], temperature)[0]
            row = {"head": head, "per_genre": k or "all", "seconds_per_fold": float(np.mean(seconds)),
                   "ece": expected_calibration_error(probs, y)}
            for src in ("long", "excerpt"):
                m = source == src
                ev = evaluate(y[m], probs[m].argmax(1), labels=labels, probabilities=probs[m])
                row[src] = {"n": int(m.sum()), "accuracy": ev["accuracy"], "macro_f1": ev["macro_f1"]}
            results["rows"].append(row)
            line = (f"| {head} | {k or 'all (~21)'} | {row['long']['accuracy']:.3f} / {row['long']['macro_f1']:.3f} | "
                    f"{row['excerpt']['accuracy']:.3f} / {row['excerpt']['macro_f1']:.3f} | {row['ece']:.3f} | "
                    f"{row['seconds_per_fold']:.1f} |")
            lines.append(line)
            print(line, flush=True)
    docs = ROOT / "docs" / "results"
    write_text_atomic(docs / "finetune.json", json.dumps(results, indent=2) + "\n")
    write_text_atomic(docs / "finetune.md", "# musicnn heads: linear probe vs fine-tuned back end\n\n"
                      "`.venv/bin/python tools/evaluate_finetune.py` (5 outer folds as the default model, "
                      "270 GTZAN songs; each head trained on the same k songs per genre of each training fold)\n\n"
                      + "\n".join(lines) + "\n")
    ds.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
