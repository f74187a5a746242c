"""The results index of ``genrify tag``: one row per song, kept between runs, read by the library page.

One SQLite file (default: ``tag-journal.sqlite`` in genrify's data folder,
:func:`~genrify.sources.tagjournal.default_data_dir`, the tag journal's own file;
or the ``--index`` path), in WAL mode, with three tables beside the journal's:

``songs``   one row per song: the model that analysed it, the analysis (the JSON
            of :meth:`~genrify.predict.classifier.Analysis.to_dict`), the file's
            tags when it was read, what genrify wrote and the genre it held before.
``hashes``  every content hash a song's file has had (before and after genrify
            wrote its tags) → the song: a moved or renamed file is found by hash.
``paths``   path → song, with the size and modification time seen, so a rerun
            skips an unchanged file on one ``stat`` without reading it.

Each song is committed as soon as its analysis is known, so killing a run loses
only the songs in flight. The tag journal (:class:`~genrify.sources.tagjournal.TagJournal`)
lives in the same file, so ``genrify tag --undo`` finds every change a job made.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from genrify.errors import DatasetError
from genrify.sources.tagjournal import JOURNAL_NAME, default_data_dir

INDEX_NAME = JOURNAL_NAME  # one file: the index and the tag journal of its writes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS songs (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    hash      TEXT NOT NULL UNIQUE,  -- content hash when first analysed
    path      TEXT NOT NULL,         -- where it was last seen
    model     TEXT NOT NULL,         -- which model analysed it (a song is analysed again for another model)
    analysis  TEXT NOT NULL,         -- JSON of Analysis.to_dict()
    tags      TEXT NOT NULL,         -- JSON: artist, album, albumartist, title, genre values as read
    written   TEXT,                  -- JSON list of the genre values genrify wrote, NULL when none
    previous  TEXT,                  -- JSON list of the genre values before genrify wrote, NULL when none
    at        REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS hashes (hash TEXT PRIMARY KEY, song INTEGER NOT NULL REFERENCES songs(id));
CREATE TABLE IF NOT EXISTS paths (
    path TEXT PRIMARY KEY, song INTEGER NOT NULL REFERENCES songs(id), size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL
);
"""


def default_index_path() -> Path:
    """``tag-journal.sqlite`` in genrify's data folder: the index shares the tag journal's file, so
    ``genrify tag --undo`` sees the writes of ``genrify tag`` and of ``genrify predict --write-tags``."""
    return default_data_dir() / INDEX_NAME


def committed_songs(path: str | os.PathLike) -> int:
    """How many songs the index at ``path`` holds, read while a job may be writing it; 0 when it does not
    exist yet or cannot be read (a job still creating it)."""
    if not Path(path).exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM songs").fetchone()[0])
    except sqlite3.Error:
        return 0


class ResultsIndex:
    """The results index at ``path`` (default :func:`default_index_path`). Any failure to open or
    write it is a :class:`~genrify.errors.DatasetError` naming the file."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else default_index_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=30)
            self._conn.row_factory = sqlite3.Row
            # WAL: a commit is one append, readers (the library page) never block the job.
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise self._error(exc) from None

    def _error(self, exc: Exception) -> DatasetError:
        text = str(exc).strip()
        reason = getattr(exc, "strerror", None) or (text.splitlines()[0] if text else type(exc).__name__)
        return DatasetError(f"{self.path}: cannot use the results index ({reason})")

    def _run(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        try:
            with self._conn:
                return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    # ------------------------------------------------------------------ look-ups

    def known_path(self, path: str, *, size: int, mtime_ns: int, model: str) -> int | None:
        """The song id of ``path`` when it was seen with this size and modification time and
        analysed by ``model``, else ``None`` (the fast skip: no read of the file)."""
        row = self._run("SELECT p.song FROM paths p JOIN songs s ON s.id = p.song WHERE p.path = ? AND p.size = ? "
                        "AND p.mtime_ns = ? AND s.model = ?", (path, size, mtime_ns, model)).fetchone()
        return None if row is None else int(row[0])

    def known_hash(self, digest: str, *, model: str) -> int | None:
        """The song id whose file has had the content hash ``digest`` and was analysed by ``model``."""
        row = self._run("SELECT h.song FROM hashes h JOIN songs s ON s.id = h.song WHERE h.hash = ? AND s.model = ?",
                        (digest, model)).fetchone()
        return None if row is None else int(row[0])

    def song(self, song_id: int) -> dict:
        """One song as a dict (see :meth:`rows`)."""
        row = self._run("SELECT * FROM songs WHERE id = ?", (song_id,)).fetchone()
        if row is None:
            raise DatasetError(f"{self.path}: no song {song_id} in the results index")
        return _as_dict(row)

    def rows(self) -> list[dict]:
        """Every song, by path: ``id``, ``path``, ``hash``, ``model``, ``analysis`` (dict), ``tags``
        (dict), ``written`` and ``previous`` (lists or ``None``), ``at`` (unix time), plus the
        page's columns ``genre``, ``styles``, ``certainty`` and ``verdict`` taken from the analysis."""
        return [_as_dict(r) for r in self._run("SELECT * FROM songs ORDER BY path").fetchall()]

    # ------------------------------------------------------------------ changes

    def add_song(self, *, path: str, digest: str, size: int, mtime_ns: int, model: str, analysis: dict,
                 tags: dict) -> int:
        """Record a freshly analysed song (one transaction); returns its id."""
        try:
            with self._conn:
                cur = self._conn.execute(
                    "INSERT INTO songs (hash, path, model, analysis, tags, at) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(hash) DO UPDATE SET path = excluded.path, model = excluded.model, "
                    "analysis = excluded.analysis, tags = excluded.tags, at = excluded.at RETURNING id",
                    (digest, path, model, json.dumps(analysis), json.dumps(tags), time.time()))
                song = int(cur.fetchone()[0])
                self._conn.execute("INSERT OR REPLACE INTO hashes (hash, song) VALUES (?, ?)", (digest, song))
                self._conn.execute("INSERT OR REPLACE INTO paths (path, song, size, mtime_ns) VALUES (?, ?, ?, ?)",
                                   (path, song, size, mtime_ns))
            return song
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def see(self, song: int, *, path: str, size: int, mtime_ns: int, digest: str | None = None) -> None:
        """Note that ``song`` is at ``path`` with this size and time (and content hash, when known):
        a moved file, or one whose tags changed."""
        try:
            with self._conn:
                self._conn.execute("INSERT OR REPLACE INTO paths (path, song, size, mtime_ns) VALUES (?, ?, ?, ?)",
                                   (path, song, size, mtime_ns))
                self._conn.execute("UPDATE songs SET path = ? WHERE id = ?", (path, song))
                if digest is not None:
                    self._conn.execute("INSERT OR REPLACE INTO hashes (hash, song) VALUES (?, ?)", (digest, song))
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def set_written(self, song: int, *, written: list[str], previous: list[str] | None) -> None:
        """Record the genre values written to ``song``'s file and those it held before."""
        row = self._run("SELECT previous, written, tags FROM songs WHERE id = ?", (song,)).fetchone()
        if row is None:
            raise DatasetError(f"{self.path}: no song {song} in the results index")
        if row["written"] is not None:
            previous = json.loads(row["previous"]) if row["previous"] else None  # the first "before" stays
        tags = json.loads(row["tags"]) | {"genres": written}  # the tags as the file now holds them
        self._run("UPDATE songs SET written = ?, previous = ?, tags = ? WHERE id = ?",
                  (json.dumps(written), None if previous is None else json.dumps(previous), json.dumps(tags), song))

    def close(self) -> None:
        """Close the database."""
        self._conn.close()

    def __enter__(self) -> ResultsIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _as_dict(row: sqlite3.Row) -> dict:
    analysis = json.loads(row["analysis"])
    top = analysis.get("top") or []
    return {
        "id": row["id"], "path": row["path"], "hash": row["hash"], "model": row["model"], "analysis": analysis,
        "tags": json.loads(row["tags"]), "written": None if row["written"] is None else json.loads(row["written"]),
        "previous": None if row["previous"] is None else json.loads(row["previous"]), "at": row["at"],
        "genre": analysis.get("genre"), "styles": [s["name"] for s in analysis.get("styles", ())],
        "certainty": top[0][1] if top else None, "verdict": analysis.get("verdict"),
    }
