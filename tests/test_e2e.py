"""End to end through the command line: corpus → dataset build → train → evaluate →
predict (and explore), on the synthetic corpus and on a few real GTZAN clips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.filterwarnings("ignore:The least populated class")


@pytest.fixture(scope="module")
def e2e_dataset(run_genrify, synthetic_corpus, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("e2e")
    out = work / "synthetic.gdb"
    proc = run_genrify("dataset", "build", synthetic_corpus, "--out", out, "--workers", "2", check=True)
    assert "30 tracks: 30 ok" in proc.stdout
    assert (out / "index.sqlite").is_file() and len(list((out / "features").glob("*.npy"))) == 30
    return out


@pytest.mark.parametrize(("model", "extra"), [("cnn", []), ("mlp", ["--hidden", "64"])])
def test_synthetic_build_train_evaluate_predict(run_genrify, e2e_dataset, synthetic_corpus, tmp_path, model, extra):
    model_file = tmp_path / f"{model}.genrify"
    proc = run_genrify("train", e2e_dataset, "--model", model, "--epochs", "3", "--out", model_file, *extra, check=True)
    assert f"saved {model_file}" in proc.stdout and "held-out validation" in proc.stdout
    curves = tmp_path / f"{model}-curves.png"
    assert model_file.is_file() and curves.read_bytes().startswith(PNG_MAGIC)
    val = json.loads((tmp_path / f"{model}-validation.json").read_text())
    assert 0 < val["n"] < 30 and set(val["labels"]) == {"classical", "edm", "hiphop", "jazz", "metal"}

    report = tmp_path / "eval"
    ev = run_genrify("evaluate", e2e_dataset, "--model", model_file, "--out", report, check=True)
    assert "held-out tracks only" in ev.stdout
    data = json.loads(report.with_suffix(".json").read_text())
    assert data["n"] == val["n"]  # only the tracks the model did not train on
    assert sum(m["support"] for m in data["per_genre"].values()) == data["n"]
    assert (tmp_path / "eval.md").is_file() and (tmp_path / "eval-confusion.png").read_bytes().startswith(PNG_MAGIC)

    clips = sorted((synthetic_corpus / "metal").glob("*.wav"))[:2]
    pr = run_genrify("predict", *clips, "--model", model_file, "--top-k", "3", check=True)
    lines = pr.stdout.strip().splitlines()
    assert len(lines) == 2
    for clip, line in zip(clips, lines):
        assert line.startswith(f"{clip}: ") and "1. " in line and "3. " in line and "certainty" in line
    js = run_genrify("predict", clips[0], "--model", model_file, "--json", check=True)
    (result,) = json.loads(js.stdout)
    assert result["path"] == str(clips[0]) and len(result["top"]) == 2


def test_explore_writes_a_png(run_genrify, e2e_dataset, tmp_path):
    out = tmp_path / "pca.png"
    proc = run_genrify("explore", e2e_dataset, "--out", out, check=True)
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert "30 tracks, 5 genres" in proc.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["pca.png"]


REAL_GENRES = ("classical", "metal", "reggae")


def test_real_music_build_train_evaluate_predict(run_genrify, gtzan_mini, gtzan_excerpts, tmp_path):
    """Three GTZAN genres × 7 clips: the pipeline runs on real recordings and scores only
    held-out songs. (Too little data and too few epochs for the accuracy to mean much.)"""
    src = tmp_path / "src"
    for genre in REAL_GENRES:
        clips = sorted((gtzan_mini / genre).glob("*.wav"))
        if len(clips) < 7:
            pytest.skip(f"{gtzan_mini / genre}: fewer than 7 clips")
        (src / genre).mkdir(parents=True)
        for clip in clips[:7]:
            (src / genre / clip.name).symlink_to(clip)
    ds = tmp_path / "real.gdb"
    build = run_genrify("dataset", "build", src, "--out", ds, "--sr", "22050", "--workers", "2", check=True)
    assert "21 tracks: 21 ok" in build.stdout
    model = tmp_path / "real.genrify"
    run_genrify("train", ds, "--model", "cnn", "--epochs", "4", "--out", model, check=True)

    ev = run_genrify("evaluate", ds, "--model", model, "--out", tmp_path / "real-eval", check=True)
    report = json.loads((tmp_path / "real-eval.json").read_text())
    from genrify.models.modelfile import load_model_file

    mf = load_model_file(model)
    held_out = set(mf.extra["val_tracks"])
    assert set(mf.extra["fit_tracks"]).isdisjoint(held_out)
    assert report["n"] == len(held_out) and 0 < report["n"] < 21
    assert f"held-out tracks only ({21 - len(held_out)} training tracks excluded)" in ev.stdout
    assert report["chance"] == pytest.approx(1 / 3)
    assert not any("WARNING" in c for c in report["context"])

    # Scoring training data needs an explicit flag, and the report says so.
    flagged = run_genrify("evaluate", ds, "--model", model, "--out", tmp_path / "all", "--include-training-data",
                          check=True)
    assert "WARNING" in flagged.stdout and json.loads((tmp_path / "all.json").read_text())["n"] == 21

    excerpt = sorted((gtzan_excerpts / "metal").glob("*.wav"))[0]
    pr = run_genrify("predict", excerpt, "--model", model, "--json", check=True)
    (result,) = json.loads(pr.stdout)
    assert set(result["probabilities"]) == set(REAL_GENRES)
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert result["duration"] > 1.0


@pytest.mark.parametrize("model", ["musicnn-probe", "musicnn-finetune"])
def test_few_shot_heads_on_real_music(run_genrify, real_embedded, gtzan_mini, tmp_path, model):
    """embed → train a head over musicnn (with a cross-validated report) → evaluate → predict,
    through the command line, on 4 genres × 7 real GTZAN clips."""
    import shutil

    ds = tmp_path / "real.gdb"
    shutil.copytree(real_embedded, ds, symlinks=True)
    emb = run_genrify("embed", ds, "--export", tmp_path / "emb.npz", check=True)
    assert "28 tracks: 0 embedded, 28 already done, 0 failed" in emb.stdout
    model_file = tmp_path / f"{model}.genrify"
    proc = run_genrify("train", ds, "--model", model, "--folds", "3", "--out", model_file, check=True)
    assert "3-fold cross-validation" in proc.stdout and f"saved {model_file}" in proc.stdout
    cv = json.loads((tmp_path / f"{model}-cv3.json").read_text())
    assert cv["n"] == 28 and cv["accuracy"] >= 0.75, cv["accuracy"]  # chance 0.25

    from genrify.models.modelfile import load_model_file

    mf = load_model_file(model_file)
    assert mf.config.model.name == model and mf.config.audio.sr == 16000
    # Both heads end up fitted on every track (the fine-tune after choosing its epochs on a
    # validation split): evaluating on the same dataset is refused, the CV report is the honest one.
    ev = run_genrify("evaluate", ds, "--model", model_file, "--out", tmp_path / "eval")
    assert ev.returncode != 0 and "every track was used to train" in ev.stderr
    assert set(mf.extra["fit_tracks"]) == {t["sha256"] for t in json.loads((ds / "embeddings" / "msd_musicnn" /
                                                                            "tracks.json").read_text())}
    if model == "musicnn-finetune":
        assert (tmp_path / f"{model}-curves.png").read_bytes().startswith(PNG_MAGIC)
        assert mf.extra["epochs"] >= 1

    clip = sorted((gtzan_mini / "metal").glob("*.wav"))[-1]
    pr = run_genrify("predict", clip, "--model", model_file, "--json", check=True)
    (result,) = json.loads(pr.stdout)
    assert set(result["probabilities"]) == {"classical", "hiphop", "metal", "reggae"}
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
