"""Searching the library on words and substrings, and the near misses offered when nothing matches.

The library is the real tagged recordings of ``../shared/data/cc-audio`` (copied, so
their tags are read as a user's would be), plus the small library of ``helpers.library``.
Then the bounds that keep a search quick on any input: names cut after normalisation,
capped FTS5 candidates, a deadline, and the FTS index kept in step with the track table.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from genrify.sources.library import LibraryIndex, LibrarySource
from genrify.sources.matching import normalize
from helpers.library import write_flac, write_small_library, write_wav

CC_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "data" / "cc-audio"


@pytest.fixture(scope="module")
def cc_index(tmp_path_factory):
    if not CC_AUDIO.is_dir():
        pytest.skip(f"{CC_AUDIO} is missing (the shared development data)")
    root = tmp_path_factory.mktemp("cc")
    for f in CC_AUDIO.glob("*.ogg"):
        shutil.copy(f, root / f.name)
    idx = LibraryIndex(root.parent / f"{root.name}.sqlite")
    idx.scan(root)
    yield idx
    idx.close()


@pytest.mark.parametrize(
    "artist, track, title",
    [
        ("", "sugar plum", "P. I. Tchaikovsky: Dance of the Sugar Plum Fairy"),  # two words of a long title
        ("", "Brahms Hungarian Dance", "Hungarian Dance No. 5"),  # the composer is in no tag: one word may miss
        ("", "hungarian", "Hungarian Dance No. 5"),  # one word
        ("kevin", "vibe", "Vibe Ace"),  # the start of the artist and of the title
        ("Kevin MacLeod", "tchaikovsky", "P. I. Tchaikovsky: Dance of the Sugar Plum Fairy"),
        ("", "Plum Fairy", "P. I. Tchaikovsky: Dance of the Sugar Plum Fairy"),
    ],
)
def test_words_and_substrings_find_the_song(cc_index, artist, track, title):
    hits = cc_index.search(artist=artist, track=track)
    assert hits and hits[0].title == title, [h.title for h in hits]


@pytest.mark.parametrize(
    "artist, track",
    [("Metallica", "Vibe Ace"),  # the artist is part of the search: another artist's song is no match
     ("", "Something else entirely"), ("", "plum sugar cake recipe"), ("Brahms", "Hungarian Dance")],
)
def test_word_search_still_refuses_other_songs(cc_index, artist, track):
    assert cc_index.search(artist=artist, track=track) == []


def test_whole_matches_rank_above_word_matches(tmp_path):
    write_flac(tmp_path / "m" / "a.flac", artist="Band", title="Love")
    write_flac(tmp_path / "m" / "b.flac", artist="Band", title="Love Song for a Long Winter Night")
    with LibraryIndex(tmp_path / "i.sqlite") as idx:
        idx.scan(tmp_path / "m")
        assert [h.title for h in idx.search(track="love")] == ["Love"]  # a whole match: no word search
        assert [h.title for h in idx.search(track="winter night")] == ["Love Song for a Long Winter Night"]


def test_near_misses_are_offered_only_when_nothing_matches(cc_index):
    closest = cc_index.closest(artist="Brahms", track="Hungarian Dance")
    assert closest and closest[0].title == "Hungarian Dance No. 5"
    assert [h.title for h in cc_index.closest(artist="Metallica", track="Vibe Ace")][:1] == ["Vibe Ace"]
    assert cc_index.closest(artist="", track="sugar plum") == []  # found: nothing to offer
    assert len(cc_index.closest(artist="", track="Vibe Aces and Eights")) <= 3


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


def test_a_passed_deadline_returns_what_the_indexes_found_exactly(tmp_path):
    with LibraryIndex(tmp_path / "index.sqlite") as index:
        index.scan(write_small_library(tmp_path / "music"))
        past = time.monotonic() - 1
        exact = index.rank(artist="beyonce", track="crazy in love", deadline=past)
        assert not exact.complete and exact.scored == 0 and len(exact.hits) == 1
        assert index.search(artist="Beyoncé", track="Crazy in Love", deadline=past)[0].title == "Crazy in Love"
        typo = index.rank(artist="beyonce", track="crazy in lvoe", deadline=past)
        assert (typo.hits, typo.scored, typo.complete) == ((), 0, False)
        assert LibrarySource(index).search(artist="beyonce", track="crazy in lvoe", deadline=past) == []
        found = index.rank(artist="beyonce", track="crazy in lvoe", deadline=time.monotonic() + 60)
        assert found.complete and found.scored >= 1 and len(found.hits) == 1


def test_fts_index_follows_every_rescan_and_any_write(tmp_path):
    import sqlite3

    library = write_small_library(tmp_path / "music")
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


def test_an_index_file_without_fts_is_migrated_on_open(tmp_path):
    import sqlite3

    from genrify.sources.search import FTS_VERSION

    library = write_small_library(tmp_path / "music")
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
