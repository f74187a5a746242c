"""The local music library: audio files under a folder, indexed in SQLite for search.

:class:`LibraryIndex` keeps one row per audio file (id, path, size, mtime,
artist, title, album, duration, genre tag, status). :meth:`LibraryIndex.scan`
is incremental: files whose size and modification time are unchanged are not
re-read, vanished files are dropped. Artist and title come from the file's tags
(mutagen "easy" tags) and fall back to the ``Artist - Title.ext`` file name.
A scan never follows a symlink that leaves the scanned root, and never stops on
a bad file: an unreadable or unrecognised file is recorded with
``status = 'error'`` and a reason, and is never offered by :meth:`search`.

Matching (:meth:`LibraryIndex.search`) compares *normalised* text: Unicode
NFKD with accents removed, case-folded, "feat./ft./featuring …" parts removed,
punctuation turned into spaces, a leading "the" dropped. Small typos are
accepted through :class:`difflib.SequenceMatcher`: a track matches when the
similarity of both the artist and the title is at least :data:`MATCH_THRESHOLD`
(0.8, about one wrong letter in five). An empty artist matches on title alone.

:class:`LibrarySource` wraps an index as a :class:`~genrify.sources.base.Source`.
Track ids are 16 hex digits derived from the file's resolved path, so they are
stable across rescans and never contain a path; :meth:`LibraryIndex.path_for`
turns an *indexed* id back into a file and re-checks that it still lies inside
its root.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import re
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from genrify.errors import DatasetError, NotFoundError
from genrify.sources.base import SongRef

log = logging.getLogger(__name__)

#: Minimum :class:`difflib.SequenceMatcher` ratio, for the artist and for the
#: title separately, for a fuzzy match (1.0 = identical normalised text).
MATCH_THRESHOLD = 0.8

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


@dataclass(frozen=True)
class ScanSummary:
    """What one :meth:`LibraryIndex.scan` did. ``failed`` lists ``(path, reason)``."""

    root: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped_outside: int = 0
    failed: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    seconds: float = 0.0

    @property
    def indexed(self) -> int:
        """Playable tracks found in this scan (added + updated + unchanged, minus failures)."""
        return self.added + self.updated + self.unchanged - len(self.failed)

    def __str__(self) -> str:
        return (
            f"{self.root}: {self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.removed} removed, {len(self.failed)} unreadable, "
            f"{self.skipped_outside} links outside the folder skipped ({self.seconds:.1f} s)"
        )


# --------------------------------------------------------------------------- text matching

_FEAT_RE = re.compile(
    r"(\s*[\(\[]\s*(feat|ft|featuring|with)\b.*$)|(\s+(feat|ft|featuring)\b\.?\s.*$)", re.IGNORECASE
)
_BRACKETS_RE = re.compile(r"[\(\[][^\)\]]*[\)\]]")
_PUNCT_RE = re.compile(r"[^\w\s]|_", re.UNICODE)
_SPACE_RE = re.compile(r"\s+")


def normalize(text: str, *, drop_brackets: bool = False) -> str:
    """Normalise a name for matching: "Beyoncé feat. JAY-Z" → "beyonce".

    NFKD with combining marks removed, case-folded, "feat./ft./featuring …"
    (and "(with …)") removed, ``&`` read as "and", punctuation and underscores
    turned into spaces, a leading "the " dropped, spaces collapsed.
    ``drop_brackets`` also removes "(…)" and "[…]" parts ("(Remastered 2011)").
    """
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = _FEAT_RE.sub("", text)
    if drop_brackets:
        text = _BRACKETS_RE.sub(" ", text)
    text = text.replace("&", " and ")
    text = _PUNCT_RE.sub(" ", text)
    text = _SPACE_RE.sub(" ", text).strip()
    if text.startswith("the "):
        text = text[4:]
    return text


def similarity(query: str | set[str], candidate: str | set[str]) -> float:
    """Best :class:`difflib.SequenceMatcher` ratio between normalised names, 0–1.

    Either side may be a set of variants (e.g. a title with and without its
    bracketed part, so "Song" still matches "Song (Live)"); the best pair counts.
    """
    qs = {query} if isinstance(query, str) else set(query)
    cs = {candidate} if isinstance(candidate, str) else set(candidate)
    best = 0.0
    for q in qs:
        for c in cs:
            if q == c:
                return 1.0
            m = difflib.SequenceMatcher(None, q, c, autojunk=False)
            if m.real_quick_ratio() <= best or m.quick_ratio() <= best:
                continue
            best = max(best, m.ratio())
    return best


def _variants(text: str) -> set[str]:
    """A name normalised with and without its bracketed parts (empty variants dropped)."""
    return {v for v in (normalize(text), normalize(text, drop_brackets=True)) if v} or {""}


def parse_filename(path: str | os.PathLike) -> tuple[str, str]:
    """``"Artist - Title.ext"`` → ``(artist, title)``; no separator → ``("", stem)``.

    Underscores count as spaces, so ``Kevin_MacLeod_-_Vibe_Ace.ogg`` works too.
    """
    stem = Path(path).stem.replace("_", " ")
    stem = _SPACE_RE.sub(" ", stem).strip()
    if " - " in stem:
        artist, title = stem.split(" - ", 1)
        return artist.strip(), title.strip()
    return "", stem


def track_id(path: str) -> str:
    """Stable 16-hex-digit id of a resolved path."""
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]


#: The ID3 frames behind the easy tag names, for files whose ID3 tags mutagen gives as frames.
_ID3_FRAMES = {"artist": "TPE1", "albumartist": "TPE2", "title": "TIT2", "album": "TALB", "genre": "TCON"}


def _read_tags(path: Path) -> dict:
    """Artist/title/album/genre/duration from tags; raises if the file is not audio."""
    import mutagen

    info: dict = {}
    try:
        f = mutagen.File(str(path), easy=True)
    except Exception as exc:  # mutagen raises many types on damaged files
        f = None
        log.debug("no tags in %s: %s", path, exc)
    if f is not None:
        tags = f.tags or {}
        from mutagen.id3 import ID3

        if isinstance(tags, ID3):  # WAV / AIFF: plain ID3 frames, no "easy" keys
            tags = {key: list(tags[frame].text) for key, frame in _ID3_FRAMES.items() if frame in tags}

        def first(key):
            try:
                values = tags.get(key)
            except Exception:
                return None
            if not values:
                return None
            value = values[0] if isinstance(values, list) else values
            value = str(value).strip()
            return value or None

        info = {"artist": first("artist") or first("albumartist"), "title": first("title"),
                "album": first("album"), "genre": first("genre")}
        length = getattr(getattr(f, "info", None), "length", None)
        if length and length > 0:
            info["duration"] = float(length)
    if "duration" not in info:
        # Not recognised by mutagen (or no length): ask libsndfile for the header.
        import soundfile as sf

        if f is None and path.suffix.lower() == ".mp3":
            # mutagen reads every real MP3 header; libsndfile's MP3 decoder would
            # only print resync noise on stderr for garbage.
            raise DatasetError("not a recognised audio file (no MPEG audio frames)")
        try:
            si = sf.info(str(path))
        except Exception as exc:
            if f is None:
                raise DatasetError(f"not a recognised audio file ({type(exc).__name__})") from None
        else:
            if si.frames <= 0 or si.samplerate <= 0:
                raise DatasetError("audio file has no samples")
            info["duration"] = si.frames / si.samplerate
    return info


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


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
        from genrify.audio import AUDIO_EXTENSIONS

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
                row["path"]: (row["size"], row["mtime_ns"])
                for row in self._conn.execute("SELECT path, size, mtime_ns FROM tracks WHERE root = ?", (root_key,))
            }
        seen: set[str] = set()
        added = updated = unchanged = outside = 0
        failed: list[tuple[str, str]] = []
        n = 0

        def on_walk_error(exc: OSError) -> None:
            failed.append((str(getattr(exc, "filename", "") or root_key), f"cannot list folder: {exc.strerror or exc}"))

        for dirpath, dirnames, filenames in os.walk(root_path, onerror=on_walk_error, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames):
                if not name.lower().endswith(AUDIO_EXTENSIONS) or name.startswith("."):
                    continue
                full = Path(dirpath) / name
                try:
                    real = full.resolve(strict=True)
                except (OSError, RuntimeError):  # dangling link or a loop
                    failed.append((str(full), "broken symbolic link"))
                    continue
                if not _inside(real, root_path):
                    outside += 1
                    log.info("skipping %s: links outside %s", full, root_path)
                    continue
                key = str(real)
                if key in seen:
                    continue  # two links to one file: index it once
                seen.add(key)
                n += 1
                if progress is not None:
                    progress(n, key)
                try:
                    st = real.stat()
                except OSError as exc:
                    failed.append((key, f"cannot stat ({exc.strerror or exc})"))
                    self._upsert_error(root_key, key, 0, 0, f"cannot stat ({exc.strerror or exc})")
                    continue
                if not real.is_file():
                    continue
                if known.get(key) == (st.st_size, st.st_mtime_ns):
                    unchanged += 1
                    status = self._status_of(key)
                    if status is not None and status[0] != "ok":
                        failed.append((key, status[1] or "unreadable"))
                    continue
                is_new = key not in known
                if is_new:
                    added += 1
                else:
                    updated += 1
                reason = None
                info: dict = {}
                if not os.access(real, os.R_OK):
                    reason = "permission denied"
                else:
                    try:
                        info = _read_tags(real)
                    except DatasetError as exc:
                        reason = str(exc)
                    except Exception as exc:  # never stop a scan on one file
                        reason = f"unreadable ({type(exc).__name__})"
                if reason is not None:
                    failed.append((key, reason))
                    self._upsert_error(root_key, key, st.st_size, st.st_mtime_ns, reason)
                    continue
                fa, ft = parse_filename(real)
                artist = info.get("artist") or fa
                title = info.get("title") or ft
                self._upsert(
                    root_key, key, st.st_size, st.st_mtime_ns, artist=artist, title=title,
                    album=info.get("album"), duration=info.get("duration"), genre=info.get("genre"),
                )

        vanished = [p for p in known if p not in seen]
        with self._lock:
            self._conn.executemany("DELETE FROM tracks WHERE path = ?", [(p,) for p in vanished])
            self._conn.commit()
        return ScanSummary(
            root=root_key, added=added, updated=updated, unchanged=unchanged, removed=len(vanished),
            skipped_outside=outside, failed=tuple(failed), seconds=time.perf_counter() - t0,
        )

    def _status_of(self, path: str) -> tuple[str, str | None] | None:
        with self._lock:
            row = self._conn.execute("SELECT status, error FROM tracks WHERE path = ?", (path,)).fetchone()
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
                (track_id(path), root, path, size, mtime_ns, artist, title, album, duration, genre,
                 normalize(artist), normalize(title), normalize(title, drop_brackets=True)),
            )
            self._conn.commit()

    def _upsert_error(self, root, path, size, mtime_ns, reason) -> None:
        with self._lock:
            self._conn.execute(
                """INSERT INTO tracks (id, root, path, size, mtime_ns, status, error)
                   VALUES (?, ?, ?, ?, ?, 'error', ?)
                   ON CONFLICT(path) DO UPDATE SET root=excluded.root, size=excluded.size,
                     mtime_ns=excluded.mtime_ns, status='error', error=excluded.error""",
                (track_id(path), root, path, size, mtime_ns, reason),
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
        if not _inside(real, root) or not real.is_file():
            raise NotFoundError("no such track")
        return real

    def search(self, *, artist: str = "", track: str, limit: int = 5) -> list[SongRef]:
        """Tracks matching ``artist`` and ``track`` (the title), best first.

        Exact matches of the normalised names come first, then fuzzy matches
        whose artist and title similarities both reach :data:`MATCH_THRESHOLD`,
        ordered by their mean similarity.
        """
        q_artist, q_titles = normalize(artist or ""), _variants(track or "")
        q_title = max(q_titles, key=len)
        if not q_title and not q_artist:
            return []
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, norm_artist, norm_title, norm_title_short FROM tracks WHERE status = 'ok'"
            ).fetchall()
        scored: list[tuple[float, str]] = []
        for row in rows:
            if q_title:
                s_title = similarity(q_titles, {row["norm_title"], row["norm_title_short"]})
                if s_title < MATCH_THRESHOLD:
                    continue
            else:
                s_title = 1.0
            if q_artist:
                s_artist = similarity(q_artist, row["norm_artist"])
                if s_artist < MATCH_THRESHOLD:
                    continue
            else:
                s_artist = 1.0
            scored.append(((s_title + s_artist) / 2, row["id"]))
        scored.sort(key=lambda t: (-t[0], t[1]))
        out = []
        for _, tid in scored[: max(0, int(limit))]:
            try:
                out.append(self.get(tid).to_ref())
            except NotFoundError:
                continue
        return out

    @staticmethod
    def _track(row: sqlite3.Row) -> Track:
        return Track(
            id=row["id"], root=row["root"], path=row["path"], size=row["size"], mtime_ns=row["mtime_ns"],
            artist=row["artist"], title=row["title"], album=row["album"], duration=row["duration"],
            genre=row["genre"], status=row["status"], error=row["error"],
        )


class LibrarySource:
    """The local library as a :class:`~genrify.sources.base.Source` named ``"library"``."""

    name = "library"

    def __init__(self, index: LibraryIndex):
        self.index = index

    def search(self, *, artist: str, track: str, limit: int = 5) -> list[SongRef]:
        return self.index.search(artist=artist, track=track, limit=limit)

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
    """The demo library (synthetic, tagged MP3s), generated once and reused.

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
