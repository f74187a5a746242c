"""Previews cached on disk by content, indexed by (provider, track id).

Layout under the cache root::

    index.sqlite            previews(provider, track_id → sha256, ext, size, artist, title, fetched_at)
    objects/ab/abcdef….mp3  one file per distinct content, named by its SHA-256

Preview URLs are signed and expire, so the index stores the provider's track id
and never a URL; a missing file means "fetch again" (the provider re-resolves
the URL through its track lookup). Files are written atomically (temporary name,
then ``os.replace``) and only after the bytes were checked to be audio, so a
failed or non-audio download leaves no trace. :meth:`PreviewCache.path_for`
only ever returns a path it builds itself from an index row (a hex digest and a
known extension), inside the cache root.

The default root is ``$GENRIFY_CACHE_DIR/previews``, else
``$XDG_CACHE_HOME/genrify/previews``, else ``~/.cache/genrify/previews``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from genrify.audio import SNIFFED_EXTENSIONS, sniff_audio
from genrify.errors import ProviderError
from genrify.fileio import write_bytes_atomic

_HEX64 = re.compile(r"[0-9a-f]{64}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS previews (
    provider   TEXT NOT NULL,
    track_id   TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    ext        TEXT NOT NULL,
    size       INTEGER NOT NULL,
    artist     TEXT NOT NULL DEFAULT '',
    title      TEXT NOT NULL DEFAULT '',
    fetched_at REAL NOT NULL,
    PRIMARY KEY (provider, track_id)
)
"""


def default_cache_dir() -> Path:
    """Where previews are cached unless told otherwise (see the module docstring)."""
    if os.environ.get("GENRIFY_CACHE_DIR"):
        return Path(os.environ["GENRIFY_CACHE_DIR"]) / "previews"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "genrify" / "previews"


@dataclass(frozen=True)
class CacheEntry:
    """One index row: a provider's track and the content that holds its preview."""

    provider: str
    track_id: str
    sha256: str
    ext: str
    size: int
    artist: str
    title: str
    fetched_at: float


class PreviewCache:
    """A content-addressed store of preview files with a SQLite index; safe across threads and processes."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.index_path = self.root / "index.sqlite"
        with self._connect() as con:
            con.execute(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self):
        con = sqlite3.connect(self.index_path, timeout=30)
        try:
            with con:  # one transaction, committed on success
                yield con
        finally:
            con.close()

    def _object_path(self, sha256: str, ext: str) -> Path | None:
        if not _HEX64.fullmatch(sha256) or ext not in SNIFFED_EXTENSIONS:
            return None
        return self.root / "objects" / sha256[:2] / f"{sha256}{ext}"

    def entry(self, provider: str, track_id: str) -> CacheEntry | None:
        """The index row of ``(provider, track_id)``, or ``None``."""
        with self._connect() as con:
            row = con.execute(
                "SELECT provider, track_id, sha256, ext, size, artist, title, fetched_at"
                " FROM previews WHERE provider = ? AND track_id = ?",
                (provider, str(track_id)),
            ).fetchone()
        return CacheEntry(*row) if row else None

    def path_for(self, provider: str, track_id: str) -> Path | None:
        """The cached preview file of the track, or ``None`` when it is not cached.

        Only indexed files are returned, and only when the file on disk still has
        the size recorded in the index (a truncated file counts as missing).
        """
        e = self.entry(provider, track_id)
        if e is None:
            return None
        path = self._object_path(e.sha256, e.ext)
        if path is None:
            return None
        try:
            if not path.is_file() or path.stat().st_size != e.size:
                return None
        except OSError:
            return None
        return path

    def put(self, provider: str, track_id: str, data: bytes, *, ext: str | None = None,
            artist: str = "", title: str = "") -> Path:
        """Store ``data`` as the preview of ``(provider, track_id)`` and return its file.

        ``ext`` defaults to what the bytes' signature implies. Raises
        :class:`~genrify.errors.ProviderError` (and stores nothing) when ``data``
        is not audio.
        """
        sniffed = sniff_audio(data[:16])
        if sniffed is None:
            raise ProviderError(f"{provider} track {track_id}: the preview is not audio; not cached")
        ext = ext or sniffed
        sha = hashlib.sha256(data).hexdigest()
        path = self._object_path(sha, ext)
        if path is None:
            raise ProviderError(f"{provider} track {track_id}: unsupported preview type {ext!r}; not cached")
        if not (path.is_file() and path.stat().st_size == len(data)):
            write_bytes_atomic(path, data)
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO previews"
                " (provider, track_id, sha256, ext, size, artist, title, fetched_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (provider, str(track_id), sha, ext, len(data), artist or "", title or "", time.time()),
            )
        return path

    def forget(self, provider: str, track_id: str) -> None:
        """Drop the index row (the content file stays if other tracks share it)."""
        with self._connect() as con:
            con.execute("DELETE FROM previews WHERE provider = ? AND track_id = ?", (provider, str(track_id)))

    def __len__(self) -> int:
        with self._connect() as con:
            return con.execute("SELECT COUNT(*) FROM previews").fetchone()[0]
