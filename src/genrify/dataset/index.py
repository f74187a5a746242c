"""The track index: one SQLite table, the single source of truth of a dataset."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from genrify.errors import DatasetError
from genrify.fileio import name_as_text, path_from_stored, stored_path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tracks (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER,
    mtime REAL,
    sha256 TEXT,
    genre TEXT NOT NULL,
    artist TEXT,
    title TEXT,
    duration REAL,
    n_frames INTEGER,
    status TEXT NOT NULL DEFAULT 'pending',
    error TEXT
);
CREATE INDEX IF NOT EXISTS tracks_status ON tracks(status);
CREATE INDEX IF NOT EXISTS tracks_sha ON tracks(sha256);
"""

#: Track states: waiting for features, usable, unusable (reason in ``error``),
#: or excluded because the same audio is filed under another genre / twice.
STATUSES = ("pending", "ok", "error", "ambiguous", "duplicate")


@dataclass(frozen=True)
class Track:
    """One row of the index."""

    id: int
    path: str
    sha256: str | None
    genre: str
    artist: str | None
    title: str | None
    duration: float | None
    n_frames: int | None
    status: str
    error: str | None

    @property
    def group(self) -> str:
        """What must stay on one side of a split: the artist when known, else the track."""
        return self.group_for("artist")

    def group_for(self, by: str) -> str:
        """The split group when grouping ``by`` ``"artist"`` (the artist when known, else the track) or ``"track"``."""
        if by == "artist" and self.artist:
            return f"artist:{self.artist.casefold()}"
        return f"track:{self.sha256 or self.id}"


class TrackIndex:
    """SQLite-backed track table. Writes are transactions; the file is the truth."""

    def __init__(self, path: str | os.PathLike, *, create: bool = False):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise DatasetError(f"{self.path.parent}: not a genrify dataset (no index.sqlite; run 'genrify dataset build')")
        try:
            self.conn = sqlite3.connect(self.path, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise DatasetError(f"{self.path}: not a usable dataset index ({exc})") from None
        self.conn.row_factory = sqlite3.Row

    def close(self) -> None:
        self.conn.close()

    # meta ------------------------------------------------------------------
    def get_meta(self, key: str, default=None):
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # tracks ----------------------------------------------------------------
    def upsert(self, *, path: str, genre: str, artist: str | None, title: str | None, size: int | None,
               mtime: float | None) -> None:
        """Add a track, or mark it pending again if its file or label changed."""
        path = stored_path(path)
        # Artist and title may come from the file's name (no manifest): text, whatever the name's bytes.
        artist, title = (None if v is None else name_as_text(v) for v in (artist, title))
        row = self.conn.execute("SELECT size, mtime, genre, status FROM tracks WHERE path=?", (path,)).fetchone()
        if row is None:
            self.conn.execute(
                "INSERT INTO tracks(path, size, mtime, genre, artist, title, status) VALUES (?,?,?,?,?,?,'pending')",
                (path, size, mtime, genre, artist, title))
        elif (row["size"], row["mtime"], row["genre"]) != (size, mtime, genre):
            self.conn.execute(
                "UPDATE tracks SET size=?, mtime=?, genre=?, artist=?, title=?, status='pending', error=NULL, "
                "sha256=NULL WHERE path=?", (size, mtime, genre, artist, title, path))

    def remove_missing(self, keep: set[str]) -> int:
        """Drop tracks whose path is not in ``keep``; returns how many were dropped."""
        gone = [r[0] for r in self.conn.execute("SELECT path FROM tracks") if path_from_stored(r[0]) not in keep]
        self.conn.executemany("DELETE FROM tracks WHERE path=?", [(p,) for p in gone])
        return len(gone)

    def set_result(self, path: str, *, status: str, sha256: str | None = None, duration: float | None = None,
                   n_frames: int | None = None, error: str | None = None) -> None:
        self.conn.execute("UPDATE tracks SET status=?, sha256=?, duration=?, n_frames=?, error=? WHERE path=?",
                          (status, sha256, duration, n_frames, error, stored_path(path)))

    def commit(self) -> None:
        self.conn.commit()

    def tracks(self, *, status: str | tuple[str, ...] | None = None) -> list[Track]:
        """Tracks in insertion order, optionally only those with the given status(es)."""
        query = "SELECT id, path, sha256, genre, artist, title, duration, n_frames, status, error FROM tracks"
        args: tuple = ()
        if status is not None:
            statuses = (status,) if isinstance(status, str) else tuple(status)
            query += f" WHERE status IN ({','.join('?' * len(statuses))})"
            args = statuses
        return [Track(**(dict(r) | {"path": path_from_stored(r["path"])}))
                for r in self.conn.execute(query + " ORDER BY id", args)]

    def counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.conn.execute("SELECT status, COUNT(*) FROM tracks GROUP BY status")}
