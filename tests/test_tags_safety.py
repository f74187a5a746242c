"""Genre tags written into the user's own files, where the files are hostile: names that are not
UTF-8, links out of the tagged folder, journal rows that climb out of the undo folder, damaged journals.

Real files with real tags: the corpus writer's MP3/FLAC/M4A/WAV clips (tagged by
mutagen), an MP3 from libsndfile with a raw ID3v1 tag appended, real hard links,
real ownership changes (the suite runs as root here), a real SQLite journal in a
temporary data folder, and temporary files left by a really killed process.
"""

from __future__ import annotations

import os
import sqlite3

import pytest

from genrify.errors import TagError
from genrify.sources.tags import read_genre, undo_genres, write_genre
from genrify.tagging.journal import TagJournal
from helpers.tagfiles import copy_into, data_dir, id3v1_only_mp3, journal, songs, tag_files  # noqa: F401  (fixtures; data_dir is autouse)


# ---------------------------------------------------------------------------- names, links and the journal


def test_a_name_that_is_not_utf8_is_tagged_journaled_and_undone(tag_files, songs, journal):
    path = songs / os.fsdecode(b"x\xe9.mp3")
    copy_into(tag_files["mp3"], songs, path.name)
    assert write_genre(path, "Jazz", journal=journal) == ["Jazz"]
    (change,) = journal.changes(run=journal.run)
    assert change.path == str(path)  # the name's bytes, back as they were
    plain = copy_into(tag_files["mp3"], songs, "plain.mp3")
    write_genre(plain, "Jazz", journal=journal)
    with sqlite3.connect(journal.path) as conn:  # a UTF-8 name stays TEXT: journals of earlier versions still match
        kinds = dict(conn.execute("SELECT typeof(path), path FROM changes").fetchall())
    assert kinds == {"blob": os.fsencode(path), "text": str(plain)}
    assert undo_genres(journal=journal)[-1] == (str(path), "restored genre classical")  # newest first
    assert read_genre(path) == "classical"


def test_a_link_leaving_the_root_is_not_written(tag_files, tmp_path, songs, journal):
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    private = copy_into(tag_files["mp3"], outside, "private.mp3")
    os.chmod(private, 0o600)
    before = private.read_bytes()
    (songs / "evil.mp3").symlink_to(private)
    with pytest.raises(TagError, match="outside") as err:
        write_genre(songs / "evil.mp3", "Jazz", journal=journal, root=songs)
    assert "\n" not in str(err.value)
    assert private.read_bytes() == before and journal.changes(run=journal.run) == []


def test_a_link_swapped_in_after_analysis_to_an_equal_file_is_not_written(tag_files, songs, journal):
    song = copy_into(tag_files["mp3"], songs, "song.mp3")
    victim = copy_into(tag_files["mp3"], songs, "victim.mp3")  # same size; given the same time below
    st = os.stat(song)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    seen = (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)  # as the job saw it when analysing
    song.unlink()
    song.symlink_to(victim)
    before = victim.read_bytes()
    with pytest.raises(TagError, match="changed since it was analysed"):
        write_genre(song, "Jazz", journal=journal, root=songs, expect=seen)
    assert victim.read_bytes() == before


def test_the_id3v1_comment_and_track_survive_a_write_and_an_undo(id3v1_only_mp3, journal):
    with open(id3v1_only_mp3, "r+b") as f:  # a comment in the ID3v1.1 tag's 28 comment bytes
        f.seek(-128 + 97, os.SEEK_END)
        f.write(b"ripped by me".ljust(28, b"\0"))
    original = id3v1_only_mp3.read_bytes()[-128:]
    write_genre(id3v1_only_mp3, "Metal", journal=journal)
    after = id3v1_only_mp3.read_bytes()[-128:]
    assert after[:-1] == original[:-1] and after[-1] == 9  # all but the genre byte, Metal
    undo_genres(journal=journal)
    assert id3v1_only_mp3.read_bytes()[-128:] == original


def test_a_journal_row_climbing_out_of_the_undo_folder_is_not_undone(tag_files, tmp_path, songs, journal):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = copy_into(tag_files["mp3"], outside, "victim.mp3")
    before = victim.read_bytes()
    # A row as a damaged or forged journal may hold: inside the folder by its text, outside by its place.
    journal.mark(journal.record(path=f"{songs}/../outside/victim.mp3", old=["Jazz"], new="classical"),
                 state="written")
    with pytest.raises(TagError, match="no genre tag written") as err:
        undo_genres(journal=journal, under=songs)
    assert "\n" not in str(err.value)
    assert victim.read_bytes() == before


def test_bad_json_in_the_journal_is_a_one_line_error(tag_files, songs, data_dir, run_genrify):
    path = copy_into(tag_files["mp3"], songs)
    with TagJournal() as journal:
        write_genre(path, "Jazz", journal=journal)
    with sqlite3.connect(data_dir / "tag-journal.sqlite") as conn:
        conn.execute("UPDATE changes SET old = '[\"classical\"'")
    with TagJournal() as journal, pytest.raises(TagError, match="damaged") as err:
        undo_genres(journal=journal)
    assert "\n" not in str(err.value)
    proc = run_genrify("tag", "--undo", "--index", data_dir / "tag-journal.sqlite")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("genrify: error:") and len(proc.stderr.strip().splitlines()) == 1
    assert read_genre(path) == "Jazz"
