"""The library page (``genrify serve --library DIR``): the songs ``genrify tag`` analysed, in a table
to sort and filter, each one to play with its genre over time.

The data is the results index of ``genrify tag`` (:mod:`genrify.tagging.index`), opened read-only:
the page never changes it, and a ``genrify tag`` run may go on while it is shown (the index is in
WAL mode). With ``--library DIR`` the page lists the songs under DIR, otherwise every song of the
index. A library can hold tens of thousands of songs, so sorting, filtering and paging happen here
and a page of rows is at most :data:`MAX_LIMIT` long. Songs are named by their id in the index:
audio is served only for a file the index names, that is still a regular file, and a song's
folder is shown relative to the library, never where it lives.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from genrify.errors import DatasetError, NotFoundError
from genrify.web.audio_response import audio_response
from genrify.web.settings import static_dir

router = APIRouter()

#: The longest page of rows one request gets.
MAX_LIMIT = 200
VERDICTS = ("genre", "unsure", "not_music")
SORT_KEYS = ("song", "name", "artist", "title", "album", "genre", "style", "certainty", "verdict")
NO_INDEX_HINT = "No songs have been tagged yet: run `genrify tag DIR` (a dry run is enough), then reload this page."

# The page's columns, read from each song's analysis in SQL, so that a listing never parses the
# per-window data; the same fields as ResultsIndex.rows() gives (genre, styles, certainty = top[0][1], verdict).
_SUMMARY_SQL = """
SELECT id, path, tags, json_extract(analysis, '$.genre') AS genre, json_extract(analysis, '$.verdict') AS verdict,
       json_extract(analysis, '$.top[0][1]') AS certainty, json_extract(analysis, '$.styles') AS styles
FROM songs
"""


class LibraryPage:
    """The results index at ``index``, seen read-only; with ``library``, only the songs under it.

    The songs' summaries (no per-window data) are kept in memory and read again when the index
    file or its write-ahead log changes, so paging through a big library costs one query, not one
    per page.
    """

    def __init__(self, index: str | os.PathLike | None = None, *, library: str | os.PathLike | None = None):
        self._index = None if index is None else Path(index).expanduser()
        self.library = Path(library).expanduser().absolute() if library else None
        # A song's path is as `genrify tag` was given it: the folder as named and as its links resolve.
        self._roots = () if self.library is None else tuple(dict.fromkeys((self.library, self.library.resolve())))
        self._lock = threading.Lock()
        self._seen: tuple | None = None
        self._songs: list[dict] = []
        self._by_id: dict[int, dict] = {}

    @property
    def index(self) -> Path:
        """The index file: the one given, else ``genrify tag``'s default (found on first use: building the
        app loads nothing of the tagging code)."""
        if self._index is None:
            from genrify.tagging.index import default_index_path

            self._index = default_index_path()
        return self._index

    def _signature(self) -> tuple | None:
        try:
            main = self.index.stat()
        except OSError:
            return None
        wal = self.index.with_name(self.index.name + "-wal")
        w = wal.stat() if wal.exists() else None
        return (main.st_mtime_ns, main.st_size, w and w.st_mtime_ns, w and w.st_size)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.index.resolve().as_uri() + "?mode=ro", uri=True, timeout=30)
        except sqlite3.Error as exc:
            raise DatasetError(f"{self.index}: cannot read the results index ({exc})") from None
        conn.row_factory = sqlite3.Row
        return conn

    def _read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        conn = self._connect()
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise DatasetError(f"{self.index}: cannot read the results index ({exc})") from None
        finally:
            conn.close()

    def songs(self) -> list[dict] | None:
        """Every song shown, as the table's row (plus its ``path``); ``None`` when there is no index yet."""
        with self._lock:
            seen = self._signature()
            if seen is None:
                self._seen, self._songs, self._by_id = None, [], {}
                return None
            if seen != self._seen:
                # The tag journal of `genrify predict --write-tags` shares the file: no songs table, no index yet.
                if not self._read("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'songs'"):
                    return None
                rows = self._read(_SUMMARY_SQL)
                self._songs = [s for s in (self._summary(r) for r in rows) if s is not None]
                self._by_id = {s["id"]: s for s in self._songs}
                self._seen = seen
            return self._songs

    def _summary(self, row: sqlite3.Row) -> dict | None:
        path = Path(row["path"])
        if self.library is not None:
            root = next((r for r in self._roots if path.is_relative_to(r)), None)
            if root is None:
                return None
            name = path.relative_to(root).as_posix()
        else:
            name = "/".join(path.parts[-2:])
        tags = json.loads(row["tags"] or "{}")
        artist, title = tags.get("artist"), tags.get("title")
        song = (f"{artist} – {title}" if artist else title) if title else path.name  # as the table shows it
        styles = [s["name"] for s in json.loads(row["styles"] or "[]") if isinstance(s, dict) and "name" in s]
        names = [n.casefold() for n in ([row["genre"]] if row["genre"] else []) + styles]
        text = " ".join(str(v) for v in (song, name, artist, title, tags.get("album")) if v).casefold()
        return {"id": row["id"], "path": str(path), "song": song, "name": name, "artist": artist,
                "title": title, "album": tags.get("album"), "genre": row["genre"], "styles": styles,
                "certainty": row["certainty"], "verdict": row["verdict"], "_names": names, "_text": text}

    def _song(self, song_id: int) -> dict:
        songs = self.songs()
        with self._lock:
            song = self._by_id.get(song_id) if songs is not None else None
        if song is None:
            raise NotFoundError("no such song in the results index")
        return song

    def song_file(self, song_id: int) -> Path:
        """The file of song ``song_id``: shown on this page, and still a regular file (links followed)."""
        path = Path(self._song(song_id)["path"])
        try:
            regular = stat.S_ISREG(path.stat().st_mode)
        except OSError:
            regular = False
        if not regular:
            raise NotFoundError(f"{path.name}: the file is gone")
        return path

    def analysis(self, song_id: int) -> dict:
        """The stored analysis of song ``song_id`` (the JSON of ``Analysis.to_dict``) and its table row."""
        song = self._song(song_id)
        rows = self._read("SELECT analysis, written FROM songs WHERE id = ?", (song_id,))
        if not rows:
            raise NotFoundError("no such song in the results index")
        written = rows[0]["written"]
        return {**_public(song), "analysis": json.loads(rows[0]["analysis"]),
                "written": None if written is None else json.loads(written)}


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
    style, case apart; ``verdict``), sorted by ``sort`` (songs without a value last, either order)."""
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
            "rows": [_public(s) for s in ordered[offset:offset + limit]]}


def _public(song: dict) -> dict:
    """A song as the page gets it: no path, none of the look-up helpers."""
    return {k: v for k, v in song.items() if k != "path" and not k.startswith("_")}


def facets(songs: list[dict]) -> dict:
    """The genres and styles present, for the page's filter."""
    genres = sorted({s["genre"] for s in songs if s["genre"]}, key=str.casefold)
    styles = sorted({n for s in songs for n in s["styles"]}, key=str.casefold)
    return {"genres": genres, "styles": styles}


def get_page(request: Request) -> LibraryPage:
    return request.app.state.library_page


Page = Annotated[LibraryPage, Depends(get_page)]


def register(app, *, index: str | os.PathLike | None = None, library: str | os.PathLike | None = None) -> None:
    """Serve the library page at ``/library`` and ``/api/library`` on ``app``, from the results index
    ``index`` (default: :func:`~genrify.tagging.index.default_index_path`), songs under ``library`` only."""
    app.state.library_page = LibraryPage(index, library=library)
    app.include_router(router)


@router.get("/library", include_in_schema=False)
async def library_html() -> FileResponse:
    return FileResponse(static_dir() / "library.html", media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})


@router.get("/api/library", tags=["library"], summary="Tagged songs: one page, sorted and filtered")
async def library_json(
    page: Page,
    q: Annotated[str, Query(max_length=200, description="words to find in names, tags, genres and styles")] = "",
    genre: Annotated[str, Query(max_length=100, description="only this genre or style")] = "",
    verdict: Annotated[Literal["", "genre", "unsure", "not_music"], Query(description="only this verdict")] = "",
    sort: Annotated[Literal[SORT_KEYS], Query(description="column to sort by (`song`: as shown, "
                                                        "`name`: the file)")] = "song",
    order: Annotated[Literal["asc", "desc"], Query()] = "asc",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"rows per page, at most {MAX_LIMIT}")] = 50,
) -> dict:
    """Songs the results index of `genrify tag` holds: `rows` (id, song, name, artist, title, album, genre,
    styles, certainty 0–1, verdict) from `offset`, `total` matching, and every genre and style for a filter.
    With no index yet: `{"index": null, "message": ...}`."""
    songs = await run_in_threadpool(page.songs)
    if songs is None:
        return {"index": None, "message": NO_INDEX_HINT, "total": 0, "rows": []}
    out = select(songs, q=q, genre=genre, verdict=verdict, sort=sort, order=order, offset=offset, limit=limit)
    return {"index": {"name": page.index.name, "songs": len(songs)},
            "library": page.library.name if page.library else None, **out, **facets(songs)}


@router.get("/api/library/{song_id}", tags=["library"], summary="One tagged song: its analysis, as stored")
async def library_song(page: Page, song_id: int) -> dict:
    """The song's row with `analysis` (genres, styles, verdict, windows over time) and `written` (the genre
    values genrify wrote, `null` when none); `audio_url` and `timeline_url` to play and chart it."""
    song = await run_in_threadpool(page.analysis, song_id)
    return {**song, "audio_url": f"/api/library/{song_id}/audio", "timeline_url": f"/api/library/{song_id}/timeline"}


@router.get("/api/library/{song_id}/timeline", tags=["library"], summary="A song's genre over time (PNG)",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def library_timeline(request: Request, page: Page, song_id: int) -> Response:
    """The song's genre probabilities window by window, drawn as on the main page, from the stored analysis."""
    song = await run_in_threadpool(page.analysis, song_id)
    windows = song["analysis"].get("windows") or {}

    def draw() -> bytes:
        import numpy as np

        from genrify import report
        from genrify.web.analysis import TIMELINE_FONT_PT, TIMELINE_HEIGHT_IN

        probs = np.asarray(windows.get("probabilities") or [], dtype=np.float64)
        labels = list(windows.get("labels") or [])
        return report.timeline_png(windows.get("starts") or [], probs.reshape(-1, len(labels)), labels, top=5,
                                   duration=song["analysis"].get("duration"), height=TIMELINE_HEIGHT_IN,
                                   fontsize=TIMELINE_FONT_PT)

    # Drawing is a short CPU job: it waits in the bounded look-up lane, never on the event loop.
    png = await request.app.state.genrify.run_lookup(draw)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})


@router.head("/api/library/{song_id}/audio", include_in_schema=False)
@router.get("/api/library/{song_id}/audio", tags=["library"], summary="A tagged song's audio (Range supported)")
async def library_audio(request: Request, page: Page, song_id: int) -> Response:
    """Only a file the results index names (by the song's id), still a regular file: else 404."""
    path = await run_in_threadpool(page.song_file, song_id)
    return audio_response(path, request=request)
