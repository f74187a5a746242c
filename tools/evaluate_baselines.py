"""Cross-validate the classic models on real GTZAN clips; writes ``docs/results/baselines*``.

    .venv/bin/python tools/evaluate_baselines.py [--shared ../shared] [--work /tmp/genrify-baselines]

All on real recordings from ``shared/data`` (read by path, never copied):
``gtzan-mini`` (70 clips of 15–20 s, "long") and ``gtzan-excerpts`` (200 excerpts
of 2–3 s of other songs, "excerpt"), 10 genres, 270 songs.

1. One genrify dataset over both, built by the pipeline itself with the original
   "MFCC image" (``FeatureConfig()``: 10 MFCCs at 44.1 kHz, n_fft 2048, hop 512).
2. The same 5 folds as the default model's evaluation
   (``tools/train_default_model.py``): stratified by genre and source, grouped by
   song (content hash), seed 0. Every song is predicted by a model that never saw it.
3. Models, each scored on the pooled out-of-fold predictions, separately for long
   clips and excerpts:

   - the original MLP (hidden 600, and 600/400/100) and the original CNN, trained by
     ``genrify.train.nets.train_tracks`` (3 s windows, early stopping on a validation
     split of the training folds, best checkpoint kept) and scored per song by
     ``genrify.train.nets.track_probabilities`` (mean over 3 s windows), exactly as
     ``genrify.train.nets.cross_validate`` does, with the folds above;
   - a classic baseline: per-coefficient mean and standard deviation over time of
     the 20 MFCCs of ``genrify.features.mfcc`` (and, for comparison, of the stored
     10-MFCC images) + ``StandardScaler`` + logistic regression or an RBF SVM, with
     ``C`` chosen by an inner grouped cross-validation on the training folds only.

Writes ``docs/results/baselines.json`` (every figure, per-fold accuracies, the
configuration), ``baselines.md`` (the table) and, for each neural model, the
learning curves of fold 0 and the confusion matrix of the pooled out-of-fold
predictions (``baselines-<model>-learning-curves.png``, ``baselines-<model>-confusion.png``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tools"))

from genrify import report  # noqa: E402
from genrify.config import FeatureConfig, ModelConfig, RunConfig, TrainConfig, WindowConfig  # noqa: E402
from genrify.dataset import Dataset  # noqa: E402
from genrify.dataset.build import build_dataset  # noqa: E402
from genrify.dataset.splits import group_kfold  # noqa: E402
from genrify.evaluate import evaluate  # noqa: E402
from genrify.fileio import write_bytes_atomic, write_text_atomic  # noqa: E402
from train_default_model import manifest  # noqa: E402  (the same manifest, hence the same track order)

SEED = 0
FOLDS = 5
SOURCES = ("long", "excerpt")
NEURAL = OrderedDict([
    ("mlp-600", ModelConfig(name="mlp", hidden=(600,))),
    ("mlp-600-400-100", ModelConfig(name="mlp", hidden=(600, 400, 100))),
    ("cnn", ModelConfig(name="cnn")),
])
TITLES = {"mlp-600": "MLP (600), original", "mlp-600-400-100": "MLP (600/400/100), original",
          "cnn": "CNN (16/32/32, dense 250), original",
          "mfcc20-logreg": "MFCC-20 mean+std, logistic regression", "mfcc20-svm": "MFCC-20 mean+std, RBF SVM",
          "mfcc10-logreg": "MFCC-10 image mean+std, logistic regression",
          "mfcc10-svm": "MFCC-10 image mean+std, RBF SVM"}
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)


def folds_like_default_model(tracks, y: np.ndarray, source: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The outer folds of ``tools/train_default_model.py``, constructed identically."""
    groups = [t.sha256 for t in tracks]
    strata = np.array([f"{g}-{s}" for g, s in zip(y, source)])
    return group_kfold([str(s) for s in strata], groups, folds=FOLDS, seed=SEED)


def scores(y: np.ndarray, pred: np.ndarray, source: np.ndarray, labels: list[str]) -> OrderedDict:
    """Accuracy and macro-F1 overall and per source, from song-level predicted label indices."""
    out = OrderedDict()
    for name, m in (("all", np.ones(len(y), bool)), *((s, source == s) for s in SOURCES)):
        ev = evaluate(y[m], pred[m], labels=labels)
        out[name] = OrderedDict(n=ev["n"], accuracy=ev["accuracy"], macro_f1=ev["macro_f1"])
    return out


def fold_accuracies(y, pred, source, folds) -> OrderedDict:
    out = OrderedDict()
    for name, keep in (("all", np.ones(len(y), bool)), *((s, source == s) for s in SOURCES)):
        out[name] = [float((pred[te][keep[te]] == y[te][keep[te]]).mean()) for _, te in folds]
    return out


def cv_neural(images, y, groups, folds, *, model: ModelConfig, features: FeatureConfig, labels, train: TrainConfig):
    """``genrify.train.nets.cross_validate``'s loop over explicit folds: out-of-fold probabilities + histories."""
    from genrify.train.nets import track_probabilities, train_tracks

    config = RunConfig(features=features, window=WindowConfig(), model=model, train=train)
    oof = np.zeros((len(y), len(labels)), dtype=np.float32)
    histories = []
    for k, (tr, te) in enumerate(folds):
        t = time.time()
        mf, history, _ = train_tracks([images[i] for i in tr], y[tr], [groups[i] for i in tr], config=config,
                                      labels=labels)
        oof[te] = track_probabilities(mf, [images[i] for i in te])
        histories.append(history.to_dict())
        print(f"  fold {k}: {len(history.train_loss)} epochs (best {history.best_epoch + 1}), "
              f"accuracy {(oof[te].argmax(1) == y[te]).mean():.3f}, {time.time() - t:.0f} s", flush=True)
    return oof, histories, config


def mfcc_statistics(paths: list[str], *, sr: int = 44100, n_mfcc: int = 20) -> np.ndarray:
    """Per-coefficient mean and std over time of ``genrify.features.mfcc`` → ``(n_songs, 2 * n_mfcc)``."""
    from genrify.audio import load_audio
    from genrify.features import mfcc

    out = []
    for p in paths:
        audio, _ = load_audio(p, sr=sr)
        m = mfcc(y=audio, sr=sr, n_mfcc=n_mfcc)
        out.append(np.concatenate([m.mean(axis=1), m.std(axis=1)]))
    return np.stack(out)


def cv_classic(X, y, strata, groups, folds, *, kind: str):
    """StandardScaler + logistic regression / RBF SVM; C picked by grouped inner CV on the training folds.
    Returns the out-of-fold predicted label indices and the C chosen in each fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    est = (LogisticRegression(max_iter=5000, class_weight="balanced", random_state=SEED) if kind == "logreg"
           else SVC(kernel="rbf", gamma="scale", class_weight="balanced"))
    name = "logisticregression" if kind == "logreg" else "svc"
    oof = np.zeros(len(y), dtype=np.int64)
    chosen = []
    for tr, te in folds:
        inner = StratifiedGroupKFold(n_splits=4, shuffle=True, random_state=SEED + 1)
        search = GridSearchCV(make_pipeline(StandardScaler(), est), {f"{name}__C": list(C_GRID)},
                              cv=list(inner.split(X[tr], strata[tr], np.asarray(groups)[tr])), n_jobs=1)
        search.fit(X[tr], y[tr])
        chosen.append(float(search.best_params_[f"{name}__C"]))
        oof[te] = search.predict(X[te])  # refit on all training folds with the chosen C
    return oof, chosen


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--work", default="/tmp/genrify-baselines")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results"))
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="*", help="model names to run (default: all)")
    args = ap.parse_args()
    shared, work, docs = Path(args.shared), Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    docs.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    features = FeatureConfig()  # the original MFCC image
    summary = build_dataset(manifest(shared, work), work / "gtzan-mfcc.gdb", features=features, workers=2)
    print("\n".join(summary.lines()))
    ds = Dataset(work / "gtzan-mfcc.gdb")
    tracks = ds.tracks()
    labels = sorted({t.genre for t in tracks})
    y = np.array([labels.index(t.genre) for t in tracks])
    source = np.array(["long" if "gtzan-mini" in t.path else "excerpt" for t in tracks])
    groups = [t.sha256 for t in tracks]
    strata = np.array([f"{g}-{s}" for g, s in zip(y, source)])
    folds = folds_like_default_model(tracks, y, source)
    images = [np.asarray(ds.features(t)) for t in tracks]
    t_data = time.time() - t0
    print(f"{len(tracks)} songs ({(source == 'long').sum()} long, {(source == 'excerpt').sum()} excerpts), "
          f"{len(labels)} genres, data ready in {t_data:.0f} s", flush=True)

    train = TrainConfig(epochs=args.epochs, patience=args.patience, seed=SEED, threads=args.threads)
    wanted = set(args.only or list(NEURAL) + ["mfcc20-logreg", "mfcc20-svm", "mfcc10-logreg", "mfcc10-svm"])
    results = OrderedDict()
    results["config"] = OrderedDict(
        data=["data/gtzan-mini (long)", "data/gtzan-excerpts (excerpt)"], songs=len(tracks), labels=labels,
        folds=FOLDS, seed=SEED,
        fold_construction="group_kfold(f'{label_index}-{source}', sha256, folds=5, seed=0), as tools/train_default_model.py",
        features=features.__dict__, window=WindowConfig().__dict__, train=train.__dict__,
        classic=OrderedDict(C_grid=list(C_GRID), inner_folds=4, class_weight="balanced"))
    results["fold_sizes"] = [OrderedDict(long=int((source[te] == "long").sum()),
                                         excerpt=int((source[te] == "excerpt").sum())) for _, te in folds]
    results["chance"] = 1.0 / len(labels)
    results["models"] = OrderedDict()

    for name, model in NEURAL.items():
        if name not in wanted:
            continue
        t = time.time()
        print(f"{TITLES[name]}:", flush=True)
        oof, histories, config = cv_neural(images, y, groups, folds, model=model, features=features, labels=labels,
                                           train=train)
        res = OrderedDict(title=TITLES[name], model=model.__dict__, **scores(y, oof.argmax(1), source, labels))
        res["fold_accuracy"] = fold_accuracies(y, oof.argmax(1), source, folds)
        res["epochs_run"] = [len(h["train_loss"]) for h in histories]
        res["best_epoch"] = [h["best_epoch"] + 1 for h in histories]
        res["seconds"] = round(time.time() - t, 1)
        results["models"][name] = res
        metrics = evaluate(y, oof.argmax(1), labels=labels)
        write_bytes_atomic(docs / f"baselines-{name}-learning-curves.png",
                           report.learning_curves_png(histories[0], title=f"{TITLES[name]}: fold 0 of {FOLDS}"))
        write_bytes_atomic(docs / f"baselines-{name}-confusion.png",
                           report.confusion_png(metrics, title=f"{TITLES[name]}: 5-fold out-of-fold, 270 songs"))

    classic_inputs = {}
    if wanted & {"mfcc20-logreg", "mfcc20-svm"}:
        t = time.time()
        classic_inputs["mfcc20"] = (mfcc_statistics([t.path for t in tracks]), time.time() - t)
    if wanted & {"mfcc10-logreg", "mfcc10-svm"}:
        t = time.time()
        classic_inputs["mfcc10"] = (np.stack([np.concatenate([im.mean(axis=1), im.std(axis=1)]) for im in images]),
                                    time.time() - t)
    for feat, (X, t_feat) in classic_inputs.items():
        for kind in ("logreg", "svm"):
            name = f"{feat}-{kind}"
            if name not in wanted:
                continue
            t = time.time()
            oof, chosen = cv_classic(X, y, strata, groups, folds, kind=kind)
            res = OrderedDict(title=TITLES[name], features=f"mean and std over time of {X.shape[1] // 2} MFCCs",
                              **scores(y, oof, source, labels))
            res["fold_accuracy"] = fold_accuracies(y, oof, source, folds)
            res["C_per_fold"] = chosen
            res["seconds"] = round(time.time() - t + t_feat, 1)
            results["models"][name] = res
            print(f"{TITLES[name]}: accuracy {res['all']['accuracy']:.3f} (C per fold {chosen})", flush=True)

    results["seconds"] = round(time.time() - t0, 1)
    table = markdown_table(results)
    write_text_atomic(docs / "baselines.json", json.dumps(results, indent=2) + "\n")
    write_text_atomic(docs / "baselines.md", table)
    print()
    print(table)
    print(f"total runtime: {results['seconds']:.0f} s ({results['seconds'] / 60:.1f} min)")
    return 0


def markdown_table(results: dict) -> str:
    cfg, n = results["config"], results["fold_sizes"]
    n_long, n_exc = sum(f["long"] for f in n), sum(f["excerpt"] for f in n)
    lines = ["# Baselines: 5-fold cross-validation on real GTZAN clips", "",
             f"- {cfg['songs']} songs, 10 genres: {n_long} long clips (gtzan-mini, 15–20 s) and {n_exc} excerpts "
             "(gtzan-excerpts, 2–3 s of other songs)",
             "- folds: the default model's (stratified by genre and source, grouped by song, seed 0); every song "
             "is predicted by a model that never saw it",
             f"- neural models: original MFCC image (10 MFCCs, 44.1 kHz, n_fft 2048, hop 512), 3 s windows, "
             f"up to {cfg['train']['epochs']} epochs, early stopping (patience {cfg['train']['patience']}) on a "
             "validation split of the training folds; song = mean of its windows' probabilities",
             "- classic models: mean and std over time of each MFCC, StandardScaler, C from a grouped inner "
             "4-fold CV on the training folds",
             f"- chance level: {results['chance']:.2f}", "",
             "| model | long acc | long macro-F1 | excerpt acc | excerpt macro-F1 | all acc | all macro-F1 |",
             "|---|---|---|---|---|---|---|"]
    for res in results["models"].values():
        lines.append(f"| {res['title']} | {res['long']['accuracy']:.3f} | {res['long']['macro_f1']:.3f} | "
                     f"{res['excerpt']['accuracy']:.3f} | {res['excerpt']['macro_f1']:.3f} | "
                     f"{res['all']['accuracy']:.3f} | {res['all']['macro_f1']:.3f} |")
    c = results["chance"]
    lines.append(f"| chance | {c:.3f} | – | {c:.3f} | – | {c:.3f} | – |")
    lines += ["", f"Reproduce: `.venv/bin/python tools/evaluate_baselines.py` ({results['seconds'] / 60:.0f} min on 2 cores).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
