"""The local library index: scanning, tolerant matching, safe lookup of files by id."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from genrify.errors import DatasetError, NotFoundError
from genrify.sources.base import SongRef, Source
from genrify.sources.library import LibraryIndex, LibrarySource
from genrify.sources.matching import MATCH_THRESHOLD, normalize, parse_filename, similarity
from helpers.library import write_flac, write_small_library, write_wav


@pytest.fixture
def library(tmp_path):
    """The small tagged library of ``helpers.library``."""
    return write_small_library(tmp_path / "music")


@pytest.fixture
def index(tmp_path, library):
    idx = LibraryIndex(tmp_path / "index.sqlite")
    idx.scan(library)
    yield idx
    idx.close()


def test_scan_reads_tags_and_falls_back_to_file_names(index):
    tracks = {(t.artist, t.title) for t in index.tracks()}
    assert ("Beyoncé feat. JAY-Z", "Crazy in Love") in tracks
    assert ("Kevin MacLeod", "Vibe Ace") in tracks
    assert ("Sigur Rós", "Hoppípolla") in tracks
    assert ("", "no separator here") in tracks
    pop = next(t for t in index.tracks() if t.title == "Crazy in Love")
    assert pop.genre == "Pop" and pop.album == "Dangerously in Love"
    assert pop.duration == pytest.approx(1.0, abs=0.01)
    assert len(index) == 5


@pytest.mark.parametrize(
    "artist, track, expected",
    [
        ("beyonce", "crazy in love", "Crazy in Love"),  # accents and case
        ("Beyoncé ft. Jay Z", "Crazy In Love (feat. Jay-Z)", "Crazy in Love"),  # feat. parts
        ("BEYONCE", "Crazy in Lvoe", "Crazy in Love"),  # a small typo
        ("dave brubeck quartet", "take five", "Take Five (Remastered 2009)"),  # "The", brackets
        ("The Dave Brubeck Quartet", "Take Five!", "Take Five (Remastered 2009)"),  # punctuation
        ("kevin macleod", "vibe ace", "Vibe Ace"),
        ("sigur ros", "hoppipolla", "Hoppípolla"),
        ("", "Vibe Ace", "Vibe Ace"),  # title alone
    ],
)
def test_search_is_tolerant(index, artist, track, expected):
    hits = index.search(artist=artist, track=track)
    assert hits, (artist, track)
    assert hits[0].title == expected
    assert isinstance(hits[0], SongRef) and hits[0].source == "library"


@pytest.mark.parametrize(
    "artist, track",
    [("Metallica", "Crazy in Love"), ("Beyoncé", "Halo"), ("", "Something else entirely"), ("", "")],
)
def test_search_refuses_different_songs(index, artist, track):
    assert index.search(artist=artist, track=track) == []


def test_normalisation_and_threshold():
    assert normalize("Beyoncé feat. JAY-Z") == "beyonce"
    assert normalize("Crazy in Love (feat. Jay-Z)") == "crazy in love"
    assert normalize("AC/DC") == "ac dc"
    assert normalize("Simon & Garfunkel") == "simon and garfunkel"
    assert normalize("Dancing with Myself") == "dancing with myself"  # 'with' only counts in brackets
    assert similarity("beyonce", "beyonse") >= MATCH_THRESHOLD
    assert similarity("halo", "crazy in love") < MATCH_THRESHOLD
    assert parse_filename("Kevin_MacLeod_-_Vibe_Ace.ogg") == ("Kevin MacLeod", "Vibe Ace")
    assert parse_filename("A - B - C.mp3") == ("A", "B - C")


def test_rescan_is_incremental_and_drops_vanished_files(index, library):
    again = index.scan(library)
    assert (again.added, again.updated, again.unchanged, again.removed) == (0, 0, 5, 0)
    (library / "no separator here.wav").unlink()
    changed = write_flac(library / "pop" / "01.flac", artist="Beyoncé", title="Halo")
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    third = index.scan(library)
    assert (third.added, third.updated, third.unchanged, third.removed) == (0, 1, 3, 1)
    assert index.search(artist="beyonce", track="halo")
    assert not index.search(artist="beyonce", track="crazy in love")
    assert len(index) == 4


def test_ids_are_stable_and_path_for_only_serves_indexed_files(index, library, tmp_path):
    ref = index.search(artist="kevin macleod", track="vibe ace")[0]
    assert index.path_for(ref.id) == (library / "Kevin_MacLeod_-_Vibe_Ace.wav").resolve()
    # A fresh index of the same folder gives the same ids.
    with LibraryIndex(tmp_path / "other.sqlite") as other:
        other.scan(library)
        assert other.search(artist="kevin macleod", track="vibe ace")[0].id == ref.id
    for bad in ("../../etc/passwd", "/etc/passwd", "0" * 16, "", "x" * 100, ref.id.upper()):
        with pytest.raises(NotFoundError):
            index.path_for(bad)


def test_symlinks_leaving_the_root_are_never_indexed_or_served(tmp_path, library):
    outside = write_wav(tmp_path / "private" / "Secret - Outside.wav")
    os.symlink(outside, library / "Secret - Outside.wav")
    os.symlink(tmp_path / "private", library / "linked-dir")  # a directory link: not followed
    os.symlink(library, library / "loop")  # a loop: not followed
    write_wav(library / "inside" / "Real - Inside.wav")
    os.symlink(library / "inside" / "Real - Inside.wav", library / "Alias - Inside.wav")
    with LibraryIndex(tmp_path / "i.sqlite") as idx:
        summary = idx.scan(library)
        assert summary.skipped_outside == 1
        assert not idx.search(artist="secret", track="outside")
        assert all("private" not in t.path for t in idx.tracks(include_errors=True))
        # A link inside the root is fine (indexed once, by its target).
        assert idx.search(artist="real", track="inside")
        # A file swapped for an outside link after the scan is refused when served.
        ref = idx.search(artist="real", track="inside")[0]
        target = library / "inside" / "Real - Inside.wav"
        target.unlink()
        os.symlink(outside, target)
        with pytest.raises(NotFoundError):
            idx.path_for(ref.id)


def test_bad_files_never_stop_a_scan(tmp_path, library):
    from helpers.badinput import make_bad_corpus

    bad_dir = library / "bad"
    cases = make_bad_corpus(bad_dir)
    t0 = time.perf_counter()
    with LibraryIndex(tmp_path / "bad.sqlite") as idx:
        summary = idx.scan(library)
        # Every good file is still there; garbage is recorded, not offered.
        assert idx.search(artist="kevin macleod", track="vibe ace")
        names = {t.path for t in idx.tracks()}
        for case in cases:
            if case.expect == "error" and case.path.is_file() and case.path.stat().st_size == 0:
                assert str(case.path.resolve()) not in names
        errors = {t.path for t in idx.tracks(include_errors=True) if t.status == "error"}
        assert {p for p, _ in summary.failed} >= errors
    assert time.perf_counter() - t0 < 30


def test_a_search_waiting_for_a_busy_index_still_finds_the_song_named_exactly(tmp_path, library):
    """The search budget bounds a search's own work, not its wait for the index: while a writer holds the
    index for longer than the whole budget, a search named as the song is indexed still finds it."""
    from genrify.sources.search import SEARCH_BUDGET_S

    with LibraryIndex(tmp_path / "t.sqlite") as idx:
        idx.scan(library)
        held, release = threading.Event(), threading.Event()

        def writer():
            with idx._lock:  # as a scan's write holds it, on a machine slow enough to stretch that write
                held.set()
                release.wait(10)

        t = threading.Thread(target=writer)
        t.start()
        held.wait(10)
        threading.Timer(4 * SEARCH_BUDGET_S, release.set).start()
        try:
            found = idx.search(artist="beyonce", track="crazy in love")
        finally:
            release.set()
            t.join()
        assert [r.title for r in found] == ["Crazy in Love"]


def test_scan_errors_and_threads(tmp_path, library):
    with LibraryIndex(tmp_path / "t.sqlite") as idx:
        with pytest.raises(DatasetError):
            idx.scan(tmp_path / "missing")
        idx.scan(library)
        results, errors = [], []

        def worker():
            try:
                for _ in range(20):
                    results.append(len(idx.search(artist="beyonce", track="crazy in love")))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and set(results) == {1}
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(DatasetError):
        LibraryIndex(tmp_path / "junk.sqlite")


def test_library_source_fulfils_the_source_contract(index, library):
    src: Source = LibrarySource(index)
    assert src.name == "library"
    hits = src.search(artist="Kevin MacLeod", track="Vibe Ace", limit=3)
    assert len(hits) == 1
    assert src.fetch_audio(hits[0]).read_bytes() == (library / "Kevin_MacLeod_-_Vibe_Ace.wav").read_bytes()
    with pytest.raises(NotFoundError):
        src.fetch_audio(SongRef(source="library", id="../../etc/passwd", artist="", title=""))
    with pytest.raises(NotFoundError):
        src.fetch_audio(SongRef(source="deezer", id=hits[0].id, artist="", title=""))


def test_library_scan_command(tmp_path, library, capsys):
    from genrify.cli import main

    db = tmp_path / "cli.sqlite"
    assert main(["library", "scan", str(library), "--db", str(db)]) == 0
    assert "5 added" in capsys.readouterr().out
    assert main(["library", "scan", str(library), "--db", str(db)]) == 0
    assert "5 unchanged" in capsys.readouterr().out
    assert main(["library", "scan", str(tmp_path / "nope"), "--db", str(db)]) == 1
    assert "no such folder" in capsys.readouterr().err


def test_library_scan_of_a_wrong_folder_says_so_and_creates_no_index(tmp_path, capsys):
    from genrify.cli import main

    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    (tmp_path / "a-file.mp3").write_bytes(b"ID3")
    for folder, reason in (("nope", "no such folder"), ("empty", "no audio files in this folder"),
                           ("a-file.mp3", "not a folder")):
        db = tmp_path / f"{folder}.sqlite"
        assert main(["library", "scan", str(tmp_path / folder), "--db", str(db)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and reason in err, err
        assert not list(tmp_path.glob(f"{folder}.sqlite*"))  # no empty index (or WAL files) left behind


# ---------------------------------------------------------------------------- genre tags written back


@pytest.fixture(scope="module")
def tag_files(tmp_path_factory):
    """One synthetic clip per format, tagged "classical" by the corpus writer (READ-ONLY: copy first)."""
    from genrify.sources.synthetic import write_demo_corpus

    root = tmp_path_factory.mktemp("tag-files")
    files = {}
    for fmt in ("mp3", "flac", "ogg", "m4a", "wav"):
        write_demo_corpus(root / fmt, per_genre=1, duration=3.0, fmt=fmt)
        files[fmt] = sorted((root / fmt).glob(f"classical/*.{fmt}"))[0]
    return files


@pytest.mark.parametrize("fmt", ["mp3", "flac", "ogg", "m4a", "wav"])
def test_genre_tag_is_written_atomically_and_the_audio_is_untouched(tag_files, tmp_path, fmt):
    import shutil

    from genrify.audio import load_audio
    from genrify.sources.tags import read_genre, read_tags, write_genre
    from genrify.tagging.journal import TagJournal

    path = tmp_path / tag_files[fmt].name
    shutil.copy2(tag_files[fmt], path)
    os.chmod(path, 0o640)
    before, _ = load_audio(path, sr=22050)
    assert read_genre(path) == "classical"
    with TagJournal() as journal:  # in the data folder, not beside the song
        write_genre(path, "metal", journal=journal)
    assert read_genre(path) == "metal"
    after, _ = load_audio(path, sr=22050)
    np.testing.assert_array_equal(before, after)
    assert read_tags(path)["title"] and read_tags(path)["artist"]  # the other tags are kept
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_genre_tag_through_a_link_tags_the_target_and_keeps_the_link(tag_files, tmp_path):
    import shutil

    from genrify.sources.tags import read_genre, write_genre
    from genrify.tagging.journal import TagJournal

    target = tmp_path / "real.flac"
    shutil.copy2(tag_files["flac"], target)
    link = tmp_path / "link.flac"
    link.symlink_to(target)
    with TagJournal() as journal:
        write_genre(link, "jazz", journal=journal)
    assert link.is_symlink() and read_genre(target) == "jazz"


def test_files_that_cannot_be_tagged_are_refused_untouched(tmp_path):
    from genrify.errors import TagError
    from genrify.sources.tags import write_genre
    from genrify.tagging.journal import TagJournal

    fake = tmp_path / "notes.mp3"
    fake.write_text("not audio at all")
    raw = tmp_path / "raw.pcm"
    raw.write_bytes(bytes(4000))
    with TagJournal() as journal:
        for path in (fake, raw, tmp_path / "missing.ogg"):
            content = path.read_bytes() if path.exists() else None
            with pytest.raises(TagError) as err:
                write_genre(path, "metal", journal=journal)
            assert str(path.name) in str(err.value) and "\n" not in str(err.value)
            assert (path.read_bytes() if path.exists() else None) == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp3", "raw.pcm"]


def test_a_name_that_is_not_utf8_is_indexed_listed_and_rescanned(tmp_path, library):
    odd = library / os.fsdecode(b"Caf\xe9 - Cr\xe8me.wav")  # Latin-1 bytes: not UTF-8
    write_wav(tmp_path / "plain.wav").rename(odd)
    with LibraryIndex(tmp_path / "odd.sqlite") as idx:
        summary = idx.scan(library)
        assert summary.failed == () and summary.added == 6
        (track,) = [t for t in idx.tracks() if t.path == str(odd)]
        assert (track.artist, track.title) == ("Caf\ufffd", "Cr\ufffdme")  # shown as text, stored losslessly
        assert idx.path_for(track.id) == odd
        again = idx.scan(library)
        assert (again.unchanged, again.added, again.removed) == (6, 0, 0)
        odd.unlink()
        assert idx.scan(library).removed == 1
