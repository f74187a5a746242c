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
import stat
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from genrify.errors import NotFoundError
from genrify.web.audio_response import audio_response
from genrify.web.settings import static_dir

router = APIRouter()

#: The longest page of rows one request gets.
MAX_LIMIT = 200
VERDICTS = ("genre", "unsure", "not_music")
SORT_KEYS = ("song", "name", "artist", "title", "album", "genre", "style", "certainty", "verdict")
NO_INDEX_HINT = "No songs have been tagged yet: run `genrify tag DIR` (a dry run is enough), then reload this page."


class LibraryPage:
    """The page's songs: the results index at ``index`` (default: ``genrify tag``'s), songs under
    ``library`` only, through :class:`~genrify.tagging.library.LibraryView`, made on first use (building
    the app loads nothing of the tagging code)."""

    def __init__(self, index: str | os.PathLike | None = None, *, library: str | os.PathLike | None = None):
        self._index, self._library = index, library
        self._view = None

    @property
    def view(self):
        """The index's read-only query (:class:`~genrify.tagging.library.LibraryView`)."""
        if self._view is None:
            from genrify.tagging.library import LibraryView

            self._view = LibraryView(self._index, library=self._library)
        return self._view

    def song_file(self, song_id: int) -> Path:
        """The file of song ``song_id``: shown on this page, and still a regular file (links followed)."""
        path = Path(self.view.song(song_id)["path"])
        try:
            regular = stat.S_ISREG(path.stat().st_mode)
        except OSError:
            regular = False
        if not regular:
            raise NotFoundError(f"{path.name}: the file is gone")
        return path


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
    styles, certainty 0–1, verdict) from `offset`, `total` matching, and every genre and style for a filter.
    With no index yet: `{"index": null, "message": ...}`."""
    view = page.view
    found = await run_in_threadpool(lambda: view.query(q=q, genre=genre, verdict=verdict, sort=sort, order=order,
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
    values genrify wrote, `null` when none); `audio_url` and `timeline_url` to play and chart it."""
    song = await run_in_threadpool(page.view.details, song_id)
    return {**song, "audio_url": f"/api/library/{song_id}/audio", "timeline_url": f"/api/library/{song_id}/timeline"}


@router.get("/api/library/{song_id}/timeline", tags=["library"], summary="A song's genre over time (PNG)",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def library_timeline(request: Request, page: Page, song_id: int) -> Response:
    """The song's genre probabilities window by window, drawn as on the main page, from the stored analysis."""
    song = await run_in_threadpool(page.view.details, song_id)
    starts, probs, labels, duration = _stored_timeline(song["analysis"])

    def draw() -> bytes:
        from genrify import report
        from genrify.web.analysis import TIMELINE_FONT_PT, TIMELINE_HEIGHT_IN

        return report.timeline_png(starts, probs, labels, top=5, duration=duration, height=TIMELINE_HEIGHT_IN,
                                   fontsize=TIMELINE_FONT_PT)

    # Drawing is a short CPU job: it waits in the bounded look-up lane, never on the event loop.
    png = await request.app.state.genrify.run_lookup(draw)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})


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
    if not (len(probs) and len(starts) == len(probs) and np.isfinite(probs).all() and np.isfinite(starts).all()
            and (duration is None or np.isfinite(duration))):
        raise NotFoundError("no genre over time is stored for this song")
    return starts, probs, labels, duration


@router.head("/api/library/{song_id}/audio", include_in_schema=False)
@router.get("/api/library/{song_id}/audio", tags=["library"], summary="A tagged song's audio (Range supported)")
async def library_audio(request: Request, page: Page, song_id: int) -> Response:
    """Only a file the results index names (by the song's id), still a regular file: else 404."""
    path = await run_in_threadpool(page.song_file, song_id)
    return audio_response(path, request=request)
