"""The library page (``genrify serve --library DIR``): the songs ``genrify tag`` analysed, in a table
to sort and filter, each one to play with its genre over time.

The data is the results index of ``genrify tag``, read through the index's own read-only query
(:class:`~genrify.tagging.library.LibraryView`): the page never changes it, and a ``genrify tag``
run may go on while it is shown. With ``--library DIR`` the page lists the songs under DIR,
otherwise every song of the index; a page of rows is at most :data:`MAX_LIMIT` long. Songs are
named by their id in the index: audio is served only for a file the index names, that is still a
regular file, and a song's folder is shown relative to the library, never where it lives.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from genrify.errors import NotFoundError
from genrify.web.admission import Lane, LookupTimeoutError
from genrify.web.audio_response import audio_response, servable_file
from genrify.web.settings import static_dir

router = APIRouter()

#: The longest page of rows one request gets.
MAX_LIMIT = 200
#: Listings run at once (each a query of an in-memory SQLite database, the GIL released) and waiting.
MAX_QUERIES, MAX_WAITING = 2, 16
#: Searches (``q``) waiting for the one that runs at a time.
MAX_SEARCHES_WAITING = 4
#: How many nice steps below the server the search lane runs: a search may keep a core busy, the
#: event loop that answers every other request must not wait for it.
SEARCH_NICE = 10
#: Files whose genre tags are remembered (by path, inode, size and time) between pages.
MAX_FILES_REMEMBERED = 4096
VERDICTS = ("genre", "unsure", "not_music")
SORT_KEYS = ("song", "name", "artist", "title", "album", "genre", "style", "certainty", "verdict")
NO_INDEX_HINT = "No songs have been tagged yet: run `genrify tag DIR` (a dry run is enough), then reload this page."


class LibraryPage:
    """The page's songs: the results index at ``index`` (default: ``genrify tag``'s), songs under
    ``library`` only, through :class:`~genrify.tagging.library.LibraryView`, made on first use (building
    the app loads nothing of the tagging code). Listings run on a lane of their own (:data:`MAX_QUERIES`
    at once, :data:`MAX_WAITING` waiting, then 503), searches on another (one at a time,
    :data:`MAX_SEARCHES_WAITING` waiting), never on the event loop."""

    def __init__(self, index: str | os.PathLike | None = None, *, library: str | os.PathLike | None = None):
        self._index, self._library = index, library
        self._view = None
        # Searches (a scan of every song) wait in a lane of their own: a flood of them is refused at once and
        # never queues ahead of a plain page, which its order's index answers in milliseconds.
        self.lane = Lane(name="library pages", noun="library page", capacity=MAX_QUERIES, max_waiting=MAX_WAITING,
                         wait_timeout=5.0, timeout_s=60.0, retry_after=1, timeout_error=LookupTimeoutError)
        self.search_lane = Lane(name="library searches", noun="library search", capacity=1,
                                max_waiting=MAX_SEARCHES_WAITING, wait_timeout=5.0, timeout_s=60.0, retry_after=1,
                                timeout_error=LookupTimeoutError, nice=SEARCH_NICE)
        self._tags: OrderedDict[tuple, list[str] | None] = OrderedDict()
        self._tags_lock = threading.Lock()

    @property
    def view(self):
        """The index's read-only query (:class:`~genrify.tagging.library.LibraryView`)."""
        if self._view is None:
            from genrify.tagging.library import LibraryView

            self._view = LibraryView(self._index, library=self._library)
        return self._view

    def song_file(self, song_id: int) -> tuple[Path, tuple[Path, ...]]:
        """The file the index names for song ``song_id`` (shown on this page) and the folders it may be served
        from (:func:`~genrify.web.audio_response.servable_file`): the library, or without one the song's folder."""
        path = Path(self.view.song(song_id)["path"])
        return path, (self.view.library,) if self.view.library is not None else (path.parent,)

    def with_file_tags(self, rows: list[dict]) -> list[dict]:
        """``rows`` (songs of this page) with their files' genre as it is now: ``file_genres`` (the values
        read from the file, ``None`` when it cannot be read or served), ``would_write`` (what ``genrify tag
        --write`` would write) and ``tag`` (written, undone, kept, … :func:`~genrify.tagging.library.tag_state`,
        from the tag journal in the index's file). Only these rows' files are opened, each once per change."""
        from genrify.tagging.listing import read_changes, read_choice_inputs
        from genrify.tagging.library import tag_state, would_write

        found = {}
        for row in rows:
            try:
                path, roots = self.song_file(row["id"])
                real, st = servable_file(path, roots=roots)
            except NotFoundError:
                continue
            found[row["id"]] = (str(real), self._file_genres(real, st))
        changes = read_changes(self.view.index, [real for real, _ in found.values()])
        analyses = read_choice_inputs(self.view.index, list(found))
        out = []
        for row in rows:
            if row["id"] not in found:
                out.append(row | {"file_genres": None, "would_write": [], "tag": "no file"})
                continue
            real, current = found[row["id"]]
            names = would_write(analyses.get(row["id"]))
            out.append(row | {"file_genres": current, "would_write": names,
                              "tag": tag_state(current=current, names=names, change=changes.get(real))})
        return out

    def _file_genres(self, path: Path, st: os.stat_result) -> list[str] | None:
        from genrify.errors import TagError
        from genrify.sources.tags import read_genres

        # A file is read again only once it changed (a tag written or undone changes its size or time).
        key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
        with self._tags_lock:
            if key in self._tags:
                self._tags.move_to_end(key)
                return self._tags[key]
        try:
            genres = read_genres(path)
        except TagError:
            genres = None
        with self._tags_lock:
            self._tags[key] = genres
            while len(self._tags) > MAX_FILES_REMEMBERED:
                self._tags.popitem(last=False)
        return genres

    def listing(self, **params) -> dict | None:
        """:meth:`~genrify.tagging.library.LibraryView.query` with the rows' file tags (blocking)."""
        found = self.view.query(**params)
        if found is not None:
            found["rows"] = self.with_file_tags(found["rows"])
        return found

    def details(self, song_id: int) -> dict:
        """:meth:`~genrify.tagging.library.LibraryView.details` with the file's tags (blocking)."""
        song = self.view.details(song_id)
        return self.with_file_tags([song])[0]


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


# response_model=None: the rows are the index's text as stored, which may hold a file name's undecodable
# byte (a lone surrogate); pydantic's serializer refuses it, SafeJSONResponse writes it as an escape.
@router.get("/api/library", tags=["library"], summary="Tagged songs: one page, sorted and filtered",
            response_model=None)
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
    styles, certainty 0–1, verdict; `file_genres`: the genre the file carries now, read from it, `would_write`:
    what `genrify tag --write` would write, `tag`: written, undone, kept, unchanged, nothing, not written, no
    file) from `offset`, `total` matching, every genre and style for a filter, and `skipped` (rows of the index
    that could not be read: `count` and the first few with their `problem`). With no index yet:
    `{"index": null, "message": ...}`. At most 8 different words in `q` (422); 503 when too many listings wait."""
    view = page.view
    # Every search waits for its slot, even one refused for too many words: a client resending refused
    # searches at once is held back by the 503 + Retry-After of a full lane.
    lane = page.search_lane if q.strip() else page.lane
    found = await lane.run(lambda: page.listing(q=q, genre=genre, verdict=verdict, sort=sort, order=order,
                                                     offset=offset, limit=limit))
    if found is None:
        return {"index": None, "message": NO_INDEX_HINT, "total": 0, "rows": []}
    songs = found.pop("songs")
    return {"index": {"name": view.index.name, "songs": songs},
            "library": view.library.name if view.library else None, **found}


@router.get("/api/library/{song_id}", tags=["library"], summary="One tagged song: its analysis, as stored",
            response_model=None)
async def library_song(page: Page, song_id: int) -> dict:
    """The song's row with `analysis` (genres, styles, verdict, windows over time) and `written` (the genre
    values genrify wrote, `null` when none), the file's genre now as in `/api/library`'s rows (`file_genres`,
    `would_write`, `tag`); `audio_url` and `timeline_url` to play and chart it."""
    song = await page.lane.run(lambda: page.details(song_id))
    return {**song, "audio_url": f"/api/library/{song_id}/audio", "timeline_url": f"/api/library/{song_id}/timeline"}


@router.get("/api/library/{song_id}/timeline", tags=["library"], summary="A song's genre over time (PNG)",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def library_timeline(request: Request, page: Page, song_id: int) -> Response:
    """The song's genre probabilities window by window, drawn as on the main page, from the stored analysis."""
    song = await page.lane.run(lambda: page.view.details(song_id))
    starts, probs, labels, duration = _stored_timeline(song["analysis"])

    def draw() -> bytes:
        from genrify import report
        from genrify.web.analysis import TIMELINE_FONT_PT, TIMELINE_HEIGHT_IN

        return report.timeline_png(starts, probs, labels, top=5, duration=duration, height=TIMELINE_HEIGHT_IN,
                                   fontsize=TIMELINE_FONT_PT)

    # Drawing is a short CPU job: it waits in the bounded look-up lane, never on the event loop.
    png = await request.app.state.genrify.run_lookup(draw)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})


#: The longest song a stored timeline may span (seconds): a day, far past any analysis genrify writes.
MAX_STORED_SECONDS = 86_400.0


def _stored_timeline(analysis) -> tuple:
    """``(starts, probabilities (n, labels), labels, duration)`` of a stored analysis's windows, checked:
    the index is a file on disk, and an analysis without windows, with ragged or non-finite ones, has
    no genre over time to draw (:class:`~genrify.errors.NotFoundError`, a 404)."""
    import numpy as np

    windows = analysis.get("windows") if isinstance(analysis, dict) else None
    try:
        labels = [str(x) for x in windows["labels"]]
        probs = np.asarray(windows["probabilities"], dtype=np.float64).reshape(-1, len(labels))
        starts = np.asarray(windows["starts"], dtype=np.float64).reshape(-1)
        duration = analysis.get("duration")
        duration = None if duration is None else float(duration)
    except (TypeError, ValueError, KeyError, ZeroDivisionError):
        raise NotFoundError("no genre over time is stored for this song") from None
    # As genrify writes them: probabilities, and window starts in seconds from 0 on, in order, within a
    # song's length (far beyond it, a chart's axis has no ticks to compute).
    if not (len(probs) and len(starts) == len(probs) and np.isfinite(probs).all() and np.isfinite(starts).all()
            and (duration is None or 0 <= duration <= MAX_STORED_SECONDS)
            and probs.min() >= 0 and probs.max() <= 1 + 1e-6
            and starts[0] >= 0 and starts[-1] <= MAX_STORED_SECONDS and (np.diff(starts) >= 0).all()):
        raise NotFoundError("no genre over time is stored for this song")
    return starts, probs, labels, duration


@router.head("/api/library/{song_id}/audio", include_in_schema=False)
@router.get("/api/library/{song_id}/audio", tags=["library"], summary="A tagged song's audio (Range supported)")
async def library_audio(request: Request, page: Page, song_id: int) -> Response:
    """Only a file the results index names (by the song's id), still a regular file inside the library with
    its links resolved: else 404."""
    path, roots = await run_in_threadpool(page.song_file, song_id)
    return await audio_response(path, roots=roots, request=request)
