"""Real tagged files and a real tag journal for the tests of genre tags written into files
(``test_tags.py``, ``test_tags_safety.py``): import the fixtures by name."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from genrify.tagging.journal import TagJournal

@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    """The tag journal lives here, apart from the songs' folder (``tmp_path / "songs"``)."""
    folder = tmp_path / "data"
    monkeypatch.setenv("GENRIFY_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def journal(data_dir):
    """The tag journal in the data folder, where ``genrify tag --undo`` looks by default."""
    with TagJournal() as journal:
        yield journal


@pytest.fixture
def songs(tmp_path):
    folder = tmp_path / "songs"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def tag_files(tmp_path_factory):
    """One synthetic clip per format, tagged "classical" by the corpus writer (READ-ONLY: copy first)."""
    from genrify.sources.synthetic import write_demo_corpus

    root = tmp_path_factory.mktemp("tag-files")
    files = {}
    for fmt in ("mp3", "flac", "m4a", "wav"):
        write_demo_corpus(root / fmt, per_genre=1, duration=2.0, fmt=fmt)
        files[fmt] = sorted((root / fmt).glob(f"classical/*.{fmt}"))[0]
    return files


def copy_into(src, folder, name=None):
    dst = folder / (name or src.name)
    shutil.copyfile(src, dst)
    return dst


def id3v1_tag(*, title: bytes, artist: bytes, genre: int) -> bytes:
    """A raw ID3v1.1 tag: TAG, title, artist, album, year, comment, zero byte, track, genre byte."""
    return (b"TAG" + title.ljust(30, b"\0") + artist.ljust(30, b"\0") + b"Album".ljust(30, b"\0") + b"1999"
            + b"".ljust(28, b"\0") + b"\0" + bytes([3]) + bytes([genre]))


@pytest.fixture
def id3v1_only_mp3(songs):
    """An MP3 made by libsndfile (no tags at all) with a raw ID3v1 tag appended: genre byte 8 (Jazz)."""
    import soundfile as sf

    path = songs / "old.mp3"
    t = np.arange(22050 * 2) / 22050
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32"), 22050, format="MP3",
             subtype="MPEG_LAYER_III")
    assert path.read_bytes()[:3] != b"ID3"  # libsndfile writes no ID3v2 tag
    with open(path, "ab") as f:
        f.write(id3v1_tag(title=b"Old Song", artist=b"Old Band", genre=8))
    return path
