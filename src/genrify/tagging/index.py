"""Tagging's data: one SQLite file holding the results index of ``genrify tag`` and the tag journal.

The file (:func:`default_index_path`, or the ``--index`` path) is known to the ``tagging``
package alone: its schema and all its SQL. Others go through :class:`ResultsIndex` (the job,
here), :class:`~genrify.tagging.journal.TagJournal` (genre tags written, for undo) or, read-only
for the library page, :mod:`genrify.tagging.listing`. The results index, in WAL mode so readers
never block the job:

``songs``   one row per song: the model that analysed it, the analysis (the JSON
            of :meth:`~genrify.predict.classifier.Analysis.to_dict`), the file's
            tags when it was read, what genrify wrote and the genre it held before.
``hashes``  every content hash a song's file has had (before and after genrify
            wrote its tags) → the song: a moved or renamed file is found by hash.
``paths``   path → song, with the size and modification time seen, so a rerun
            skips an unchanged file on one ``stat`` without reading it.

The tag journal, ``changes``: every :func:`~genrify.sources.tags.write_genre` first
records the file and its previous genre values (state ``pending``), then writes the
file, then marks the record ``written``; :func:`~genrify.sources.tags.undo_genres`
reads it back. All the changes of one process share its run id (:data:`RUN_ID`).
``genrify predict --write-tags`` makes the journal alone: a file without ``songs`` is no index
yet. A job's analyses are committed in batches (:meth:`ResultsIndex.batch`): a killed run loses
at most the batch not yet committed, and the rerun analyses exactly those songs.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import uuid
from pathlib import Path

from genrify.errors import DatasetError
from genrify.fileio import default_data_dir, path_from_stored, stored_path

INDEX_NAME = "tag-journal.sqlite"  # one file: the index and the tag journal of its writes

#: This process's run id: every change its :class:`~genrify.tagging.journal.TagJournal` records carries it.
RUN_ID = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

#: A batch of index writes (:meth:`ResultsIndex.batch`) is committed after this many writes, or at the
#: first write this many seconds after the last commit: a commit costs ~0.1 ms, an analysis far more.
BATCH_SONGS, BATCH_SECONDS = 16, 1.0

_INDEX_SCHEMA = """
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


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _json(text: str | None):
    return None if text is None else json.loads(text)


def song_path(value: str | bytes) -> str:
    """A song's path as the index stored it (:func:`~genrify.fileio.stored_path`), as a ``str``. A
    relative path (stored by an earlier genrify, as it was given) is taken from the current folder,
    the best guess left; the next ``genrify tag`` of that folder stores it absolute."""
    return os.path.abspath(path_from_stored(value))


def _connect(path: Path, schema: str, *, wal: bool) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The timeout lets two genrify runs writing the file at once take turns instead of failing.
    conn = sqlite3.connect(str(path), timeout=30)
    conn.row_factory = sqlite3.Row
    if wal:  # a commit is one append, and readers (the library page) never block the job
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(schema)
    return conn


# ---------------------------------------------------------------------------------------- results index


class ResultsIndex:
    """The results index at ``path`` (default :func:`default_index_path`). Any failure to open or
    write it is a :class:`~genrify.errors.DatasetError` naming the file. Inside :meth:`batch`, writes
    are committed every ``batch_songs`` writes or ``batch_seconds`` seconds."""

    def __init__(self, path: str | os.PathLike | None = None, *, batch_songs: int = BATCH_SONGS,
                 batch_seconds: float = BATCH_SECONDS) -> None:
        self.path = Path(path) if path is not None else default_index_path()
        self.batch_songs, self.batch_seconds = batch_songs, batch_seconds
        self._pending: int | None = None  # writes not committed yet inside batch(); None outside
        self._committed_at = 0.0
        try:
            self._conn = _connect(self.path, _INDEX_SCHEMA, wal=True)
        except (OSError, sqlite3.Error) as exc:
            raise self._error(exc) from None

    def _error(self, exc: Exception) -> DatasetError:
        return DatasetError(f"{self.path}: cannot use the results index ({_reason(exc)})")

    def _read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _one(self, sql: str, params: tuple) -> int | None:
        rows = self._read(sql, params)
        return int(rows[0][0]) if rows else None

    def _write(self, work):
        """Run ``work(connection)``: one transaction of its own, or its part of the open :meth:`batch`."""
        try:
            if self._pending is None:
                with self._conn:
                    return work(self._conn)
            result = work(self._conn)
            self._pending += 1
            if self._pending >= self.batch_songs or time.monotonic() - self._committed_at >= self.batch_seconds:
                self._conn.commit()
                self._pending, self._committed_at = 0, time.monotonic()
            return result
        except sqlite3.Error as exc:
            self._conn.rollback()
            raise self._error(exc) from None

    @contextlib.contextmanager
    def batch(self):
        """Within it, writes share transactions: one is committed after ``batch_songs`` writes, or at the
        first write ``batch_seconds`` or more after the last commit, and on leaving (an exception too:
        what was written stays). Killed inside, the index loses only the writes since the last commit.
        Look-ups here see them at once, other connections once committed; between commits this
        connection holds the file's write lock (another writer waits for it, up to 30 s)."""
        if self._pending is not None:  # nested: the outer batch decides
            yield self
            return
        self._pending, self._committed_at = 0, time.monotonic()
        try:
            yield self
        finally:
            self._pending = None
            try:
                self._conn.commit()
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    # ------------------------------------------------------------------ look-ups

    def known_path(self, path: str, *, size: int, mtime_ns: int, model: str) -> int | None:
        """The song id of ``path`` when it was seen with this size and modification time and
        analysed by ``model``, else ``None`` (the fast skip: no read of the file)."""
        return self._one("SELECT p.song FROM paths p JOIN songs s ON s.id = p.song WHERE p.path = ? AND p.size = ? "
                         "AND p.mtime_ns = ? AND s.model = ?", (stored_path(path), size, mtime_ns, model))

    def known_hash(self, digest: str, *, model: str) -> int | None:
        """The song id whose file has had the content hash ``digest`` and was analysed by ``model``."""
        return self._one("SELECT h.song FROM hashes h JOIN songs s ON s.id = h.song WHERE h.hash = ? AND s.model = ?",
                         (digest, model))

    def known_hashes(self, *, model: str) -> frozenset[str]:
        """Every content hash of a song analysed by ``model``: the analysis stage hashes each new file
        and skips the analysis of these (a moved, copied or touched song)."""
        rows = self._read("SELECT h.hash FROM hashes h JOIN songs s ON s.id = h.song WHERE s.model = ?", (model,))
        return frozenset(r[0] for r in rows)

    def song(self, song_id: int) -> dict:
        """One song as a dict (see :meth:`rows`)."""
        rows = self._read("SELECT * FROM songs WHERE id = ?", (song_id,))
        if not rows:
            raise DatasetError(f"{self.path}: no song {song_id} in the results index")
        return _as_dict(rows[0], index=self.path)

    def rows(self) -> list[dict]:
        """Every song, by path: ``id``, ``path``, ``hash``, ``model``, ``analysis`` (dict), ``tags``
        (dict), ``written`` and ``previous`` (lists or ``None``), ``at`` (unix time), plus the
        page's columns ``genre``, ``styles``, ``certainty`` and ``verdict`` taken from the analysis."""
        return [_as_dict(r, index=self.path) for r in self._read("SELECT * FROM songs ORDER BY path")]

    # ------------------------------------------------------------------ changes

    def add_song(self, *, path: str, digest: str, size: int, mtime_ns: int, model: str, analysis: dict,
                 tags: dict) -> int:
        """Record a freshly analysed song (a transaction, or part of the open :meth:`batch`); returns its id."""

        def work(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO songs (hash, path, model, analysis, tags, at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(hash) DO UPDATE SET path = excluded.path, model = excluded.model, "
                "analysis = excluded.analysis, tags = excluded.tags, at = excluded.at RETURNING id",
                (digest, stored_path(path), model, json.dumps(analysis), json.dumps(tags), time.time()))
            song = int(cur.fetchone()[0])
            conn.execute("INSERT OR REPLACE INTO hashes (hash, song) VALUES (?, ?)", (digest, song))
            conn.execute("INSERT OR REPLACE INTO paths (path, song, size, mtime_ns) VALUES (?, ?, ?, ?)",
                         (stored_path(path), song, size, mtime_ns))
            return song

        return self._write(work)

    def see(self, song: int, *, path: str, size: int, mtime_ns: int, digest: str | None = None) -> None:
        """Note that ``song`` is at ``path`` with this size and time (and content hash, when known):
        a moved file, or one whose tags changed."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO paths (path, song, size, mtime_ns) VALUES (?, ?, ?, ?)",
                         (stored_path(path), song, size, mtime_ns))
            conn.execute("UPDATE songs SET path = ? WHERE id = ?", (stored_path(path), song))
            if digest is not None:
                conn.execute("INSERT OR REPLACE INTO hashes (hash, song) VALUES (?, ?)", (digest, song))

        self._write(work)

    def set_written(self, song: int, *, written: list[str], previous: list[str] | None) -> None:
        """Record the genre values written to ``song``'s file and those it held before."""
        rows = self._read("SELECT previous, written, tags FROM songs WHERE id = ?", (song,))
        if not rows:
            raise DatasetError(f"{self.path}: no song {song} in the results index")
        row = rows[0]
        try:
            if row["written"] is not None:
                previous = json.loads(row["previous"]) if row["previous"] else None  # the first "before" stays
            tags = json.loads(row["tags"]) | {"genres": written}  # the tags as the file now holds them
        except (ValueError, TypeError):
            raise _damaged(self.path, song) from None
        self._write(lambda conn: conn.execute(
            "UPDATE songs SET written = ?, previous = ?, tags = ? WHERE id = ?",
            (json.dumps(written), None if previous is None else json.dumps(previous), json.dumps(tags), song)))

    def close(self) -> None:
        """Close the database."""
        self._conn.close()

    def __enter__(self) -> ResultsIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _damaged(index: Path, song) -> DatasetError:
    # No advice to delete the file: it holds the tag journal too, which --undo needs.
    return DatasetError(f"{index}: the results index is damaged (song {song} is not valid JSON)")


def _as_dict(row: sqlite3.Row, *, index: Path) -> dict:
    """One ``songs`` row as a dict; a row whose JSON does not parse is a one-line DatasetError."""
    try:
        analysis, tags = json.loads(row["analysis"]), json.loads(row["tags"])
        top = analysis.get("top") or []
        return {
            "id": row["id"], "path": song_path(row["path"]), "hash": row["hash"], "model": row["model"],
            "analysis": analysis, "tags": tags, "written": _json(row["written"]),
            "previous": _json(row["previous"]), "at": row["at"],
            "genre": analysis.get("genre"), "styles": [s["name"] for s in analysis.get("styles", ())],
            "certainty": top[0][1] if top else None, "verdict": analysis.get("verdict"),
        }
    except (ValueError, TypeError, AttributeError, KeyError, IndexError):
        raise _damaged(index, row["id"]) from None


# ---------------------------------------------------------------------------------------- read-only


@contextlib.contextmanager
def _read_only(path: Path):
    """A read-only connection to the file at ``path`` (never creates it); errors are one-line DatasetErrors."""
    try:
        conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise DatasetError(f"{path}: cannot read the results index ({_reason(exc)})") from None
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    except sqlite3.Error as exc:
        raise DatasetError(f"{path}: cannot read the results index ({_reason(exc)})") from None
    finally:
        conn.close()


def committed_songs(path: str | os.PathLike) -> int:
    """How many songs the index at ``path`` holds, read while a job may be writing it; 0 when it does not
    exist yet or cannot be read (a job still creating it)."""
    if not Path(path).exists():
        return 0
    try:
        with _read_only(Path(path)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM songs").fetchone()[0])
    except DatasetError:
        return 0
