"""Tagging a library (``tagging/``, ``genrify tag``): the names chosen, the results index, the job.

The choice of names is pure and tested on hand-made analyses; the job runs the
real tiny CNN (``tiny_cnn_model``) over real encoded files, with a real SQLite
index, real writes through mutagen, a really killed process, and the whole
bad-input corpus.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genrify.errors import ConfigError
from genrify.sources.tags import read_genres
from genrify.tagging import (ChoiceConfig, NameRules, ResultsIndex, TagJobConfig, choose, choose_album,
                             committed_songs, load_names)
from genrify.tagging.choose import EXISTING, decide_tag
from helpers.badinput import make_bad_corpus
from helpers.tagging_library import library, library_src, run_job, song_files  # noqa: F401  (fixtures)

# ---------------------------------------------------------------------------- choosing names (pure)


def _analysis(genres: dict, *, verdict="genre", styles=()) -> dict:
    return {"genres": genres, "verdict": verdict, "details": {"styles": [list(s) for s in styles]}}


SONG = _analysis({"rock": 0.55, "Metal": 0.3, "jazz": 0.15},
                 styles=[("hard rock", "Rock", 0.4), ("progressive rock", "Rock", 0.35), ("heavy metal", "Metal", 0.5)])


def test_genre_level_writes_the_top_genres_above_the_cut_off_in_display_spelling():
    assert choose(SONG).genres == ["Rock"]
    assert choose(SONG, config=ChoiceConfig(max=3, min_certainty=0.2)).genres == ["Rock", "Metal"]
    assert choose(SONG, config=ChoiceConfig(min_certainty=0.6)).names == []
    assert choose(SONG, config=ChoiceConfig(min_certainty=0.6)).verdict == "unsure"


def test_style_and_both_levels_take_styles_of_the_chosen_genres_only():
    assert choose(SONG, config=ChoiceConfig(level="style")).names == ["Hard Rock"]
    both = choose(SONG, config=ChoiceConfig(level="both", max=2))
    # heavy metal is left out: its genre was not chosen
    assert both.genres == ["Rock"] and both.styles == ["Hard Rock", "Progressive Rock"]
    assert both.names == ["Rock", "Hard Rock", "Progressive Rock"]


def test_not_music_and_unsure_songs_get_nothing():
    for verdict in ("not_music", "unsure"):
        choice = choose(_analysis({"rock": 0.9}, verdict=verdict))
        assert choice.names == [] and choice.verdict == verdict


def test_aliases_ignore_and_whitelist_apply_case_insensitively_and_drop_case_duplicates():
    rules = NameRules(aliases={"METAL": "rock", "jazz": "Jazz Music"}, ignore=frozenset({"blues"}))
    assert rules.apply(["Rock", "Metal", "Jazz", "Blues", "ROCK"]) == ["Rock", "Jazz Music"]
    assert NameRules(whitelist=frozenset({"jazz"})).apply(["Rock", "Jazz"]) == ["Jazz"]
    choice = choose(SONG, config=ChoiceConfig(max=3, min_certainty=0.2, names=rules))
    assert choice.genres == ["Rock"]  # Metal became rock, a case duplicate of Rock


def test_names_yaml_is_read_and_bad_ones_are_one_line_errors(tmp_path):
    good = tmp_path / "names.yaml"
    good.write_text("aliases:\n  hip hop: Hip-Hop\nignore: [Pop]\nwhitelist: [Hip-Hop, Rock]\n")
    rules = load_names(good)
    assert rules.aliases == {"hip hop": "Hip-Hop"} and rules.ignore == {"Pop"}
    assert rules.whitelist == {"Hip-Hop", "Rock"}
    for text in ("aliases: [1, 2]\n", "colour: red\n", "- a list\n", "aliases: {a: b\n"):
        good.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_names(good)
        assert str(good) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="cannot read"):
        load_names(tmp_path / "missing.yaml")


def test_an_album_is_the_mean_of_its_tracks_and_unsure_when_it_disagrees_with_itself():
    a, b = _analysis({"rock": 0.9, "jazz": 0.1}), _analysis({"rock": 0.4, "jazz": 0.6})
    album = choose_album([a, a, b])
    assert album.genres == ["Rock"] and album.certainty == pytest.approx((0.9 + 0.9 + 0.4) / 3)
    split = choose_album([_analysis({"rock": 0.9, "jazz": 0.1}), _analysis({"rock": 0.1, "jazz": 0.9}),
                          _analysis({"pop": 0.9, "rock": 0.1})])
    assert split.names == [] and split.verdict == "unsure"
    noise = _analysis({"rock": 0.9}, verdict="not_music")
    assert choose_album([a, noise, noise]).genres == ["Rock"]  # not-music tracks do not vote


def test_bad_options_are_config_errors():
    for kw in ({"level": "subgenre"}, {"max": 0}, {"min_certainty": 1.5}):
        with pytest.raises(ConfigError):
            ChoiceConfig(**kw)
    with pytest.raises(ConfigError):
        TagJobConfig(existing="replace")


# ---------------------------------------------------------------------------- a genre the file already has (pure)


@pytest.mark.parametrize(("current", "names", "existing", "written", "expected"), [
    ([], [], "overwrite", None, (None, "nothing")),
    ([], ["Hip-Hop"], "keep", None, (["Hip-Hop"], "written")),
    (["Hip-Hop"], ["Hip-Hop"], "overwrite", None, (None, "unchanged")),
    (["hiphop"], ["Hip-Hop"], "keep", None, (None, "unchanged")),  # the same genre in the user's spelling
    (["Hip Hop"], ["Hip-Hop"], "merge", None, (None, "unchanged")),  # ... is not added twice
    (["hiphop"], ["Hip-Hop"], "overwrite", None, (["Hip-Hop"], "replaced")),  # overwrite respells it
    (["Folk"], ["Hip-Hop"], "keep", None, (None, "kept")),
    (["Folk"], ["Hip-Hop"], "overwrite", None, (["Hip-Hop"], "replaced")),
    (["Folk"], ["Hip-Hop"], "merge", None, (["Folk", "Hip-Hop"], "merged")),
    (["Hip-Hop", "Folk"], ["Hip-Hop"], "keep", None, (None, "kept")),  # every value counts, not the first
    (["Folk", "hip hop"], ["Hip-Hop", "Rock"], "merge", None, (["Folk", "hip hop", "Rock"], "merged")),
    (["rock"], ["Hip-Hop"], "keep", ["Rock"], (["Hip-Hop"], "replaced")),  # genrify's own earlier answer
    (["Folk"], ["Hip-Hop"], "keep", ["Rock"], (None, "kept")),  # changed by the user since
])
def test_one_rule_for_a_genre_the_file_already_has(current, names, existing, written, expected):
    decision = decide_tag(current=current, names=names, existing=existing, written=written)
    assert (decision.values, decision.outcome) == expected


GENRE_NAMES = st.sampled_from(["Rock", "rock", "Hip-Hop", "hiphop", "hip hop", "Folk", "Art Music", "R&B", "rnb"])


@settings(max_examples=300, deadline=None)
@given(current=st.lists(GENRE_NAMES, max_size=3), names=st.lists(GENRE_NAMES, min_size=1, max_size=2, unique=True),
       existing=st.sampled_from(EXISTING))
def test_the_rule_keeps_what_the_user_wrote_and_a_second_run_changes_nothing(current, names, existing):
    decision = decide_tag(current=current, names=names, existing=existing)
    if existing != "overwrite" and current:  # only overwrite takes a user's genre away
        assert decision.values is None or decision.values[:len(current)] == current
    after = current if decision.values is None else decision.values
    assert decide_tag(current=after, names=names, existing=existing).values is None


def test_an_unknown_policy_is_a_config_error():
    with pytest.raises(ConfigError, match="existing must be one of keep, overwrite, merge"):
        decide_tag(current=[], names=["Rock"], existing="replace")


# ---------------------------------------------------------------------------- the job, real files


def test_a_dry_run_writes_nothing_and_a_rerun_analyses_nothing(library, tiny_cnn_model, tmp_path):
    before = {p: p.read_bytes() for p in song_files(library)}
    first = run_job(library, tiny_cnn_model, tmp_path / "index.sqlite", existing="overwrite")
    assert first.analysed == 12 and not first.failed
    actions = [f.action for f in first.files]
    assert all(a.startswith(("would write", "already tagged")) for a in actions), actions
    assert {p: p.read_bytes() for p in song_files(library)} == before
    again = run_job(library, tiny_cnn_model, tmp_path / "index.sqlite")
    assert again.analysed == 0 and again.reused == 12
    with ResultsIndex(tmp_path / "index.sqlite") as index:
        rows = index.rows()
    assert len(rows) == 12 and all(r["analysis"]["genres"] and r["verdict"] for r in rows)


def test_write_keeps_existing_genres_by_default_then_overwrite_merge_and_undo(library, tiny_cnn_model, tmp_path):
    index = tmp_path / "index.sqlite"
    old = {p: read_genres(p) for p in song_files(library)}
    assert all(old.values())  # the corpus writer tagged every song
    kept = run_job(library, tiny_cnn_model, index, write=True)
    assert kept.written == 0 and {p: read_genres(p) for p in song_files(library)} == old
    done = run_job(library, tiny_cnn_model, index, write=True, existing="overwrite")
    assert done.analysed == 0 and done.written == 12
    for f in done.files:
        assert read_genres(f.path) == f.choice.names
    rerun = run_job(library, tiny_cnn_model, index, write=True, existing="overwrite")
    assert rerun.analysed == 0 and rerun.written == 0  # retagged files are recognised by their new hash
    assert {f.action for f in rerun.files} == {"already tagged by genrify"}
    from genrify.cli import main

    assert main(["tag", "--undo", str(library), "--index", str(index)]) == 0
    assert {p: read_genres(p) for p in song_files(library)} == old


def test_merge_adds_after_the_existing_genre(library, tiny_cnn_model, tmp_path):
    summary = run_job(library, tiny_cnn_model, tmp_path / "i.sqlite", write=True, existing="merge")
    for f in summary.files:
        now = read_genres(f.path)
        if f.action.startswith("wrote"):
            assert len(now) == 2 and now[1] == f.choice.names[0]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_moved_file_is_recognised_by_its_content(library, tiny_cnn_model, tmp_path, workers):
    """The stage hashes each file the index does not know by path (in this process, or in the worker
    processes) and skips the analysis of a hash it knows: a moved, copied or touched song."""
    run_job(library, tiny_cnn_model, tmp_path / "index.sqlite")
    (library / "moved").mkdir()
    song = song_files(library / "mp3")[0]
    song.rename(library / "moved" / "renamed.mp3")
    shutil.copy(song_files(library / "flac")[0], library / "moved" / "copy.flac")
    os.utime(song_files(library / "ogg")[0], ns=(1, 1))  # touched: a new time, the same content
    again = run_job(library, tiny_cnn_model, tmp_path / "index.sqlite", workers=workers)
    assert again.analysed == 0 and again.reused == 13 and not again.failed
    moved = {str(library / "moved" / "renamed.mp3"), str(library / "moved" / "copy.flac")}
    assert moved <= {f.path for f in again.files}
    assert committed_songs(tmp_path / "index.sqlite") == 12
    third = run_job(library, tiny_cnn_model, tmp_path / "index.sqlite", workers=workers)
    assert third.analysed == 0 and third.reused == 13  # every path is known by path, size and time now


def test_album_mode_writes_one_genre_to_every_track_of_a_folder(library, tiny_cnn_model, tmp_path):
    summary = run_job(library, tiny_cnn_model, tmp_path / "index.sqlite", album=True, write=True, existing="overwrite")
    assert len(summary.albums) == 12  # each song is alone in its style folder here
    for f in summary.files:
        assert f.choice is summary.albums[f.album]


def test_the_cli_table_export_and_exit_codes(library, tiny_cnn_model, tmp_path, run_genrify):
    out = tmp_path / "genres.csv"
    proc = run_genrify("tag", library, "--model", tiny_cnn_model, "--index", tmp_path / "i.sqlite",
                       "--min-certainty", "0", "--export", out, "--album")
    assert proc.returncode == 0, proc.stderr
    assert "dry run" in proc.stdout and "album" in proc.stdout and "Traceback" not in proc.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 12 and set(rows[0]) == {"path", "artist", "album", "title", "genres", "styles", "certainty",
                                                "verdict"}
    assert all(r["artist"].startswith("Synthetic") for r in rows)
    proc = run_genrify("tag", library, "--model", tiny_cnn_model, "--index", tmp_path / "i.sqlite",
                       "--export", tmp_path / "g.json")
    assert proc.returncode == 0 and len(json.loads((tmp_path / "g.json").read_text())) == 12
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_genrify("tag", empty, "--model", tiny_cnn_model, "--index", tmp_path / "i.sqlite")
    assert proc.returncode == 1 and "no audio files" in proc.stderr and proc.stdout == ""
    proc = run_genrify("tag", library, "--names", tmp_path / "nope.yaml")
    assert proc.returncode == 1 and proc.stderr.startswith("genrify: error:") and proc.stderr.count("\n") == 1


def test_genres_predict_wrote_are_genrifys_own_to_genrify_tag(library, tiny_cnn_model, tmp_path):
    """``predict --write-tags`` journals its writes in the index's file but records no results: ``genrify tag``
    reads the journal, so those genres are replaced as genrify's own, never kept as the user's."""
    from genrify.sources.tags import write_genre
    from genrify.tagging.journal import TagJournal

    index = tmp_path / "i.sqlite"
    with TagJournal(path=index) as journal:
        for song in song_files(library):
            write_genre(song, "Polka", journal=journal)  # what predict --write-tags does, by a name tag never picks
    summary = run_job(library, tiny_cnn_model, index)
    actions = [f.action for f in summary.files]
    assert len(actions) == 12 and all(a.startswith("would write") for a in actions), actions


# ---------------------------------------------------------------------------- kill -9, bad input


@pytest.fixture(scope="module")
def big_library_src(tmp_path_factory):
    """48 short songs (FLAC): more than two commits' worth, so a run is killed between batches
    (:data:`~genrify.tagging.index.BATCH_SONGS`) whatever the machine's speed (READ-ONLY: copy first)."""
    from genrify.sources.synthetic import write_demo_corpus

    root = tmp_path_factory.mktemp("big-library-src")
    write_demo_corpus(root, per_genre=16, duration=2.0, fmt="flac", styles=("classical", "metal", "jazz"))
    (root / "manifest.csv").unlink()
    return root


def _kill_when_committed(cmd, index, at_least: int) -> int:
    """Run ``cmd``, SIGKILL it once ``index`` holds ``at_least`` songs; the songs it holds then."""
    from conftest import genrify_env

    proc = subprocess.Popen(cmd, env=genrify_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while committed_songs(index) < at_least and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return committed_songs(index)


@pytest.mark.slow
def test_kill_9_mid_job_then_rerun_analyses_nothing_twice_and_corrupts_nothing(big_library_src, tiny_cnn_model,
                                                                               tmp_path):
    from genrify.audio import load_audio

    library, index = tmp_path / "music", tmp_path / "index.sqlite"
    shutil.copytree(big_library_src, library)
    songs = song_files(library)
    decoded = {p: load_audio(p, sr=None)[0] for p in songs}
    done = _kill_when_committed([sys.executable, "-m", "genrify", "tag", str(library), "--model",
                                 str(tiny_cnn_model), "--index", str(index), "--write", "--overwrite",
                                 "--min-certainty", "0"], index, 4)
    assert 4 <= done < len(songs), done  # killed halfway through the analyses
    rerun = run_job(library, tiny_cnn_model, index, write=True, existing="overwrite")
    assert rerun.analysed == len(songs) - done and not rerun.failed  # nothing analysed twice, nothing lost
    with sqlite3.connect(index) as conn:
        assert conn.execute("SELECT COUNT(*) FROM songs").fetchone()[0] == len(songs)
    for path, y in decoded.items():
        assert np.array_equal(load_audio(path, sr=None)[0], y)  # every song decodes as before
        assert read_genres(path) == next(f.choice.names for f in rerun.files if f.path == str(path))


_BATCHED_JOB = """
import sys
from genrify.tagging import ResultsIndex, TagJobConfig, run_tag_job
with ResultsIndex(sys.argv[2], batch_songs=5, batch_seconds=3600) as index:
    run_tag_job([sys.argv[1]], index=index, config=TagJobConfig(model=sys.argv[3]))
"""


@pytest.mark.slow
def test_a_killed_job_loses_only_the_batch_not_committed(big_library_src, tiny_cnn_model, tmp_path):
    """Commits come every 5 songs (and never by time here): a reader sees the index grow 5 songs at a
    time, kill -9 leaves a whole number of batches, and the rerun analyses exactly the rest."""
    library, index = tmp_path / "music", tmp_path / "index.sqlite"
    shutil.copytree(big_library_src, library)
    total = len(song_files(library))
    done = _kill_when_committed([sys.executable, "-c", _BATCHED_JOB, str(library), str(index),
                                 str(tiny_cnn_model)], index, 5)
    assert done % 5 == 0 and 5 <= done < total, done
    rerun = run_job(library, tiny_cnn_model, index)
    assert rerun.analysed == total - done and rerun.reused == done and not rerun.failed
    assert committed_songs(index) == total


@pytest.mark.slow
def test_the_whole_bad_input_corpus_through_genrify_tag(tiny_cnn_model, tmp_path, run_genrify):
    cases = make_bad_corpus(tmp_path / "music" / "bad")
    good = tmp_path / "music" / "good"
    from genrify.sources.synthetic import write_demo_corpus

    write_demo_corpus(good, per_genre=1, duration=3.0, fmt="flac", styles=("metal",))
    paths = [c.path for c in cases] + [good]
    before = {c.path: c.path.read_bytes() for c in cases if c.path.is_file() and os.access(c.path, os.R_OK)}
    proc = run_genrify("tag", *paths, "--model", tiny_cnn_model, "--index", tmp_path / "i.sqlite", "--write",
                       "--overwrite", "--min-certainty", "0", "--workers", "2", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # some files were tagged
    assert "Traceback" not in proc.stdout + proc.stderr
    failed = [line for line in proc.stdout.splitlines() if line.startswith("failed: ")]
    for case in cases:
        mine = [line for line in failed if str(case.path) in line]
        if case.expect == "error" and case.skip is None:
            assert len(mine) == 1, (case.name, proc.stdout)
        listed = mine or [line for line in proc.stdout.splitlines() if line.startswith(str(case.path))]
        assert listed, (case.name, proc.stdout)  # nothing lost: every file is in the table or failed
    for path, data in before.items():
        if any(str(path) in line for line in failed):
            assert path.read_bytes() == data  # a failed file is never half-written
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]
    assert read_genres(next(good.rglob("*.flac")))


# ---------------------------------------------------------------------------- beets' lastgenre conventions (pure)


def test_specific_level_writes_each_genres_surest_style_else_the_genre():
    assert choose(SONG, config=ChoiceConfig(level="specific")).names == ["Hard Rock"]
    three = choose(SONG, config=ChoiceConfig(level="specific", max=3, min_certainty=0.1))
    assert three.styles == ["Hard Rock", "Heavy Metal"] and three.genres == ["Jazz"]  # jazz has no style
    no_hard = NameRules(ignore=frozenset({"hard rock", "progressive rock"}))
    assert choose(SONG, config=ChoiceConfig(level="specific", names=no_hard)).names == ["Rock"]
    assert choose(SONG, config=ChoiceConfig(level="specific")).top == "Rock"


def test_whitelist_and_ignore_list_name_a_genre_in_any_spelling():
    # lastgenre's genre list spells it "hip hop"; genrify writes the taxonomy's "Hip-Hop"
    assert NameRules(whitelist=frozenset({"hip hop", "rock"})).apply(["Hip-Hop", "Jazz", "Rock"]) == ["Hip-Hop", "Rock"]
    assert NameRules(ignore=frozenset({"HIPHOP"})).apply(["Hip-Hop", "Jazz"]) == ["Jazz"]


def test_a_genre_list_file_is_read_bounded_one_name_a_line(tmp_path):
    from genrify.tagging.choose import read_name_list

    good = tmp_path / "genres.txt"
    good.write_text("\ufeff# mine\nrock\n\n  hip hop  \njazz\n")
    assert read_name_list(good) == {"rock", "hip hop", "jazz"}
    fifo = tmp_path / "genres.fifo"
    os.mkfifo(fifo)  # a FIFO is refused at once, not waited on
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00rock")
    for bad, why in ((tmp_path / "missing.txt", "cannot read"), (fifo, "named pipe"), (tmp_path, "directory"),
                     (tmp_path / "empty.txt", "names no genre"), (tmp_path / "binary.txt", "not UTF-8")):
        with pytest.raises(ConfigError) as err:
            read_name_list(bad)
        assert str(bad) in str(err.value) and why in str(err.value) and "\n" not in str(err.value)


def test_a_genre_genrify_wrote_is_said_to_be_genrifys_own():
    ours = decide_tag(current=["Jazz"], names=["Jazz"], written=["Jazz"])
    assert (ours.values, ours.outcome, ours.ours) == (None, "unchanged", True)
    assert ours.why(current=["Jazz"]) == "already tagged by genrify"
    theirs = decide_tag(current=["Jazz"], names=["Jazz"])
    assert theirs.why(current=["Jazz"]) == "already tagged"
    kept = decide_tag(current=["Folk"], names=["Jazz"], written=["Jazz"])
    assert kept.why(current=["Folk"]) == "kept existing genre Folk"
    assert decide_tag(current=[], names=[]).why(current=[], verdict="not_music") == "nothing to write (not_music)"
