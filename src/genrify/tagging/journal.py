"""The tag journal: every genre tag genrify writes, recorded before the file is touched, for undo.

It lives in the results index's SQLite file (:mod:`genrify.tagging.index`), table ``changes``:
every :func:`~genrify.sources.tags.write_genre` first records the file and its previous genre
values (state ``pending``), then writes the file, then marks the record ``written``;
:func:`~genrify.sources.tags.undo_genres` reads it back. All the changes of one process share its
run id (:data:`~genrify.tagging.index.RUN_ID`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from genrify.errors import TagError
from genrify.fileio import path_from_stored, stored_path, terminal_safe
from genrify.tagging.index import RUN_ID, _connect, _json, _reason, default_index_path

_JOURNAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS changes (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    run   TEXT NOT NULL,
    at    REAL NOT NULL,            -- unix time of the record
    path  TEXT NOT NULL,            -- the resolved file
    old   TEXT,                     -- JSON list of the genre values before, NULL when there was no genre
    new   TEXT NOT NULL,            -- the genre written: the name, or a JSON list of several values
    state TEXT NOT NULL,            -- pending (recorded, write not confirmed) | written | failed | undone
    old_id3 INTEGER                 -- the ID3v2 minor version (3 or 4) of the file's tag before, else NULL
);
CREATE INDEX IF NOT EXISTS changes_run ON changes (run);
CREATE INDEX IF NOT EXISTS changes_path ON changes (path);
"""


@dataclass(frozen=True)
class TagChange:
    """One recorded genre change. ``old`` is ``None`` when the file had no genre tag."""

    id: int
    run: str
    at: float
    path: str
    old: list[str] | None
    new: str
    state: str
    old_id3: int | None = None

    @property
    def values(self) -> list[str]:
        """The genre values written (``new`` holds one name, or a JSON list of several)."""
        with contextlib.suppress(ValueError):
            values = json.loads(self.new) if self.new.startswith("[") else None
            if isinstance(values, list):
                return [str(v) for v in values]
        return [self.new]


def _change(r: sqlite3.Row, *, journal: Path) -> TagChange:
    """One ``changes`` row of the journal at ``journal``; a row whose genre values do not parse is a
    one-line TagError."""
    try:
        old = _json(r["old"])
        if old is not None and not (isinstance(old, list) and all(isinstance(v, str) for v in old)):
            raise ValueError("not a list of names")
        if not isinstance(r["new"], str):
            raise ValueError("no genre written")
    except ValueError:
        raise TagError(f"{journal}: the tag journal is damaged (change {r['id']} of "
                       f"{terminal_safe(path_from_stored(r['path']))} is not valid); nothing was undone") from None
    old_id3 = r["old_id3"] if "old_id3" in r.keys() else None  # a journal of an earlier genrify lacks it
    return TagChange(id=r["id"], run=r["run"], at=r["at"], path=path_from_stored(r["path"]), old=old,
                     new=r["new"], state=r["state"], old_id3=old_id3)


def _encode_new(values: list[str]) -> str:
    # One plain name keeps journals readable (and those of earlier versions valid); several are JSON.
    return values[0] if len(values) == 1 and not values[0].startswith("[") else json.dumps(values)


class TagJournal:
    """The tag journal at ``path`` (default :func:`default_index_path`); changes recorded through it
    carry the run id ``run``.

    Any failure to open or write it is a :class:`~genrify.errors.TagError`: a tag
    whose old value cannot be recorded is not written.
    """

    def __init__(self, *, path: str | os.PathLike | None = None, run: str = RUN_ID) -> None:
        self.path = Path(path) if path is not None else default_index_path()
        self.run = run
        try:
            # Not WAL by itself: each record is synced before the file it describes is touched.
            self._conn = _connect(self.path, _JOURNAL_SCHEMA, wal=False)
            columns = {r["name"] for r in self._conn.execute("PRAGMA table_info(changes)")}
            if "old_id3" not in columns:  # a journal written by an earlier genrify
                with self._conn:
                    self._conn.execute("ALTER TABLE changes ADD COLUMN old_id3 INTEGER")
        except (OSError, sqlite3.Error) as exc:
            raise self._error(exc) from None

    def _error(self, exc: Exception) -> TagError:
        return TagError(f"{self.path}: cannot use the tag journal ({_reason(exc)})")

    def _execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        try:
            with self._conn:  # one transaction per statement: a record is on disk before the file is touched
                return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def record(self, *, path: str | os.PathLike, old: list[str] | None, new: str | list[str],
               old_id3: int | None = None) -> int:
        """Record that ``path``'s genre ``old`` is about to become ``new`` (one name or several);
        ``old_id3``: the ID3v2 minor version of the file's tag, if it has one. Returns the change's id."""
        new = [new] if isinstance(new, str) else list(new)
        cur = self._execute("INSERT INTO changes (run, at, path, old, new, state, old_id3) "
                            "VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                            (self.run, time.time(), stored_path(path), None if old is None else json.dumps(old),
                             _encode_new(new), old_id3))
        return int(cur.lastrowid)

    def mark(self, change_id: int, *, state: str, new: list[str] | None = None) -> None:
        """Set the state of the change ``change_id`` (``written``, ``failed`` or ``undone``); ``new``:
        the genre values as the file holds them after the write, when they differ from those recorded."""
        if new:
            self._execute("UPDATE changes SET state = ?, new = ? WHERE id = ?", (state, _encode_new(new), change_id))
        else:
            self._execute("UPDATE changes SET state = ? WHERE id = ?", (state, change_id))

    def last_run(self) -> str | None:
        """The id of the latest run that wrote (or may have written) a tag not undone yet, or ``None``."""
        row = self._execute("SELECT run FROM changes WHERE state IN ('written', 'pending') "
                            "ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else str(row["run"])

    def changes(self, *, run: str) -> list[TagChange]:
        """The changes of the run ``run``, oldest first."""
        return self._rows("SELECT * FROM changes WHERE run = ? ORDER BY id", (run,))

    def changes_under(self, folder: str | os.PathLike) -> list[TagChange]:
        """The changes of every run to files inside ``folder``, oldest first. Both sides are resolved
        before they are compared: a recorded ``folder/../elsewhere/song.mp3``, or a link inside that now
        leads out, is not inside ``folder``."""
        folder = Path(os.path.realpath(folder))
        return [c for c in self._rows("SELECT * FROM changes ORDER BY id")
                if Path(os.path.realpath(c.path)).is_relative_to(folder)]

    def _rows(self, sql: str, params: tuple = ()) -> list[TagChange]:
        return [_change(r, journal=self.path) for r in self._execute(sql, params).fetchall()]

    def close(self) -> None:
        """Close the database."""
        self._conn.close()

    def __enter__(self) -> TagJournal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
