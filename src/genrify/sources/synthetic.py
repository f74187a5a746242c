"""A deterministic procedural corpus of genre-like *test data* (never real music).

Five styles are labelled with the five genres of the 2017 system so that tests,
benchmarks and the web demo can run end to end without any downloaded audio:

========== ==============================================================
style      what is synthesised
========== ==============================================================
hiphop     slow swung boom-bap drums (kick, snare on 2 and 4, swung hats)
           and a long-decaying sub bass
edm        four-on-the-floor kick at about 125 BPM, off-beat open hats,
           16th closed hats, clap, filtered sawtooth bass on the off-beats
classical  sustained string-like additive triads with vibrato and slow
           swells, no drums
metal      distorted power-chord chugs, fast 16th double kick, snare,
           crash cymbals
jazz       swung ride cymbal, hi-hat on 2 and 4, walking bass, sparse
           syncopated 7th-chord comping
========== ==============================================================

Every random choice (key, tempo jitter, pattern variation, levels, a little
noise) comes from ``seed``, so the same ``(style, seed)`` always gives the same
samples. Synthesis (:mod:`genrify.sources.synthesis`) is vectorised numpy
(wavetable oscillators indexed by a cumulative phase, one-shot drum templates
added per hit): a 30 s clip at 22.05 kHz takes a few tens of milliseconds on
one core.
"""

from __future__ import annotations

import csv
import os
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from genrify.errors import ConfigError
from genrify.sources.synthesis import noise, render

#: The styles, named after the genres they imitate.
STYLES: tuple[str, ...] = ("hiphop", "edm", "classical", "metal", "jazz")

#: Output formats :func:`write_demo_corpus` can write.
FORMATS: tuple[str, ...] = ("wav", "flac", "ogg", "mp3", "m4a")

_STYLE_NAMES = {"hiphop": "Hip-Hop", "edm": "EDM", "classical": "Classical", "metal": "Metal", "jazz": "Jazz"}
_TITLE_FORMS = {"hiphop": "Beat Study", "edm": "Loop Study", "classical": "Study", "metal": "Riff Study", "jazz": "Swing Study"}
_TRACKS_PER_ARTIST = 4


# --------------------------------------------------------------------------- public API


def generate_clip(style: str, *, seed: int, sr: int = 22050, duration: float = 30.0) -> np.ndarray:
    """Synthesise one clip of ``style``.

    Args:
        style: one of :data:`STYLES`.
        seed: non-negative integer; the same ``(style, seed, sr, duration)`` gives
            identical samples.
        sr: sample rate in Hz (8000 or more).
        duration: length in seconds (> 0).

    Returns:
        float32 mono samples in [-1, 1], shape ``(round(duration * sr),)``.
    """
    if style not in STYLES:
        raise ConfigError(f"unknown synthetic style {style!r} (expected one of: {', '.join(STYLES)})")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(sr, (int, np.integer)) or sr < 8000:
        raise ConfigError(f"sr must be an integer of at least 8000 Hz, got {sr!r}")
    n = int(round(float(duration) * sr))
    if not np.isfinite(duration) or n < 1:
        raise ConfigError(f"duration must be positive and at least one sample long, got {duration!r}")

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(style.encode())]))
    y = render(style, rng, sr=int(sr), n=n)
    # A little broadband noise, as any recording has.
    y += noise(rng, n) * np.float32(10 ** (rng.uniform(-58, -46) / 20))
    peak = float(np.max(np.abs(y)))
    if peak > 0:
        y *= np.float32(rng.uniform(0.6, 0.95) / peak)
    return np.clip(y, -1.0, 1.0).astype(np.float32, copy=False)


def write_demo_corpus(
    out: str | os.PathLike,
    *,
    per_genre: int,
    seed: int = 0,
    sr: int = 22050,
    duration: float = 30.0,
    fmt: str = "wav",
    styles: Iterable[str] = STYLES,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Write ``per_genre`` synthetic clips of each style, tagged, plus a manifest.

    Files go to ``out/<style>/<Artist> - <Title>.<fmt>`` with artist, title and
    genre tags (ID3 for WAV and MP3, Vorbis comments for FLAC and Ogg, MP4 atoms
    for M4A), and ``out/manifest.csv`` lists ``path,genre,artist,title`` with
    ``path`` relative to ``out`` (POSIX separators). Names are invented and
    obviously synthetic, e.g. ``Synthetic Jazz Ensemble 2 - Swing Study No. 7``;
    four consecutive clips share an artist. Clip ``i`` of a style is
    :func:`generate_clip` with a seed derived from ``(seed, style, i)``. Every file
    is written to a temporary name in its folder and then renamed into place.

    Args:
        out: the corpus folder (created if missing).
        per_genre: clips per style (>= 1).
        seed: corpus seed.
        sr: sample rate in Hz.
        duration: clip length in seconds.
        fmt: ``"wav"`` (16-bit PCM), ``"flac"``, ``"ogg"`` (Vorbis), ``"mp3"`` or
            ``"m4a"`` (AAC, encoded with PyAV).
        styles: which styles to write (default: all of :data:`STYLES`).
        progress: called as ``progress(done, total)`` after each file.

    Returns:
        The manifest rows, as dicts with keys ``path``, ``genre``, ``artist``, ``title``.
    """
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ConfigError(f"unknown corpus format {fmt!r} (expected one of: {', '.join(FORMATS)})")
    styles = tuple(styles)
    for style in styles:
        if style not in STYLES:
            raise ConfigError(f"unknown synthetic style {style!r} (expected one of: {', '.join(STYLES)})")
    if isinstance(per_genre, bool) or not isinstance(per_genre, (int, np.integer)) or per_genre < 1:
        raise ConfigError(f"per_genre must be a positive integer, got {per_genre!r}")

    root = Path(out)
    rows: list[dict] = []
    total, done = len(styles) * int(per_genre), 0
    for style in styles:
        folder = root / style
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(int(per_genre)):
            artist, title = track_name(style, i)
            clip_seed = int(np.random.SeedSequence([int(seed), zlib.crc32(style.encode()), i]).generate_state(1)[0])
            y = generate_clip(style, seed=clip_seed, sr=sr, duration=duration)
            path = folder / f"{artist} - {title}.{fmt}"
            _write_atomic(path, lambda tmp: encode_tagged(tmp, y, sr=sr, fmt=fmt, artist=artist, title=title,
                                                          genre=style))
            rows.append({"path": f"{style}/{path.name}", "genre": style, "artist": artist, "title": title})
            done += 1
            if progress is not None:
                progress(done, total)

    def write_manifest(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=["path", "genre", "artist", "title"])
            writer.writeheader()
            writer.writerows(rows)

    root.mkdir(parents=True, exist_ok=True)
    _write_atomic(root / "manifest.csv", write_manifest)
    return rows


def track_name(style: str, index: int) -> tuple[str, str]:
    """The invented ``(artist, title)`` of clip ``index`` (0-based) of ``style``."""
    artist = f"Synthetic {_STYLE_NAMES[style]} Ensemble {index // _TRACKS_PER_ARTIST + 1}"
    return artist, f"{_TITLE_FORMS[style]} No. {index + 1}"


# --------------------------------------------------------------------------- writing


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` for a temporary name next to ``path``, then rename it into place."""
    from genrify.fileio import atomic_path

    with atomic_path(path) as tmp:
        write(tmp)


def encode_tagged(path: Path, y: np.ndarray, *, sr: int, fmt: str, artist: str, title: str,
                  genre: str | None = None) -> None:
    """Encode mono ``y`` (float32, ``sr`` Hz) to ``path`` as ``fmt`` (one of :data:`FORMATS`) with
    artist, title and (unless ``None``) genre tags. Not atomic: callers write to a temporary name."""
    import soundfile as sf

    if fmt == "m4a":
        _encode_aac(path, y, sr=sr)
        from mutagen.mp4 import MP4

        tags = MP4(path)
        tags["\xa9ART"], tags["\xa9nam"] = [artist], [title]
        if genre is not None:
            tags["\xa9gen"] = [genre]
        tags.save()
        return

    if fmt == "wav":
        sf.write(path, y, sr, format="WAV", subtype="PCM_16")
    elif fmt == "flac":
        sf.write(path, y, sr, format="FLAC", subtype="PCM_16")
    elif fmt == "ogg":
        sf.write(path, y, sr, format="OGG", subtype="VORBIS")
    else:  # mp3
        sf.write(path, y, sr, format="MP3", subtype="MPEG_LAYER_III")

    if fmt in ("flac", "ogg"):
        from mutagen.flac import FLAC
        from mutagen.oggvorbis import OggVorbis

        tags = (FLAC if fmt == "flac" else OggVorbis)(path)
        tags["artist"], tags["title"] = artist, title
        if genre is not None:
            tags["genre"] = genre
        tags.save()
    else:
        from mutagen.id3 import ID3, TCON, TIT2, TPE1
        from mutagen.mp3 import MP3
        from mutagen.wave import WAVE

        audio = (WAVE if fmt == "wav" else MP3)(path)
        if audio.tags is None:
            audio.add_tags()
        assert isinstance(audio.tags, ID3)
        audio.tags.add(TPE1(encoding=3, text=artist))
        audio.tags.add(TIT2(encoding=3, text=title))
        if genre is not None:
            audio.tags.add(TCON(encoding=3, text=genre))
        audio.save()


def _encode_aac(path: Path, y: np.ndarray, *, sr: int) -> None:
    import av

    with av.open(str(path), "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=sr, layout="mono")
        stream.bit_rate = 96_000
        frame_size = 1024
        pts = 0
        for start in range(0, len(y), frame_size):
            chunk = y[start : start + frame_size]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            frame.sample_rate, frame.pts = sr, pts
            pts += len(chunk)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
