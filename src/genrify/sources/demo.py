"""The demo library: short clips of freely licensed music from the Debian archive, with credits.

``genrify serve`` with no ``--library`` searches this library, and the web page
offers its :data:`DEMO_SONGS` marked ``example`` as "Try:" songs. Nothing here is
committed to the repository or downloaded while serving: ``scripts/setup.sh``
fetches the Debian packages once (``tools/fetch_debian_music.py``, which lays
them out as ``DIR/unpacked/<package>/...``) and runs::

    python -m genrify.sources.demo --debian DIR

which cuts a :data:`CLIP_SECONDS` clip of every song into :func:`demo_dir`
(tagged Ogg Vorbis, ``Artist - Title.ogg``) and writes ``credits.csv`` beside
them (title, artist, licence, package, example). Licences were read from each
package's ``usr/share/doc/<package>/copyright``.

When the set-up could not fetch the packages (offline), :func:`read_credits`
finds nothing and the server falls back to the synthetic library of
:mod:`genrify.sources.synthetic`, saying so in its log and on the page.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from genrify.errors import ConfigError

#: Length of each demo clip in seconds: long enough for the timeline to show a few windows.
CLIP_SECONDS = 30.0
#: Sample rate of the clips written (mono Ogg Vorbis).
CLIP_SR = 44100
#: Fade at both ends of a clip, in seconds (why: a hard cut clicks).
FADE_SECONDS = 0.5
#: The credits file written beside the clips.
CREDITS = "credits.csv"
CREDIT_FIELDS = ("file", "title", "artist", "licence", "package", "example")


@dataclass(frozen=True)
class DemoSong:
    """One song of the demo library and where its clip comes from."""

    package: str  #: the Debian package that ships the recording
    path: str  #: the recording's path inside the package
    title: str
    artist: str
    licence: str  #: as stated in the package's ``debian/copyright``
    start: float  #: where the clip starts, in seconds into the recording
    example: bool = False  #: offered as a "Try:" song (the default model answers it with a genre)

    @property
    def file(self) -> str:
        """The clip's file name in the demo library."""
        return f"{self.artist} - {self.title}.ogg".replace("/", "-")


_SING = "usr/share/games/singularity/music"
_HYPER = "usr/share/hyperrogue/music"
_ASC = "usr/share/games/asc/music"
_BLUPI = "usr/share/planetblupi/music"
_BLUPI_BY = "Daniel Roux, EPSITEC SA & Denis Dumoulin"  # the soundtrack's copyright line

#: The demo songs, "Try:" songs first. The default model names the genre of every "Try:" clip
#: (electronic, classical, reggae, rock; ``tests/test_web_demo.py`` checks it on the built library).
DEMO_SONGS: tuple[DemoSong, ...] = (
    DemoSong("singularity-music", f"{_SING}/A New Journey.ogg", "A New Journey", "Max McCracken",
             "CC BY-SA 3.0", 30.0, example=True),
    DemoSong("hyperrogue-music", f"{_HYPER}/hr3-motion.ogg", "Motion", "Shawn Parrotte", "CC BY-SA 3.0", 30.0,
             example=True),
    DemoSong("planetblupi-music-ogg", f"{_BLUPI}/music001.ogg", "Planet Blupi Theme 1", _BLUPI_BY, "GPL-3+", 30.0,
             example=True),
    DemoSong("hyperrogue-music", f"{_HYPER}/hr-domina-hunting.ogg", "Hunting", "Lincoln Domina", "CC BY-SA 3.0",
             30.0, example=True),
    DemoSong("hyperrogue-music", f"{_HYPER}/hr3-jungle.ogg", "Jungle", "Shawn Parrotte", "CC BY-SA 3.0", 30.0),
    DemoSong("hyperrogue-music", f"{_HYPER}/hr3-crossroads.ogg", "Crossroads", "Shawn Parrotte", "CC BY-SA 3.0",
             30.0),
    DemoSong("hyperrogue-music", f"{_HYPER}/hr-savino-ocean.ogg", "Ocean", "Will Savino", "CC BY-SA 3.0", 30.0),
    DemoSong("planetblupi-music-ogg", f"{_BLUPI}/music007.ogg", "Planet Blupi Theme 8", _BLUPI_BY, "GPL-3+", 30.0),
    DemoSong("asc-music", f"{_ASC}/machine_wars.mp3", "Machine Wars", "Michael Kievernagel", "GPL-2+", 30.0),
)


def demo_packages() -> tuple[str, ...]:
    """The Debian packages the demo library is cut from, sorted."""
    return tuple(sorted({s.package for s in DEMO_SONGS}))


def demo_dir() -> Path:
    """Where the demo library lives: ``<user data folder>/demo-library`` (``$GENRIFY_DATA_DIR`` overrides)."""
    from genrify.fileio import default_data_dir

    return default_data_dir() / "demo-library"


def credits_text(songs=DEMO_SONGS) -> str:
    """One line per song: ``"Title" by Artist (licence; Debian package p)``."""
    return "\n".join(f'"{s.title}" by {s.artist} ({s.licence}; Debian package {s.package})' for s in songs)


def read_credits(root: str | os.PathLike | None = None) -> list[dict] | None:
    """The credits of a built demo library (rows of :data:`CREDIT_FIELDS`, ``example`` a bool),
    or ``None`` when none is built at ``root`` (default :func:`demo_dir`) or a clip is missing."""
    root = Path(root) if root is not None else demo_dir()
    try:
        with open(root / CREDITS, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    if not rows or any(not (root / r.get("file", "")).is_file() for r in rows):
        return None
    return [{**r, "example": r.get("example") == "1"} for r in rows]


def demo_library_ready(root: str | os.PathLike | None = None) -> bool:
    """Whether the demo library at ``root`` (default :func:`demo_dir`) is built and holds every song
    of :data:`DEMO_SONGS` (an older build with other songs is rebuilt by ``scripts/setup.sh``)."""
    credits = read_credits(root)
    return credits is not None and [c["file"] for c in credits] == [s.file for s in DEMO_SONGS]


def build_demo_library(*, debian_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                       songs=DEMO_SONGS) -> Path:
    """Cut every song of ``songs`` from the unpacked packages under ``debian_dir`` into ``out``.

    Args:
        debian_dir: the folder ``tools/fetch_debian_music.py --out`` filled
            (recordings under ``unpacked/<package>/<path>``).
        out: the demo library (default :func:`demo_dir`); replaced as a whole:
            the clips are written into a temporary sibling folder that is then
            renamed into place, so an interrupted build leaves the old library (or none).
        songs: the songs to cut (default :data:`DEMO_SONGS`).

    Returns:
        ``out``, holding one tagged Ogg clip per song and :data:`CREDITS`.

    Raises:
        ConfigError: a recording is missing (the package was not fetched).
    """
    from genrify.fileio import atomic_path

    unpacked = Path(debian_dir) / "unpacked"
    target = Path(out) if out is not None else demo_dir()
    missing = [f"{s.package}: {s.path}" for s in songs if not (unpacked / s.package / s.path).is_file()]
    if missing:
        raise ConfigError(f"{unpacked}: {len(missing)} demo recording(s) missing, e.g. {missing[0]} "
                          "(fetch the packages with tools/fetch_debian_music.py first)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide the library from a server run as another user
        for song in songs:
            with atomic_path(tmp / song.file) as part:
                _cut(unpacked / song.package / song.path, part, song)
        with open(tmp / CREDITS, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=CREDIT_FIELDS)
            writer.writeheader()
            for s in songs:
                writer.writerow({"file": s.file, "title": s.title, "artist": s.artist, "licence": s.licence,
                                 "package": s.package, "example": "1" if s.example else "0"})
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _cut(source: Path, dest: Path, song: DemoSong) -> None:
    """Decode :data:`CLIP_SECONDS` of ``source`` from ``song.start``, fade its ends, encode to ``dest``."""
    import numpy as np

    from genrify.audio import load_audio
    from genrify.sources.synthetic import encode_tagged

    y, sr = load_audio(source, sr=CLIP_SR, offset=song.start, max_duration=CLIP_SECONDS)
    fade = min(int(FADE_SECONDS * sr), len(y) // 2)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        y = y.copy()
        y[:fade] *= ramp
        y[-fade:] *= ramp[::-1]
    encode_tagged(dest, y, sr=sr, fmt="ogg", artist=song.artist, title=song.title)


def main(argv=None) -> int:
    """``python -m genrify.sources.demo --debian DIR [--out DIR]`` (run by ``scripts/setup.sh``)."""
    ap = argparse.ArgumentParser(prog="python -m genrify.sources.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--debian", type=Path, help="the folder tools/fetch_debian_music.py filled")
    ap.add_argument("--out", type=Path, help=f"the demo library (default: {demo_dir()})")
    ap.add_argument("--list-packages", action="store_true", help="print the Debian packages needed, then exit")
    ap.add_argument("--check", action="store_true", help="exit 0 when the demo library is built and current")
    args = ap.parse_args(argv)
    if args.list_packages:
        print(" ".join(demo_packages()))
        return 0
    if args.check:
        return 0 if demo_library_ready(args.out) else 1
    if args.debian is None:
        ap.error("--debian DIR is required")
    try:
        root = build_demo_library(debian_dir=args.debian, out=args.out)
    except ConfigError as exc:
        print(f"genrify: {exc}", file=sys.stderr)
        return 1
    print(f"genrify: demo library of {len(DEMO_SONGS)} clips in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
