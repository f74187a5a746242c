"""Genre tags written into the user's own files (``sources/tags.py``), journaled in the tag journal
(``tagging/journal.py::TagJournal``) for undo.

Real files with real tags: the corpus writer's MP3/FLAC/M4A/WAV clips (tagged by
mutagen), an MP3 from libsndfile with a raw ID3v1 tag appended, real hard links,
real ownership changes (the suite runs as root here), a real SQLite journal in a
temporary data folder, and temporary files left by a really killed process.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from genrify.errors import TagError
from genrify.sources.tags import id3v1_genre, read_genre, read_genres, read_tags, undo_genres, write_genre
from genrify.tagging.journal import TagJournal
from helpers.tagfiles import copy_into, data_dir, id3v1_only_mp3, journal, songs, tag_files  # noqa: F401  (fixtures; data_dir is autouse)

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")


# ---------------------------------------------------------------------------- ownership, mode, hard links


@as_root
@pytest.mark.parametrize("fmt", ["mp3", "flac", "m4a", "wav"])
def test_a_file_of_another_user_keeps_its_owner_group_and_mode(tag_files, songs, fmt, journal):
    path = copy_into(tag_files[fmt], songs)
    os.chown(path, 1000, 1000)
    os.chmod(path, 0o640)
    write_genre(path, "metal", journal=journal)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 1000, 0o640)
    assert read_genre(path) == "metal"
    assert [p.name for p in songs.iterdir()] == [path.name]


@as_root
def test_owner_of_the_folder_and_of_the_file_may_differ(tag_files, songs, journal):
    """A root-owned folder holding a user's song: the song stays the user's, the folder root's."""
    path = copy_into(tag_files["flac"], songs)
    os.chown(path, 1000, 100)
    os.chmod(path, 0o600)
    write_genre(path, "jazz", journal=journal)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1000, 100, 0o600)
    assert os.stat(songs).st_uid == 0


def test_a_hard_linked_file_is_refused_and_both_names_are_untouched(tag_files, songs, journal):
    path = copy_into(tag_files["mp3"], songs, "library.mp3")
    other = songs / "seeding.mp3"
    os.link(path, other)
    before = path.read_bytes()
    with pytest.raises(TagError) as err:
        write_genre(path, "metal", journal=journal)
    message = str(err.value)
    assert "hard links" in message and "\n" not in message and str(path) in message
    assert os.stat(path).st_ino == os.stat(other).st_ino and os.stat(path).st_nlink == 2
    assert path.read_bytes() == before and read_genre(other) == "classical"
    assert sorted(p.name for p in songs.iterdir()) == ["library.mp3", "seeding.mp3"]


def test_a_fifo_or_a_device_is_refused_without_blocking(songs, journal):
    fifo = songs / "pipe.mp3"
    os.mkfifo(fifo)
    zero = songs / "zero.flac"
    zero.symlink_to("/dev/zero")
    for path in (fifo, zero):
        with pytest.raises(TagError, match="not a regular file"):
            write_genre(path, "metal", journal=journal)
        with pytest.raises(TagError, match="not a regular file"):
            read_genre(path)
    assert sorted(p.name for p in songs.iterdir()) == ["pipe.mp3", "zero.flac"]


# ---------------------------------------------------------------------------- ID3v1


@pytest.mark.parametrize("genre, byte", [("metal", 9), ("jazz", 8), ("hiphop", 7), ("classical", 32),
                                         ("Rock", 17), ("lofi", 71), ("vaporwave", 255)])
def test_an_id3v1_only_mp3_gets_the_matching_id3v1_genre_byte(id3v1_only_mp3, genre, byte, journal):
    path = id3v1_only_mp3
    assert read_genre(path) == "Jazz"  # mutagen reads the ID3v1 byte 8 as "Jazz"
    write_genre(path, genre, journal=journal)
    data = path.read_bytes()
    assert data[-128:-125] == b"TAG" and data[-1] == byte  # one ID3v1 tag, at the end, with the right genre
    assert data.count(b"TAG") == 1
    assert data[-125:-95].rstrip(b"\0") == b"Old Song" and data[-95:-65].rstrip(b"\0") == b"Old Band"
    assert read_genre(path) == genre  # the ID3v2 tag now carries the name as written
    assert read_tags(path)["title"] == "Old Song"


def test_id3v1_genre_bytes_follow_the_id3v1_list():
    assert [id3v1_genre(g) for g in ("blues", "country", "disco", "pop", "reggae", "Hip-Hop", "R&B")] == \
        [0, 2, 4, 13, 16, 7, 14]
    assert id3v1_genre(None) == id3v1_genre("") == id3v1_genre("not a genre") == 255


def test_undo_puts_the_id3v1_genre_byte_back(id3v1_only_mp3, journal):
    write_genre(id3v1_only_mp3, "vaporwave", journal=journal)
    assert id3v1_only_mp3.read_bytes()[-1] == 255
    assert undo_genres(journal=journal) == [(str(id3v1_only_mp3), "restored genre Jazz")]
    assert id3v1_only_mp3.read_bytes()[-1] == 8 and read_genre(id3v1_only_mp3) == "Jazz"


# ---------------------------------------------------------------------------- the journal and undo


def test_the_old_genre_is_journaled_before_the_write(tag_files, songs, data_dir, journal):
    path = copy_into(tag_files["flac"], songs)
    write_genre(path, "metal", journal=journal)
    with sqlite3.connect(data_dir / "tag-journal.sqlite") as conn:
        rows = conn.execute("SELECT path, old, new, state FROM changes").fetchall()
    assert rows == [(str(path), '["classical"]', "metal", "written")]


@pytest.mark.parametrize("fmt", ["mp3", "flac", "m4a", "wav"])
def test_undo_restores_the_previous_genre(tag_files, songs, fmt, journal):
    path = copy_into(tag_files[fmt], songs)
    write_genre(path, "metal", journal=journal)
    write_genre(path, "jazz", journal=journal)  # twice in one run: undo walks back through both
    assert undo_genres(journal=journal) == [(str(path), "restored genre metal"),
                                            (str(path), "restored genre classical")]
    assert read_genre(path) == "classical"
    with pytest.raises(TagError, match="left to undo"):
        undo_genres(journal=journal)


def test_undo_removes_a_genre_that_was_not_there(tag_files, songs, journal):
    from mutagen.flac import FLAC

    path = copy_into(tag_files["flac"], songs)
    f = FLAC(path)
    del f["genre"]
    f.save()
    assert read_genre(path) is None
    write_genre(path, "pop", journal=journal)
    assert undo_genres(journal=journal) == [(str(path), "restored: no genre tag")]
    assert read_genre(path) is None and read_tags(path)["title"]


def test_undo_leaves_a_genre_changed_since_alone(tag_files, songs, journal):
    from mutagen.flac import FLAC

    path = copy_into(tag_files["flac"], songs)
    write_genre(path, "metal", journal=journal)
    f = FLAC(path)
    f["genre"] = ["my own choice"]
    f.save()
    [(where, what)] = undo_genres(journal=journal)
    assert where == str(path) and "left alone" in what and "my own choice" in what
    assert read_genre(path) == "my own choice"


def test_undo_undoes_the_latest_run_only(tag_files, songs, journal):
    first, second = copy_into(tag_files["flac"], songs, "a.flac"), copy_into(tag_files["flac"], songs, "b.flac")
    with TagJournal(run="run-1") as run_1:
        write_genre(first, "metal", journal=run_1)
    with TagJournal(run="run-2") as run_2:
        write_genre(second, "jazz", journal=run_2)
    assert undo_genres(journal=journal) == [(str(second), "restored genre classical")]
    assert read_genre(first) == "metal"
    assert undo_genres(journal=journal, run="run-1") == [(str(first), "restored genre classical")]


def test_a_journal_that_cannot_be_written_refuses_the_write(tag_files, songs, tmp_path, monkeypatch, journal):
    path = copy_into(tag_files["mp3"], songs)
    before = path.read_bytes()
    with sqlite3.connect(journal.path) as conn:  # the journal opened, then its table went away
        conn.execute("DROP TABLE changes")
    with pytest.raises(TagError) as err:
        write_genre(path, "metal", journal=journal)
    assert "tag journal" in str(err.value) and "\n" not in str(err.value)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    monkeypatch.setenv("GENRIFY_DATA_DIR", str(blocker))
    with pytest.raises(TagError) as err:  # the default journal cannot even be opened
        with TagJournal() as elsewhere:
            write_genre(path, "metal", journal=elsewhere)
    assert "tag journal" in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == before and [p.name for p in songs.iterdir()] == [path.name]


def test_genrify_tag_undo_on_the_command_line(tag_files, songs, capsys, journal):
    from genrify.cli import main

    path = copy_into(tag_files["mp3"], songs, "Band - Song\x1b]0;owned\x07.mp3")  # a name that would retitle a terminal
    write_genre(path, "metal", journal=journal)
    assert main(["tag", "--undo"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\x1b" not in out and "\\x1b]0;owned\\x07" in out
    assert "restored genre classical" in out and read_genre(path) == "classical"
    assert main(["tag", "--undo"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("genrify: error:") and "left to undo" in err and err.count("\n") == 1


# ---------------------------------------------------------------------------- leftovers of killed runs


def _killed_mid_write(target) -> str:
    """Run a process that starts an atomic write beside ``target`` (a full copy) and is killed by SIGKILL."""
    code = ("import os, shutil, signal, sys\n"
            "from genrify.fileio import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    shutil.copyfile(sys.argv[1], tmp)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    before = set(target.parent.iterdir())
    proc = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    [left] = set(target.parent.iterdir()) - before
    return left.name


def test_copies_left_by_killed_runs_are_removed_at_the_next_write(tag_files, songs, journal):
    killed = copy_into(tag_files["mp3"], songs, "killed.mp3")
    stale = songs / _killed_mid_write(killed)
    assert stale.name.startswith(".killed.mp3.genrify-") and stale.name.endswith(".part")
    assert stale.stat().st_size == killed.stat().st_size  # a full-size hidden copy
    young = songs / _killed_mid_write(killed)
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    # Not genrify's, or not a plain file: kept whatever their age.
    keep = [songs / ".killed.mp3.abc123.part", songs / "notes.genrify-abcd1234.part", songs / ".x.genrify-abcd1234.partial"]
    for p in keep:
        p.write_bytes(b"someone else's")
        os.utime(p, (hour_ago, hour_ago))
    link = songs / ".link.mp3.genrify-abcd1234.part"
    link.symlink_to(killed)
    os.utime(link, (hour_ago, hour_ago), follow_symlinks=False)

    other = copy_into(tag_files["mp3"], songs, "other.mp3")
    write_genre(other, "metal", journal=journal)
    names = {p.name for p in songs.iterdir()}
    assert stale.name not in names  # stale: removed
    assert young.name in names  # a minute has not passed: it may belong to a run still writing
    assert {p.name for p in keep} | {link.name, "killed.mp3", "other.mp3"} <= names
    assert read_genre(killed) == "classical"  # the killed run never touched the song


# ---------------------------------------------------------------------------- several genres, per container


@pytest.fixture(scope="module")
def every_format(tag_files, tmp_path_factory):
    """One clip per container genrify writes: the corpus writer's four, plus Ogg Vorbis, Opus and AIFF
    made by libsndfile (READ-ONLY: copy first)."""
    import soundfile as sf

    from genrify.sources.synthetic import write_demo_corpus

    root = tmp_path_factory.mktemp("every-format")
    files = dict(tag_files)
    write_demo_corpus(root / "ogg", per_genre=1, duration=2.0, fmt="ogg")
    files["ogg"] = sorted((root / "ogg").glob("classical/*.ogg"))[0]
    t = np.arange(48000 * 2) / 48000
    y = (0.3 * np.sin(2 * np.pi * 330 * t)).astype("float32")
    sf.write(root / "clip.opus", y, 48000, format="OGG", subtype="OPUS")
    sf.write(root / "clip.aiff", y, 48000, format="AIFF")
    files["opus"], files["aiff"] = root / "clip.opus", root / "clip.aiff"
    return files


def _samples(path):
    from genrify.audio import load_audio

    return load_audio(path, sr=None, max_duration=None)[0]


ALL_FORMATS = ["mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff"]


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_several_genres_are_written_as_the_containers_multi_values_and_the_audio_is_untouched(every_format, songs,
                                                                                               fmt, journal):
    import mutagen

    path = copy_into(every_format[fmt], songs, f"song.{fmt}")
    before, other = _samples(path), read_tags(path)
    mode = 0o640
    os.chmod(path, mode)
    assert write_genre(path, ["Rock", "Jazz", "Blues"], journal=journal) == ["Rock", "Jazz", "Blues"]
    assert np.array_equal(_samples(path), before)  # decoded samples identical, bit for bit
    assert os.stat(path).st_mode & 0o777 == mode
    assert {k: v for k, v in read_tags(path).items() if k != "genre"} == \
        {k: v for k, v in other.items() if k != "genre"}  # artist, title, album, duration kept
    raw = mutagen.File(path)
    if fmt in ("mp3", "wav", "aiff"):
        assert raw.tags.version[:2] == (2, 4) and raw.tags.getall("TCON")[0].text == ["Rock", "Jazz", "Blues"]
    elif fmt == "m4a":
        assert raw.tags["\xa9gen"] == ["Rock", "Jazz", "Blues"]  # one ©gen atom with three values
    else:
        assert raw.tags["genre"] == ["Rock", "Jazz", "Blues"]  # one GENRE field per value


@pytest.mark.parametrize("fmt", ["mp3", "wav", "aiff"])
def test_id3v23_joins_the_genres_with_the_chosen_separator(every_format, songs, fmt, journal):
    import mutagen

    path = copy_into(every_format[fmt], songs, f"song.{fmt}")
    before = _samples(path)
    assert write_genre(path, ["Rock", "Jazz"], id3_separator="; ", journal=journal) == ["Rock; Jazz"]
    raw = mutagen.File(path)
    assert raw.tags.version[:2] == (2, 3)
    assert np.array_equal(_samples(path), before)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_undo_restores_the_exact_previous_values(every_format, songs, fmt, journal):
    import mutagen

    path = copy_into(every_format[fmt], songs, f"song.{fmt}")
    old = read_genres(path)
    raw_before = mutagen.File(path)
    version = getattr(raw_before.tags, "version", None)
    write_genre(path, ["Rock", "Jazz"], id3_separator="/" if fmt == "mp3" else None, journal=journal)
    undo_genres(journal=journal)
    assert read_genres(path) == old
    if version is not None:
        assert mutagen.File(path).tags.version[:2] == version[:2]  # back in its own ID3 version


def test_a_file_changed_since_it_was_analysed_is_not_written(tag_files, songs, journal):
    path = copy_into(tag_files["flac"], songs)
    st = path.stat()
    seen = (st.st_size, st.st_mtime_ns)
    with open(path, "ab") as f:
        f.write(b"\0")
    before = path.read_bytes()
    with pytest.raises(TagError, match="changed since it was analysed"):
        write_genre(path, "Rock", expect=seen, journal=journal)
    assert path.read_bytes() == before


def test_a_journal_of_an_earlier_genrify_is_still_read(tag_files, songs, data_dir):
    data_dir.mkdir()
    with sqlite3.connect(data_dir / "tag-journal.sqlite") as conn:  # the schema before old_id3 existed
        conn.execute("CREATE TABLE changes (id INTEGER PRIMARY KEY AUTOINCREMENT, run TEXT NOT NULL, at REAL NOT NULL,"
                     " path TEXT NOT NULL, old TEXT, new TEXT NOT NULL, state TEXT NOT NULL)")
    path = copy_into(tag_files["flac"], songs)
    with TagJournal() as journal:
        write_genre(path, ["Rock", "Pop"], journal=journal)
        assert undo_genres(journal=journal) == [(str(path), "restored genre classical")]


def test_a_read_only_file_is_refused_and_left_as_it_is(tag_files, songs, journal):
    path = copy_into(tag_files["mp3"], songs)
    os.chmod(path, 0o444)
    before = path.read_bytes()
    with pytest.raises(TagError, match="read-only"):
        write_genre(path, "Rock", journal=journal)
    assert path.read_bytes() == before and os.stat(path).st_mode & 0o777 == 0o444
