"""One scan of a music folder for the library index: which files it meets, which it refuses, and why.

:class:`FolderScan` walks the folder (directory symlinks are not entered, so a
link loop cannot recurse), keeps only audio files (by extension, hidden files
skipped), resolves links and refuses those whose target leaves the folder and
those that are not regular files or are larger than
:data:`~genrify.fileio.MAX_FILE_BYTES` (a FIFO named ``.mp3`` would block the
scan, ``/dev/zero`` never ends), and keeps the tallies that become the
:class:`ScanSummary`. What is done with each file, and the database, belong to :class:`~genrify.sources.library.LibraryIndex`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from genrify.audio import AUDIO_EXTENSIONS
from genrify.errors import DatasetError
from genrify.fileio import stat_regular
from genrify.sources.tags import read_tags

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanSummary:
    """What one :meth:`LibraryIndex.scan` did. ``failed`` lists ``(path, reason)``."""

    root: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped_outside: int = 0
    failed: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    seconds: float = 0.0

    #: How many of ``failed`` were refused before being counted as added, updated or unchanged.
    refused: int = 0

    @property
    def indexed(self) -> int:
        """Playable tracks found in this scan (added + updated + unchanged, minus their failures)."""
        return self.added + self.updated + self.unchanged - (len(self.failed) - self.refused)

    def __str__(self) -> str:
        return (
            f"{self.root}: {self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.removed} removed, {len(self.failed)} unreadable, "
            f"{self.skipped_outside} links outside the folder skipped ({self.seconds:.1f} s)"
        )


@dataclass
class FolderScan:
    """A scan of the folder ``root`` in progress: the files met so far and the tallies.

    ``known`` maps the paths indexed before this scan to their ``(size, mtime_ns)``;
    the caller counts ``added``/``updated``/``unchanged`` and appends to ``failed``.
    """

    root: Path
    known: dict[str, tuple[int, int]]
    seen: set[str] = field(default_factory=set)
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    outside: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    refused: int = 0

    def audio_files(self) -> Iterator[Path]:
        """The resolved audio files under ``root``, each once, in sorted walk order (lazily)."""

        def on_walk_error(exc: OSError) -> None:
            where = str(getattr(exc, "filename", "") or self.root)
            self._refuse(where, f"cannot list folder: {exc.strerror or exc}")

        for dirpath, dirnames, filenames in os.walk(self.root, onerror=on_walk_error, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames):
                if not name.lower().endswith(AUDIO_EXTENSIONS) or name.startswith("."):
                    continue
                real = self._admit(Path(dirpath) / name)
                if real is not None:
                    yield real

    def _admit(self, path: Path) -> Path | None:
        """The file ``path`` resolves to, when it lies inside the root and was not met yet; else ``None``."""
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):  # dangling link or a loop
            self._refuse(str(path), "broken symbolic link")
            return None
        if not inside(real, self.root):
            self.outside += 1
            log.info("skipping %s: links outside %s", path, self.root)
            return None
        if str(real) in self.seen:
            return None  # two links to one file: index it once
        try:
            stat_regular(real)  # only a stat: opening a FIFO would block the scan
        except OSError as exc:
            self._refuse(str(path), exc.strerror or str(exc))
            return None
        self.seen.add(str(real))
        return real

    def _refuse(self, path: str, reason: str) -> None:
        self.failed.append((path, reason))
        self.refused += 1

    def summary(self, *, removed: int, seconds: float) -> ScanSummary:
        """The finished scan's :class:`ScanSummary`."""
        return ScanSummary(
            root=str(self.root), added=self.added, updated=self.updated, unchanged=self.unchanged,
            removed=removed, skipped_outside=self.outside, failed=tuple(self.failed), seconds=seconds,
            refused=self.refused,
        )


def check_library_folder(root: str | os.PathLike) -> Path:
    """``root`` as a :class:`~pathlib.Path`, after refusing a missing folder, a file, and a folder
    with no audio file under it (:class:`~genrify.errors.DatasetError`), so that a scan of
    the wrong path says so before any index file is created."""
    path = Path(root)
    try:
        is_dir = path.is_dir()
    except OSError as exc:
        raise DatasetError(f"{root}: cannot read the library folder ({exc.strerror or exc})") from None
    if not is_dir:
        raise DatasetError(f"{root}: {'not a folder' if path.exists() else 'no such folder'}")
    for _, dirnames, filenames in os.walk(path, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(n.lower().endswith(AUDIO_EXTENSIONS) and not n.startswith(".") for n in filenames):
            return path
    raise DatasetError(f"{root}: no audio files in this folder (genrify reads "
                       f"{', '.join(e.lstrip('.') for e in AUDIO_EXTENSIONS)})")


def inside(path: Path, root: Path) -> bool:
    """Whether the resolved ``path`` lies under the resolved ``root``."""
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def file_tags(path: Path) -> tuple[dict, str | None]:
    """``(tags, None)`` for a readable audio file, else ``({}, reason)``; never raises, so one file never stops a scan."""
    try:
        stat_regular(path)  # again, right before mutagen opens it: it may have been swapped for a FIFO
    except OSError as exc:
        return {}, exc.strerror or str(exc)
    if not os.access(path, os.R_OK):
        return {}, "permission denied"
    try:
        return read_tags(path), None
    except DatasetError as exc:
        return {}, str(exc)
    except Exception as exc:  # never stop a scan on one file
        return {}, f"unreadable ({type(exc).__name__})"
