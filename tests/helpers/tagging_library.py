"""A small real library for the tests of ``genrify tag`` (``test_tagging.py``, ``test_tagging_safety.py``):
import the fixtures by name."""

from __future__ import annotations

import shutil

import pytest

from genrify.tagging import ChoiceConfig, ResultsIndex, TagJobConfig, run_tag_job


@pytest.fixture(scope="module")
def library_src(tmp_path_factory):
    """Twelve tagged songs (MP3, FLAC, Ogg, M4A) in per-style folders (READ-ONLY: copy first)."""
    from genrify.sources.synthetic import write_demo_corpus

    root = tmp_path_factory.mktemp("library-src")
    for fmt in ("mp3", "flac", "ogg", "m4a"):
        write_demo_corpus(root / fmt, per_genre=1, duration=4.0, fmt=fmt, styles=("classical", "metal", "jazz"))
    return root


@pytest.fixture
def library(library_src, tmp_path):
    dst = tmp_path / "music"
    shutil.copytree(library_src, dst, ignore=shutil.ignore_patterns("manifest.csv"))
    return dst


def run_job(library, model, index_path, **kw):
    kw.setdefault("choice", ChoiceConfig(min_certainty=0.0))
    with ResultsIndex(index_path) as index:
        return run_tag_job([library], index=index, config=TagJobConfig(model=str(model), **kw))


def song_files(root):
    return sorted(p for p in root.rglob("*") if p.suffix in (".mp3", ".flac", ".ogg", ".m4a"))
