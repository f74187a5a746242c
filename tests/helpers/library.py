"""A small music library of real tagged files, written on the spot for the library and search tests.

``write_small_library(root)`` writes five short files under ``root`` and returns it:
two FLACs with artist / title tags (one with "feat." and an album, one with a
"(Remastered 2009)" title) and three untagged WAVs whose names carry the artist and
title in the usual forms ("Artist - Title", "Artist_-_Title") or not at all.
``write_flac`` and ``write_wav`` write one more such file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

#: Sample rate of the files written here: low, as only their tags and names are read.
SR = 8000


def tone(*, seconds: float = 1.0, freq: float = 440.0) -> np.ndarray:
    """A sine of ``freq`` Hz, ``seconds`` long at :data:`SR`, float32 at amplitude 0.3."""
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_flac(path: Path, *, artist=None, title=None, genre=None, album=None) -> Path:
    """A one-second FLAC at ``path`` (folders made) with the tags given (``None``: no such tag)."""
    from mutagen.flac import FLAC

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(), SR, format="FLAC")
    tags = FLAC(path)
    for key, value in (("artist", artist), ("title", title), ("genre", genre), ("album", album)):
        if value is not None:
            tags[key] = value
    tags.save()
    return path


def write_wav(path: Path) -> Path:
    """A one-second untagged WAV at ``path`` (folders made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(), SR)
    return path


def write_small_library(root: Path) -> Path:
    """The five files described above, under ``root``."""
    write_flac(root / "pop" / "01.flac", artist="Beyoncé feat. JAY-Z", title="Crazy in Love", genre="Pop",
               album="Dangerously in Love")
    write_flac(root / "jazz" / "take.flac", artist="The Dave Brubeck Quartet", title="Take Five (Remastered 2009)")
    write_wav(root / "Kevin_MacLeod_-_Vibe_Ace.wav")
    write_wav(root / "misc" / "Sigur Rós - Hoppípolla.wav")
    write_wav(root / "no separator here.wav")
    return root
