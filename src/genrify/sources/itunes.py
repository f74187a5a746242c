"""The iTunes Search API as a song source: 30 s AAC/M4A previews, no key needed.

Endpoints used (``GET``, JSON ``{"resultCount": n, "results": [...]}``):

* ``/search?term=<artist title>&media=music&entity=song&limit=N&country=CC`` —
  results are re-ranked so that those whose artist and title contain the
  requested words come first (iTunes' own order is loose).
* ``/lookup?id=<trackId>&entity=song&country=CC`` — re-resolves a track's
  preview URL.
* ``/search?term=<genre>&attribute=genreIndex&media=music&entity=song&limit=200&offset=k``
  — the genre listing used by ``genrify collect`` (the Search API has no charts),
  kept only where the result's ``primaryGenreName`` matches the genre (letters
  and digits compared, case-insensitive, either containing the other: "hiphop"
  matches "Hip-Hop/Rap").

iTunes allows roughly 20 requests a minute; preview URLs seen in answers are
reused (see :class:`~genrify.sources.http.RemoteSource`) so that fetching a
searched song needs no lookup.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Iterator

from genrify.errors import NotFoundError, ProviderError
from genrify.sources.base import SongRef
from genrify.sources.http import HttpClient, RemoteSource

_PAGE = 200


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"[^0-9a-z]+", "", text.casefold())


def _words(text: str) -> list[str]:
    return [w for w in (_norm(w) for w in (text or "").split()) if w]


class ITunesSource(RemoteSource):
    """Songs and previews from the iTunes Search API."""

    name = "itunes"

    def __init__(self, base_url: str = "https://itunes.apple.com", *, cache=None,
                 client: HttpClient | None = None, country: str = "US", url_ttl: float = 600.0):
        super().__init__(base_url, cache=cache, client=client, url_ttl=url_ttl)
        self.country = country

    def search(self, *, artist: str, track: str, limit: int = 5) -> list[SongRef]:
        """Songs matching ``artist`` and ``track`` that have a preview, best first (at most ``limit``)."""
        term = " ".join(f"{artist or ''} {track or ''}".split())
        if not term:
            return []
        data = self._get("search", term=term, media="music", entity="song", limit=min(200, max(limit * 4, 10)))
        refs = self._songs(data)
        a_words, t_words = _words(artist), _words(track)

        def score(ref: SongRef) -> int:
            a, t = _norm(ref.artist), _norm(ref.title)
            return -(2 * all(w in a for w in a_words) + all(w in t for w in t_words))

        refs.sort(key=score)  # stable: iTunes' order breaks ties
        return refs[:limit]

    def lookup(self, track_id: str) -> tuple[SongRef, str]:
        """The track ``track_id`` and a fresh preview URL (:class:`NotFoundError` if none)."""
        track_id = str(track_id)
        if not track_id.isdigit():
            raise NotFoundError(f"itunes: no track {track_id!r}")
        data = self._get("lookup", id=track_id, entity="song")
        for item in data.get("results") or []:
            if not isinstance(item, dict) or str(item.get("trackId")) != track_id:
                continue
            ref, url = self._ref(item), item.get("previewUrl")
            if ref is not None and url:
                return ref, url
        raise NotFoundError(f"itunes: track {track_id} has no available preview")

    def genre_tracks(self, genre: str, *, limit: int | None = None, pages: int = 5) -> Iterator[SongRef]:
        """Songs whose primary genre matches ``genre``, from up to ``pages`` pages of 200 results."""
        want = _norm(genre)
        yielded = 0
        for page in range(pages):
            data = self._get("search", term=genre, attribute="genreIndex", media="music", entity="song",
                             limit=_PAGE, offset=page * _PAGE)
            results = data.get("results") or []
            for ref in self._songs(data):
                have = _norm(ref.genre or "")
                if want and have and (want in have or have in want):
                    yield ref
                    yielded += 1
                    if limit is not None and yielded >= limit:
                        return
            if len(results) < _PAGE:
                return

    # -- internals -----------------------------------------------------------------------

    def _get(self, path: str, **params: Any) -> dict:
        params["country"] = self.country
        data = self.client.get_json(self._url(path), params=params)
        if not isinstance(data, dict) or not isinstance(data.get("results", []), list):
            raise ProviderError(f"itunes: unexpected answer for /{path}")
        return data

    def _ref(self, item: dict) -> SongRef | None:
        if item.get("trackId") is None:
            return None
        millis = item.get("trackTimeMillis")
        return self._song_ref(item["trackId"], artist=item.get("artistName"), title=item.get("trackName"),
                              album=item.get("collectionName"),
                              duration=millis / 1000.0 if isinstance(millis, (int, float)) else None,
                              genre=item.get("primaryGenreName"))

    def _songs(self, data: dict) -> list[SongRef]:
        refs, seen = [], set()
        for item in data.get("results") or []:
            if not isinstance(item, dict) or item.get("kind", "song") != "song":
                continue
            ref, url = self._ref(item), item.get("previewUrl")
            if ref is None or not url or ref.id in seen:
                continue
            seen.add(ref.id)
            self._remember(ref.id, url)
            refs.append(ref)
        return refs
