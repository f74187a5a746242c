"""The results index as the library page reads it: read-only, and bounded row by row.

:func:`read_songs` lists every song without its per-window data, :func:`read_song` gives one song's
analysis, :func:`read_choice_inputs` what :func:`~genrify.tagging.choose.choose` needs of a few songs, and
:func:`read_changes` the tag journal's last word on a few files. Each opens the file read-only (a
``genrify tag`` run may be writing it) and never loads a row over :data:`MAX_ANALYSIS_CHARS` /
:data:`MAX_TAGS_CHARS`: a damaged or hostile index costs its rows' lengths, not their contents.
The schema itself is :mod:`genrify.tagging.index`'s.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from genrify.errors import DatasetError
from genrify.fileio import stored_path
from genrify.tagging.index import _json, _read_only, song_path
from genrify.tagging.journal import TagChange, _change

# The library page's columns, read from each song's analysis in SQL, so that a listing never parses
# the per-window data; the same fields as ResultsIndex.rows() gives (certainty = top[0][1]). A row over
# the bounds (MAX_ANALYSIS_CHARS, MAX_TAGS_CHARS) or not JSON is read as its sizes alone.
_SUMMARY_SQL = """
SELECT id, path, tags_chars, analysis_chars, usable, CASE WHEN tags_chars <= :tags THEN tags END AS tags,
       CASE WHEN usable THEN json_extract(analysis, '$.genre', '$.verdict', '$.top[0][1]', '$.styles') END AS fields
FROM (SELECT id, path, tags, analysis, length(tags) AS tags_chars, length(analysis) AS analysis_chars,
             length(analysis) <= :analysis AND json_valid(analysis) AS usable FROM songs)
"""  # one json_extract of several paths: SQLite parses each analysis once for them all

#: The most characters a song's stored analysis may have for the library page to read it: ten hours
#: in 3 s windows over ten genres is ~0.85 M (about 70 a window); a row at the bound costs ~100 MB
#: and ~1 s to chart (benchmarks/bench_library_page.py), the hostile row of 300,000 windows (28 M)
#: cost 500 MB and 4 s, so anything larger is skipped and reported instead.
MAX_ANALYSIS_CHARS = 2_000_000
#: The most characters a song's stored tags may have (artist, album, title and genres as read).
MAX_TAGS_CHARS = 64_000



def read_songs(path: str | os.PathLike) -> list[dict] | None:
    """Every song of the index at ``path``, read-only, without the per-window data: ``id``, ``path``,
    ``tags`` (dict), ``genre``, ``verdict``, ``certainty`` (top[0]'s probability) and ``styles`` (the
    analysis' list of dicts); ``None`` when there is no index there (no file, or the journal alone).

    A row that cannot be read as a song (tags or analysis over :data:`MAX_TAGS_CHARS` /
    :data:`MAX_ANALYSIS_CHARS`, not JSON, of the wrong shape) comes as ``id``, ``path`` and ``problem``
    (why, in words) alone: one damaged row never stops the listing.
    """
    if not Path(path).exists():
        return None
    with _read_only(Path(path)) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'songs'").fetchall():
            return None
        rows = conn.execute(_SUMMARY_SQL, {"tags": MAX_TAGS_CHARS, "analysis": MAX_ANALYSIS_CHARS}).fetchall()
    return [_summary_row(r) for r in rows]


def _summary_row(r: sqlite3.Row) -> dict:
    """One row of ``_SUMMARY_SQL`` as :func:`read_songs` gives it, or with its ``problem``."""
    song = {"id": r["id"], "path": song_path(r["path"])}
    if r["tags"] is None:
        return song | {"problem": f"its tags are {r['tags_chars'] or 0:,} characters, over the {MAX_TAGS_CHARS:,} read"}
    if not r["usable"]:
        size = r["analysis_chars"] or 0
        why = (f"its analysis is {size:,} characters, over the {MAX_ANALYSIS_CHARS:,} read"
               if size > MAX_ANALYSIS_CHARS else "its analysis is not JSON")
        return song | {"problem": why}
    try:
        tags = json.loads(r["tags"])
    except ValueError:
        return song | {"problem": "its tags are not JSON"}
    genre, verdict, certainty, styles = json.loads(r["fields"])
    if not (isinstance(tags, dict) and isinstance(styles, (list, type(None))) and isinstance(genre, (str, type(None)))
            and isinstance(verdict, (str, type(None))) and isinstance(certainty, (int, float, type(None)))):
        return song | {"problem": "its tags or analysis are not of the shape genrify writes"}
    return song | {"tags": tags, "genre": genre, "verdict": verdict, "certainty": certainty, "styles": styles or []}


def read_song(path: str | os.PathLike, song_id: int) -> dict | None:
    """Song ``song_id`` of the index at ``path``, read-only: its ``analysis`` (dict) and ``written`` (the
    genre values genrify wrote, or ``None``); ``None`` when there is no such song. An analysis over
    :data:`MAX_ANALYSIS_CHARS` is never loaded; it, or one that is not JSON, is a :class:`DatasetError`."""
    with _read_only(Path(path)) as conn:
        row = conn.execute("SELECT CASE WHEN length(analysis) <= ? THEN analysis END AS analysis, "
                           "length(analysis) AS chars, written FROM songs WHERE id = ?",
                           (MAX_ANALYSIS_CHARS, song_id)).fetchone()
    if row is None:
        return None
    if row["analysis"] is None:
        raise DatasetError(f"song {song_id}: its analysis is {row['chars'] or 0:,} characters, over the "
                           f"{MAX_ANALYSIS_CHARS:,} the library page reads")
    try:
        analysis, written = json.loads(row["analysis"]), _json(row["written"])
    except ValueError:
        raise DatasetError(f"song {song_id}: its stored analysis is not JSON") from None
    if not isinstance(analysis, dict):
        raise DatasetError(f"song {song_id}: its stored analysis is not of the shape genrify writes")
    return {"analysis": analysis, "written": written}


def read_choice_inputs(path: str | os.PathLike, ids: list[int]) -> dict[int, dict]:
    """What :func:`~genrify.tagging.choose.choose` reads of the analyses of songs ``ids`` (``genres``,
    ``details.styles``, ``verdict``), read-only, by id; a song over :data:`MAX_ANALYSIS_CHARS`, not JSON
    or gone is absent."""
    if not ids:
        return {}
    with _read_only(Path(path)) as conn:
        rows = conn.execute(
            "SELECT id, CASE WHEN length(analysis) <= ? AND json_valid(analysis) "
            "THEN json_extract(analysis, '$.genres', '$.details.styles', '$.verdict') END AS fields "
            f"FROM songs WHERE id IN ({', '.join('?' * len(ids))})", (MAX_ANALYSIS_CHARS, *ids)).fetchall()
    out = {}
    for r in rows:
        if r["fields"] is not None:
            genres, styles, verdict = json.loads(r["fields"])
            out[r["id"]] = {"genres": genres or {}, "details": {"styles": styles or []}, "verdict": verdict}
    return out


def read_changes(path: str | os.PathLike, files: list[str]) -> dict[str, TagChange]:
    """The latest recorded genre change of each of ``files`` (resolved paths, as the journal records them)
    in the tag journal at ``path``, read-only; files never tagged are absent (so is every file when
    the file has no journal)."""
    if not files or not Path(path).exists():
        return {}
    with _read_only(Path(path)) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'changes'").fetchall():
            return {}
        rows = conn.execute(f"SELECT * FROM changes WHERE path IN ({', '.join('?' * len(files))}) ORDER BY id",
                            [stored_path(f) for f in files]).fetchall()
    changes = (_change(r, journal=Path(path)) for r in rows)
    return {c.path: c for c in changes}  # by id: the latest of a file wins
