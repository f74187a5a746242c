"""The tag journal: what each genre tag held before genrify wrote it, so the change can be undone.

Every :func:`~genrify.sources.tags.write_genre` first records the file and
its previous genre values here (state ``pending``), then writes the file, then
marks the record ``written``; :func:`~genrify.sources.tags.undo_genres` reads
it back. A run is one process: all the tags one ``genrify predict --write-tags``
writes share its run id, so they can be undone together.

The journal is one SQLite file, ``tag-journal.sqlite`` in genrify's data
folder (:func:`default_data_dir`), never in the music folder.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from genrify.errors import TagError

#: This process's run id: every change it records carries it.
RUN_ID = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

JOURNAL_NAME = "tag-journal.sqlite"

_SCHEMA = """
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
"""


def default_data_dir() -> Path:
    """genrify's data folder: ``$GENRIFY_DATA_DIR``, else the platform's user data folder
    (platformdirs: ``~/.local/share/genrify`` on Linux)."""
    if os.environ.get("GENRIFY_DATA_DIR"):
        return Path(os.environ["GENRIFY_DATA_DIR"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("genrify", appauthor=False))


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
        return _decode_new(self.new)


def _encode_new(values: list[str]) -> str:
    # One plain name keeps journals readable (and those of earlier versions valid); several are JSON.
    return values[0] if len(values) == 1 and not values[0].startswith("[") else json.dumps(values)


def _decode_new(text: str) -> list[str]:
    if text.startswith("["):
        try:
            values = json.loads(text)
        except ValueError:
            return [text]
        if isinstance(values, list):
            return [str(v) for v in values]
    return [text]


class TagJournal:
    """The journal at ``path`` (default: ``tag-journal.sqlite`` in ``data_dir``, by default
    :func:`default_data_dir`); changes recorded through it carry the run id ``run``.

    Any failure to open or write it is a :class:`~genrify.errors.TagError`: a tag
    whose old value cannot be recorded is not written.
    """

    def __init__(self, *, path: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
                 run: str = RUN_ID) -> None:
        folder = Path(data_dir) if data_dir is not None else default_data_dir()
        self.path = Path(path) if path is not None else folder / JOURNAL_NAME
        self.run = run
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The timeout lets two genrify runs tagging at once take turns instead of failing.
            self._conn = sqlite3.connect(str(self.path), timeout=30)
            self._conn.row_factory = sqlite3.Row
            self._conn.executescript(_SCHEMA)
            columns = {r["name"] for r in self._conn.execute("PRAGMA table_info(changes)")}
            if "old_id3" not in columns:  # a journal written by an earlier genrify
                with self._conn:
                    self._conn.execute("ALTER TABLE changes ADD COLUMN old_id3 INTEGER")
        except (OSError, sqlite3.Error) as exc:
            raise self._error(exc) from None

    def _error(self, exc: Exception) -> TagError:
        text = str(exc).strip()
        reason = getattr(exc, "strerror", None) or (text.splitlines()[0] if text else type(exc).__name__)
        return TagError(f"{self.path}: cannot use the tag journal ({reason})")

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
                            (self.run, time.time(), os.fspath(path), None if old is None else json.dumps(old),
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
        """The changes of every run to files inside ``folder`` (a resolved path), oldest first."""
        folder = Path(folder)
        return [c for c in self._rows("SELECT * FROM changes ORDER BY id") if Path(c.path).is_relative_to(folder)]

    def _rows(self, sql: str, params: tuple = ()) -> list[TagChange]:
        rows = self._execute(sql, params).fetchall()
        return [TagChange(id=r["id"], run=r["run"], at=r["at"], path=r["path"],
                          old=None if r["old"] is None else json.loads(r["old"]), new=r["new"], state=r["state"],
                          old_id3=r["old_id3"]) for r in rows]

    def close(self) -> None:
        """Close the database."""
        self._conn.close()

    def __enter__(self) -> TagJournal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
