"""Labelled collections on disk: ``ROOT/<genre>/*.<audio>`` folders or a CSV manifest.

Labels are normalised here and only here (:func:`normalise_label`).
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from genrify.audio import AUDIO_EXTENSIONS
from genrify.errors import DatasetError
from genrify.fileio import read_regular


@dataclass(frozen=True)
class LabelledTrack:
    """One file of a labelled collection."""

    path: Path
    genre: str
    artist: str | None = None
    title: str | None = None


def normalise_label(label: str) -> str:
    """Canonical genre name: lower case, accents and punctuation removed (``"Hip-Hop"`` → ``"hiphop"``)."""
    text = unicodedata.normalize("NFKD", str(label)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "", text.lower())


def artist_title_from_name(path: Path) -> tuple[str | None, str | None]:
    """``"Artist - Title.ext"`` → ``("Artist", "Title")``; otherwise ``(None, stem)``."""
    stem = path.stem
    if " - " in stem:
        artist, title = stem.split(" - ", 1)
        return artist.strip() or None, title.strip() or None
    return None, stem


def audio_files(root: str | os.PathLike) -> list[Path]:
    """Audio files under the folder ``root``, recursively, in sorted order (hidden entries skipped;
    symlinked folders are not entered, so a link loop cannot recurse).

    Listed by name only: nothing is opened here. An entry named like audio that is
    not a regular file (a FIFO, a link to a device) stays in the list, so the
    stage that reads it refuses it with its reason rather than losing it unseen.
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / n for n in sorted(filenames)
                  if not n.startswith(".") and Path(n).suffix.lower() in AUDIO_EXTENSIONS]
    return found


def scan_labelled(root: str | os.PathLike) -> list[LabelledTrack]:
    """List the tracks of a labelled folder or CSV manifest (``path,genre[,artist,title]``).

    Manifest paths are relative to the manifest's folder. Hidden files and
    non-audio extensions are ignored; symlinks are followed only to files. As
    with :func:`audio_files`, tracks are listed by name, never opened: one that
    is not a regular file is refused, with its reason, by the stage that reads it.
    """
    root = Path(root)
    try:
        mode = os.stat(root).st_mode
    except (OSError, ValueError):
        raise DatasetError(f"{root}: no such file or folder") from None
    if not stat.S_ISDIR(mode):
        return _read_manifest(root)
    tracks = []
    for genre_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        genre = normalise_label(genre_dir.name)
        if not genre:
            continue
        for dirpath, dirnames, filenames in os.walk(genre_dir):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if name.startswith(".") or path.suffix.lower() not in AUDIO_EXTENSIONS:
                    continue
                artist, title = artist_title_from_name(path)
                tracks.append(LabelledTrack(path=path, genre=genre, artist=artist, title=title))
    if not tracks:
        raise DatasetError(_no_tracks_reason(root))
    return tracks


def _no_tracks_reason(root: Path) -> str:
    """Why the labelled folder ``root`` gave no tracks, and what to do about it."""
    expected = "put each genre's audio in its own sub-folder, ROOT/<genre>/song.mp3, or give a CSV manifest"
    loose = [n for n in os.listdir(root) if not n.startswith(".") and Path(n).suffix.lower() in AUDIO_EXTENSIONS]
    if loose:  # a flat folder of songs: the labels are missing, not the audio
        return f"{root}: no genre sub-folders ({len(loose)} audio files lie directly in it): {expected}"
    return f"{root}: no audio files found in genre sub-folders: {expected}"


def _read_manifest(path: Path) -> list[LabelledTrack]:
    try:
        # Bounded and never blocking: a manifest that is a FIFO or a link to /dev/zero is refused.
        text = read_regular(path).decode("utf-8")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames or not {"path", "genre"} <= set(reader.fieldnames):
            raise DatasetError(f"{path}: a manifest needs a header with at least 'path' and 'genre' columns")
        rows = list(reader)
    except OSError as exc:
        raise DatasetError(f"{path}: not a folder or a CSV manifest ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a CSV manifest (not UTF-8 text)") from None
    except csv.Error as exc:
        raise DatasetError(f"{path}: malformed CSV manifest ({exc})") from None
    tracks = []
    for i, row in enumerate(rows, start=2):
        if not row.get("path") or not row.get("genre"):
            raise DatasetError(f"{path}:{i}: missing path or genre")
        p = Path(row["path"])
        p = p if p.is_absolute() else path.parent / p
        tracks.append(LabelledTrack(path=p, genre=normalise_label(row["genre"]),
                                    artist=(row.get("artist") or None), title=(row.get("title") or None)))
    if not tracks:
        raise DatasetError(f"{path}: the manifest lists no tracks")
    return tracks
