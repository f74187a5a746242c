"""Deezer's public API as a song source: 30 s MP3 previews, no key needed.

Endpoints used (all ``GET``, JSON):

* ``/search?q=artist:"A" track:"T"&limit=N`` — Deezer's advanced search; when it
  finds nothing, a plain ``q=A T`` search is tried once.
* ``/track/{id}`` — re-resolves a track's (signed, expiring) ``preview`` URL.
* ``/search/playlist?q=<genre>`` then ``/playlist/{id}/tracks?index=&limit=`` —
  the genre listing used by ``genrify collect``. Deezer's ``/chart/{genre_id}``
  is capped at a few dozen tracks and often answers the overall chart for a
  genre; playlists named after a genre hold hundreds of tracks each and are
  what the original data collection used (genre playlists).

Deezer reports some errors inside a ``200`` answer as ``{"error": {"code": …}}``:
code 4 (quota exceeded, 50 requests / 5 s) is retried with the client's back-off,
code 800 ("no data") means not found, anything else is a provider error.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

from genrify.errors import NotFoundError, ProviderError
from genrify.sources.base import SongRef
from genrify.sources.http import HttpClient, RemoteSource

_QUOTA = 4
_NO_DATA = 800
_PAGE = 100


def _quoted(text: str) -> str:
    return " ".join(text.replace('"', " ").split())


class DeezerSource(RemoteSource):
    """Songs and previews from Deezer (``base_url`` points elsewhere for tests or a proxy)."""

    name = "deezer"

    def __init__(self, base_url: str = "https://api.deezer.com", *, cache=None,
                 client: HttpClient | None = None, url_ttl: float = 600.0):
        super().__init__(base_url, cache=cache, client=client, url_ttl=url_ttl)

    # -- Source protocol -----------------------------------------------------------------

    def search(self, *, artist: str, track: str, limit: int = 5) -> list[SongRef]:
        """Songs matching ``artist`` and ``track`` that have a preview, best first (at most ``limit``)."""
        artist, track = _quoted(artist or ""), _quoted(track or "")
        if not artist and not track:
            return []
        terms = [f'artist:"{artist}"' if artist else "", f'track:"{track}"' if track else ""]
        queries = [" ".join(t for t in terms if t)]
        if artist and track:
            queries.append(f"{artist} {track}")
        for q in queries:
            refs = self._tracks(self._get("search", q=q, limit=max(limit * 2, limit)), limit=limit)
            if refs:
                return refs
        return []

    def lookup(self, track_id: str) -> tuple[SongRef, str]:
        """The track ``track_id`` and a fresh preview URL (:class:`NotFoundError` if none)."""
        track_id = str(track_id)
        if not track_id.isdigit():
            raise NotFoundError(f"deezer: no track {track_id!r}")
        data = self._get(f"track/{track_id}")
        ref = self._ref(data) if isinstance(data, dict) else None
        url = data.get("preview") if isinstance(data, dict) else None
        if ref is None or not url:
            raise NotFoundError(f"deezer: track {track_id} has no available preview")
        return ref, url

    # -- genre listing for collect -------------------------------------------------------

    def genre_tracks(self, genre: str, *, limit: int | None = None, playlists: int = 25) -> Iterator[SongRef]:
        """Tracks with a preview from the playlists Deezer finds for ``genre``, in order.

        Walks up to ``playlists`` playlists, paging through each; yields at most
        ``limit`` tracks (``None``: all). The same track may be yielded twice when
        two playlists hold it; callers de-duplicate.
        """
        found = self._get("search/playlist", q=genre, limit=playlists)
        yielded = 0
        for pl in (found.get("data") or [])[:playlists]:
            pid = pl.get("id") if isinstance(pl, dict) else None
            if pid is None:
                continue
            index = 0
            while True:
                page = self._get(f"playlist/{int(pid)}/tracks", index=index, limit=_PAGE)
                items = page.get("data") or []
                for ref in self._tracks(page, limit=None):
                    yield ref
                    yielded += 1
                    if limit is not None and yielded >= limit:
                        return
                index += len(items)
                total = page.get("total")
                if not items or (isinstance(total, int) and index >= total) or not page.get("next"):
                    break

    # -- internals -----------------------------------------------------------------------

    def _get(self, path: str, **params: Any) -> dict:
        cfg = self.client.config
        for attempt in range(max(0, cfg.retries) + 1):
            data = self.client.get_json(self._url(path), params=params or None)
            if not isinstance(data, dict):
                raise ProviderError(f"deezer: unexpected answer for /{path} (not a JSON object)")
            err = data.get("error")
            if not err:
                return data
            code = err.get("code") if isinstance(err, dict) else None
            message = err.get("message", "error") if isinstance(err, dict) else str(err)
            if code == _NO_DATA:
                raise NotFoundError(f"deezer: nothing found for /{path}")
            if code == _QUOTA and attempt < cfg.retries:
                time.sleep(min(cfg.max_backoff, cfg.backoff * 2**attempt))
                continue
            raise ProviderError(f"deezer: {message} (code {code}) for /{path}")
        raise ProviderError(f"deezer: quota exceeded for /{path}; try again later")

    def _ref(self, item: Any) -> SongRef | None:
        if not isinstance(item, dict) or item.get("id") is None:
            return None
        artist = item.get("artist") if isinstance(item.get("artist"), dict) else {}
        album = item.get("album") if isinstance(item.get("album"), dict) else {}
        return self._song_ref(item["id"], artist=artist.get("name"), title=item.get("title"),
                              album=album.get("title"), duration=item.get("duration"))

    def _tracks(self, page: dict, *, limit: int | None) -> list[SongRef]:
        refs = []
        for item in page.get("data") or []:
            ref = self._ref(item)
            url = item.get("preview") if isinstance(item, dict) else None
            if ref is None or not url or item.get("readable") is False:
                continue
            self._remember(ref.id, url)
            refs.append(ref)
            if limit is not None and len(refs) >= limit:
                break
        return refs
