"""The library job: walk → stat → skip what the index knows → analyse → record → choose → write (or dry run).

:func:`run_tag_job` drives it. This process only stats each file: a file the index
knows by path, size and time is not read at all. The others go to the analyser
(:mod:`genrify.tagging.analyser`: this process, worker processes or a Ray cluster),
which hashes, reads and analyses each one where it runs and skips the analysis of a
content hash the index knows (a moved, copied or touched song). The answers are
committed to the :class:`~genrify.tagging.index.ResultsIndex` in batches as they
come, so a killed run is resumed by running it again. Files are named by their
absolute, resolved paths; a link leading out of the folder being tagged is skipped
with its reason, as ``genrify library scan`` skips it. Writing goes through
:func:`~genrify.sources.tags.write_genre` (atomic, journaled, undoable) and only
to a file still exactly as it was analysed: the same device and inode, size and
time, inside the same folder.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from genrify.errors import ConfigError, GenrifyError
from genrify.fileio import stat_regular
from genrify.sources.folder import audio_files
from genrify.sources.tags import read_genres, write_genre
from genrify.tagging.analyser import Analyser, local_analyser
from genrify.tagging.choose import EXISTING, Choice, ChoiceConfig, choose, choose_album, decide_tag
from genrify.tagging.index import ResultsIndex
from genrify.tagging.journal import TagJournal
from genrify.tagging.stage import FileFacts, SongResult, content_hash


@dataclass(frozen=True)
class TagJobConfig:
    """A tagging job: what to choose (:class:`ChoiceConfig`), one genre per ``album`` or per file,
    ``write`` or only show, what to do with an ``existing`` genre (keep | overwrite | merge), the
    analysis (``model``, ``fast``, ``workers``), and ``id3_separator`` to write ID3v2.3 instead of v2.4."""

    choice: ChoiceConfig = field(default_factory=ChoiceConfig)
    album: bool = False
    write: bool = False
    existing: str = "keep"
    model: str | None = None
    fast: bool | None = None
    workers: int = 1
    id3_separator: str | None = None

    def __post_init__(self) -> None:
        if self.existing not in EXISTING:
            raise ConfigError(f"existing must be one of {', '.join(EXISTING)}, not {self.existing!r}")
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, not {self.workers}")

    @property
    def model_id(self) -> str:
        """How the index names the analysis: the model, and whether it ran fast."""
        return f"{self.model or 'default'}{'+fast' if self.fast else ''}"


@dataclass
class FileOutcome:
    """One file of the job: its index row (``song``), the album it belongs to, the choice and what
    was done (``action``), or the one-line ``error``."""

    path: str
    song: dict | None = None
    album: str | None = None
    choice: Choice | None = None
    action: str = ""
    error: str | None = None
    seen: tuple[int, int, int, int] | None = None  # (size, mtime_ns, dev, ino) as analysed or last recorded
    root: str | None = None  # the folder it was found in (a file given by name: its own folder)


@dataclass
class JobSummary:
    """What a job did: every file's outcome, each album's choice, and counts."""

    files: list[FileOutcome]
    albums: dict[str, Choice]
    analysed: int = 0
    reused: int = 0

    @property
    def failed(self) -> list[FileOutcome]:
        return [f for f in self.files if f.error]

    @property
    def written(self) -> int:
        return sum(f.action.startswith("wrote") for f in self.files)

    @property
    def nothing_done(self) -> bool:
        """True when no file could be handled at all (the CLI's non-zero exit)."""
        return not self.files or all(f.error for f in self.files)


Progress = Callable[[str, int, int], None]


def _silent(stage: str, done: int, total: int) -> None:
    return None


def list_files(paths) -> list[FileOutcome]:
    """A :class:`FileOutcome` per audio file of ``paths`` (folders walked recursively, files as given),
    named by its absolute, resolved path; a link whose file lies outside the folder walked (or, for a
    file given by name, outside its own folder) is an outcome with that error, and so is a folder
    with no audio files in it, not silently nothing."""
    found: list[FileOutcome] = []
    for p in map(Path, paths):
        is_dir = p.is_dir()
        root = _resolved(p if is_dir else p.absolute().parent)
        inside = [_outcome(f, root=root, given=p) for f in audio_files(p)] if is_dir else [
            _outcome(p, root=root, given=p.parent)]
        found += inside or [FileOutcome(str(p), error=f"{p}: is a folder with no audio files in it")]
    return found


def _resolved(path: Path) -> Path:
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a link loop: named as given, it fails with its reason later
        return path.absolute()


def _outcome(path: Path, *, root: Path, given: Path) -> FileOutcome:
    real = _resolved(path)
    if not real.is_relative_to(root):
        return FileOutcome(str(path.absolute()), error=f"{path}: links outside {given} (to {real}); skipped")
    return FileOutcome(str(real), root=str(root))


def run_tag_job(paths, *, index: ResultsIndex, config: TagJobConfig = TagJobConfig(),
                progress: Progress = _silent, analyse: Analyser | None = None) -> JobSummary:
    """Tag the audio files under ``paths`` (folders or files) as ``config`` says; returns the summary.

    Files the index knows (same path, size and time, or same content hash, analysed by
    the same model) are not analysed again. ``analyse``: the analyser of the files it
    does not know (default: :func:`~genrify.tagging.analyser.local_analyser` with
    ``config``'s model, mode and workers). With ``config.write`` the chosen genres are
    written, journaled in the index's file so ``genrify tag --undo`` restores them.
    """
    summary = analyse_files(paths, index=index, config=config, progress=progress, analyse=analyse)
    files = summary.files
    _journal_written(files, index)
    _choose(files, config, summary)
    if config.write:
        with TagJournal(path=index.path) as journal:
            for i, f in enumerate(files):
                _write(f, index, journal, config)
                progress("write", i + 1, len(files))
    else:
        for f in files:
            _plan(f, config)
    return summary


def analyse_files(paths, *, index: ResultsIndex, config: TagJobConfig = TagJobConfig(),
                  progress: Progress = _silent, analyse: Analyser | None = None) -> JobSummary:
    """The first half of a job: every audio file under ``paths`` with its index row (``song``),
    analysed now (by ``analyse``, as for :func:`run_tag_job`) or known from ``index``, or its one-line
    error. Nothing is chosen or written."""
    files = list_files(paths)
    summary = JobSummary(files=files, albums={})
    todo = _lookup(files, index, config, summary, progress)
    if todo:  # all known: not even the model is loaded
        analyse = analyse or local_analyser(model=config.model, fast=config.fast, workers=config.workers)
        _analyse(todo, analyse, index, config, summary, progress)
    return summary


def _lookup(files, index, config, summary, progress) -> dict[str, list[FileOutcome]]:
    """Each file the index knows by path, size and time gets its row; the others are returned, by path."""
    todo: dict[str, list[FileOutcome]] = {}
    for i, f in enumerate(files):
        progress("scan", i + 1, len(files))
        if f.error:
            continue
        try:
            st = stat_regular(f.path)
            song = index.known_path(f.path, size=st.st_size, mtime_ns=st.st_mtime_ns, model=config.model_id)
            if song is None:
                todo.setdefault(f.path, []).append(f)
                continue
            f.song, f.seen = index.song(song), (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
            summary.reused += 1
        except OSError as exc:
            f.error = f"{f.path}: cannot read it ({exc.strerror or type(exc).__name__})"
        except GenrifyError as exc:
            f.error = str(exc)
    return todo


def _analyse(todo, analyse: Analyser, index: ResultsIndex, config, summary, progress) -> None:
    known = index.known_hashes(model=config.model_id)
    with index.batch():
        for i, result in enumerate(analyse(list(todo), known=known)):
            progress("analyse", i + 1, len(todo))
            outcomes = todo[result.path]
            try:
                song, fresh = _record(index, result, model_id=config.model_id)
            except GenrifyError as exc:
                for f in outcomes:
                    f.error = str(exc)
                continue
            row = index.song(song)
            for f in outcomes:
                f.song, f.seen = row, _identity(result.facts)
            summary.analysed += fresh
            summary.reused += len(outcomes) - fresh


def _identity(facts: FileFacts) -> tuple[int, int, int, int]:
    """``(size, mtime_ns, dev, ino)`` of the file as analysed, for the write to re-check. Facts from another
    machine (a Ray cluster on a shared file system) carry that machine's device numbers: this machine's
    stat stands in for them when the size and time still agree."""
    if facts.host == platform.node():
        return facts.identity
    try:
        st = os.stat(facts.path)
    except OSError:
        return facts.identity  # the write then fails on its own, with the reason
    here = (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
    return here if here[:2] == facts.identity[:2] else facts.identity


def _record(index: ResultsIndex, result: SongResult, *, model_id: str) -> tuple[int, bool]:
    """The song id of one answer of the analyser, and whether it was analysed now."""
    if result.facts is None:
        raise GenrifyError(result.error or f"{result.path}: not analysed")
    if result.analysis is not None:
        return record_song(index, result, model_id=model_id), True
    facts = result.facts  # known by content (moved, copied or touched): noted at this path, not analysed again
    song = index.known_hash(facts.digest, model=model_id)
    if song is None:
        raise GenrifyError(f"{result.path}: left out of the results index meanwhile; run genrify tag again")
    index.see(song, path=result.path, size=facts.size, mtime_ns=facts.mtime_ns, digest=facts.digest)
    return song, False


def record_song(index: ResultsIndex, result: SongResult, *, model_id: str) -> int:
    """Record one song analysed by the per-file stage (:func:`~genrify.tagging.stage.analyse_song`)
    in ``index``; returns its id. The one place a job's analyses enter the index, whichever
    analyser ran the stage."""
    facts = result.facts
    return index.add_song(path=result.path, digest=facts.digest, size=facts.size, mtime_ns=facts.mtime_ns,
                          model=model_id, analysis=result.analysis, tags=facts.tags)


def album_key(path: str, tags: dict) -> str:
    """The album a file belongs to: its album tag within its folder, else its folder."""
    folder = str(Path(path).parent)
    return f"{tags['album']} ({folder})" if tags.get("album") else folder


def _journal_written(files, index: ResultsIndex, *, chunk: int = 500) -> None:
    """Give each song the index has no written genres for those the tag journal last wrote into its file
    (``genrify predict --write-tags`` journals its writes in the same file but keeps no results), so the
    one existing-tag rule knows them for genrify's own, not the user's."""
    from genrify.tagging.listing import read_changes

    unknown = [f for f in files if f.song is not None and not f.song.get("written")]
    for i in range(0, len(unknown), chunk):
        part = unknown[i:i + chunk]
        changes = read_changes(index.path, [f.path for f in part])
        for f in part:
            change = changes.get(f.path)
            if change is not None and change.state == "written":
                f.song = {**f.song, "written": change.values}


def _choose(files, config, summary) -> None:
    ok = [f for f in files if f.song is not None]
    if not config.album:
        for f in ok:
            f.choice = choose(f.song["analysis"], config=config.choice)
        return
    albums: dict[str, list[FileOutcome]] = {}
    for f in ok:
        f.album = album_key(f.path, f.song["tags"])
        albums.setdefault(f.album, []).append(f)
    for key, members in albums.items():
        summary.albums[key] = choose_album([m.song["analysis"] for m in members], config=config.choice)
        for m in members:
            m.choice = summary.albums[key]


def _values(f: FileOutcome, current: list[str], config: TagJobConfig) -> tuple[list[str] | None, str]:
    """The genre values to write into ``f`` (``None``: nothing) and why, by the one existing-tag rule."""
    decision = decide_tag(current=current, names=f.choice.names if f.choice else [], existing=config.existing,
                          written=f.song.get("written"))
    if decision.values is None:
        return None, decision.why(current=current, verdict=f.choice.verdict if f.choice else "no analysis")
    return decision.values, decision.outcome


def _plan(f: FileOutcome, config: TagJobConfig) -> None:
    if f.error or f.song is None:
        return
    # The genres as read when the file was hashed or last written (its size and time are unchanged
    # since): a dry run over a known library opens no file.
    values, why = _values(f, f.song["tags"].get("genres") or [], config)
    f.action = f"would write {', '.join(values)}" if values else why


def _write(f: FileOutcome, index: ResultsIndex, journal: TagJournal, config: TagJobConfig) -> None:
    if f.error or f.song is None:
        return
    try:
        previous = read_genres(f.path)
        values, why = _values(f, previous, config)
        if values is None:
            f.action = why
            return
        written = write_genre(f.path, values, journal=journal, id3_separator=config.id3_separator, expect=f.seen,
                              root=f.root)
        note_written(index, song=f.song["id"], path=f.path, written=written, previous=previous)
        f.action = f"wrote {', '.join(written)}"
    except GenrifyError as exc:
        f.error = str(exc)


def note_written(index: ResultsIndex, *, song: int, path: str, written: list[str], previous: list[str],
                 retagged: bool = True) -> None:
    """Record in ``index`` that genrify set ``song``'s genre to ``written`` (it was ``previous``), so a
    rerun knows the genre for genrify's own; with ``retagged`` (the file at ``path`` was rewritten), its
    new content hash too, so the rerun does not analyse the song again."""
    if retagged:
        digest, st = content_hash(path)
        index.see(song, path=path, size=st.st_size, mtime_ns=st.st_mtime_ns, digest=digest)
    index.set_written(song, written=written, previous=previous or None)


def export_rows(summary: JobSummary) -> list[dict]:
    """One row per analysed file for ``--export``: path, artist, album, title, genres, styles,
    certainty, verdict (the choice's; an album's when the job chose per album)."""
    rows = []
    for f in summary.files:
        if f.song is None:
            continue
        tags, choice = f.song["tags"], f.choice
        rows.append({"path": f.path, "artist": tags.get("artist"), "album": tags.get("album"),
                     "title": tags.get("title"), "genres": choice.genres if choice else [],
                     "styles": choice.styles if choice else [],
                     "certainty": None if choice is None or choice.certainty is None else round(choice.certainty, 4),
                     "verdict": choice.verdict if choice else f.song["verdict"]})
    return rows

