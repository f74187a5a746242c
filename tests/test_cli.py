"""The command line, run as a user runs it (``python -m genrify`` in a subprocess): help
with examples, one-line errors for bad input, JSON output, nothing half-written."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import soundfile as sf

from genrify.sources.synthetic import generate_clip

PIPELINE_COMMANDS = [["demo"], ["demo-data"], ["dataset", "build"], ["train"], ["evaluate"], ["predict"], ["explore"]]


@pytest.mark.parametrize("command", PIPELINE_COMMANDS, ids=" ".join)
def test_help_has_examples(run_genrify, command):
    proc = run_genrify(*command, "--help", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: genrify " + " ".join(command) in proc.stdout
    assert "examples:" in proc.stdout and f"genrify {command[0]}" in proc.stdout.split("examples:")[1]
    assert proc.stderr == ""


def test_every_command_is_listed_and_has_help(run_genrify):
    top = run_genrify("--help", timeout=120)
    assert top.returncode == 0
    for name in ("demo-data", "dataset", "train", "evaluate", "predict", "explore"):
        assert f"    {name}" in top.stdout
    assert run_genrify(timeout=120).returncode == 2  # no command: help, usage exit code
    bad = run_genrify("frobnicate", timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    """The issue's list of bad input, as files; value: True when prediction should succeed."""
    d = tmp_path_factory.mktemp("bad inputs")
    y = generate_clip("metal", seed=11, sr=22050, duration=4.0)
    files = {}
    files[d / "does-not-exist.mp3"] = False
    (d / "a folder.wav").mkdir()
    files[d / "a folder.wav"] = False
    (d / "zero.wav").write_bytes(b"")
    files[d / "zero.wav"] = False
    nan = y.copy()
    nan[1000:1010] = np.nan
    sf.write(d / "nan.wav", nan, 22050, subtype="FLOAT")
    files[d / "nan.wav"] = False
    sf.write(d / "one-sample.wav", y[:1], 22050)
    files[d / "one-sample.wav"] = False
    sf.write(d / "eight-channels.wav", np.stack([y] * 8, axis=1), 22050)
    files[d / "eight-channels.wav"] = True
    y192 = generate_clip("metal", seed=11, sr=192000, duration=3.0)
    sf.write(d / "192k.wav", y192, 192000, subtype="PCM_24")
    files[d / "192k.wav"] = True
    return files


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("genrify: error:")]


def test_predict_bad_inputs_one_line_each_no_traceback(run_genrify, tiny_cnn_model, bad_inputs):
    proc = run_genrify("predict", *bad_inputs, "--model", tiny_cnn_model)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stdout + proc.stderr
    errors = _error_lines(proc.stderr)
    assert proc.stderr.splitlines() == errors  # nothing but the one-line errors on stderr
    failing = [p for p, ok in bad_inputs.items() if not ok]
    assert len(errors) == len(failing)
    for path, line in zip(failing, errors):
        assert str(path) in line, line
        assert len(line.split(f"{path}: ", 1)[1]) > 5  # and a reason
    for path, ok in bad_inputs.items():
        if ok:
            assert f"{path}: 1. " in proc.stdout
    reasons = "\n".join(errors)
    for word in ("no such file", "directory", "empty", "NaN", "too short"):
        assert word in reasons


@pytest.mark.parametrize("name", sorted(["does-not-exist.mp3", "zero.wav", "nan.wav", "eight-channels.wav"]))
def test_predict_single_file_exit_codes(run_genrify, tiny_cnn_model, bad_inputs, name):
    path = next(p for p in bad_inputs if p.name == name)
    proc = run_genrify("predict", path, "--model", tiny_cnn_model)
    assert "Traceback" not in proc.stderr
    if bad_inputs[path]:
        assert proc.returncode == 0 and proc.stderr == ""
        assert proc.stdout.startswith(f"{path}: 1. ") and ", certainty " in proc.stdout
    else:
        assert proc.returncode == 1
        assert len(proc.stderr.strip().splitlines()) == 1 and str(path) in proc.stderr


@pytest.fixture(scope="module")
def mp3_run(run_genrify, tiny_cnn_model, tmp_path_factory):
    """A text file named .mp3, an MP3 cut to a few milliseconds and one cut in half."""
    d = tmp_path_factory.mktemp("mp3")
    y = generate_clip("jazz", seed=1, sr=22050, duration=4.0)
    full = d / "full.mp3"
    sf.write(full, y, 22050, format="MP3", subtype="MPEG_LAYER_III")
    data = full.read_bytes()
    (d / "notes.mp3").write_text("Dear diary, this is not an MP3.\n" * 40)
    (d / "stub.mp3").write_bytes(data[:1000])  # a few milliseconds of audio
    (d / "half.mp3").write_bytes(data[: len(data) // 2])  # about two seconds
    files = [d / "notes.mp3", d / "stub.mp3", d / "half.mp3"]
    return files, run_genrify("predict", *files, "--model", tiny_cnn_model)


def test_predict_text_named_mp3_and_truncated_mp3(mp3_run):
    (notes, stub, half), proc = mp3_run
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    errors = _error_lines(proc.stderr)
    assert len(errors) == 2
    assert str(notes) in errors[0] and "not an audio file (looks like plain text)" in errors[0]
    assert str(stub) in errors[1] and "too short" in errors[1]
    assert f"{half}: 1. " in proc.stdout  # what decodes of a cut file is used


def test_mp3_decoder_adds_nothing_to_stderr(mp3_run):
    # mpg123's own notes ('Illegal Audio-MPEG-Header', 'Xing stream size off') must not reach the user.
    _, proc = mp3_run
    assert proc.stderr.splitlines() == _error_lines(proc.stderr)


def test_predict_json_output_parses(run_genrify, tiny_cnn_model, bad_inputs, tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, generate_clip("edm", seed=2, sr=22050, duration=5.0), 22050)
    zero = next(p for p in bad_inputs if p.name == "zero.wav")
    proc = run_genrify("predict", good, zero, "--model", tiny_cnn_model, "--json", "--top-k", "3")
    assert proc.returncode == 1  # one file failed
    assert "Traceback" not in proc.stderr
    results = json.loads(proc.stdout)
    assert [r["path"] for r in results] == [str(good), str(zero)]
    ok, bad = results
    assert len(ok["top"]) == 3 and sum(ok["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert ok["verdict"] in ("genre", "unsure")
    assert "error" in bad and str(zero) in bad["error"]
    only_good = run_genrify("predict", good, "--model", tiny_cnn_model, "--json")
    assert only_good.returncode == 0 and len(json.loads(only_good.stdout)[0]["top"]) == 2


def test_model_file_from_another_tool_or_tampered(run_genrify, tiny_cnn_model, tmp_path):
    from safetensors.numpy import save_file

    clip = tmp_path / "clip.wav"
    sf.write(clip, generate_clip("edm", seed=2, sr=22050, duration=3.0), 22050)
    other = tmp_path / "other.genrify"
    save_file({"weight": np.zeros((4, 4), np.float32)}, other)
    tampered = tmp_path / "tampered.genrify"
    data = bytearray(tiny_cnn_model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    pickled = tmp_path / "pickled.genrify"
    import torch

    torch.save({"state_dict": {"w": torch.zeros(2)}}, pickled)
    for model, reason in ((other, "another tool"), (tampered, "modified"), (pickled, "not a genrify model"),
                          (tmp_path / "missing.genrify", "no such model file")):
        proc = run_genrify("predict", clip, "--model", model)
        assert proc.returncode == 1, proc.stdout
        assert "Traceback" not in proc.stderr and proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and str(model) in lines[0] and reason in lines[0], lines


def test_dataset_build_without_audio_is_one_line(run_genrify, tmp_path):
    (tmp_path / "src" / "rock").mkdir(parents=True)
    (tmp_path / "src" / "rock" / "lyrics.txt").write_text("la la la")
    out = tmp_path / "out.gdb"
    proc = run_genrify("dataset", "build", tmp_path / "src", "--out", out, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / "src") in lines[0] and "no audio files" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    missing = run_genrify("dataset", "build", tmp_path / "nowhere", "--out", out, timeout=120)
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1 and not out.exists()


def test_dataset_build_prints_a_summary_with_skipped_files(run_genrify, synthetic_corpus, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(synthetic_corpus / "jazz", src / "jazz")
    shutil.copytree(synthetic_corpus / "metal", src / "metal")
    (src / "jazz" / "broken.mp3").write_text("not audio")
    proc = run_genrify("dataset", "build", src, "--out", tmp_path / "d.gdb", "--sr", "22050", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "13 tracks: 1 error, 12 ok" in proc.stdout
    assert f"skipped {(src / 'jazz' / 'broken.mp3').resolve()}: " in proc.stdout


def test_failures_leave_no_partial_output(run_genrify, synthetic_dataset, tiny_cnn_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # Training on a dataset that lacks a second genre fails after reading it.
    one_genre = tmp_path / "one"
    clips = one_genre / "jazz"
    clips.mkdir(parents=True)
    for i in range(3):
        sf.write(clips / f"j{i}.wav", generate_clip("jazz", seed=i, sr=22050, duration=2.0), 22050)
    assert run_genrify("dataset", "build", one_genre, "--out", tmp_path / "one.gdb", "--sr", "22050",
                       "--workers", "1").returncode == 0
    proc = run_genrify("train", tmp_path / "one.gdb", "--model", "cnn", "--out", out / "m.genrify", "--epochs", "1")
    assert proc.returncode == 1 and "two genres" in proc.stderr and "Traceback" not in proc.stderr
    bogus = run_genrify("train", synthetic_dataset, "--model", "resnet", "--out", out / "m.genrify")
    assert bogus.returncode == 1 and "unknown model" in bogus.stderr
    # Exploring or evaluating something that is not a dataset.
    ex = run_genrify("explore", tmp_path / "nope.gdb", "--out", out / "pca.png")
    assert ex.returncode == 1 and len(ex.stderr.strip().splitlines()) == 1
    ev = run_genrify("evaluate", tmp_path / "nope.gdb", "--model", tiny_cnn_model, "--out", out / "report")
    assert ev.returncode == 1 and "Traceback" not in ev.stderr
    assert list(out.iterdir()) == []  # no model, no report, no PNG, no temporary file


def test_predict_a_folder_with_workers(run_genrify, tiny_cnn_model, synthetic_corpus, tmp_path):
    """A folder stands for every audio file under it; two processes answer in the listed order."""
    proc = run_genrify("predict", synthetic_corpus / "jazz", synthetic_corpus / "metal", "--model", tiny_cnn_model,
                       "--workers", "2", "--json", check=True)
    results = json.loads(proc.stdout)
    expected = sorted((synthetic_corpus / "jazz").glob("*.wav")) + sorted((synthetic_corpus / "metal").glob("*.wav"))
    assert [r["path"] for r in results] == [str(p) for p in expected]
    assert all(len(r["top"]) == 2 for r in results)
    empty = tmp_path / "empty"
    empty.mkdir()
    none = run_genrify("predict", empty, "--model", tiny_cnn_model)
    assert none.returncode == 1 and none.stderr.strip() == f"genrify: error: {empty}: is a directory with no audio files in it"
    bad = run_genrify("predict", empty, "--workers", "0")
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "--workers" in bad.stderr


def test_predict_write_tags_tags_only_confident_answers(run_genrify, tiny_cnn_model, synthetic_corpus, tmp_path):
    from pathlib import Path

    from genrify.sources.tags import read_genre
    from genrify.taxonomy import canonical_name

    songs = tmp_path / "songs"
    songs.mkdir()
    for clip in sorted(synthetic_corpus.glob("*/*.wav"))[::6]:
        shutil.copy2(clip, songs / clip.name)
    notes = songs / "notes.mp3"
    notes.write_text("not audio")
    before = {p.name: read_genre(p) for p in songs.glob("*.wav")}
    # The synthetic clips carry their style as genre tag: --overwrite lets the answers replace it.
    proc = run_genrify("predict", songs, "--model", tiny_cnn_model, "--write-tags", "--overwrite", "--json")
    assert proc.returncode == 1  # notes.mp3 is not audio; everything else was answered
    results = {Path(r["path"]).name: r for r in json.loads(proc.stdout)}
    assert "error" in results["notes.mp3"] and notes.read_text() == "not audio"
    for name, old in before.items():
        r = results[name]
        if r["verdict"] == "genre":
            # The top genre in the taxonomy's spelling ("edm" → "Dance"), as "genre" says and `genrify tag` writes.
            assert r["tagged"] == r["genre"] == canonical_name(r["top"][0][0]) == read_genre(songs / name)
        else:
            assert r["tagged"] is None and read_genre(songs / name) == old
    assert any(r.get("tagged") for r in results.values())
    assert sorted(p.name for p in songs.iterdir()) == sorted([*before, "notes.mp3"])  # nothing left beside them
    text = run_genrify("predict", songs / next(iter(before)), "--model", tiny_cnn_model, "--write-tags")
    assert "[genre tag: " in text.stdout or "unsure" in text.stdout or "not music" in text.stdout.lower()


def test_predict_timeline_one_rule_no_collisions_every_path_printed(run_genrify, tiny_cnn_model, synthetic_corpus, tmp_path):
    """A name ending in .png is one song's plot; anything else is a folder of <song>-timeline.png;
    songs of the same name in two folders never overwrite each other; each path is printed."""
    clip = sorted(synthetic_corpus.glob("metal/*.wav"))[0]
    a, b = tmp_path / "a" / "song.wav", tmp_path / "b" / "song.wav"
    for path in (a, b):
        path.parent.mkdir()
        shutil.copy2(clip, path)
    refused = run_genrify("predict", a, b, "--model", tiny_cnn_model, "--timeline", tmp_path / "two.png")
    assert refused.returncode == 1 and not (tmp_path / "two.png").exists()
    assert _error_lines(refused.stderr) == refused.stderr.splitlines() and "give a folder" in refused.stderr
    many = run_genrify("predict", a, b, "--model", tiny_cnn_model, "--timeline", tmp_path / "plots")
    assert many.returncode == 0, many.stderr
    written = sorted((tmp_path / "plots").iterdir())
    assert [p.name for p in written] == ["song-2-timeline.png", "song-timeline.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") and f"timeline: {p}" in many.stdout for p in written)
    one = run_genrify("predict", a, "--model", tiny_cnn_model, "--timeline", f"{tmp_path / 'tlout'}/", "--json")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)[0]["timeline"] == str(tmp_path / "tlout" / "song-timeline.png")
    assert (tmp_path / "tlout" / "song-timeline.png").read_bytes().startswith(b"\x89PNG")
    single = run_genrify("predict", a, "--model", tiny_cnn_model, "--timeline", tmp_path / "one.png")
    assert single.returncode == 0 and (tmp_path / "one.png").is_file() and f"timeline: {tmp_path / 'one.png'}" in single.stdout


def test_predict_write_tags_keeps_an_existing_genre_unless_overwrite(run_genrify, tiny_cnn_model, synthetic_corpus, tmp_path):
    from genrify.sources.tags import read_genre, write_genre
    from genrify.tagging.journal import TagJournal

    songs = tmp_path / "songs"
    songs.mkdir()
    for clip in sorted(synthetic_corpus.glob("*/*.wav"))[::5]:
        shutil.copy2(clip, songs / clip.name)
        with TagJournal() as journal:
            write_genre(songs / clip.name, "Folk", journal=journal)
    kept = run_genrify("predict", songs, "--model", tiny_cnn_model, "--write-tags")
    assert kept.returncode == 0, kept.stderr
    answered = [line for line in kept.stdout.splitlines() if "certainty" in line and "Not sure" not in line]
    assert answered and all("[genre tag kept: Folk; --overwrite replaces it]" in line for line in answered)
    assert {read_genre(p) for p in songs.iterdir()} == {"Folk"}
    replaced = run_genrify("predict", songs, "--model", tiny_cnn_model, "--write-tags", "--overwrite", "--json")
    results = json.loads(replaced.stdout)
    assert replaced.returncode == 0 and any(r["tagged"] for r in results)
    for r in results:
        assert read_genre(r["path"]) == (r["tagged"] or "Folk")


def test_predict_option_errors_name_the_fix(run_genrify, synthetic_corpus):
    clip = sorted(synthetic_corpus.glob("metal/*.wav"))[0]
    zero = run_genrify("predict", clip, "--top-k", "0", timeout=120)
    assert zero.returncode == 1 and zero.stderr.strip() == "genrify: error: --top-k must be at least 1 (got 0)"
    for name, hint in (("musiccnn", "did you mean 'musicnn'?"), ("cnn", "genrify train")):
        proc = run_genrify("predict", clip, "--model", name, timeout=120)
        assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert hint in proc.stderr and all(m in proc.stderr for m in ("default", "gtzan", "musicnn"))


def test_evaluate_lists_tracks_of_genres_the_model_lacks(run_genrify, tiny_cnn_model, synthetic_corpus, tmp_path):
    """Tracks of a genre the model never learned are named, and macro-F1 averages only the
    genres with songs in the dataset (not the model's other genres at F1 = 0)."""
    root = tmp_path / "data"
    metal = sorted(synthetic_corpus.glob("metal/*.wav"))
    # "polka": other songs than the metal ones (a dataset keeps one copy of identical audio).
    for style, clips in (("metal", metal[-2:]), ("jazz", sorted(synthetic_corpus.glob("jazz/*.wav"))[-2:]),
                         ("polka", metal[:2])):
        (root / style).mkdir(parents=True)
        for clip in clips:
            shutil.copy2(clip, root / style / clip.name)
    built = run_genrify("dataset", "build", root, "--out", tmp_path / "d.gdb", "--workers", "1")
    assert built.returncode == 0, built.stderr
    proc = run_genrify("evaluate", tmp_path / "d.gdb", "--model", tiny_cnn_model, "--include-training-data",
                       "--out", tmp_path / "ev")
    assert proc.returncode == 0, proc.stderr
    skipped = [line for line in proc.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 2 and all("polka" in line for line in skipped)
    metrics = json.loads((tmp_path / "ev.json").read_text())
    metrics = metrics.get("metrics", metrics)
    present = [g for g in ("metal", "jazz")]
    assert metrics["macro_f1"] == pytest.approx(np.mean([metrics["per_genre"][g]["f1"] for g in present]))
    assert set(metrics["absent"]) == set(metrics["labels"]) - set(present)
    assert "2 tracks skipped" in proc.stdout or "2 tracks skipped" in (tmp_path / "ev.md").read_text()


def test_predict_verbose_says_how_this_machine_runs_the_model(run_genrify, tiny_cnn_model, synthetic_corpus,
                                                              monkeypatch):
    """-v names engine, mode, windows and the arithmetic the musicnn convs use here, with the reason."""
    song = sorted((synthetic_corpus / "jazz").glob("*.wav"))[0]
    for engine in ("auto", "torch"):
        monkeypatch.setenv("GENRIFY_ENGINE", engine)
        line = run_genrify("predict", "-v", "--fast", song, check=True).stderr.strip()
        assert line.count("\n") == 0 and line.startswith("genrify: model ")
        assert "fast mode, at most 3 windows" in line
        assert re.search(r"musicnn timbral convs in (float32 \(frequency DFT\)|bfloat16|int8)", line), line
        assert "machine check: " in line
        if "numpy engine" in line:  # one song, a CPU without native bfloat16: float32 without torch
            assert engine == "auto" and "bfloat16 not native" in line and "without torch" in line
        else:  # torch's measured check, with its timings
            assert "torch engine" in line and "float32 " in line and " ms" in line
    monkeypatch.delenv("GENRIFY_ENGINE")
    window = run_genrify("predict", "-v", "--model", tiny_cnn_model, song, check=True)
    assert "float32" in window.stderr and "musicnn" not in window.stderr


def test_predict_verbose_loads_the_model_once(synthetic_corpus, monkeypatch, capsys):
    """-v describes the classifier that then analyses the songs: one model read, one classifier."""
    from genrify.cli import main
    from genrify.predict.classifier import GenreClassifier
    from genrify.predict.resolve import ModelRef

    reads, built = [], []
    real_read, real_init = ModelRef.read, GenreClassifier.__init__
    monkeypatch.setattr(ModelRef, "read", lambda self: reads.append(self.name) or real_read(self))
    monkeypatch.setattr(GenreClassifier, "__init__", lambda self, *a, **k: built.append(1) or real_init(self, *a, **k))
    songs = [str(p) for p in sorted((synthetic_corpus / "jazz").glob("*.wav"))[:2]]
    assert main(["predict", "-v", "--model", "gtzan", *songs]) == 0
    out = capsys.readouterr()
    assert reads == ["gtzan"] and len(built) == 1
    assert out.err.count("genrify: model ") == 1 and out.out.count("jazz") >= 2
