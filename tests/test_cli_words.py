"""The command line's words, run as a user runs it (``python -m genrify`` in a subprocess): option
help that says what each option does, titled timelines, a certainty sentence that agrees with its
figures, and ``genrify tag``'s table and errors."""

from __future__ import annotations

import json
import re

import numpy as np
import soundfile as sf

from genrify.sources.synthetic import generate_clip
from test_predict import write_model_just_above


# --------------------------------------------------------------------------- help texts, timeline titles, certainty


def _option_help(help_text: str) -> dict[str, str]:
    """``--option`` → its help text, read from argparse's "options:" section as printed."""
    section = help_text.split("options:", 1)[1].split("\n\n", 1)[0]
    out = {}
    for entry in re.split(r"\n(?=  -)", section.strip("\n")):
        first, *rest = entry.splitlines()
        invocation, _, text = first.strip().partition("  ")
        out[invocation.split()[0].rstrip(",")] = " ".join([text.strip(), *(line.strip() for line in rest)]).strip()
    return out


def test_dataset_build_help_explains_every_option(run_genrify):
    """Each option says what it sets and its default (the feature options used to be bare names)."""
    proc = run_genrify("dataset", "build", "--help", timeout=120)
    assert proc.returncode == 0 and proc.stderr == ""
    helps = _option_help(proc.stdout)
    assert {"--features", "--sr", "--n-mfcc", "--n-mels", "--n-fft", "--hop-length"} <= set(helps)
    assert all(text for text in helps.values()), {opt: text for opt, text in helps.items() if not text}
    for option, default in (("--features", "mfcc"), ("--sr", "44100"), ("--n-mfcc", "10"), ("--n-mels", "128"),
                            ("--n-fft", "2048"), ("--hop-length", "512")):
        assert f"default {default}" in helps[option], (option, helps[option])


def test_predict_timeline_png_is_titled_with_the_song_and_the_model(run_genrify, seeded_mlp_model, tmp_path):
    """The saved plot names what it shows: the song (its tags' artist – title, else the file) and the model,
    in the picture and in the PNG's Title field."""
    import matplotlib.image
    from mutagen.flac import FLAC
    from PIL import Image

    tagged, bare = tmp_path / "tagged.flac", tmp_path / "bare.wav"
    sf.write(tagged, generate_clip("jazz", seed=3, sr=22050, duration=8.0), 22050, format="FLAC")
    tags = FLAC(tagged)
    tags["artist"], tags["title"] = "Miles Ahead", "Blue Circle"
    tags.save()
    sf.write(bare, generate_clip("metal", seed=4, sr=22050, duration=8.0), 22050)
    proc = run_genrify("predict", tagged, bare, "--model", seeded_mlp_model, "--timeline", tmp_path / "plots")
    assert proc.returncode == 0, proc.stderr
    for png, song in ((tmp_path / "plots" / "tagged-timeline.png", "Miles Ahead – Blue Circle"),
                      (tmp_path / "plots" / "bare-timeline.png", "bare.wav")):
        assert Image.open(png).text.get("Title") == f"{song} · model seeded-mlp.genrify"
        ink = matplotlib.image.imread(png)[:, :, :3].mean(axis=2) < 0.5
        h, w = ink.shape
        # The title is drawn above the chart: dark text in the top middle, where an untitled plot is blank.
        assert ink[: int(h * 0.05), int(w * 0.25): int(w * 0.75)].sum() > 50


def test_certainty_sentence_agrees_with_the_verdict(run_genrify, seeded_mlp_model, tmp_path):
    """A top probability a hair under the threshold: the text and the JSON never say "only X% (below X%)";
    the sentence's figure is the one the list shows, and it is below the threshold shown."""
    song = tmp_path / "song.wav"
    sf.write(song, generate_clip("edm", seed=2, sr=22050, duration=8.0), 22050)
    model = tmp_path / "edge.genrify"
    write_model_just_above(seeded_mlp_model, song=song, out=model)
    text = run_genrify("predict", song, "--model", model, check=True).stdout
    (result,) = json.loads(run_genrify("predict", song, "--model", model, "--json", check=True).stdout)
    for sentence in (text, result["message"]):
        below = re.search(r"only (\d+)% certainty \(below (\d+)%\)", sentence)
        if below:
            assert int(below[1]) < int(below[2]), sentence
    listed = re.search(r"1\. [^,]+, certainty (\d+)%", text)
    assert listed, text
    if result["verdict"] == "unsure":
        assert f"only {listed[1]}% certainty" in text
    else:
        assert result["verdict"] == "genre" and "Not sure" not in text


# ---------------------------------------------------------------------------- genrify tag: its words


def test_tag_a_path_that_does_not_exist_is_one_error_line(run_genrify, tmp_path):
    missing = tmp_path / "nonexistent"
    proc = run_genrify("tag", missing, "--index", tmp_path / "i.sqlite")
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout  # no table header, no summary
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"genrify: error: {missing}: "), proc.stderr


def test_tag_table_names_the_genre_its_certainty_belongs_to(run_genrify, seeded_mlp_model, tmp_path):
    """A song that is not music (here silence) has no genre to write; its number is its top genre's
    probability, and the table says which genre that is."""
    from genrify.tagging import ResultsIndex
    from genrify.taxonomy import canonical_name

    music = tmp_path / "music"
    music.mkdir()
    sf.write(music / "silence.flac", np.zeros(3 * 22050, dtype=np.float32), 22050)
    proc = run_genrify("tag", music, "--model", seeded_mlp_model, "--index", tmp_path / "i.sqlite")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    header, row = proc.stdout.splitlines()[:2]
    assert "top genre" in header and "not_music" in row and "nothing to write" in row, proc.stdout
    with ResultsIndex(tmp_path / "i.sqlite") as index:
        [song] = index.rows()
    genre, p = max(song["analysis"]["genres"].items(), key=lambda kv: kv[1])
    assert f"{canonical_name(genre)} {p:.2f}" in row, proc.stdout
