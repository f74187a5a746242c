"""Train genrify's default model — the genre taxonomy over pretrained taggers — and measure it honestly.

    .venv/bin/python tools/train_taxonomy_model.py [--shared ../shared] [--debian DIR] [--work DIR]
        [--backbones msd_musicnn[,mtt_musicnn]] [--out src/genrify/assets/default.genrify] [--no-write]

All on real recordings read by path (nothing is copied into the repository):

* labelled audio: the 270 GTZAN songs of ``shared/data`` (70 clips of 15–20 s,
  200 excerpts of 2–3 s), with artists from ``gtzan-artists.csv``;
* music of other kinds for the music / not-music probe: the music half of
  GTZAN music/speech and, with ``--debian``, freely licensed game soundtracks
  fetched by ``tools/fetch_debian_music.py`` (its manifest);
* not music: the speech half of music/speech and generated noise, tones, hum, clicks.

Every figure comes from leave-artist-out cross-validation (5 folds; every song
of an artist on one side; songs with no known artist are their own group); the
labelled head's temperature is fitted inside each training fold, the taxonomy
and C are fixed before (no choice is made on the reported folds). Writes the
model and ``docs/results/taxonomy.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tools"))

from genrify.evaluate import evaluate, expected_calibration_error  # noqa: E402
from genrify.fileio import write_text_atomic  # noqa: E402
from genrify.taxonomy import default_taxonomy  # noqa: E402

C = 0.05
SEED = 0
FOLDS = 5
UNSURE_BELOW = 0.35
MUSIC_THRESHOLD = 0.5
MUSIC_C = 0.05
TAGGER_ONLY_MAX_SECONDS = 60.0


def gtzan_rows(shared: Path) -> list[dict]:
    """GTZAN songs with genre, artist group and source."""
    rows = []
    for r in csv.DictReader(open(shared / "data" / "gtzan-artists.csv")):
        artist = r["artist"].strip()
        rows.append({"path": str(shared / "data" / r["path"]), "genre": r["genre"],
                     "group": f"artist:{artist.casefold()}" if artist else f"track:{r['path']}",
                     "source": "long" if r["path"].startswith("gtzan-mini") else "excerpt"})
    return rows


def featurize(paths: list[str], out: Path, *, backbones: list[str], max_seconds: float | None) -> dict:
    """Per-window taggrams of every backbone and MSD embeddings, for each file (cached in ``out``)."""
    if out.is_file():
        cached = dict(np.load(out))
        if all(f"T_{b}" in cached for b in backbones) and list(cached["paths"]) == list(paths):
            return cached
    import torch

    from genrify.audio import load_audio
    from genrify.config import MUSICNN_MAX_WINDOWS
    from genrify.features.musicnn import MusicnnLogMel, musicnn_patches
    from genrify.models.backbones import get_backbone, load_backbone

    logmel = MusicnnLogMel()
    nets = {b: load_backbone(b) for b in backbones}
    T = {b: [] for b in backbones}
    E, idx = [], []
    for i, p in enumerate(paths):
        y, _ = load_audio(p, sr=16000, max_duration=max_seconds)
        with torch.inference_mode():
            patches = musicnn_patches(logmel(torch.from_numpy(y)), max_patches=MUSICNN_MAX_WINDOWS)
            for b, net in nets.items():
                f = net.forward_features(patches)
                T[b].append(f["taggram"].numpy())
                if b == "msd_musicnn":
                    E.append(get_backbone(b).embed(f).numpy().astype(np.float16))
        idx += [i] * len(patches)
    data = {f"T_{b}": np.concatenate(T[b]) for b in backbones}
    data.update({"E_msd_musicnn": np.concatenate(E), "idx": np.array(idx), "paths": np.array(paths)})
    np.savez(out, **data)
    return data


def per_song(data: dict, n: int, backbones: list[str]) -> tuple[list[dict], list[np.ndarray]]:
    """Split window arrays into per-song taggram dicts and MSD embeddings."""
    order = [np.where(data["idx"] == i)[0] for i in range(n)]
    tg = [{b: data[f"T_{b}"][w].astype(np.float32) for b in backbones} for w in order]
    return tg, [data["E_msd_musicnn"][w].astype(np.float32) for w in order]


def cross_validate(tg, y, groups, *, taxonomy, tags, backbones) -> np.ndarray:
    """Leave-artist-out song probabilities ``(n, n_genres)``: each song scored by a model fitted without its artist."""
    from genrify.dataset.splits import group_kfold
    from genrify.predict.taxonomy import genre_window_probabilities, song_pool
    from genrify.train.taxonomy import fit_taxonomy

    P = np.zeros((len(y), len(taxonomy.genres)))
    for tr, te in group_kfold([str(v) for v in y], groups, folds=FOLDS, seed=SEED):
        t = fit_taxonomy([tg[i] for i in tr], y[tr], [groups[i] for i in tr], taxonomy=taxonomy, tags=tags, C=C,
                         seed=SEED)
        for i in te:
            P[i] = song_pool(genre_window_probabilities(tg[i], t, backbones))
    return P


def cross_validate_gtzan_probe(E, y, groups, *, taxonomy) -> np.ndarray:
    """The same folds for the previous default (a probe over musicnn embeddings, GTZAN's ten genres,
    temperature from an inner cross-validation): its song probabilities, spread over the taxonomy's genres."""
    from genrify.config import ModelConfig, RunConfig, TrainConfig
    from genrify.dataset.splits import group_kfold
    from genrify.predict.heads import probe_logits, song_softmax
    from genrify.train.probe import train_probe

    labelled = sorted(set(y.tolist()))
    y_lab = np.array([labelled.index(v) for v in y])
    config = RunConfig(model=ModelConfig(name="musicnn-probe", C=0.005), train=TrainConfig(seed=SEED))
    P = np.zeros((len(y), len(taxonomy.genres)))
    for tr, te in group_kfold([str(v) for v in y], groups, folds=FOLDS, seed=SEED):
        model = train_probe([E[i] for i in tr], y_lab[tr], [groups[i] for i in tr], config=config,
                            labels=[str(v) for v in labelled])
        T = float(model.tensors["calibration.temperature"][0])
        for i in te:
            P[i, labelled] = song_softmax([probe_logits(model.tensors, E[i])], T)[0]
    return P


def ece_if_calibrated(confidence: np.ndarray, *, draws: int = 2000, seed: int = SEED) -> tuple[float, float]:
    """Median and 90th percentile of the ECE a perfectly calibrated model with these top-1 confidences
    would score (each answer right with probability equal to its confidence): the sampling floor
    below which a measured ECE on this many songs means nothing."""
    rng = np.random.default_rng(seed)
    n = len(confidence)
    two = np.stack([confidence, 1 - confidence], axis=1)
    eces = [expected_calibration_error(two, (rng.random(n) >= confidence).astype(int)) for _ in range(draws)]
    return float(np.median(eces)), float(np.quantile(eces, 0.9))


def report(P, y, rows, taxonomy) -> dict:
    """Accuracy per source, calibration, per-genre recall with its number of artists, and how often
    a labelled song is called a genre known only from the taggers."""
    names = [g.name for g in taxonomy.genres]
    labelled = sorted(set(y.tolist()))
    source = np.array([r["source"] for r in rows])
    pred = P.argmax(axis=1)
    out = {"songs": len(y), "chance": round(1 / len(labelled), 3)}
    for s in ("long", "excerpt"):
        m = source == s
        out[f"accuracy_{s}"] = round(float((pred[m] == y[m]).mean()), 3)
        out[f"ece_{s}"] = round(expected_calibration_error(P[m], y[m]), 3)
        out[f"ece_{s}_if_calibrated_median_p90"] = [round(v, 3) for v in ece_if_calibrated(P[m].max(axis=1))]
        out[f"mean_confidence_{s}"] = round(float(P[m].max(axis=1).mean()), 3)
    out["accuracy"] = round(float((pred == y).mean()), 3)
    out["ece"] = round(expected_calibration_error(P, y), 3)
    sure = P.max(axis=1) >= UNSURE_BELOW
    out["unsure_below"] = UNSURE_BELOW
    out["unsure_share"] = round(float(1 - sure.mean()), 3)
    out["accuracy_when_sure"] = round(float((pred[sure] == y[sure]).mean()), 3)
    out["called_tagger_only_genre"] = {names[g]: int((pred == g).sum()) for g in range(len(names))
                                       if g not in labelled and (pred == g).any()}
    per = {}
    for g in labelled:
        m = y == g
        per[names[g]] = {"recall": round(float((pred[m] == g).mean()), 3), "songs": int(m.sum()),
                         "artists": len({rows[i]["group"] for i in np.where(m)[0] if rows[i]["group"].startswith("artist:")}),
                         "largest_artist_share": round(max(
                             [sum(1 for i in np.where(m)[0] if rows[i]["group"] == a)
                              for a in {rows[i]["group"] for i in np.where(m)[0]}]) / m.sum(), 2)}
    out["per_genre"] = per
    ev = evaluate(y, pred, labels=names, probabilities=P)
    out["macro_f1"] = round(float(ev["macro_f1"]), 3)
    return out


def music_probe(E_music, E_not, groups_music, groups_not):
    """The music / not-music probe over MSD embeddings, and its grouped cross-validated flags."""
    from genrify.dataset.splits import group_kfold
    from genrify.predict.heads import probe_logits, sigmoid
    from genrify.train.probe import fit_probe

    E = E_music + E_not
    y = np.array([1] * len(E_music) + [0] * len(E_not))
    groups = groups_music + groups_not
    flagged = np.zeros(len(E), bool)
    for tr, te in group_kfold([str(v) for v in y], groups, folds=FOLDS, seed=SEED):
        t = fit_probe([E[i] for i in tr], y[tr], C=MUSIC_C, prefix="music")
        for i in te:
            flagged[i] = sigmoid(probe_logits(t, E[i], prefix="music")[:, 0]).mean() < MUSIC_THRESHOLD
    return fit_probe(E, y, C=MUSIC_C, prefix="music"), flagged


def noise_files(work: Path) -> list[str]:
    """Generated non-music written as WAV files (so they go through the real decoder), 3 seeds × 9 kinds."""
    import soundfile as sf

    from train_default_model import noise_clips

    out = []
    folder = work / "noise"
    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(3):
        for name, x in noise_clips(seed):
            path = folder / f"{name}.wav"
            if not path.is_file():
                sf.write(path, x, 16000, subtype="FLOAT")
            out.append(str(path))
    return out


def sound_effects_flagged(debian: Path, work: Path, music_t: dict, computed: list[str]) -> str:
    """How many of the sound effects the Debian packages ship beside their music (left out of the
    manifest by ``fetch_debian_music.is_sound_effect``) the fitted music probe calls not music."""
    from fetch_debian_music import AUDIO, is_sound_effect

    from genrify.predict.heads import probe_logits, sigmoid

    root = debian / "unpacked"
    files = sorted(str(f) for f in root.rglob("*") if f.suffix.lower() in AUDIO
                   and is_sound_effect(f.relative_to(root)))
    if not files:
        return "none found"
    _, E_sfx = per_song(featurize(files, work / "sfx.npz", backbones=computed, max_seconds=30.0), len(files), [])
    n = sum(sigmoid(probe_logits(music_t, e, prefix="music")[:, 0]).mean() < MUSIC_THRESHOLD for e in E_sfx)
    return f"{int(n)} of {len(files)} flagged not music"


def debian_rows(manifest: Path) -> list[dict]:
    """One row per distinct track of the Debian manifest (some games ship a track twice)."""
    seen, rows = set(), []
    for r in csv.DictReader(open(manifest)):
        key = (r["package"], r["title"].casefold())
        if key not in seen:
            seen.add(key)
            rows.append(r)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--debian", type=Path, help="folder written by tools/fetch_debian_music.py (its manifest.csv)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/genrify-taxonomy"))
    ap.add_argument("--backbones", default="msd_musicnn")
    ap.add_argument("--out", type=Path, default=ROOT / "src" / "genrify" / "assets" / "default.genrify")
    ap.add_argument("--no-write", action="store_true", help="only measure; write neither model nor figures")
    args = ap.parse_args()
    from genrify.config import MUSICNN_BACKBONE, ModelConfig, RunConfig, VerdictConfig, musicnn_run_config
    from genrify.models.backbones import get_backbone
    from genrify.models.modelfile import ModelFile, save_model_file
    from genrify.train.taxonomy import fit_taxonomy

    t0 = time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    taxonomy = default_taxonomy()
    backbones = args.backbones.split(",")
    computed = sorted(set(backbones) | {"msd_musicnn"})
    tags = {b: list(get_backbone(b).tags) for b in backbones}
    rows = gtzan_rows(args.shared)
    gtzan_index = {g.gtzan: i for i, g in enumerate(taxonomy.genres) if g.gtzan}
    y = np.array([gtzan_index[r["genre"]] for r in rows])
    groups = [r["group"] for r in rows]
    tg, E = per_song(featurize([r["path"] for r in rows], args.work / "gtzan.npz", backbones=computed,
                               max_seconds=None), len(rows), backbones)
    results = {"backbones": backbones, "C": C, "folds": FOLDS, "seed": SEED,
               "leave_artist_out": report(cross_validate(tg, y, groups, taxonomy=taxonomy, tags=tags,
                                                         backbones=backbones), y, rows, taxonomy)}
    reference = report(cross_validate_gtzan_probe(E, y, groups, taxonomy=taxonomy), y, rows, taxonomy)
    results["reference_gtzan_embedding_probe"] = {k: v for k, v in reference.items() if k != "per_genre"}
    print(json.dumps(results, indent=1), flush=True)

    ms = args.shared / "data" / "music-speech"
    music_files = sorted(str(f) for f in (ms / "music").glob("*.wav"))
    speech_files = sorted(str(f) for f in (ms / "speech").glob("*.wav"))
    _, E_ms = per_song(featurize(music_files + speech_files, args.work / "music-speech.npz", backbones=computed,
                                 max_seconds=None), len(music_files) + len(speech_files), [])
    noise = noise_files(args.work)
    _, E_noise = per_song(featurize(noise, args.work / "noise.npz", backbones=computed, max_seconds=None),
                          len(noise), [])
    E_music, g_music = E + E_ms[: len(music_files)], groups + [f"ms:{f}" for f in music_files]
    src_music = ["gtzan"] * len(E) + ["music-speech music"] * len(music_files)
    deb_tg = []
    if args.debian:
        deb = debian_rows(args.debian / "manifest.csv")
        deb_tg, E_deb = per_song(featurize([r["path"] for r in deb], args.work / "debian.npz", backbones=computed,
                                           max_seconds=30.0), len(deb), backbones)
        E_music += E_deb
        g_music += [f"deb:{r['package']}" for r in deb]
        src_music += [r["package"] for r in deb]
    music_t, flagged = music_probe(E_music, E_ms[len(music_files):] + E_noise, g_music,
                                   [f"speech:{f}" for f in speech_files] + [f"noise:{f}" for f in noise])
    sources = src_music + ["speech"] * len(speech_files) + ["generated noise"] * len(noise)
    results["music_probe_cv"] = {s: f"{int(sum(flagged[i] for i, x in enumerate(sources) if x == s))} of "
                                    f"{sum(1 for x in sources if x == s)} flagged not music" for s in dict.fromkeys(sources)}
    if args.debian:
        results["music_probe_cv"]["game sound effects (never trained on)"] = sound_effects_flagged(
            args.debian, args.work, music_t, computed)

    tensors = fit_taxonomy(tg, y, groups, taxonomy=taxonomy, tags=tags, C=C, seed=SEED)
    tensors.update(music_t)
    config = musicnn_run_config(RunConfig(
        model=ModelConfig(name="taxonomy", backbone=MUSICNN_BACKBONE, C=C),
        verdict=VerdictConfig(unsure_below=UNSURE_BELOW, music_threshold=MUSIC_THRESHOLD)))
    extra = {"seed": SEED, "backbones": backbones, "taxonomy": taxonomy.source,
             "provenance": "genrify taxonomy over the tags of " + " + ".join(backbones) + ", fitted by "
                           "tools/train_taxonomy_model.py on 270 GTZAN songs; music probe also on music/speech"
                           + (" and Debian game soundtracks" if args.debian else "") + "; see docs/results.md"}
    model = ModelFile(config=config, labels=[g.name for g in taxonomy.genres], tensors=tensors, extra=extra)
    if deb_tg:
        from collections import Counter

        from genrify.predict.taxonomy import genre_window_probabilities, song_pool

        top = Counter(taxonomy.genres[int(song_pool(genre_window_probabilities(t, tensors, backbones)).argmax())].name
                      for t in deb_tg)
        results["debian_top_genre"] = dict(top.most_common())
    results["seconds"] = round(time.time() - t0, 1)
    print(json.dumps({k: results[k] for k in results if k != "leave_artist_out"}, indent=1))
    if not args.no_write:
        save_model_file(args.out, model)
        write_text_atomic(ROOT / "docs" / "results" / "taxonomy.json", json.dumps(results, indent=2))
        print(f"wrote {args.out} and docs/results/taxonomy.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
