"""Freely licensed music from the Debian archive, for teaching "this is music" beyond GTZAN.

    python tools/fetch_debian_music.py --out ~/.cache/genrify/debian-music

Downloads the packages below with ``apt-get download`` (no root needed, no
installation), unpacks them with ``dpkg-deb -x`` and lists every audio file
(also those inside a game's ``.pk3`` zip) in ``OUT/manifest.csv``
(``path,package,title``). Nothing is committed to the repository; the audio
stays in ``OUT``. Reruns reuse what is there.

The packages are game soundtracks under free licences (see each package's
``usr/share/doc/*/copyright``): electronic, ambient, orchestral, rock and
chiptune-like music of many artists — music GTZAN never heard. The packages
nexuiz-music, warzone2100-music, wesnoth-*-music and fretsonfire-songs-* are
kept for independent evaluation and are refused here.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import subprocess
import sys
import zipfile
from pathlib import Path

PACKAGES = ("singularity-music", "hyperrogue-music", "planetblupi-music-ogg", "fb-music-high", "asc-music",
            "drascula-music", "ufoai-music")
#: Held out for independent evaluation of genrify: never downloaded by its tools.
HELD_OUT = ("nexuiz-music", "warzone2100-music", "wesnoth-*-music", "fretsonfire-songs-*")
AUDIO = (".ogg", ".mp3", ".flac", ".wav", ".opus")
#: Folders of game sound effects shipped beside the music (hyperrogue-music's ``sounds/``): not music.
SOUND_EFFECTS = ("sounds", "sound", "sfx", "effects")


def held_out(package: str) -> bool:
    """Whether ``package`` belongs to the held-out evaluation material."""
    return any(fnmatch.fnmatch(package, pattern) for pattern in HELD_OUT)


def is_sound_effect(relative: Path) -> bool:
    """Whether a file of a package lies in a sound-effects folder."""
    return any(part.lower() in SOUND_EFFECTS for part in relative.parts[:-1])


def fetch(out: Path, packages=PACKAGES) -> list[dict]:
    """Download and unpack ``packages`` under ``out``; the rows of the manifest."""
    debs, tree = out / "debs", out / "unpacked"
    debs.mkdir(parents=True, exist_ok=True)
    rows = []
    for package in packages:
        if held_out(package):
            raise SystemExit(f"{package} is held out for independent evaluation; not fetched")
        if not list(debs.glob(f"{package}_*.deb")):
            subprocess.run(["apt-get", "download", package], cwd=debs, check=True, capture_output=True)
        deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
        root = tree / package
        if not root.is_dir():
            part = root.with_suffix(".part")
            part.mkdir(parents=True, exist_ok=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(part)], check=True)
            part.rename(root)
        for archive in sorted(root.rglob("*.pk3")):  # id Tech games keep their music in zip archives
            target = archive.with_suffix(".unzipped")
            if not target.is_dir():
                with zipfile.ZipFile(archive) as z:
                    for name in z.namelist():
                        if name.lower().endswith(AUDIO) and ".." not in name:
                            z.extract(name, target)
        for f in sorted(root.rglob("*")):
            if f.is_file() and f.suffix.lower() in AUDIO and not is_sound_effect(f.relative_to(root)):
                rows.append({"path": str(f), "package": package, "title": f.stem})
    with open(out / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "package", "title"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path.home() / ".cache" / "genrify" / "debian-music")
    ap.add_argument("--package", action="append", help="only these packages (repeatable)")
    args = ap.parse_args(argv)
    rows = fetch(args.out, tuple(args.package) if args.package else PACKAGES)
    per = {}
    for r in rows:
        per[r["package"]] = per.get(r["package"], 0) + 1
    print(f"{len(rows)} audio files in {args.out / 'manifest.csv'}: " + ", ".join(f"{k} {v}" for k, v in per.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
