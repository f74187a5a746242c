"""Tags in the user's own audio files: read for the library index, the genre written back.

:func:`read_tags` gives what the library index keeps of a file (artist, title,
album, genre, duration). :func:`write_genre` writes the genre with mutagen,
atomically: the file is copied beside itself, the copy is tagged and then
renamed over the original, so an interruption leaves the old file or the new
one, never a half-written song. Audio data is not touched; a link is followed
and the file it points to is tagged (the link stays a link).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from genrify.errors import DatasetError, TagError

log = logging.getLogger(__name__)

#: The ID3 frames behind the easy tag names, for files whose ID3 tags mutagen gives as frames.
_ID3_FRAMES = {"artist": "TPE1", "albumartist": "TPE2", "title": "TIT2", "album": "TALB", "genre": "TCON"}


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


def read_tags(path: Path) -> dict:
    """Artist, title, album, genre (``str`` or ``None``) and duration (s) of an audio file, from its tags.

    Keys are present only for what was found; the duration comes from libsndfile's
    header when mutagen has none. Raises :class:`~genrify.errors.DatasetError`
    when the file is not audio at all.
    """
    import mutagen

    info: dict = {}
    try:
        f = mutagen.File(str(path), easy=True)
    except Exception as exc:  # mutagen raises many types on damaged files
        f = None
        log.debug("no tags in %s: %s", path, exc)
    if f is not None:
        tags = f.tags or {}
        from mutagen.id3 import ID3

        if isinstance(tags, ID3):  # WAV / AIFF: plain ID3 frames, no "easy" keys
            tags = {key: list(tags[frame].text) for key, frame in _ID3_FRAMES.items() if frame in tags}

        def first(key):
            try:
                values = tags.get(key)
            except Exception:
                return None
            if not values:
                return None
            value = values[0] if isinstance(values, list) else values
            value = str(value).strip()
            return value or None

        info = {"artist": first("artist") or first("albumartist"), "title": first("title"),
                "album": first("album"), "genre": first("genre")}
        length = getattr(getattr(f, "info", None), "length", None)
        if length and length > 0:
            info["duration"] = float(length)
    if "duration" not in info:
        # Not recognised by mutagen (or no length): ask libsndfile for the header.
        import soundfile as sf

        if f is None and path.suffix.lower() == ".mp3":
            # mutagen reads every real MP3 header; libsndfile's MP3 decoder would
            # only print resync noise on stderr for garbage.
            raise DatasetError("not a recognised audio file (no MPEG audio frames)")
        try:
            si = sf.info(str(path))
        except Exception as exc:
            if f is None:
                raise DatasetError(f"not a recognised audio file ({type(exc).__name__})") from None
        else:
            if si.frames <= 0 or si.samplerate <= 0:
                raise DatasetError("audio file has no samples")
            info["duration"] = si.frames / si.samplerate
    return info
