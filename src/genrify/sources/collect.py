"""``genrify collect``: build a labelled training folder from a provider's genre listings.

For each requested genre, in the order given, the provider's genre listing
(Deezer: playlists found for the genre name; iTunes: songs whose primary genre
matches) is walked until ``per_genre`` previews are saved::

    OUT/<genre>/<artist> - <title>.<ext>
    OUT/manifest.csv      path,genre,artist,title,provider,track_id
    OUT/duplicates.csv    provider,track_id,artist,title,kept_genre,also_in

De-duplication: a track (same provider track id, or the same artist and title
under another id) met under a second genre is **kept under the first genre it
was met in** and skipped for the later one; each such case is reported in the
summary and in ``duplicates.csv``. "First" is the order of ``genres``, and
tracks already in the manifest come before anything new, so reruns never move
a file. Within one genre the same song under another id is skipped silently.

Resumable: files are written atomically (temporary name, then rename) and the
manifest is rewritten atomically every few files and at the end, so a run
killed at any point leaves only whole files. A rerun keeps what the manifest
lists, adopts whole files that were written after the manifest's last rewrite,
removes stale temporary files, and downloads only what is missing (a genre that
already has ``per_genre`` files costs no request at all).

A song whose preview fails (HTTP error, timeout, not audio, no preview) is
recorded in the summary and the next candidate is tried; a provider that
cannot be reached at all stops the run with :class:`~genrify.errors.ProviderError`
after saving the manifest.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from genrify.audio import SNIFFED_EXTENSIONS, sniff_audio
from genrify.errors import ConfigError, NotFoundError, ProviderError
from genrify.fileio import write_bytes_atomic, write_text_atomic
from genrify.sources.base import SongRef
from genrify.sources.http import HttpClient, ProviderRequestError

#: Providers ``collect`` (and ``make_provider``) know, by name.
PROVIDERS = ("deezer", "itunes")

MANIFEST_FIELDS = ("path", "genre", "artist", "title", "provider", "track_id")
DUPLICATE_FIELDS = ("provider", "track_id", "artist", "title", "kept_genre", "also_in")

_SAVE_EVERY = 20
_FORBIDDEN = re.compile(r'[/\\:*?"<>|]')


def make_provider(name: str, *, base_url: str | None = None, client: HttpClient | None = None, cache=None):
    """The remote source called ``name`` (``"deezer"`` or ``"itunes"``), optionally at another ``base_url``."""
    if name == "deezer":
        from genrify.sources.deezer import DeezerSource as cls
    elif name == "itunes":
        from genrify.sources.itunes import ITunesSource as cls
    else:
        raise ConfigError(f"unknown provider {name!r} (expected one of: {', '.join(PROVIDERS)})")
    kwargs = {"cache": cache, "client": client}
    if base_url:
        kwargs["base_url"] = base_url
    return cls(**kwargs)


def safe_name(text: str, *, max_bytes: int = 100, fallback: str = "Unknown") -> str:
    """``text`` made safe as one file-name component.

    NFC-normalised; control and other non-printable characters become spaces;
    path separators and ``: * ? " < > |`` become ``_``; whitespace collapsed;
    leading/trailing dots and spaces removed (no hidden files, no ``..``); cut
    to at most ``max_bytes`` bytes of UTF-8 on a character boundary.
    """
    text = unicodedata.normalize("NFC", str(text or ""))
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = " ".join(_FORBIDDEN.sub("_", text).split()).strip(" .")
    raw = text.encode("utf-8")
    if len(raw) > max_bytes:
        text = raw[:max_bytes].decode("utf-8", errors="ignore").rstrip(" .")
    return text or fallback


def track_stem(artist: str, title: str) -> str:
    """The file name, without extension, of a collected track: ``"<artist> - <title>"`` (≤ 200 bytes)."""
    return f"{safe_name(artist, max_bytes=80)} - {safe_name(title, max_bytes=115)}"


@dataclass(frozen=True)
class Duplicate:
    """A track met under a second genre; it stays under ``kept_genre`` only."""

    provider: str
    track_id: str
    artist: str
    title: str
    kept_genre: str
    also_in: str


@dataclass(frozen=True)
class Failure:
    """A candidate whose preview could not be saved, and why."""

    genre: str
    track_id: str
    artist: str
    title: str
    reason: str


@dataclass
class CollectSummary:
    """What a :func:`collect` run left in ``out``.

    ``counts`` is the number of files per genre after the run (old and new);
    ``downloaded`` those fetched by this run, ``adopted`` whole files found on
    disk that the manifest did not list yet; ``stopped_early`` is true when
    ``max_downloads`` ended the run.
    """

    out: Path
    provider: str
    per_genre: int
    counts: dict[str, int] = field(default_factory=dict)
    downloaded: int = 0
    adopted: int = 0
    duplicates: list[Duplicate] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def manifest(self) -> Path:
        return self.out / "manifest.csv"

    @property
    def duplicates_csv(self) -> Path:
        return self.out / "duplicates.csv"

    @property
    def short(self) -> dict[str, int]:
        """Genres with fewer than ``per_genre`` files, and how many they have."""
        return {g: n for g, n in self.counts.items() if n < self.per_genre}

    def render(self) -> str:
        """A short text report (one screen) for the command line."""
        lines = [f"collected {sum(self.counts.values())} previews from {self.provider} into {self.out}"
                 f" ({self.downloaded} downloaded now, {self.adopted} recovered)"]
        width = max((len(g) for g in self.counts), default=5)
        for genre, n in self.counts.items():
            note = "" if n >= self.per_genre else f"  (fewer than {self.per_genre})"
            lines.append(f"  {genre:<{width}}  {n:>5}{note}")
        if self.duplicates:
            lines.append(f"{len(self.duplicates)} track(s) listed under two genres, kept under the first only"
                         f" (see {self.duplicates_csv.name}):")
            for d in self.duplicates[:5]:
                lines.append(f"  {d.artist} - {d.title}: kept in {d.kept_genre}, skipped in {d.also_in}")
            if len(self.duplicates) > 5:
                lines.append(f"  … and {len(self.duplicates) - 5} more")
        if self.failures:
            lines.append(f"{len(self.failures)} preview(s) could not be saved:")
            for f in self.failures[:5]:
                lines.append(f"  [{f.genre}] {f.artist} - {f.title}: {f.reason}")
            if len(self.failures) > 5:
                lines.append(f"  … and {len(self.failures) - 5} more")
        if self.stopped_early:
            lines.append("stopped early; run the same command again to continue")
        lines.append(f"manifest: {self.manifest}")
        return "\n".join(lines)


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [row for row in csv.DictReader(f)]
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ProviderError(f"{path}: cannot read ({exc})") from None


def _csv_text(rows: Iterable[dict], fields: tuple[str, ...]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _remove_stale_temporaries(out: Path) -> None:
    for folder in [out, *(p for p in out.iterdir() if p.is_dir() and not p.is_symlink())]:
        for p in folder.glob(".*.part"):
            with contextlib.suppress(OSError):
                p.unlink()


def _whole_audio_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return path.is_file() and sniff_audio(f.read(16)) is not None
    except OSError:
        return False


def collect(
    *,
    provider,
    genres: Iterable[str],
    per_genre: int,
    out: str | os.PathLike,
    progress: Callable[[int, int, str], None] | None = None,
    max_downloads: int | None = None,
) -> CollectSummary:
    """Gather ``per_genre`` previews for each genre from ``provider`` into ``out``.

    Args:
        provider: a remote source with ``name``, ``genre_tracks(genre, limit=)``
            and ``download(ref)`` (:class:`~genrify.sources.deezer.DeezerSource`,
            :class:`~genrify.sources.itunes.ITunesSource`; see :func:`make_provider`).
        genres: genre names, in priority order (a duplicate is kept under the first).
        per_genre: how many previews each genre should end up with.
        out: the output folder (created if missing; reruns resume).
        progress: called as ``progress(done, total, genre)`` after each file,
            ``done`` counting files already there.
        max_downloads: stop after this many downloads (``None``: no limit).

    Returns:
        a :class:`CollectSummary`; the manifest and ``duplicates.csv`` are written.
    """
    genres = list(dict.fromkeys(g.strip() for g in genres if g and g.strip()))
    if not genres:
        raise ConfigError("no genres given (e.g. --genres metal,jazz,classical)")
    if per_genre < 1:
        raise ConfigError(f"per-genre must be at least 1 (got {per_genre})")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out)
    run = _Run(out, provider=provider.name, genres=genres, per_genre=per_genre, progress=progress)
    try:
        run.report_progress("")
        for genre in genres:
            if run.counts[genre] >= per_genre:
                continue
            try:
                if not _collect_genre(run, provider, genre, max_downloads=max_downloads):
                    break
            except NotFoundError:
                pass  # the provider has no listing for this genre: it stays short
        return run.summary
    finally:
        run.save()


class _Run:
    """The bookkeeping of one :func:`collect` run: manifest rows, who holds which track, duplicates, counts.

    Starts from what is already there: manifest rows whose file still exists,
    and the duplicates reported by earlier runs.
    """

    def __init__(self, out: Path, *, provider: str, genres: list[str], per_genre: int,
                 progress: Callable[[int, int, str], None] | None):
        self.out, self.provider, self.per_genre, self.progress = out, provider, per_genre, progress
        self.summary = CollectSummary(out=out, provider=provider, per_genre=per_genre)
        self.rows: list[dict[str, str]] = []
        self.owner: dict[tuple[str, str], str] = {}      # (provider, track_id) -> genre
        self.names: dict[str, tuple[str, str]] = {}      # casefolded stem -> (genre, track_id)
        for row in _read_csv(out / "manifest.csv"):
            rel = row.get("path") or ""
            if not rel or Path(rel).is_absolute() or ".." in Path(rel).parts or not (out / rel).is_file():
                continue
            self.rows.append({k: row.get(k, "") for k in MANIFEST_FIELDS})
            self.owner.setdefault((row.get("provider", ""), row.get("track_id", "")), row.get("genre", ""))
            self.names.setdefault(Path(rel).stem.casefold(), (row.get("genre", ""), row.get("track_id", "")))
        self.dup_rows = _read_csv(out / "duplicates.csv")
        self.seen_dups = {(r.get("provider"), r.get("track_id"), r.get("also_in")) for r in self.dup_rows}
        self.counts = {g: sum(1 for r in self.rows if r["genre"] == g) for g in genres}
        self.summary.counts = self.counts
        self.total = per_genre * len(genres)
        self.unsaved = 0

    def report_progress(self, genre: str) -> None:
        if self.progress:
            self.progress(sum(min(n, self.per_genre) for n in self.counts.values()), self.total, genre)

    def save(self) -> None:
        write_text_atomic(self.out / "manifest.csv", _csv_text(self.rows, MANIFEST_FIELDS))
        write_text_atomic(self.out / "duplicates.csv", _csv_text(self.dup_rows, DUPLICATE_FIELDS))

    def holder(self, ref: SongRef, stem: str) -> str | None:
        """The genre that already holds this track (same id, or same artist and title), or ``None``."""
        return self.owner.get((self.provider, ref.id)) or self.names.get(stem.casefold(), (None,))[0]

    def note_duplicate(self, ref: SongRef, *, kept: str, also: str) -> None:
        key = (self.provider, ref.id, also)
        if key in self.seen_dups:
            return
        self.seen_dups.add(key)
        d = Duplicate(self.provider, ref.id, ref.artist, ref.title, kept, also)
        self.summary.duplicates.append(d)
        self.dup_rows.append(dataclasses.asdict(d))

    def add(self, path: Path, *, genre: str, ref: SongRef, stem: str) -> None:
        """Record a whole file of ``genre``; the manifest is rewritten every few files."""
        self.rows.append({"path": path.relative_to(self.out).as_posix(), "genre": genre, "artist": ref.artist,
                          "title": ref.title, "provider": self.provider, "track_id": ref.id})
        self.owner[(self.provider, ref.id)] = genre
        self.names[stem.casefold()] = (genre, ref.id)
        self.counts[genre] += 1
        self.unsaved += 1
        if self.unsaved >= _SAVE_EVERY:
            self.save()
            self.unsaved = 0


def _collect_genre(run: _Run, provider, genre: str, *, max_downloads: int | None) -> bool:
    """Walk ``provider``'s listing of ``genre`` until it has ``per_genre`` files; ``False`` when
    ``max_downloads`` stopped the run."""
    summary = run.summary
    gdir = run.out / safe_name(genre)
    for ref in provider.genre_tracks(genre):
        if run.counts[genre] >= run.per_genre:
            break
        stem = track_stem(ref.artist, ref.title)
        prior = run.holder(ref, stem)
        if prior is not None:
            if prior != genre:
                run.note_duplicate(ref, kept=prior, also=genre)
            continue
        path = next((gdir / (stem + e) for e in SNIFFED_EXTENSIONS if _whole_audio_file(gdir / (stem + e))), None)
        if path is not None:
            summary.adopted += 1
        else:
            if max_downloads is not None and summary.downloaded >= max_downloads:
                summary.stopped_early = True
                return False
            path = _download(provider, ref, genre=genre, folder=gdir, stem=stem, summary=summary)
            if path is None:
                continue
        run.add(path, genre=genre, ref=ref, stem=stem)
        run.report_progress(genre)
    return True


def _download(provider, ref: SongRef, *, genre: str, folder: Path, stem: str, summary: CollectSummary) -> Path | None:
    """Save ``ref``'s preview as ``folder/stem`` plus the extension its bytes imply; ``None`` (and
    a recorded failure) when this one song cannot be had."""
    try:
        audio = provider.download(ref)
    except (NotFoundError, ProviderError) as exc:
        if isinstance(exc, ProviderRequestError) and exc.reason == "unreachable":
            raise  # no song can be had at all: stop the run
        summary.failures.append(Failure(genre, ref.id, ref.artist, ref.title, str(exc)))
        return None
    path = folder / (stem + audio.ext)
    write_bytes_atomic(path, audio.data)
    summary.downloaded += 1
    return path
