"""Train genrify's bundled ten-genre GTZAN model (``--model gtzan``, the default before the
taxonomy) and measure it on song-grouped folds; writes the model and its figures.

The bundled default is now the taxonomy model: ``tools/train_taxonomy_model.py``.

    .venv/bin/python tools/train_default_model.py [--shared ../shared] [--work /tmp/genrify-default]

What it does, all on real recordings from ``shared/data`` (read by path):

1. a dataset of the 270 GTZAN songs (``gtzan-mini``: 70 clips of 15–20 s;
   ``gtzan-excerpts``: 200 excerpts of 2–3 s of other songs) and their musicnn
   embeddings (every non-overlapping 3 s window);
2. 5-fold cross-validation of the genre probe (folds stratified by genre and
   source, each song on one side), with temperature scaling fitted inside each
   training fold (inner cross-validation), so calibration is measured on songs
   neither the probe nor the temperature saw; accuracy reported per source;
3. the same folds in the fast mode (3 spread windows, bfloat16) on the long clips;
4. a music / not-music probe over the same embeddings: music = GTZAN + the music
   half of music-speech, not music = the speech half + generated noise, tones,
   hum and clicks; cross-validated on music-speech, then tested on cc-audio
   (never trained on);
5. the final model on all the data → ``src/genrify/assets/gtzan.genrify``,
   figures → ``docs/results/default-model.json`` and ``docs/results/*.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from genrify import report  # noqa: E402
from genrify.audio import load_audio  # noqa: E402
from genrify.config import (  # noqa: E402
    MUSICNN_BACKBONE, AudioConfig, FeatureConfig, ModelConfig, RunConfig, VerdictConfig, musicnn_run_config)
from genrify.dataset import Dataset  # noqa: E402
from genrify.dataset.build import build_dataset  # noqa: E402
from genrify.dataset.embeddings import load_embeddings  # noqa: E402
from genrify.dataset.splits import group_kfold  # noqa: E402
from genrify.evaluate import evaluate, expected_calibration_error  # noqa: E402
from genrify.fileio import write_bytes_atomic, write_text_atomic  # noqa: E402
from genrify.models.modelfile import ModelFile, save_model_file  # noqa: E402
from genrify.predict.heads import probe_logits, song_softmax  # noqa: E402
from genrify.train.calibrate import fit_temperature  # noqa: E402
from genrify.train.embed import embed_dataset  # noqa: E402
from genrify.train.probe import fit_probe  # noqa: E402

C = 0.005
MAX_WINDOWS = 10
SEED = 0
MUSIC_THRESHOLD = 0.5
UNSURE_BELOW = 0.35


def manifest(shared: Path, work: Path) -> Path:
    rows = []
    for sub in ("gtzan-mini", "gtzan-excerpts"):
        for f in sorted((shared / "data" / sub).glob("*/*.wav")):
            rows.append({"path": str(f), "genre": f.parent.name, "artist": "", "title": f.stem})
    out = work / "gtzan.csv"
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "genre", "artist", "title"])
        w.writeheader()
        w.writerows(rows)
    return out


def cv_probe(E, y, strata, groups, labels, *, folds=5):
    """Outer CV; the temperature of each fold comes from an inner CV on its training part."""
    oof_logits = [None] * len(y)
    temps = []
    for tr, te in group_kfold([str(s) for s in strata], groups, folds=folds, seed=SEED):
        inner_logits = [None] * len(tr)
        for itr, ite in group_kfold([str(strata[i]) for i in tr], [groups[i] for i in tr], folds=4, seed=SEED + 1):
            t = fit_probe([E[tr[i]] for i in itr], y[tr[itr]], C=C, seed=SEED)
            for i in ite:
                inner_logits[i] = probe_logits(t, E[tr[i]])
        temps.append(fit_temperature(inner_logits, y[tr]))
        t = fit_probe([E[i] for i in tr], y[tr], C=C, seed=SEED)
        for i in te:
            oof_logits[i] = (probe_logits(t, E[i]), temps[-1], t)
    return oof_logits, temps


def noise_clips(seed: int, sr: int = 16000, seconds: float = 8.0) -> list[tuple[str, np.ndarray]]:
    """Generated non-music: white/pink/brown noise, steady and wobbling tones, mains hum, clicks, near-silence."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    white = rng.standard_normal(n)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / sr), 1.0)
    pink = np.fft.irfft(spec / np.sqrt(f), n)
    brown = np.fft.irfft(spec / f, n)
    tone_f = rng.uniform(100, 4000)
    clicks = np.zeros(n)
    clicks[rng.integers(0, n, 40)] = 1.0
    clips = [("white", white), ("pink", pink), ("brown", brown), ("tone", np.sin(2 * np.pi * tone_f * t)),
             ("wobble", np.sin(2 * np.pi * tone_f * t + 3 * np.sin(2 * np.pi * 0.5 * t))),
             ("hum", sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 6))),
             ("clicks", clicks), ("hiss", 1e-3 * white), ("sweep", np.sin(2 * np.pi * (100 + 400 * t) * t))]
    out = []
    for name, x in clips:
        x = x / (np.abs(x).max() + 1e-12) * rng.uniform(0.1, 0.8)
        out.append((f"{name}-{seed}", x.astype(np.float32)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--work", default="/tmp/genrify-default")
    ap.add_argument("--out", default=str(ROOT / "src" / "genrify" / "assets" / "gtzan.genrify"))
    args = ap.parse_args()
    shared, work = Path(args.shared), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    docs = ROOT / "docs" / "results"
    docs.mkdir(parents=True, exist_ok=True)
    import torch

    from genrify.models.embedder import MusicnnEmbedder
    from genrify.models.musicnn import FAST_PATCHES

    t0 = time.time()
    build_dataset(manifest(shared, work), work / "gtzan.gdb", features=FeatureConfig(kind="mfcc", sr=16000, n_fft=512,
                                                                                         hop_length=256, n_mels=96),
                  audio=AudioConfig(sr=16000), workers=2)
    ds = Dataset(work / "gtzan.gdb")
    print("embedding:", embed_dataset(ds, workers=2))
    tracks = ds.tracks()
    labels = sorted({t.genre for t in tracks})
    y = np.array([labels.index(t.genre) for t in tracks])
    source = np.array(["long" if "gtzan-mini" in t.path else "excerpt" for t in tracks])
    E = [e[:MAX_WINDOWS] if len(e) <= MAX_WINDOWS else e for e in load_embeddings(ds, tracks)]
    groups = [t.sha256 for t in tracks]
    strata = np.array([f"{g}-{s}" for g, s in zip(y, source)])
    print(f"{len(tracks)} songs, {len(labels)} genres, data ready in {time.time() - t0:.0f} s")

    # --- genre probe: nested cross-validation
    oof, temps = cv_probe(E, y, strata, groups, labels)
    raw = song_softmax([o[0] for o in oof])
    cal = np.stack([song_softmax([o[0]], o[1])[0] for o in oof])
    results = {"songs": len(tracks), "labels": labels, "C": C, "max_windows": MAX_WINDOWS, "seed": SEED,
               "fold_temperatures": temps}
    for src in ("long", "excerpt"):
        m = source == src
        ev = evaluate(y[m], cal[m].argmax(1), labels=labels, probabilities=cal[m])
        results[src] = {"n": int(m.sum()), "accuracy": ev["accuracy"], "macro_f1": ev["macro_f1"],
                        "ece_uncalibrated": expected_calibration_error(raw[m], y[m]),
                        "ece_calibrated": expected_calibration_error(cal[m], y[m])}
    ev_all = evaluate(y, cal.argmax(1), labels=labels, probabilities=cal)
    results["all"] = {k: ev_all[k] for k in ("n", "accuracy", "macro_f1")}
    results["all"]["ece_uncalibrated"] = expected_calibration_error(raw, y)
    results["all"]["ece_calibrated"] = expected_calibration_error(cal, y)
    sure = cal.max(1) >= UNSURE_BELOW
    results["unsure"] = {"threshold": UNSURE_BELOW, "fraction_unsure": float(1 - sure.mean()),
                         "accuracy_when_sure": float((cal.argmax(1) == y)[sure].mean())}
    report.write_report(ev_all, docs / "default-model-cv", title="Default model: 5-fold cross-validation on 270 GTZAN songs",
                        context=[f"musicnn embeddings + logistic regression (C={C}), calibrated", "every song predicted by a model that never saw it"])
    write_bytes_atomic(docs / "default-model-reliability.png",
                       report.reliability_png({"uncalibrated": (raw, y), "temperature-scaled": (cal, y)},
                                              title="Default model, cross-validated"))

    # --- fast mode on the long clips: same folds' probes, embeddings from 3 spread windows in bfloat16
    torch.set_num_threads(2)
    fast = MusicnnEmbedder(max_patches=FAST_PATCHES, fast=True)
    long_idx = np.where(source == "long")[0]
    fast_pred = []
    for i in long_idx:
        yy, _ = load_audio(tracks[i].path, sr=16000)
        z = probe_logits(oof[i][2], fast.embed(yy).embeddings)
        fast_pred.append(song_softmax([z], oof[i][1])[0].argmax())
    results["fast_mode_long"] = {"accuracy": float((np.array(fast_pred) == y[long_idx]).mean()),
                                 "full_accuracy": results["long"]["accuracy"]}

    # --- music / not-music probe
    ms = shared / "data" / "music-speech"
    ms_files = [(f, 1) for f in sorted((ms / "music").glob("*.wav"))] + [(f, 0) for f in sorted((ms / "speech").glob("*.wav"))]
    full = MusicnnEmbedder(max_patches=MAX_WINDOWS)
    ms_E = [full.embed(load_audio(f, sr=16000)[0]).embeddings for f, _ in ms_files]
    ms_y = np.array([lab for _, lab in ms_files])
    gen = [full.embed(x).embeddings for s in range(8) for _, x in noise_clips(s)]
    base_E, base_y = list(E) + gen, np.concatenate([np.ones(len(E), int), np.zeros(len(gen), int)])
    flagged = np.zeros(len(ms_y), bool)
    for tr, te in group_kfold([str(v) for v in ms_y], [str(f) for f, _ in ms_files], folds=4, seed=SEED):
        t = fit_probe(base_E + [ms_E[i] for i in tr], np.concatenate([base_y, ms_y[tr]]), C=C, prefix="music")
        for i in te:
            p = 1 / (1 + np.exp(-probe_logits(t, ms_E[i], prefix="music")[:, 0]))
            flagged[i] = p.mean() < MUSIC_THRESHOLD
    results["music_speech_cv"] = {"speech_flagged": int(flagged[ms_y == 0].sum()), "speech": int((ms_y == 0).sum()),
                                  "music_flagged": int(flagged[ms_y == 1].sum()), "music": int((ms_y == 1).sum())}
    music_t = fit_probe(base_E + ms_E, np.concatenate([base_y, ms_y]), C=C, prefix="music")

    # --- final model
    final = fit_probe(E, y, C=C, seed=SEED)
    # The probe's in-sample logits are overconfident, so its temperature comes from
    # held-out predictions: the median of the folds' inner-CV temperatures.
    T = float(np.median(temps))
    tensors = {**final, **music_t, "calibration.temperature": np.array([T], np.float32)}
    config = musicnn_run_config(RunConfig(
        model=ModelConfig(name="musicnn-probe", backbone=MUSICNN_BACKBONE, C=C),
        verdict=VerdictConfig(unsure_below=UNSURE_BELOW, music_threshold=MUSIC_THRESHOLD)))
    config = replace(config, window=replace(config.window, max_windows=MAX_WINDOWS))
    extra = {"seed": SEED,
             "provenance": "genre probe over MSD_musicnn embeddings, trained by tools/train_default_model.py on 270 GTZAN "
                           "songs (gtzan-mini + gtzan-excerpts) and the GTZAN music/speech collection; see docs/results.md",
             "cv": {k: results[k] for k in ("long", "excerpt", "all")}}
    save_model_file(args.out, ModelFile(config=config, labels=labels, tensors=tensors, extra=extra))

    # --- held-out test of the shipped model on cc-audio (never trained on)
    from genrify.predict import GenreClassifier

    clf = GenreClassifier.from_file(args.out)
    cc = []
    for f in sorted((shared / "data" / "cc-audio").glob("*.ogg")):
        a = clf.analyse(f)
        cc.append({"file": f.name, "verdict": a.verdict, "top": a.top[0][0], "p": round(a.top[0][1], 3),
                   "music_probability": a.details.get("music_probability")})
    results["cc_audio"] = cc
    gen_test = [(name, clf.analyse(x, sr=16000).verdict) for name, x in noise_clips(1000)]
    gen_test.append(("silence", clf.analyse(np.zeros(16000 * 5, np.float32), sr=16000).verdict))
    results["generated_nonmusic_test"] = gen_test
    results["temperature"] = T
    results["seconds"] = round(time.time() - t0, 1)
    write_text_atomic(docs / "default-model.json", json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k not in ("labels",)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
