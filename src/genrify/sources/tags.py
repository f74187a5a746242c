"""Tags in the user's own audio files: read for the library index, the genre written back (and undone).

:func:`read_tags` gives what the library index keeps of a file (artist, title,
album, genre, duration). :func:`write_genre` writes the genre with mutagen,
atomically: the file is copied beside itself (``.<name>.genrify-<random>.part``),
the copy is tagged, given the original's owner, group, mode and extended
attributes, and renamed over the original, so an interruption leaves the old
file or the new one, never a half-written song. Audio data is not touched, nor are
the other fields of an ID3v1 tag (comment, track, year). A link is followed and the file
it points to is tagged (the link stays a link), but not out of the ``root`` the caller
names, and the file renamed over must still be the very file (device and inode) that was
read and analysed.
A file with several hard links is refused: replacing it would split the links.
The previous genre is recorded in the tag journal the caller hands in (a
:class:`Journal`: genrify's is :class:`genrify.tagging.index.TagJournal`, tagging's
data) before the file is touched, and :func:`undo_genres` puts it back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from genrify.errors import DatasetError, GenrifyError, TagError
from genrify.fileio import atomic_path, remove_stale_temporaries, stat_regular
from genrify.sources.folder import normalise_label


class Journal(Protocol):
    """Where :func:`write_genre` records each change before it touches the file, and :func:`undo_genres`
    finds it: ``record`` returns a change id, ``mark`` sets its state; ``changes`` / ``changes_under`` /
    ``last_run`` give back records with ``id``, ``path``, ``old``, ``values``, ``state`` and ``old_id3``."""

    path: Path

    def record(self, *, path: str | os.PathLike, old: list[str] | None, new: str | list[str],
               old_id3: int | None = None) -> int: ...

    def mark(self, change_id: int, *, state: str, new: list[str] | None = None) -> None: ...

    def last_run(self) -> str | None: ...

    def changes(self, *, run: str) -> list: ...

    def changes_under(self, folder: str | os.PathLike) -> list: ...

#: The ID3v1 genre byte meaning "no genre" (ID3v1 can name only the genres of its fixed list).
ID3V1_NO_GENRE = 255


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}" if str(exc).strip() else type(exc).__name__


def _open(path: Path):
    import mutagen

    from genrify.audio.formats import MAX_TAG_BYTES, tag_bytes

    try:
        stat_regular(path)  # mutagen would block on a FIFO and read a device without end
        if (size := tag_bytes(path)) > MAX_TAG_BYTES:  # mutagen holds every tag block whole, and copies to save
            raise TagError(f"{path}: its tags take {size / 2**20:.0f} MB (pictures?), more than the "
                           f"{MAX_TAG_BYTES // 2**20} MB genrify reads or rewrites")
        audio = mutagen.File(str(path), easy=True)
    except TagError:
        raise
    except FileNotFoundError:
        raise TagError(f"{path}: no such file") from None
    except OSError as exc:
        raise TagError(f"{path}: cannot read its tags ({exc.strerror or _reason(exc)})") from None
    except Exception as exc:  # mutagen raises many types on damaged files
        raise TagError(f"{path}: cannot read its tags ({_reason(exc)})") from None
    if audio is None:
        raise TagError(f"{path}: not a file whose tags genrify can write (MP3, FLAC, Ogg, Opus, M4A, WAV, AIFF)")
    return audio


def _genres(audio) -> list[str] | None:
    """All genre values of an opened file, or ``None`` when it has no genre tag."""
    from mutagen.id3 import ID3

    if audio.tags is None:
        return None
    if isinstance(audio.tags, ID3):  # WAV / AIFF carry plain ID3 frames
        frame = audio.tags.get("TCON")
        values = list(frame.text) if frame else []
    else:
        values = audio.tags.get("genre") or []
    return [str(v) for v in values] or None


def _id3_version(audio) -> int | None:
    """The ID3v2 minor version (3 or 4) of an opened file's tag, ``None`` for other tags or none."""
    tags = getattr(audio.tags, "_EasyID3__id3", audio.tags)  # EasyID3 wraps the real ID3 object
    version = getattr(tags, "version", None)
    return int(version[1]) if version and version[0] == 2 and version[1] in (3, 4) else None


def read_genre(path: str | os.PathLike) -> str | None:
    """The file's genre tag (its first value), or ``None`` when it has none."""
    values = _genres(_open(Path(path)))
    return values[0] if values else None


def read_genres(path: str | os.PathLike) -> list[str]:
    """Every genre value of the file's genre tag, in order (empty when it has none)."""
    return _genres(_open(Path(path))) or []


def id3v1_genre(genre: str | None) -> int:
    """The ID3v1 genre byte for ``genre``: its index in ID3v1's list, matched on the
    normalised name (``"hiphop"`` → 7, "Hip-Hop"; ``"jazz"`` → 8), else :data:`ID3V1_NO_GENRE`."""
    from mutagen.id3 import TCON

    key = normalise_label(genre or "")
    if key:
        for index, name in enumerate(TCON.GENRES[:ID3V1_NO_GENRE]):
            if normalise_label(name) == key:
                return index
    return ID3V1_NO_GENRE


def write_genre(path: str | os.PathLike, genre: str | Sequence[str], *, journal: Journal,
                id3_separator: str | None = None, expect: tuple[int, ...] | None = None,
                root: str | os.PathLike | None = None) -> list[str]:
    """Set the genre tag of the audio file ``path`` to ``genre`` (replacing any earlier genre).

    ``genre`` is one name or a list of names, written as the container's
    multi-value convention: ID3v2.4 TCON with one value per name (MP3, and the
    ID3 chunk of WAV / AIFF), one ``GENRE`` field per value (FLAC, Ogg Vorbis,
    Opus), one ``©gen`` atom with several values (MP4 / M4A). With
    ``id3_separator`` an ID3 tag is saved as ID3v2.3 instead, the values joined
    by that separator (for players that read only v2.3). ``expect``: the
    ``(size, mtime_ns)``, or ``(size, mtime_ns, st_dev, st_ino)``, the file had
    when it was analysed; a file that differs (another file linked or renamed
    into its place too) is not written. ``root``: a folder the resolved file
    must lie in (a link leading out of the tagged folder is refused). Returns
    the genre values as the file now holds them.

    The file's previous genre values are recorded in ``journal`` before the file is touched, so
    :func:`undo_genres` can restore them. Leftover temporary copies of runs that
    were killed are removed from the file's folder first (only genrify's, older
    than a minute). An ID3v1 tag, if the file has one, gets the matching ID3v1
    genre byte (:func:`id3v1_genre`). Raises :class:`~genrify.errors.TagError`,
    with the file untouched, for a file that is missing, not a regular file or
    over :data:`~genrify.fileio.MAX_FILE_BYTES`, has several hard links, belongs
    to an owner this user cannot give the rewritten file, cannot be tagged,
    changed since it was analysed, lies outside ``root``, or whose old genre cannot be recorded.
    """
    values = [genre] if isinstance(genre, str) else [str(g) for g in genre]
    if not values or not all(v.strip() for v in values):
        raise TagError(f"{path}: no genre to write (an empty name)")
    path, st = _target(path, root=root)
    if not st.st_mode & 0o222 or not os.access(path, os.W_OK):
        # Replacing it would work (the folder is writable) but would override the owner's wish.
        raise TagError(f"{path}: is read-only; left untouched")
    if expect is not None and (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)[:len(expect)] != tuple(expect):
        raise TagError(f"{path}: changed since it was analysed; not written (analyse it again)")
    audio = _open(path)  # refuse what cannot be tagged before copying anything
    kind, old = type(audio), _genres(audio)
    remove_stale_temporaries(path.parent)
    change = journal.record(path=path, old=old, new=values, old_id3=_id3_version(audio))
    try:
        written = _replace_tagged(path, st, kind, values, id3_separator=id3_separator)
    except BaseException:
        with contextlib.suppress(GenrifyError):
            journal.mark(change, state="failed")
        raise
    journal.mark(change, state="written", new=written)
    return written


def undo_genres(*, journal: Journal, run: str | None = None,
                under: str | os.PathLike | None = None) -> list[tuple[str, str]]:
    """Put back the genre tags that one run of :func:`write_genre` replaced (default: the latest run),
    or, with ``under``, every genre tag written to a file in that folder by any run not undone yet.

    Returns ``(path, what happened)`` per recorded change, newest first. A file
    whose genre is no longer the one genrify wrote (changed since, by anyone) is
    left alone and reported; so is one that cannot be rewritten. Raises
    :class:`~genrify.errors.TagError` when there is nothing to undo.
    """
    if under is not None:
        under = Path(under).resolve()
        changes = [c for c in journal.changes_under(under) if c.state in ("written", "pending")]
        what = f"any run in {under}"
    else:
        run = run or journal.last_run()
        changes = [c for c in journal.changes(run=run) if c.state in ("written", "pending")] if run else []
        what = f"run {run}" if run else "any run"
    if not changes:
        raise TagError(f"{journal.path}: no genre tag written by {what} is left to undo")
    return [(change.path, _undo_one(change, journal, root=under)) for change in reversed(changes)]


def _undo_one(change, journal: Journal, *, root: Path | None) -> str:
    try:
        path, st = _target(change.path, root=root)
        audio = _open(path)
        now = _genres(audio)
        if now != change.values:
            if change.state == "pending" and now == change.old:  # killed before the file was replaced
                journal.mark(change.id, state="failed")
                return "unchanged (the write never happened)"
            return f"left alone: its genre is now {', '.join(now or ['(none)'])}, not {', '.join(change.values)}"
        # Back in the ID3 version the file had: a v2.3 tag written as v2.4 would not be the tag it was.
        _replace_tagged(path, st, type(audio), change.old, id3_separator="/" if change.old_id3 == 3 else None)
    except GenrifyError as exc:
        return f"not restored: {str(exc).removeprefix(f'{change.path}: ')}"
    journal.mark(change.id, state="undone")
    return f"restored genre {', '.join(change.old)}" if change.old else "restored: no genre tag"


def _target(path: str | os.PathLike, *, root: str | os.PathLike | None = None) -> tuple[Path, os.stat_result]:
    """The resolved regular file behind ``path`` with its stat, or :class:`TagError`; with ``root``,
    only a file inside that folder (both resolved: a link, or a ``..``, leading out is refused)."""
    given = path
    try:
        path = Path(path).resolve(strict=True)
        if root is not None and not path.is_relative_to(Path(root).resolve(strict=True)):
            raise TagError(f"{given}: leads outside {root} (to {path}); left untouched")
        st = stat_regular(path)
    except FileNotFoundError:
        raise TagError(f"{path}: no such file") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise TagError(f"{path}: cannot tag it ({getattr(exc, 'strerror', None) or _reason(exc)})") from None
    if st.st_nlink > 1:
        # Writing atomically means replacing the file: the other names would keep the old one.
        raise TagError(f"{path}: has {st.st_nlink} hard links, which replacing it to write its tags would split; "
                       "left untouched")
    return path, st


def _replace_tagged(path: Path, st: os.stat_result, kind, genres: list[str] | None, *,
                    id3_separator: str | None = None) -> list[str]:
    """Write ``genres`` (``None``: no genre tag) into a copy of ``path`` and rename it over ``path``;
    returns the genre values the copy holds (an ID3v2.3 tag holds them joined)."""
    from mutagen.id3 import ID3, TCON, ID3FileType

    with atomic_path(path) as tmp:
        try:
            os.chmod(tmp, 0o600)  # private while it is worked on: the original may not be readable by everyone
            id3v1 = _copy_same_file(path, tmp, st)
        except OSError as exc:
            raise TagError(f"{path}: cannot copy it to write its tags ({exc.strerror or exc})") from None
        try:  # the copy's temporary name hides its type from mutagen's guess: open it as the original
            audio = kind(str(tmp))
        except Exception as exc:
            raise TagError(f"{path}: cannot read its tags ({_reason(exc)})") from None
        if audio.tags is None and genres:
            audio.add_tags()
        if isinstance(audio.tags, ID3):
            audio.tags.delall("TCON")
            if genres:
                audio.tags.add(TCON(encoding=3, text=list(genres)))
        elif audio.tags is not None:
            if genres:
                audio.tags["genre"] = list(genres)
            elif "genre" in audio.tags:
                del audio.tags["genre"]
        try:
            if _id3_version(audio) is not None and id3_separator is not None:
                audio.save(v2_version=3, v23_sep=id3_separator)
            else:
                audio.save()
            written = _genres(kind(str(tmp))) or []
        except Exception as exc:
            raise TagError(f"{path}: cannot write its tags ({_reason(exc)})") from None
        with open(tmp, "rb+") as f:
            if isinstance(audio, ID3FileType):
                _set_id3v1(f, id3v1, id3v1_genre(genres[0] if genres else None))
            os.fsync(f.fileno())
        _copy_owner_and_mode(path, tmp, st)
        # Last look before the rename: the name must still be the file that was read, not a link or
        # another file put in its place meanwhile.
        _check_same(path, os.lstat(path), st)
    return written


def _check_same(path: Path, now: os.stat_result, st: os.stat_result) -> None:
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        raise TagError(f"{path}: changed since it was analysed (another file took its place); not written")


def _copy_same_file(path: Path, tmp: Path, st: os.stat_result) -> bytes | None:
    """Copy ``path`` to ``tmp`` from one open handle that is checked to be the file ``st`` describes;
    returns the file's 128-byte ID3v1 tag, or ``None`` when it has none."""
    with open(path, "rb") as src:
        _check_same(path, os.fstat(src.fileno()), st)
        with open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        if st.st_size < 128:
            return None
        src.seek(-128, os.SEEK_END)
        block = src.read(128)
    return block if block[:3] == b"TAG" else None


def _copy_owner_and_mode(path: Path, tmp: Path, st: os.stat_result) -> None:
    """Give ``tmp`` the owner, group, mode and extended attributes of ``path`` (whose stat is ``st``)."""
    now = os.stat(tmp)
    if (now.st_uid, now.st_gid) != (st.st_uid, st.st_gid):
        try:  # as root the copy is root's: give it back to the song's owner
            os.chown(tmp, st.st_uid, st.st_gid)
        except OSError:
            raise TagError(f"{path}: belongs to uid {st.st_uid}, gid {st.st_gid}, which this user cannot give "
                           "the rewritten file; left untouched") from None
    try:
        shutil.copystat(path, tmp)  # after chown, which clears set-id bits: mode, extended attributes, flags
        os.utime(tmp)  # a fresh time: the file changed, and a run alongside never takes the copy for a stale one
    except OSError as exc:
        raise TagError(f"{path}: cannot copy its permissions ({exc.strerror or exc})") from None


def _set_id3v1(f, original: bytes | None, byte: int) -> None:
    """Give the ID3v1 tag at the end of the open file ``f``, if it has one, the fields of the
    ``original`` tag (the file's before the write, if it had one) and the genre byte ``byte``.

    mutagen rebuilds the ID3v1 tag from the ID3v2 frames: its comment (kept in a COMM
    frame mutagen's own rebuild does not look up), track and anything ID3v2 lacks are
    lost, and the genre byte is 255 unless the ID3v2 genre is spelt exactly as in
    ID3v1's list ("Metal", not "metal").
    """
    f.seek(0, os.SEEK_END)
    if f.tell() < 128:
        return
    f.seek(-128, os.SEEK_END)
    block = f.read(128)
    if block[:3] == b"TAG":
        f.seek(-128, os.SEEK_END)
        f.write((original or block)[:127] + bytes([byte]))


def read_tags(path: Path) -> dict:
    """Artist, title, album, genre (``str`` or ``None``) and duration (s) of an audio file, from its tags.

    Keys are present only for what was found; the duration comes from libsndfile's
    header when mutagen has none. Raises :class:`~genrify.errors.DatasetError`
    when the file is not audio at all.
    """
    from genrify.audio import read_file_tags

    try:
        stat_regular(path)  # mutagen would block on a FIFO and read a device without end
    except OSError as exc:
        raise DatasetError(exc.strerror or _reason(exc)) from None
    try:  # in a decoder worker: a file with hundreds of MB of pictures costs that file, not this process
        return read_file_tags(path)
    except GenrifyError as exc:
        raise DatasetError(str(exc).removeprefix(f"{path}: ")) from None
