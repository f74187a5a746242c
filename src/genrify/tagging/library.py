"""The songs of a results index as the library page lists them: read-only, filtered, sorted and paged.

:class:`LibraryView` is the index's own query for ``genrify serve --library DIR``
(:mod:`genrify.web.library_page`): it opens the file read-only (:func:`~genrify.tagging.index.read_songs`),
so a ``genrify tag`` run may go on while the page is shown (the index is in WAL mode),
and answers with plain dicts. With a library folder it lists the songs under it,
otherwise every song of the index. A library can hold tens of thousands of songs: the
songs' summaries (no per-window data) are kept in memory and read again only when the
index file or its write-ahead log changes, so paging costs one query, not one per page.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from genrify.errors import NotFoundError
from genrify.tagging.index import default_index_path, read_song, read_songs

class LibraryView:
    """The results index at ``index`` (default :func:`~genrify.tagging.index.default_index_path`), seen
    read-only; with ``library``, only the songs under that folder, named relative to it."""

    def __init__(self, index: str | os.PathLike | None = None, *, library: str | os.PathLike | None = None):
        self.index = Path(index).expanduser() if index is not None else default_index_path()
        self.library = Path(library).expanduser().absolute() if library else None
        # A song's path is as `genrify tag` was given it: the folder as named and as its links resolve.
        self._roots = () if self.library is None else tuple(dict.fromkeys((self.library, self.library.resolve())))
        self._lock = threading.Lock()
        self._seen: tuple | None = None
        self._songs: list[dict] = []
        self._by_id: dict[int, dict] = {}

    def _signature(self) -> tuple | None:
        try:
            main = self.index.stat()
        except OSError:
            return None
        wal = self.index.with_name(self.index.name + "-wal")
        w = wal.stat() if wal.exists() else None
        return (main.st_mtime_ns, main.st_size, w and w.st_mtime_ns, w and w.st_size)

    def songs(self) -> list[dict] | None:
        """Every song listed, as the table's row plus its ``path`` and look-up helpers (``_names``,
        ``_text``); ``None`` when there is no index yet (no file, or only the tag journal)."""
        with self._lock:
            seen = self._signature()
            if seen is not None and seen != self._seen:
                rows = read_songs(self.index)
                if rows is None:  # the tag journal of `genrify predict --write-tags` alone: no index yet
                    seen = None
                else:
                    self._songs = [s for s in map(self._summary, rows) if s is not None]
                    self._by_id = {s["id"]: s for s in self._songs}
                    self._seen = seen
            if seen is None:
                self._seen, self._songs, self._by_id = None, [], {}
                return None
            return self._songs

    def _summary(self, row: dict) -> dict | None:
        path = Path(row["path"])
        if self.library is not None:
            root = next((r for r in self._roots if path.is_relative_to(r)), None)
            if root is None:
                return None
            name = path.relative_to(root).as_posix()
        else:
            name = "/".join(path.parts[-2:])
        tags = row["tags"]
        artist, title = tags.get("artist"), tags.get("title")
        song = (f"{artist} – {title}" if artist else title) if title else path.name  # as the table shows it
        styles = [s["name"] for s in row["styles"] if isinstance(s, dict) and "name" in s]
        names = [n.casefold() for n in ([row["genre"]] if row["genre"] else []) + styles]
        text = " ".join(str(v) for v in (song, name, artist, title, tags.get("album")) if v).casefold()
        return {"id": row["id"], "path": str(path), "song": song, "name": name, "artist": artist,
                "title": title, "album": tags.get("album"), "genre": row["genre"], "styles": styles,
                "certainty": row["certainty"], "verdict": row["verdict"], "_names": names, "_text": text}

    def query(self, *, q: str = "", genre: str = "", verdict: str = "", sort: str = "song", order: str = "asc",
              offset: int = 0, limit: int = 50) -> dict | None:
        """One page of the songs listed, as :func:`select` gives it, with ``songs`` (how many are listed
        in all) and the ``genres`` and ``styles`` present (:func:`facets`); ``None`` when there is no index."""
        songs = self.songs()
        if songs is None:
            return None
        found = select(songs, q=q, genre=genre, verdict=verdict, sort=sort, order=order, offset=offset, limit=limit)
        return {"songs": len(songs), **found, **facets(songs)}

    def song(self, song_id: int) -> dict:
        """Song ``song_id``'s row, with its ``path``; :class:`~genrify.errors.NotFoundError` when it is not listed."""
        songs = self.songs()
        with self._lock:
            song = self._by_id.get(song_id) if songs is not None else None
        if song is None:
            raise NotFoundError("no such song in the results index")
        return song

    def details(self, song_id: int) -> dict:
        """Song ``song_id``'s row (no path) with its stored ``analysis`` (the JSON of ``Analysis.to_dict``)
        and ``written`` (the genre values genrify wrote, or ``None``)."""
        song = self.song(song_id)
        stored = read_song(self.index, song_id)
        if stored is None:
            raise NotFoundError("no such song in the results index")
        return {**public(song), **stored}


def _sort_key(key: str):
    def text(value) -> tuple:
        return (value is None or value == "", str(value or "").casefold())

    if key == "certainty":
        return lambda s: (s["certainty"] is None, s["certainty"] or 0.0)
    if key == "style":
        return lambda s: text(s["styles"][0] if s["styles"] else None)
    return lambda s: text(s[key])


def select(songs: list[dict], *, q: str = "", genre: str = "", verdict: str = "", sort: str = "song",
           order: str = "asc", offset: int = 0, limit: int = 50) -> dict:
    """One page of ``songs`` filtered (``q`` in a name, tag, genre or style; ``genre`` the genre or a
    style, case apart; ``verdict``), sorted by ``sort`` (songs without a value last, either order):
    ``total`` matching, ``offset``, ``limit`` and the ``rows`` (:func:`public`)."""
    words = q.casefold().split()
    wanted = genre.casefold().strip()

    def keep(s: dict) -> bool:
        if verdict and s["verdict"] != verdict:
            return False
        if wanted and wanted not in s["_names"]:
            return False
        return all(w in s["_text"] or any(w in n for n in s["_names"]) for w in words)

    found = [s for s in songs if keep(s)]
    key = _sort_key(sort)
    present = sorted((s for s in found if not key(s)[0]), key=key, reverse=order == "desc")
    missing = sorted((s for s in found if key(s)[0]), key=lambda s: s["name"].casefold())
    ordered = present + missing
    return {"total": len(ordered), "offset": offset, "limit": limit,
            "rows": [public(s) for s in ordered[offset:offset + limit]]}


def public(song: dict) -> dict:
    """A song as the page gets it: no path, none of the look-up helpers."""
    return {k: v for k, v in song.items() if k != "path" and not k.startswith("_")}


def facets(songs: list[dict]) -> dict:
    """The genres and styles present, for the page's filter."""
    genres = sorted({s["genre"] for s in songs if s["genre"]}, key=str.casefold)
    styles = sorted({n for s in songs for n in s["styles"]}, key=str.casefold)
    return {"genres": genres, "styles": styles}
