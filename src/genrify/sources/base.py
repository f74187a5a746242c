"""The contract every song source fulfils, so the web app and ``collect`` can try them in order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class SongRef:
    """A song found by a source. ``id`` is stable (a track id, never a signed URL)."""

    source: str
    id: str
    artist: str
    title: str
    album: str | None = None
    duration: float | None = None
    genre: str | None = None


class Source(Protocol):
    """A place songs can be searched for and their audio fetched from."""

    name: str

    def search(self, *, artist: str, track: str, limit: int = 5) -> list[SongRef]:
        """Best matches first; an empty list when nothing matches."""
        ...

    def fetch_audio(self, ref: SongRef) -> Path:
        """A local file holding the song's audio (the library file, or a cached preview)."""
        ...
