"""The per-file stage of a tagging job: path → what the file is (size, time, content hash, tags) + its analysis.

No side effects: nothing is written, no index is opened, so the same functions run
in this process, in a pool of worker processes, or on another machine
(:mod:`genrify.tagging.analyser`, :func:`genrify.scale.jobs.tag_engine`), and the
caller records the results. A new file is hashed here, beside its analysis, not
by the caller before it: the content hash costs one more read of a file the
analysis reads anyway, and it is spread over the workers with the analyses.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from genrify.errors import GenrifyError, TagError
from genrify.fileio import file_digest, stat_regular
from genrify.sources.tags import read_genres, read_tags


@dataclass(frozen=True)
class FileFacts:
    """A file as the job saw it: ``size`` (bytes), ``mtime_ns``, ``digest`` (content hash), ``tags``
    (artist, album, title and ``genres``, the genre values, as read), and which file it was
    (``dev``, ``ino``: a file put in its place later is not the one analysed) on which machine (``host``)."""

    path: str
    size: int
    mtime_ns: int
    digest: str
    tags: dict
    dev: int = 0
    ino: int = 0
    host: str = ""

    @property
    def identity(self) -> tuple[int, int, int, int]:
        """``(size, mtime_ns, dev, ino)``: what :func:`~genrify.sources.tags.write_genre` re-checks."""
        return self.size, self.mtime_ns, self.dev, self.ino


@dataclass(frozen=True)
class SongResult:
    """One file through the stage: its facts and analysis (``Analysis.to_dict()``), or the one-line error.
    Facts without an analysis (and no error): the content hash was one of the ``known`` songs, so the
    analysis was skipped."""

    path: str
    facts: FileFacts | None
    analysis: dict | None
    error: str | None = None


def content_hash(path: str | os.PathLike) -> tuple[str, os.stat_result]:
    """BLAKE2b-128 of the whole file's bytes (:func:`~genrify.fileio.file_digest`), and its stat
    (taken before reading).

    The whole file is hashed, tags included: it needs no parser (so a damaged file
    hashes as well as a sound one) and costs far less than decoding it. A file
    genrify retags gets a new hash, which the job records beside the old one, so
    the song is still recognised after it is moved.
    """
    try:
        st = stat_regular(path)
        digest = file_digest(path)
    except FileNotFoundError:
        raise TagError(f"{path}: no such file") from None
    except OSError as exc:
        raise TagError(f"{path}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    return digest, st


def file_facts(path: str | os.PathLike) -> FileFacts:
    """Stat, hash and read the tags of ``path``; raises a :class:`~genrify.errors.GenrifyError`
    (one line, naming the file) when it cannot be read. Tags that cannot be read are empty."""
    digest, st = content_hash(path)
    try:
        tags = read_tags(Path(path))
    except GenrifyError:
        tags = {}
    try:
        genres = read_genres(path)
    except GenrifyError:
        genres = []
    tags = {k: tags.get(k) for k in ("artist", "album", "title")} | {"genres": genres}
    return FileFacts(path=os.fspath(path), size=st.st_size, mtime_ns=st.st_mtime_ns, digest=digest, tags=tags,
                     dev=st.st_dev, ino=st.st_ino, host=platform.node())


def analyse_song(path: str | os.PathLike, *, classifier, top_k: int = 2,
                 known: Collection[str] = frozenset()) -> SongResult:
    """The whole stage for one file: :func:`file_facts` and ``classifier.analyse`` (a
    :class:`~genrify.predict.classifier.GenreClassifier`), unless the file's content hash is in
    ``known`` (songs the index holds: a moved, copied or touched file is not analysed again). Never
    raises for a bad file: the result carries the one-line reason instead."""
    try:
        facts = file_facts(path)
        if facts.digest in known:
            return SongResult(os.fspath(path), facts, None)
        return SongResult(os.fspath(path), facts, classifier.analyse(facts.path, top_k=top_k).to_dict())
    except GenrifyError as exc:
        return SongResult(os.fspath(path), None, None, str(exc))
