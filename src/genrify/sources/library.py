"""The local music library: audio files under a folder, indexed in SQLite for search.

:class:`LibraryIndex` keeps one row per audio file (id, path, size, mtime,
artist, title, album, duration, genre tag, status). :meth:`LibraryIndex.scan`
is incremental: files whose size and modification time are unchanged are not
re-read, vanished files are dropped. Artist and title come from the file's tags
(mutagen "easy" tags) and fall back to the ``Artist - Title.ext`` file name.
A scan never follows a symlink that leaves the scanned root, and never stops on
a bad file: an unreadable or unrecognised file is recorded with
``status = 'error'`` and a reason, and is never offered by :meth:`search`.

Matching (:meth:`LibraryIndex.search`) compares *normalised* text and accepts
small typos (see :mod:`genrify.sources.matching`): a track matches when the
similarity of both the artist and the title is at least
:data:`~genrify.sources.matching.MATCH_THRESHOLD`. An empty artist matches on
title alone. A search takes bounded time whatever the query or the library
size: an FTS5 trigram index, kept in sync by triggers, proposes the candidates
and a deadline stops it (see :mod:`genrify.sources.search`).

:class:`LibrarySource` wraps an index as a :class:`~genrify.sources.base.Source`.
Track ids are 16 hex digits derived from the file's resolved path, so they are
stable across rescans and never contain a path; :meth:`LibraryIndex.path_for`
turns an *indexed* id back into a file and re-checks that it still lies inside
its root.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from genrify.errors import DatasetError, NotFoundError
from genrify.fileio import name_as_text, path_from_stored, stored_path
from genrify.sources.base import SongRef
from genrify.sources.matching import parse_filename
from genrify.sources.scan import FolderScan, ScanSummary, file_tags, inside
from genrify.sources.search import Ranking, indexed_names, install, rank_tracks

log = logging.getLogger(__name__)

_ID_RE = re.compile(r"^[0-9a-f]{16}$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tracks (
    id        TEXT PRIMARY KEY,
    root      TEXT NOT NULL,
    path      TEXT NOT NULL UNIQUE,
    size      INTEGER NOT NULL,
    mtime_ns  INTEGER NOT NULL,
    artist    TEXT NOT NULL DEFAULT '',
    title     TEXT NOT NULL DEFAULT '',
    album     TEXT,
    duration  REAL,
    genre     TEXT,
    norm_artist TEXT NOT NULL DEFAULT '',
    norm_title  TEXT NOT NULL DEFAULT '',
    norm_title_short TEXT NOT NULL DEFAULT '',
    status    TEXT NOT NULL DEFAULT 'ok',
    error     TEXT
);
CREATE INDEX IF NOT EXISTS tracks_root ON tracks(root);
CREATE INDEX IF NOT EXISTS tracks_norm ON tracks(norm_artist, norm_title);
CREATE INDEX IF NOT EXISTS tracks_norm_title ON tracks(norm_title);
CREATE INDEX IF NOT EXISTS tracks_norm_title_short ON tracks(norm_title_short);
"""


@dataclass(frozen=True)
class Track:
    """One indexed file."""

    id: str
    root: str
    path: str
    size: int
    mtime_ns: int
    artist: str
    title: str
    album: str | None
    duration: float | None
    genre: str | None
    status: str
    error: str | None

    def to_ref(self) -> SongRef:
        return SongRef(
            source="library", id=self.id, artist=self.artist, title=self.title,
            album=self.album, duration=self.duration, genre=self.genre,
        )


def track_id(path: str) -> str:
    """Stable 16-hex-digit id of a resolved path."""
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]


# --------------------------------------------------------------------------- the index


class LibraryIndex:
    """A SQLite index of audio files (WAL mode, one connection shared behind a lock).

    Safe to use from several threads (the web app searches from its thread
    pool). ``db_path`` is created with its parent folder if missing.
    """

    def __init__(self, db_path: str | os.PathLike):
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(str(self.db_path), check_same_thread=False, timeout=30.0)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
            self._conn.commit()
            install(self._conn)
        except sqlite3.DatabaseError as exc:
            raise DatasetError(f"{self.db_path}: not a usable library index ({exc})") from None

    # -- lifecycle
    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> LibraryIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM tracks WHERE status = 'ok'").fetchone()[0]

    # -- scanning
    def scan(
        self,
        root: str | os.PathLike,
        *,
        progress: Callable[[int, str], None] | None = None,
    ) -> ScanSummary:
        """Index the audio files under ``root`` (recursively), incrementally.

        Unchanged files (same size and mtime) are not re-read; rows of files
        that vanished from ``root`` are deleted; symlinks whose target lies
        outside ``root`` are skipped, as are directory symlinks (no loops).
        ``progress(n_seen, path)`` is called for every audio file seen.
        """
        t0 = time.perf_counter()
        try:
            root_path = Path(root).expanduser().resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            raise DatasetError(f"{root}: library folder not found ({exc})") from None
        if not root_path.is_dir():
            raise DatasetError(f"{root}: not a folder")
        root_key = str(root_path)

        with self._lock:
            known = {
                path_from_stored(row["path"]): (row["size"], row["mtime_ns"])
                for row in self._conn.execute("SELECT path, size, mtime_ns FROM tracks WHERE root = ?",
                                              (stored_path(root_key),))
            }
        scan = FolderScan(root=root_path, known=known)
        for real in scan.audio_files():
            if progress is not None:
                progress(len(scan.seen), str(real))
            self._scan_file(real, scan)

        vanished = [p for p in known if p not in scan.seen]
        with self._lock:
            self._conn.executemany("DELETE FROM tracks WHERE path = ?", [(stored_path(p),) for p in vanished])
            self._conn.commit()
        return scan.summary(removed=len(vanished), seconds=time.perf_counter() - t0)

    def _scan_file(self, real: Path, scan: FolderScan) -> None:
        """Index one audio file met by :meth:`scan` (unless it is unchanged), or record why it is unreadable."""
        key, root_key = str(real), str(scan.root)
        try:
            st = real.stat()
        except OSError as exc:
            scan.failed.append((key, f"cannot stat ({exc.strerror or exc})"))
            self._upsert_error(root_key, key, 0, 0, f"cannot stat ({exc.strerror or exc})")
            return
        if not real.is_file():
            return
        if scan.known.get(key) == (st.st_size, st.st_mtime_ns):
            scan.unchanged += 1
            status = self._status_of(key)
            if status is not None and status[0] != "ok":
                scan.failed.append((key, status[1] or "unreadable"))
            return
        if key not in scan.known:
            scan.added += 1
        else:
            scan.updated += 1
        info, reason = file_tags(real)
        if reason is not None:
            scan.failed.append((key, reason))
            self._upsert_error(root_key, key, st.st_size, st.st_mtime_ns, reason)
            return
        fa, ft = parse_filename(name_as_text(real.name))  # text to search and show, whatever the name's bytes
        artist = info.get("artist") or fa
        title = info.get("title") or ft
        self._upsert(
            root_key, key, st.st_size, st.st_mtime_ns, artist=artist, title=title,
            album=info.get("album"), duration=info.get("duration"), genre=info.get("genre"),
        )

    def _status_of(self, path: str) -> tuple[str, str | None] | None:
        with self._lock:
            row = self._conn.execute("SELECT status, error FROM tracks WHERE path = ?", (stored_path(path),)).fetchone()
        return None if row is None else (row["status"], row["error"])

    def _upsert(self, root, path, size, mtime_ns, *, artist, title, album, duration, genre) -> None:
        with self._lock:
            self._conn.execute(
                """INSERT INTO tracks (id, root, path, size, mtime_ns, artist, title, album, duration, genre,
                                       norm_artist, norm_title, norm_title_short, status, error)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ok', NULL)
                   ON CONFLICT(path) DO UPDATE SET root=excluded.root, size=excluded.size,
                     mtime_ns=excluded.mtime_ns, artist=excluded.artist, title=excluded.title,
                     album=excluded.album, duration=excluded.duration, genre=excluded.genre,
                     norm_artist=excluded.norm_artist, norm_title=excluded.norm_title,
                     norm_title_short=excluded.norm_title_short,
                     status='ok', error=NULL""",
                (track_id(path), stored_path(root), stored_path(path), size, mtime_ns, artist, title, album, duration,
                 genre, *indexed_names(artist=artist, title=title)),
            )
            self._conn.commit()

    def _upsert_error(self, root, path, size, mtime_ns, reason) -> None:
        with self._lock:
            self._conn.execute(
                """INSERT INTO tracks (id, root, path, size, mtime_ns, status, error)
                   VALUES (?, ?, ?, ?, ?, 'error', ?)
                   ON CONFLICT(path) DO UPDATE SET root=excluded.root, size=excluded.size,
                     mtime_ns=excluded.mtime_ns, status='error', error=excluded.error""",
                (track_id(path), stored_path(root), stored_path(path), size, mtime_ns, reason),
            )
            self._conn.commit()

    # -- lookup
    def tracks(self, *, include_errors: bool = False) -> list[Track]:
        """Every indexed track, ordered by artist then title."""
        where = "" if include_errors else "WHERE status = 'ok'"
        with self._lock:
            rows = self._conn.execute(f"SELECT * FROM tracks {where} ORDER BY artist, title, path").fetchall()
        return [self._track(r) for r in rows]

    def get(self, track_id: str) -> Track:
        """The playable track with this id; :class:`NotFoundError` otherwise."""
        if not isinstance(track_id, str) or not _ID_RE.match(track_id):
            raise NotFoundError("no such track")
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM tracks WHERE id = ? AND status = 'ok'", (track_id,)
            ).fetchone()
        if row is None:
            raise NotFoundError("no such track")
        return self._track(row)

    def path_for(self, track_id: str) -> Path:
        """The file of an indexed track, re-checked to still lie inside its root.

        Raises :class:`NotFoundError` for an unknown id, a file that vanished,
        or a file that has since become a link leaving the library.
        """
        track = self.get(track_id)
        try:
            real = Path(track.path).resolve(strict=True)
            root = Path(track.root).resolve(strict=True)
        except (OSError, RuntimeError):
            raise NotFoundError("track file is gone") from None
        if not inside(real, root) or not real.is_file():
            raise NotFoundError("no such track")
        return real

    def rank(self, *, artist: str = "", track: str, deadline: float | None = None) -> Ranking:
        """Every match of a search as ``(score, id)``, best first, with what the search cost.

        ``deadline`` is a :func:`time.monotonic` instant (default:
        :data:`~genrify.sources.search.SEARCH_BUDGET_S` once the search has the index); what was found when it
        passes is returned, with ``complete=False``. See :func:`~genrify.sources.search.rank_tracks`.
        """
        return rank_tracks(self._conn, lock=self._lock, artist=artist, track=track, deadline=deadline)

    def search(self, *, artist: str = "", track: str, limit: int = 5, deadline: float | None = None) -> list[SongRef]:
        """Tracks matching ``artist`` and ``track`` (the title), best first, at most ``limit``.

        Exact matches of the normalised names come first, then fuzzy matches
        whose artist and title similarities both reach
        :data:`~genrify.sources.matching.MATCH_THRESHOLD`,
        ordered by their mean similarity; when none, matches on words and substrings
        (see :mod:`genrify.sources.search`). Bounded in time by ``deadline`` (see :meth:`rank`).
        """
        return self._refs(tid for _, tid in self.rank(artist=artist, track=track, deadline=deadline).hits[
            : max(0, int(limit))])

    def closest(self, *, artist: str = "", track: str, deadline: float | None = None) -> list[SongRef]:
        """When a search finds nothing, the few tracks that came nearest (for "did you mean"); else ``[]``."""
        return self._refs(self.rank(artist=artist, track=track, deadline=deadline).closest)

    def _refs(self, ids) -> list[SongRef]:
        out = []
        for tid in ids:
            try:
                out.append(self.get(tid).to_ref())
            except NotFoundError:  # removed by a rescan since
                continue
        return out

    @staticmethod
    def _track(row: sqlite3.Row) -> Track:
        return Track(
            id=row["id"], root=path_from_stored(row["root"]), path=path_from_stored(row["path"]), size=row["size"],
            mtime_ns=row["mtime_ns"],
            artist=row["artist"], title=row["title"], album=row["album"], duration=row["duration"],
            genre=row["genre"], status=row["status"], error=row["error"],
        )


class LibrarySource:
    """The local library as a :class:`~genrify.sources.base.Source` named ``"library"``."""

    name = "library"

    def __init__(self, index: LibraryIndex):
        self.index = index

    def search(self, *, artist: str, track: str, limit: int = 5, deadline: float | None = None) -> list[SongRef]:
        """Best matches first (see :meth:`LibraryIndex.search`); ``deadline`` bounds the time it takes."""
        return self.index.search(artist=artist, track=track, limit=limit, deadline=deadline)

    def fetch_audio(self, ref: SongRef) -> Path:
        if ref.source != self.name:
            raise NotFoundError(f"not a library track: {ref.source}")
        return self.index.path_for(ref.id)


# --------------------------------------------------------------------------- default locations


def cache_dir() -> Path:
    """genrify's cache folder: ``$GENRIFY_CACHE_DIR``, else ``$XDG_CACHE_HOME/genrify``, else ``~/.cache/genrify``."""
    if os.environ.get("GENRIFY_CACHE_DIR"):
        return Path(os.environ["GENRIFY_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "genrify"


def default_db_path(root: str | os.PathLike) -> Path:
    """Where the index of the library at ``root`` lives by default (in the cache, never in the music folder)."""
    real = str(Path(root).expanduser().resolve())
    return cache_dir() / "libraries" / f"{track_id(real)}.sqlite"


def ensure_demo_library(
    out: str | os.PathLike | None = None, *, per_genre: int = 2, seed: int = 0, duration: float = 30.0
) -> Path:
    """The synthetic demo library (generated test clips, tagged MP3s), generated once and reused: the fallback
    when the real one (:mod:`genrify.sources.demo`) was not built at set-up.

    Written into a temporary sibling folder and renamed into place, so an
    interrupted first start never leaves a half library behind. Default
    location: ``cache_dir() / "demo-library"``.
    """
    import shutil
    import tempfile

    target = Path(out) if out is not None else cache_dir() / "demo-library"
    marker = target / ".complete"
    if marker.exists():
        return target
    from genrify.sources.synthetic import write_demo_corpus

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write_demo_corpus(tmp, per_genre=per_genre, seed=seed, duration=duration, fmt="mp3")
        (tmp / ".complete").write_text("ok\n")
        if target.exists() and not marker.exists():
            shutil.rmtree(target, ignore_errors=True)  # a foreign or broken leftover
        try:
            os.rename(tmp, target)
        except OSError:
            if not marker.exists():  # somebody else finished first otherwise
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
