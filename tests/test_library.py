"""The local library index: scanning, tolerant matching, safe lookup of files by id."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from genrify.errors import DatasetError, NotFoundError
from genrify.sources.base import SongRef, Source
from genrify.sources.library import LibraryIndex, LibrarySource
from genrify.sources.matching import MATCH_THRESHOLD, normalize, parse_filename, similarity

SR = 8000


def _tone(seconds=1.0, freq=440.0):
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_flac(path, *, artist=None, title=None, genre=None, album=None):
    from mutagen.flac import FLAC

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, _tone(), SR, format="FLAC")
    tags = FLAC(path)
    for key, value in (("artist", artist), ("title", title), ("genre", genre), ("album", album)):
        if value is not None:
            tags[key] = value
    tags.save()
    return path


def write_wav(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, _tone(), SR)
    return path


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "music"
    write_flac(root / "pop" / "01.flac", artist="Beyoncé feat. JAY-Z", title="Crazy in Love", genre="Pop",
               album="Dangerously in Love")
    write_flac(root / "jazz" / "take.flac", artist="The Dave Brubeck Quartet", title="Take Five (Remastered 2009)")
    write_wav(root / "Kevin_MacLeod_-_Vibe_Ace.wav")
    write_wav(root / "misc" / "Sigur Rós - Hoppípolla.wav")
    write_wav(root / "no separator here.wav")
    return root


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


# ---------------------------------------------------------------------------- bounded search (FTS5, caps, deadline)

HOSTILE = [
    ("\ufdfa" * 200, "\ufdfa" * 300),  # 18-fold under NFKD
    ("band " * 400, "love song " * 250),  # 4.5 KB of the library's own words
    (" ".join("abcdefghij"[i % 10] * (1 + i % 2) for i in range(1500)), "x y z " * 500),  # many short words
    (" " * 2000, "((((" * 600 + " feat. " * 100),  # spaces, brackets and "feat." runs
    ("", "\u0301" * 3000 + "love"),  # combining marks only, then a word
]


def _fts_ids(db):
    import sqlite3

    with sqlite3.connect(str(db)) as raw:
        fts = sorted(r[0] for r in raw.execute("SELECT id FROM tracks_fts"))
        ok = sorted(r[0] for r in raw.execute("SELECT id FROM tracks WHERE status = 'ok'"))
    return fts, ok


@pytest.fixture(scope="module")
def crowd(tmp_path_factory):
    """An index of 100 real WAV files by one band, "Band - Love Song NNN" (read-only)."""
    root = tmp_path_factory.mktemp("crowd")
    for i in range(100):
        write_wav(root / f"Band - Love Song {i:03d}.wav")
    idx = LibraryIndex(root.parent / f"{root.name}.sqlite")
    idx.scan(root)
    yield idx
    idx.close()


def test_names_are_cut_after_normalisation_alike_for_index_and_query():
    from genrify.sources.matching import MAX_NAME_CHARS

    for artist, track in HOSTILE:
        for text in (artist, track):
            assert len(normalize(text)) <= MAX_NAME_CHARS
    assert normalize("ab " * 10_000) == normalize("ab " * 1_000)
    assert normalize("Song " * 100).startswith(normalize("Song " * 10))
    assert normalize(" \t\n Song  (feat. X)\nmore") == "song"  # spaces collapse before "feat." is removed


def test_hostile_queries_propose_few_candidates_and_find_nothing(crowd):
    from genrify.sources.search import MAX_CANDIDATES, MAX_TERMS, Query

    for artist, track in HOSTILE:
        q = Query.parse(artist=artist, track=track)
        assert (q.match_expression() or "").count('"') <= 2 * 2 * MAX_TERMS  # two quotes a trigram, two fields
        ranking = crowd.rank(artist=artist, track=track, deadline=time.monotonic() + 60)
        assert ranking.complete and ranking.scored <= ranking.candidates <= 2 * MAX_CANDIDATES
        if normalize(track) == "love":  # the marks vanish, and a word search finds the word "love"
            assert all("Love Song" in h.title for h in crowd.search(artist=artist, track=track))
        else:
            assert crowd.search(artist=artist, track=track) == []


def test_many_similar_tracks_keep_the_best_among_capped_candidates(crowd):
    from genrify.sources.search import MAX_CANDIDATES

    for track in ("Love Song 042", "lvoe song 042", "Love Song 42"):
        ranking = crowd.rank(artist="band", track=track, deadline=time.monotonic() + 60)
        assert ranking.complete and ranking.candidates <= 2 * MAX_CANDIDATES < len(crowd)
        assert crowd.search(artist="BAND", track=track)[0].title == "Love Song 042", track
    assert len(crowd.search(artist="band", track="", limit=10)) == 10  # artist alone: ties by id
    assert len(crowd.search(artist="", track="love song", limit=3)) == 3


def test_long_names_still_match_exactly(tmp_path):
    title = "Symphony " + " ".join(f"movement{i}" for i in range(40))  # well past the cut
    write_flac(tmp_path / "m" / "long.flac", artist="Orchestra", title=title)
    with LibraryIndex(tmp_path / "i.sqlite") as idx:
        idx.scan(tmp_path / "m")
        assert [h.title for h in idx.search(artist="orchestra", track=title)] == [title]
        assert [h.title for h in idx.search(artist="orchestra", track=title + " extra words")] == [title]


def test_a_passed_deadline_returns_what_the_indexes_found_exactly(index):
    past = time.monotonic() - 1
    exact = index.rank(artist="beyonce", track="crazy in love", deadline=past)
    assert not exact.complete and exact.scored == 0 and len(exact.hits) == 1
    assert index.search(artist="Beyoncé", track="Crazy in Love", deadline=past)[0].title == "Crazy in Love"
    typo = index.rank(artist="beyonce", track="crazy in lvoe", deadline=past)
    assert (typo.hits, typo.scored, typo.complete) == ((), 0, False)
    assert LibrarySource(index).search(artist="beyonce", track="crazy in lvoe", deadline=past) == []
    found = index.rank(artist="beyonce", track="crazy in lvoe", deadline=time.monotonic() + 60)
    assert found.complete and found.scored >= 1 and len(found.hits) == 1


def test_fts_index_follows_every_rescan_and_any_write(tmp_path, library):
    import sqlite3

    db = tmp_path / "sync.sqlite"
    with LibraryIndex(db) as idx:
        idx.scan(library)
        assert _fts_ids(db)[0] == _fts_ids(db)[1] and len(_fts_ids(db)[0]) == 5
        write_wav(library / "new" / "Fresh Band - Brand New Song.wav")  # added
        (library / "Kevin_MacLeod_-_Vibe_Ace.wav").rename(library / "Kevin MacLeod - Sneaky Snitch.wav")  # renamed
        (library / "no separator here.wav").unlink()  # removed
        changed = write_flac(library / "pop" / "01.flac", artist="Beyoncé", title="Halo")  # retagged
        os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
        broken = library / "misc" / "Sigur Rós - Hoppípolla.wav"
        broken.write_bytes(b"RIFF not really a wave")  # now unreadable: no longer offered
        summary = idx.scan(library)
        assert (summary.added, summary.removed) == (2, 2)
        fts, ok = _fts_ids(db)
        assert fts == ok and len(ok) == 4
        assert idx.search(artist="fresh bnad", track="brand new snog")  # typos: found through the FTS index
        assert idx.search(artist="kevin macleod", track="sneaky snich")[0].title == "Sneaky Snitch"
        assert not idx.search(artist="kevin macleod", track="vibe ace")
        assert idx.search(artist="beyonse", track="hallo")[0].title == "Halo"
        assert not idx.search(artist="beyonce", track="crazy in lvoe")
        assert not idx.search(artist="sigur ros", track="hoppipola")
    with sqlite3.connect(str(db)) as raw:  # writes from outside genrify are mirrored too (triggers)
        raw.execute("DELETE FROM tracks WHERE title = 'Halo'")
    fts, ok = _fts_ids(db)
    assert fts == ok and len(ok) == 3


def test_an_index_file_without_fts_is_migrated_on_open(tmp_path, library):
    import sqlite3

    from genrify.sources.search import FTS_VERSION

    db = tmp_path / "old.sqlite"
    with LibraryIndex(db) as idx:
        idx.scan(library)
    # Downgrade to the layout written before the FTS index: no FTS table, triggers, title indexes or
    # user_version, and a normalised title as the uncapped normalisation stored it.
    with sqlite3.connect(str(db)) as raw:
        for name in ("tracks_fts_insert", "tracks_fts_delete", "tracks_fts_update"):
            raw.execute(f"DROP TRIGGER {name}")
        raw.execute("DROP TABLE tracks_fts")
        raw.execute("DROP INDEX tracks_norm_title")
        raw.execute("DROP INDEX tracks_norm_title_short")
        raw.execute("UPDATE tracks SET norm_title = 'vibe ace' || printf('%.300c', 'x'), "
                    "norm_title_short = 'vibe ace' || printf('%.300c', 'x') WHERE title = 'Vibe Ace'")
        raw.execute("PRAGMA user_version = 0")
    with LibraryIndex(db) as idx:
        fts, ok = _fts_ids(db)
        assert fts == ok and len(ok) == 5
        assert idx.search(artist="kevin macleod", track="vibe ace")  # stored names recomputed
        assert idx.search(artist="BEYONCE", track="Crazy in Lvoe")[0].title == "Crazy in Love"
        write_wav(library / "Later - Added.wav")
        idx.scan(library)
        assert _fts_ids(db)[0] == _fts_ids(db)[1]
    with sqlite3.connect(str(db)) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == FTS_VERSION


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
    from genrify.tagging.index import TagJournal

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
    from genrify.tagging.index import TagJournal

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
    from genrify.tagging.index import TagJournal

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
