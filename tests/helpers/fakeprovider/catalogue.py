"""What the fake providers serve: the catalogue of tracks and playlists, and the previews' audio.

:func:`default_catalogue` holds the tracks the provider tests need, awkward ones
included; a preview is the synthetic corpus' clip of the track's genre (a sine
mixture without it), encoded as MP3 by libsndfile (:func:`encode_mp3`, Deezer's) or
as M4A/AAC by PyAV (:func:`encode_m4a`, iTunes').
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np


@dataclass
class FakeTrack:
    id: int
    artist: str
    title: str
    genre: str          # the synthetic style that makes its audio
    album: str = "Fake Album"
    duration: int = 180
    has_preview: bool = True
    seed: int = 0


@dataclass
class Playlist:
    id: int
    title: str
    track_ids: list[int] = field(default_factory=list)


GENRE_NAMES = {"metal": "Metal", "jazz": "Jazz", "classical": "Classical", "hiphop": "Hip-Hop/Rap", "edm": "Dance"}


def default_catalogue(per_genre: int = 6) -> tuple[list[FakeTrack], list[Playlist]]:
    """Tracks for metal, jazz and classical, plus the awkward cases the tests need.

    * track 9001 sits in a metal *and* a jazz playlist (a cross-genre duplicate);
    * track 9002 has no preview; track 9003 repeats the title of a metal track
      under another id (same song, other release);
    * track 9004 has path separators, control characters and quotes in its names.
    """
    tracks, playlists = [], []
    next_id = 1000
    for g, genre in enumerate(("metal", "jazz", "classical")):
        ids = []
        for i in range(per_genre):
            t = FakeTrack(next_id, f"{GENRE_NAMES[genre]} Band {i // 3 + 1}", f"{GENRE_NAMES[genre]} Song {i + 1}",
                          genre, album=f"{GENRE_NAMES[genre]} Album", seed=next_id)
            tracks.append(t)
            ids.append(t.id)
            next_id += 1
        half = len(ids) // 2
        playlists.append(Playlist(100 + 2 * g, f"{GENRE_NAMES[genre]} Classics", ids[:half]))
        playlists.append(Playlist(101 + 2 * g, f"Best of {GENRE_NAMES[genre]}", ids[half:]))
    shared = FakeTrack(9001, "Crossover Quartet", "Both Ways", "jazz", seed=9001)
    nopreview = FakeTrack(9002, "Silent Band", "No Preview Here", "metal", has_preview=False, seed=9002)
    rerelease = FakeTrack(9003, "Metal Band 1", "Metal Song 1", "metal", album="Greatest Hits", seed=9003)
    weird = FakeTrack(9004, "AC/DC\\Tribute", 'Back\x07 in "Black"\n', "metal", seed=9004)
    tracks += [shared, nopreview, rerelease, weird]
    by_id = {p.id: p for p in playlists}
    by_id[100].track_ids[1:1] = [9001, 9002, 9004]   # metal
    by_id[101].track_ids.append(9003)
    by_id[102].track_ids.insert(0, 9001)             # jazz
    return tracks, playlists


def _sine_clip(seed: int, sr: int, duration: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * duration)) / sr
    freqs = rng.uniform(110, 880, size=3)
    y = sum(np.sin(2 * np.pi * f * t) for f in freqs) / 6
    return y.astype(np.float32)


def make_clip(style: str, *, seed: int, sr: int, duration: float) -> np.ndarray:
    """Audio for a fake track: the synthetic corpus when available, else a sine mixture."""
    try:
        from genrify.sources.synthetic import generate_clip
    except ImportError:
        return _sine_clip(seed, sr, duration)
    return np.asarray(generate_clip(style, seed=seed, sr=sr, duration=duration), dtype=np.float32)


def encode_mp3(y: np.ndarray, sr: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, y, sr, format="MP3")
    return buf.getvalue()


def encode_m4a(y: np.ndarray, sr: int) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=sr)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(y[None, :], format="fltp", layout="mono")
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()
