"""The page, the original's endpoint and the documented ``/api``.

Blocking work never runs on the event loop, and nothing costly starts before it
is admitted: searches and preview downloads go to the bounded look-up lane
(:meth:`~genrify.web.state.AppState.run_lookup`), analyses to the bounded
analysis lane (:meth:`~genrify.web.state.AppState.run_analysis`), and an
upload takes its slot before its body is read. Routes that analyse refuse
requests made by other sites' pages (:mod:`genrify.web.origins`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from genrify.audio.formats import declared_not_audio, not_audio_kind
from genrify.errors import AudioDecodeError
from genrify.web import api_examples as ex
from genrify.web import lookup
from genrify.web.analysis import analyse_audio
from genrify.web.audio_response import audio_response
from genrify.web.cache import stored_answer
from genrify.web.origins import check_same_origin
from genrify.web.settings import static_dir
from genrify.web.state import AppState

API_DESCRIPTION = """\
Tell the genre of a song from its sound.

* `GET /d/music-prediction?artist=&track=` — the original widget's endpoint, same JSON shape:
  `{"response": true, "first": [genre, p], "second": [genre, p], "mfcc": "<base64 PNG>", "mp3": "<audio URL>"}`,
  p a probability 0–1. When no source has the song: `{"response": false}` (HTTP 200, other keys absent).
* `GET /api/search`, `GET /api/predict`, `POST /api/predict` (upload), `GET /api/audio/{source}/{id}` (seekable).
* Errors are `{"error": "..."}` with a 4xx/5xx status; 503 answers carry `Retry-After`.
* Routes that analyse answer 403 to requests made by another site's page (`Origin`, `Sec-Fetch-Site`).
"""

router = APIRouter()


def get_state(request: Request) -> AppState:
    """The running app's shared state (tests may override this dependency)."""
    return request.app.state.genrify


State = Annotated[AppState, Depends(get_state)]


def same_origin(request: Request) -> None:
    """Refuse (403) a request that another site's page made; see :mod:`genrify.web.origins`."""
    check_same_origin(request, allowed=request.app.state.settings.cors_origins)


#: For the routes that analyse: a foreign page must not be able to make them work.
SAME_ORIGIN = [Depends(same_origin)]
ArtistQ = Annotated[str, Query(max_length=200, description="artist name (may be empty)")]
#: Required, and not blank: ``pattern`` makes "   " as much a 422 as "" (named in the error by the app's handler).
TrackQ = Annotated[str, Query(min_length=1, max_length=300, pattern=r"\S", description="song title (required)")]
TopK = Annotated[int, Query(ge=1, le=50, description="how many genres to list")]
Images = Annotated[bool, Query(description="include the feature image and timeline as base64 PNGs")]


# ------------------------------------------------------------------------------ page


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(service_static("index.html"), media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})


@router.get("/docs", include_in_schema=False)
async def docs() -> FileResponse:
    return FileResponse(service_static("docs.html"), media_type="text/html; charset=utf-8")


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response:
    return Response(status_code=204)


def service_static(name: str):
    return static_dir() / name


@router.get("/healthz", tags=["service"], summary="Liveness and what is loaded")
async def healthz(state: State) -> dict:
    lib = state.library
    return {
        "status": "ok",
        "labels": list(state.classifier.labels),
        "model": Path(str(getattr(state.classifier, "source", "") or "")).name,  # a name, not where it lives
        "sources": [s.name for s in state.sources],
        "library": None if lib is None else {
            "tracks": await run_in_threadpool(len, lib),
            "scanning": state.scanning,
        },
        "max_upload_mb": round(state.settings.max_upload_bytes / (1024 * 1024), 2),
        "analyses": state.analyses.limiter.stats(),
        "searches": state.lookups.limiter.stats(),
        "uploads": state.uploads.stats(),
        "cache": None if state.cache is None else state.cache.stats(),  # analysis answers: entries, hits, misses
    }


async def analyse_cached_first(state: AppState, path: Path, *, top_k: int, images: bool, name: str,
                               legacy_mfcc: bool = False) -> dict:
    """:func:`~genrify.web.analysis.analyse_audio` of ``path`` on the analysis lane, or, when the analysis cache
    holds its answer, that answer at once: a song asked for again does not wait behind other songs' analyses."""
    t0 = time.perf_counter()
    hit, key = await run_in_threadpool(stored_answer, state.cache, state.classifier, path, top_k=top_k,
                                       images=images, legacy_mfcc=legacy_mfcc)
    if hit is not None:  # the fields analyse_audio adds: this request's answer came from the cache, in this time
        return {**hit, "cached": True, "elapsed_ms": round((time.perf_counter() - t0) * 1000, 1)}
    return await state.run_analysis(lambda: analyse_audio(path, classifier=state.classifier, cache=state.cache,
                                                          top_k=top_k, images=images, name=name,
                                                          legacy_mfcc=legacy_mfcc, key=key))


# ------------------------------------------------------------------------------ the original endpoint


@router.get("/d/music-prediction", tags=["original"], summary="The original widget's endpoint",
            dependencies=SAME_ORIGIN, responses={
                200: ex.example("found and analysed (not found: `{\"response\": false}`)", ex.ORIGINAL),
                422: ex.example("`track` missing or empty", ex.MISSING)})
async def music_prediction(request: Request, state: State, track: TrackQ, artist: ArtistQ = "") -> dict:
    """Find the song, analyse it, answer in the 2017 widget's JSON shape.

    `first`/`second` are `[genre, probability]` with the probability 0–1; `mfcc` is a
    base64 PNG of the song's MFCC image; `mp3` the URL that plays the song.
    Not found: `{"response": false}`.
    """
    found = await state.run_lookup(lambda: lookup.find_song(state, artist=artist, track=track))
    if not isinstance(found, lookup.Found):
        return {"response": False}
    ref, path = found.ref, found.path
    result = await analyse_cached_first(state, path, top_k=2, images=True, name=f"{ref.artist} - {ref.title}",
                                        legacy_mfcc=True)
    first, second = (result["top"] + [["", 0.0], ["", 0.0]])[:2]
    return {
        "response": True,
        "first": first,
        "second": second,
        "mfcc": result["images"]["features"],
        "mp3": str(request.url_for("audio", source=ref.source, track_id=ref.id)),
    }


# ------------------------------------------------------------------------------ /api


@router.get("/api/search", tags=["api"], summary="Songs matching an artist and a title, from every source",
            responses={200: ex.example("matches, best first (library tracks with their `audio_url`)", ex.SEARCH),
                       422: ex.example("`track` missing or empty", ex.MISSING)})
async def search(request: Request, state: State, track: TrackQ, artist: ArtistQ = "",
                 limit: Annotated[int, Query(ge=1, le=50)] = 5) -> dict:
    refs = await state.run_lookup(lambda: lookup.search_all(state, artist=artist, track=track, limit=limit))
    return {"results": [
        {**lookup.ref_dict(r), "audio_url": str(request.url_for("audio", source=r.source, track_id=r.id))}
        if r.source == "library" else lookup.ref_dict(r)
        for r in refs
    ]}


@router.get("/api/examples", tags=["api"], summary="A few songs of the local library (for example values)",
            responses={200: ex.example("songs to try, and the demo library's credits", ex.EXAMPLES)})
async def examples(state: State, n: Annotated[int, Query(ge=1, le=20)] = 5) -> dict:
    """`examples`: songs to try; `demo`: when the server runs on its demo library, its `kind`
    (`debian`: real music; `synthetic`: generated test clips, the fallback when set-up was offline), a `note`
    and the `credits` (file, title, artist, licence, Debian package) of every song; else `null`."""
    return {"examples": await state.run_lookup(lambda: lookup.library_examples(state, n)), "demo": state.demo}


@router.get("/api/predict", tags=["api"], summary="Find a song and analyse it", dependencies=SAME_ORIGIN,
            responses={200: ex.example("the song, its verdict, genres and pictures", ex.PREDICT),
                       404: ex.example("no source has the song: what was searched, near misses", ex.NOT_FOUND),
                       422: ex.example("`track` missing or empty", ex.MISSING)})
async def predict_song(request: Request, state: State, track: TrackQ, artist: ArtistQ = "",
                       top_k: TopK = 2, images: Images = True) -> dict:
    """The first match of the first source that has one, analysed.

    Returns the verdict (`genre`, `unsure` or `not_music`) and its message, the
    `top_k` genres, every genre's probability, probabilities per window over
    time, the song and its audio URL, and (with `images=true`) the feature image
    and the timeline as base64 PNGs; `cached` is true when the answer came from the server's analysis
    cache (the same file, byte for byte, with the same model and options), and `elapsed_ms` is this
    request's time. 404 `{"error": "The song could not be found ..."}`
    when no source has it; when a source failed on the way (offline, errors) the
    404 body also holds `"retry": true` and `"problems": [...]`.
    """
    found = await state.run_lookup(lambda: lookup.find_song(state, artist=artist, track=track))
    if not isinstance(found, lookup.Found):
        raise lookup.not_found_error(found)
    ref, path = found.ref, found.path
    result = await analyse_cached_first(state, path, top_k=top_k, images=images, name=f"{ref.artist} - {ref.title}")
    return {
        "song": lookup.ref_dict(ref),
        "audio_url": str(request.url_for("audio", source=ref.source, track_id=ref.id)),
        **result,
    }


def _check_media_type(content_type: str | None) -> None:
    """Refuse a declared text, image or document type with 415 (before anything is read)."""
    declared = declared_not_audio(content_type)
    if declared:
        raise AudioDecodeError(f"the upload is {declared}, not audio")


def _check_looks_like_audio(head: bytes, content_type: str | None) -> None:
    """Refuse obvious non-audio (text, HTML, JSON, images, documents) with 415 before it waits for an analysis:
    decoding would refuse it on the same first bytes (:func:`~genrify.audio.formats.not_audio_kind`)."""
    _check_media_type(content_type)
    if not head:
        raise AudioDecodeError("the upload is empty (0 bytes)")
    kind = not_audio_kind(head[:64])
    if kind:
        raise AudioDecodeError(f"the upload is {kind}, not audio")


@router.post(
    "/api/predict",
    tags=["api"],
    summary="Analyse an uploaded audio file",
    dependencies=SAME_ORIGIN,
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {"type": "string", "format": "binary"}}}},
        "audio/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    }}},
    responses={200: ex.example("the same answer as `GET /api/predict`, with `upload` instead of `song`",
                               {**{k: v for k, v in ex.PREDICT.items() if k != "song"}, "song": None,
                                "upload": {"filename": "song.mp3", "bytes": 482113}, "audio_url": None}),
               403: {"description": "made by another site's page"},
               413: {"description": "upload over the size limit"}, 415: {"description": "not audio"},
               422: {"description": "audio unusable (too short, empty, NaN)"},
               503: {"description": "too many analyses; see Retry-After"}},
)
async def predict_upload(request: Request, state: State, top_k: TopK = 2, images: Images = True) -> dict:
    """Same answer as `GET /api/predict`, for a file sent as multipart field `file` or as the raw body.

    The size limit (default 20 MB) is enforced while the body streams in.
    """
    from genrify.web.uploads import refuse_declared_oversize, spooled_upload

    settings = state.settings
    # Everything that can be judged from the headers is judged before a slot is taken.
    refuse_declared_oversize(request, max_bytes=settings.max_upload_bytes)
    if not request.headers.get("content-type", "").lower().startswith("multipart/"):
        _check_media_type(request.headers.get("content-type"))
    async with state.uploads.slot():  # admitted before the first body byte is read
        async with spooled_upload(request, max_bytes=settings.max_upload_bytes, timeout_s=settings.upload_timeout_s,
                                  spool_dir=state.spool_dir) as upload:
            _check_looks_like_audio(upload.head, upload.content_type)
            name = upload.filename or "upload"
            result = await analyse_cached_first(state, upload.path, top_k=top_k, images=images, name=name)
    return {
        "song": None,
        "upload": {"filename": upload.filename, "bytes": upload.size},
        "audio_url": None,
        **result,
    }


@router.head("/api/audio/{source}/{track_id}", include_in_schema=False)
@router.get("/api/audio/{source}/{track_id}", name="audio", tags=["api"],
            summary="The audio of an indexed library track or a cached preview (Range supported)")
async def audio(request: Request, state: State, source: str, track_id: str) -> Response:
    """Serves only files known by id: library tracks from the index, previews from the cache.

    Supports `Range: bytes=...` (206 with `Content-Range`; 416 for a range that cannot be served).
    """
    path, roots = await run_in_threadpool(lookup.audio_path, state, source, track_id)
    return await audio_response(path, roots=roots, request=request)
