"""Searching the library on words and substrings, and the near misses offered when nothing matches.

The library is the real tagged recordings of ``../shared/data/cc-audio`` (copied, so
their tags are read as a user's would be), plus the small library of ``test_library``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from genrify.sources.library import LibraryIndex

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
    from test_library import write_flac

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
