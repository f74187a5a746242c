"""Finding songs for the web app: the sources searched in order, the 404 that says what was searched,
the audio file behind an id, and a few songs of the library to try (blocking; run on the look-up lane).
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from genrify.errors import GenrifyError, NotFoundError
from genrify.sources.base import SongRef, Source
from genrify.web.providers import PROVIDER_NAMES
from genrify.web.state import AppState

log = logging.getLogger("genrify.web")

#: The message shown (and returned by the API) when no source has the song.
NOT_FOUND_MESSAGE = "The song could not be found"
#: Added when an online provider was searched: a match there may have had no preview to listen to.
NO_PREVIEW = " or has no available preview"

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Found:
    """A song some source has, with its audio fetched to a local file."""

    source: Source
    ref: SongRef
    path: Path


@dataclass(frozen=True)
class NotFound:
    """No source had a playable match; ``problems`` lists sources that failed (offline, errors),
    ``searched`` what was searched (``"your library (9 songs)"``, ``"Deezer"``), ``closest`` near misses."""

    problems: tuple[str, ...] = ()
    searched: tuple[str, ...] = ()
    closest: tuple[SongRef, ...] = ()
    previews: bool = False  #: an online provider was searched (the library's songs always have audio)


def find_song(state: AppState, *, artist: str, track: str, candidates: int = 3) -> Found | NotFound:
    """The first match whose audio can be fetched, trying sources in order (blocking; may use the network).

    A source that fails (offline, timeout, a bad answer, a preview that is not
    audio) is skipped and named in ``NotFound.problems``; the next one is tried.
    """
    problems: list[str] = []
    for src in state.sources:
        try:
            refs = src.search(artist=artist, track=track, limit=candidates)
        except GenrifyError as exc:
            log.warning("search in %s failed: %s", src.name, exc)
            problems.append(f"{src.name}: {exc}")
            continue
        for ref in refs[:candidates]:
            try:
                return Found(src, ref, Path(src.fetch_audio(ref)))
            except NotFoundError:
                continue
            except GenrifyError as exc:
                log.warning("audio of %s %s failed: %s", src.name, ref.id, exc)
                problems.append(f"{src.name}: {exc}")
                break
    return NotFound(tuple(problems), searched=tuple(_searched(state)), closest=tuple(_closest(state, artist, track)),
                    previews=any(src.name != "library" for src in state.sources))



def _searched(state: AppState) -> list[str]:
    """What a search looks in, in words: "your library (N songs)" or "the demo library (N songs)", providers."""
    out = []
    for src in state.sources:
        if src.name == "library" and state.library is not None:
            n = len(state.library)
            out.append(f"{'the demo library' if state.demo else 'your library'} ({n} song{'s' * (n != 1)})")
        else:
            out.append(PROVIDER_NAMES.get(src.name, src.name))
    return out


def _closest(state: AppState, artist: str, track: str) -> list[SongRef]:
    """Near misses in the library (never a remote provider: they would cost more requests)."""
    if state.library is None:
        return []
    try:
        return state.library.closest(artist=artist, track=track)
    except GenrifyError as exc:
        log.warning("near misses failed: %s", exc)
        return []


def not_found_error(result: NotFound) -> NotFoundError:
    """The 404: says what was searched; ``suggestions`` (artist, title) of near misses ride along."""
    where = "; searched " + ", ".join(result.searched) if result.searched else ""
    err = NotFoundError(NOT_FOUND_MESSAGE + (NO_PREVIEW if result.previews else "") + where)
    err.problems = result.problems  # type: ignore[attr-defined]
    err.details = {"searched": list(result.searched),  # type: ignore[attr-defined]
                   "suggestions": [{"artist": r.artist, "title": r.title} for r in result.closest]}
    return err


def search_all(state: AppState, *, artist: str, track: str, limit: int = 5) -> list[SongRef]:
    """Matches from every source, in source order."""
    out: list[SongRef] = []
    for src in state.sources:
        try:
            out.extend(src.search(artist=artist, track=track, limit=limit))
        except GenrifyError as exc:
            log.warning("search in %s failed: %s", src.name, exc)
    return out


def audio_path(state: AppState, source: str, track_id: str) -> tuple[Path, tuple[Path, ...]]:
    """The file to serve for ``(source, track_id)`` (an indexed library track or a cached preview) and the
    folder it must lie in (:func:`~genrify.web.audio_response.servable_file`): the track's library root, the cache.

    Never derived from request text: the id is only a lookup key, and whatever
    does not resolve through the index or the preview cache is "not found".
    """
    if not _SAFE_ID.match(track_id or ""):
        raise NotFoundError("no such track")
    src = state.source(source)
    if src is None:
        raise NotFoundError("no such track")
    if source == "library":
        return state.library.path_for(track_id), (Path(state.library.get(track_id).root),)
    cache = getattr(src, "cache", None)
    path = cache.path_for(source, track_id) if cache is not None else None
    if path is None:
        raise NotFoundError("no such track (previews are served once they were fetched for an analysis)")
    return Path(path), (Path(cache.root),)


def ref_dict(ref: SongRef) -> dict:
    """``ref`` as the API shows a song: its fields (source, id, artist, title, …) as a JSON object."""
    return asdict(ref)


def library_examples(state: AppState, n: int = 5) -> list[dict]:
    """A few library tracks spread over the library, for the page's example values."""
    if state.library is None:
        return []
    if state.demo and state.demo["credits"]:
        chosen = [c for c in state.demo["credits"] if c["example"]][:n]
        return [{"artist": c["artist"], "title": c["title"], "genre_tag": None} for c in chosen]
    tracks = state.library.tracks()
    if not tracks:
        return []
    step = max(1, len(tracks) // max(1, n))
    return [{"artist": t.artist, "title": t.title, "genre_tag": t.genre} for t in tracks[::step][:n]]
