"""Genre tags in the user's own audio files: written back with mutagen, atomically.

The file is copied beside itself, the copy is tagged and then renamed over the
original, so an interruption leaves the old file or the new one, never a half-
written song. Audio data is not touched; a link is followed and the file it
points to is tagged (the link stays a link).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from genrify.errors import TagError


def _open(path: Path):
    import mutagen

    try:
        audio = mutagen.File(str(path), easy=True)
    except Exception as exc:  # mutagen raises many types on damaged files
        raise TagError(f"{path}: cannot read its tags ({type(exc).__name__}: {str(exc)[:80]})") from None
    if audio is None:
        raise TagError(f"{path}: not a file whose tags genrify can write (MP3, FLAC, Ogg, Opus, M4A, WAV, AIFF)")
    return audio


def read_genre(path: str | os.PathLike) -> str | None:
    """The file's genre tag, or ``None`` when it has none."""
    from mutagen.id3 import ID3

    audio = _open(Path(path))
    if audio.tags is None:
        return None
    if isinstance(audio.tags, ID3):  # WAV / AIFF carry plain ID3 frames
        frame = audio.tags.get("TCON")
        return str(frame.text[0]) if frame and frame.text else None
    values = audio.tags.get("genre") or []
    return str(values[0]) if values else None


def write_genre(path: str | os.PathLike, genre: str) -> None:
    """Set the genre tag of the audio file ``path`` to ``genre`` (replacing any earlier genre)."""
    from mutagen.id3 import ID3, TCON

    from genrify.fileio import atomic_path

    path = Path(path).resolve()
    if not path.is_file():
        raise TagError(f"{path}: no such file")
    kind = type(_open(path))  # refuse what cannot be tagged before copying anything
    with atomic_path(path) as tmp:
        try:
            shutil.copy2(path, tmp)  # the content, permissions and times of the original
        except OSError as exc:
            raise TagError(f"{path}: cannot copy it to write its tags ({exc.strerror or exc})") from None
        try:  # the copy's temporary name hides its type from mutagen's guess: open it as the original
            audio = kind(str(tmp))
        except Exception as exc:
            raise TagError(f"{path}: cannot read its tags ({type(exc).__name__}: {str(exc)[:80]})") from None
        if audio.tags is None:
            audio.add_tags()
        if isinstance(audio.tags, ID3):
            audio.tags.setall("TCON", [TCON(encoding=3, text=[genre])])
        else:
            audio.tags["genre"] = [genre]
        try:
            audio.save()
        except Exception as exc:
            raise TagError(f"{path}: cannot write its tags ({type(exc).__name__}: {str(exc)[:80]})") from None
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
