"""The songs of a results index as the library page lists them: read-only, filtered, sorted and paged.

:class:`LibraryView` is the index's own query for ``genrify serve --library DIR``
(:mod:`genrify.web.library_page`): it opens the file read-only (:func:`~genrify.tagging.listing.read_songs`),
so a ``genrify tag`` run may go on while the page is shown (the index is in WAL mode),
and answers with plain dicts. With a library folder it lists the songs under it,
otherwise every song of the index. A row the index cannot give as a song (over the size
bounds, not JSON, of another shape) is skipped and reported (``skipped``), never a 500.

A library can hold tens of thousands of songs, and the page asks for one page of them at
a time. The songs' summaries (no per-window data) are read once, and again only when the
index file or its write-ahead log changes, into a :class:`Catalogue`: an in-memory SQLite
database with an index on every order the table sorts by and on what it filters by, so a
page is one indexed query in C (the GIL released) instead of a sort of every song in Python.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from pathlib import Path

from genrify.errors import GenrifyError, NotFoundError
from genrify.fileio import name_as_text
from genrify.tagging.index import default_index_path
from genrify.tagging.listing import read_song, read_songs

log = logging.getLogger("genrify.web")

#: The columns the table sorts by (``song``: as shown, ``name``: the file's name in the library).
SORT_KEYS = ("song", "name", "artist", "title", "album", "genre", "style", "certainty", "verdict")
#: The most words one search looks for, once repeats and words inside another word are dropped.
MAX_WORDS = 8
#: The most SQLite virtual-machine steps one query may take (~1 s of one core): a page of an indexed
#: order takes thousands, a search through 50,000 songs for eight words a few million.
MAX_STEPS = 20_000_000
#: SQLite calls back into Python (taking the GIL from the event loop) once per this many steps.
_STEPS_PER_CHECK = 100_000
#: A catalogue read in less time than this (seconds) is read again on every change of the index.
REREAD_FREELY_S = 0.05
#: How many skipped rows ``query`` names (all are counted).
MAX_PROBLEMS_SHOWN = 20


class QueryTooCostlyError(GenrifyError):
    """A search would do more work than one request may (too many words, or past :data:`MAX_STEPS`)."""

    status_code = 422


class LibraryView:
    """The results index at ``index`` (default :func:`~genrify.tagging.index.default_index_path`), seen
    read-only; with ``library``, only the songs under that folder, named relative to it."""

    def __init__(self, index: str | os.PathLike | None = None, *, library: str | os.PathLike | None = None):
        self.index = Path(index).expanduser() if index is not None else default_index_path()
        self.library = Path(library).expanduser().absolute() if library else None
        # A song's path is as `genrify tag` was given it: the folder as named and as its links resolve.
        self._roots = () if self.library is None else tuple(dict.fromkeys(
            os.path.normpath(r) for r in (self.library, self.library.resolve())))
        self._lock = threading.Lock()
        self._seen: tuple | None = None
        self._catalogue: Catalogue | None = None
        self._built_at, self._build_s = 0.0, 0.0

    def _signature(self) -> tuple | None:
        try:
            main = self.index.stat()
        except OSError:
            return None
        wal = self.index.with_name(self.index.name + "-wal")
        w = wal.stat() if wal.exists() else None
        return (main.st_mtime_ns, main.st_size, w and w.st_mtime_ns, w and w.st_size)

    def catalogue(self) -> Catalogue | None:
        """The songs listed, read again when the index changed; ``None`` when there is no index yet
        (no file, or only the tag journal)."""
        with self._lock:
            seen = self._signature()
            # While a `genrify tag` run commits every second, a large catalogue is read again at most once in
            # twice the time its reading took: the page lags the job by seconds instead of rebuilding per page.
            # One read in under REREAD_FREELY_S is read again on every change: a small library is never stale.
            fresh = (self._catalogue is not None and self._build_s > REREAD_FREELY_S
                     and time.monotonic() - self._built_at < 2 * self._build_s)
            if seen is not None and seen != self._seen and not fresh:
                started = time.monotonic()
                rows = read_songs(self.index)
                if rows is None:  # the tag journal of `genrify predict --write-tags` alone: no index yet
                    seen = None
                else:
                    self._catalogue = Catalogue(rows, summary=self._summary)
                    self._seen, self._built_at = seen, time.monotonic()
                    self._build_s = self._built_at - started
                    if self._catalogue.problems:
                        log.warning("%s: %d rows skipped, e.g. song %s (%s): %s", self.index.name,
                                    len(self._catalogue.problems), *self._catalogue.problems[0])
            if seen is None:
                self._seen, self._catalogue = None, None
            return self._catalogue

    def _summary(self, row: dict) -> dict | None:
        # Normalised before the comparison: "<library>/../../etc/passwd" is not under the library. Plain
        # strings, not Path objects: this runs for every song of the index.
        path = os.path.normpath(row["path"])
        if self.library is not None:
            root = next((r for r in self._roots if path.startswith(r) and path[len(r):len(r) + 1] == os.sep), None)
            if root is None:
                return None
            name = path[len(root) + 1:]
        else:
            name = "/".join(path.rsplit(os.sep, 2)[-2:])
        name = name_as_text(name)  # shown and searched as text; ``path`` keeps the bytes that open the file
        if "problem" in row:
            return {"id": row["id"], "name": name, "problem": row["problem"]}
        tags = row["tags"]
        artist, title, album = (_text(tags.get(k)) for k in ("artist", "title", "album"))
        # As the table shows it: "artist – title", else the file's name.
        song = (f"{artist} – {title}" if artist else title) if title else name_as_text(os.path.basename(path))
        styles = [str(s["name"]) for s in row["styles"] if isinstance(s, dict) and "name" in s]
        names = [n.casefold() for n in ([row["genre"]] if row["genre"] else []) + styles]
        text = " ".join(v for v in (song, name, artist, title, album) if v).casefold()
        return {"id": row["id"], "path": path, "song": song, "name": name, "artist": artist,
                "title": title, "album": album, "genre": row["genre"], "styles": styles,
                "certainty": row["certainty"], "verdict": row["verdict"], "_names": names, "_text": text}

    def query(self, *, q: str = "", genre: str = "", verdict: str = "", sort: str = "song", order: str = "asc",
              offset: int = 0, limit: int = 50) -> dict | None:
        """One page of the songs listed (:meth:`Catalogue.select`), with ``songs`` (how many are listed in
        all), the ``genres`` and ``styles`` present, and ``skipped`` (how many rows could not be read, and
        why for the first few); ``None`` when there is no index."""
        cat = self.catalogue()
        if cat is None:
            return None
        found = cat.select(q=q, genre=genre, verdict=verdict, sort=sort, order=order, offset=offset, limit=limit)
        skipped = {"count": len(cat.problems),
                   "rows": [{"id": i, "name": n, "problem": p} for i, n, p in cat.problems[:MAX_PROBLEMS_SHOWN]]}
        return {"songs": len(cat.songs), **found, **cat.facets, "skipped": skipped}

    def song(self, song_id: int) -> dict:
        """Song ``song_id``'s row, with its ``path``; :class:`~genrify.errors.NotFoundError` when it is not listed."""
        cat = self.catalogue()
        song = cat.by_id.get(song_id) if cat is not None else None
        if song is None:
            skipped = next((p for i, _, p in cat.problems if i == song_id), None) if cat is not None else None
            raise NotFoundError(f"song {song_id} was skipped: {skipped}" if skipped
                                else "no such song in the results index")
        return song

    def details(self, song_id: int) -> dict:
        """Song ``song_id``'s row (no path) with its stored ``analysis`` (the JSON of ``Analysis.to_dict``)
        and ``written`` (the genre values genrify wrote, or ``None``)."""
        song = self.song(song_id)
        stored = read_song(self.index, song_id)
        if stored is None:
            raise NotFoundError("no such song in the results index")
        return {**public(song), **stored}


def _text(value) -> str | None:
    """A tag as text: a list (several values) is joined, nothing is ``None``."""
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value if v is not None)
    return str(value) if value not in (None, "") else None


def sort_value(song: dict, key: str):
    """``song``'s value in column ``key`` as the table sorts it: case apart (casefolded text), the first style
    for ``style``, the number for ``certainty``; ``None`` when it has none (such songs go last, by name)."""
    value = song["styles"][0] if key == "style" and song["styles"] else None if key == "style" else song[key]
    if key == "certainty":
        return value if isinstance(value, (int, float)) else None
    return str(value).casefold() if value not in (None, "") else None


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def sql_text(value):
    """``value`` as the catalogue stores and compares it: text with a lone surrogate (a tag or an index row
    that JSON's ``\\udcXX`` escape put there) gets U+FFFD in its place, as SQLite takes UTF-8 only; the
    song itself keeps its text, which the page's JSON sends as the same escape."""
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub("\ufffd", value)
    return value


def order_by(key: str, order: str) -> str:
    """The SQL order of column ``key`` (``asc`` or ``desc``): songs with a value first, by it (ties in the
    index's order), then those without, by name. Each has an index on exactly these terms."""
    return f"{key} IS NULL, {key} {order.upper()}, CASE WHEN {key} IS NULL THEN name END, pos"


def search_words(q: str) -> list[str]:
    """The words a search for ``q`` must find (case apart): repeats and words found inside another
    word dropped, as they add no condition; :class:`QueryTooCostlyError` past :data:`MAX_WORDS`."""
    words = sorted(set(q.casefold().split()), key=len, reverse=True)
    kept: list[str] = []
    for w in words:
        if not any(w in k for k in kept):
            kept.append(w)
    if len(kept) > MAX_WORDS:
        raise QueryTooCostlyError(f"q: at most {MAX_WORDS} different words, not {len(kept)}")
    return kept


class Catalogue:
    """The songs of one reading of the index (``rows`` of :func:`~genrify.tagging.listing.read_songs`, each
    made a song by ``summary`` or left out when it gives ``None``), queried through an in-memory SQLite
    database: one row per song with its value in every column of :data:`SORT_KEYS`, an index for each order
    (:func:`order_by`), its genre and styles in their own indexed table, and the text a search looks through.
    A query past ``max_steps`` SQLite steps (checked every 100,000) is stopped: :class:`QueryTooCostlyError`."""

    def __init__(self, rows: list[dict], *, summary, max_steps: int = MAX_STEPS):
        self.songs: list[dict] = []
        self.problems: list[tuple[int, str, str]] = []  # (id, name, why) of the rows skipped
        for row in rows:
            song = summary(row)
            if song is None:
                continue
            if "problem" in song:
                self.problems.append((song["id"], song["name"], song["problem"]))
            else:
                self.songs.append(song)
        self.by_id = {s["id"]: s for s in self.songs}
        self.facets = facets(self.songs)
        self._lock = threading.Lock()
        self._steps, self.max_steps = 0, max_steps
        self._indexed: set[str] = set()  # the orders with their index built
        self._conn = self._build()

    def _build(self) -> sqlite3.Connection:
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        # Text is stored casefolded: SQLite compares it by UTF-8 bytes, the order of Python's str comparison.
        columns = ", ".join(f"{k} {'REAL' if k == 'certainty' else 'TEXT'}" for k in SORT_KEYS if k != "name")
        conn.execute(f"CREATE TABLE songs (pos INTEGER PRIMARY KEY, name TEXT NOT NULL, hay TEXT NOT NULL, {columns})")
        conn.execute("CREATE TABLE names (name TEXT NOT NULL, pos INTEGER NOT NULL)")
        with conn:
            # What a word must be found in: the shown names and tags, then each genre and style on its own
            # line (a word never spans two: it has no white space).
            others = [k for k in SORT_KEYS if k != "name"]
            conn.executemany(
                f"INSERT INTO songs VALUES (?, ?, ?, {', '.join('?' * len(others))})",
                ((pos, sql_text(s["name"].casefold()), sql_text("\n".join([s["_text"], *s["_names"]])),
                  *(sql_text(sort_value(s, k)) for k in others))
                 for pos, s in enumerate(self.songs)))
            conn.executemany("INSERT INTO names VALUES (?, ?)", ((sql_text(n), pos) for pos, s in enumerate(self.songs)
                                                                 for n in dict.fromkeys(s["_names"])))
            conn.execute("CREATE INDEX songs_verdict ON songs (verdict)")
            conn.execute("CREATE INDEX names_name ON names (name, pos)")
        conn.set_progress_handler(self._step, _STEPS_PER_CHECK)
        return conn

    def _step(self) -> int:
        self._steps += 1
        return self._steps * _STEPS_PER_CHECK > self.max_steps  # non-zero: SQLite stops the statement ("interrupted")

    def select(self, *, q: str = "", genre: str = "", verdict: str = "", sort: str = "song", order: str = "asc",
               offset: int = 0, limit: int = 50) -> dict:
        """One page of the songs, filtered (every word of ``q`` in a name, tag, genre or style; ``genre`` the
        genre or a style, case apart; ``verdict``), sorted by ``sort`` (:func:`order_by`): ``total`` matching,
        ``offset``, ``limit`` and the ``rows`` (:func:`public`). Blocking; queries of one catalogue take turns."""
        if sort not in SORT_KEYS or order not in ("asc", "desc"):
            raise GenrifyError(f"sort: one of {', '.join(SORT_KEYS)}, in order asc or desc")
        where, params = [], []
        if verdict:
            where.append("verdict = ?")
            params.append(sql_text(verdict.casefold()))
        if genre.strip():
            where.append("pos IN (SELECT pos FROM names WHERE name = ?)")
            params.append(sql_text(genre.casefold().strip()))
        for w in search_words(q):
            where.append("instr(hay, ?) > 0")
            params.append(sql_text(w))
        clause = " WHERE " + " AND ".join(where) if where else ""
        with self._lock:
            if f"{sort}_{order}" not in self._indexed:
                # Built on first use (~0.1 s of C for 50,000 songs): most libraries are seen in a few orders.
                self._conn.set_progress_handler(None, 0)
                with self._conn:
                    self._conn.execute(f"CREATE INDEX songs_{sort}_{order} ON songs ({order_by(sort, order)})")
                self._conn.set_progress_handler(self._step, _STEPS_PER_CHECK)
                self._indexed.add(f"{sort}_{order}")
            self._steps = 0
            try:
                total = (self._conn.execute(f"SELECT count(*) FROM songs{clause}", params).fetchone()[0]
                         if where else len(self.songs))
                page = self._conn.execute(f"SELECT pos FROM songs{clause} ORDER BY {order_by(sort, order)} "
                                          "LIMIT ? OFFSET ?", (*params, limit, offset)).fetchall()
            except sqlite3.OperationalError as exc:
                if "interrupt" not in str(exc):
                    raise
                raise QueryTooCostlyError("q: the search would take too long; use fewer or longer words") from None
        return {"total": total, "offset": offset, "limit": limit, "rows": [public(self.songs[p]) for (p,) in page]}


def would_write(analysis: dict | None) -> list[str]:
    """The genre names ``genrify tag --write`` would write for a song whose analysis is ``analysis`` (its JSON
    view, or the part :func:`~genrify.tagging.listing.read_choice_inputs` gives) with the default choices
    (:func:`~genrify.tagging.choose.choose`); none when it gives none or is not of its shape."""
    from genrify.tagging.choose import choose

    try:
        return choose(analysis).names if analysis else []
    except (ValueError, TypeError, AttributeError, GenrifyError):  # a row another program wrote
        return []


def tag_state(*, current: list[str] | None, names: list[str], change) -> str:
    """Where a song's genre tag stands: ``written`` (genrify wrote it, not undone), ``undone``, ``pending``
    or ``failed`` (the last journal record of the file, ``change``, a :class:`~genrify.tagging.index.TagChange`
    or ``None``); with none, ``kept`` (the file's own genre stays, :func:`~genrify.tagging.choose.decide_tag`),
    ``unchanged`` (it already says ``names``), ``nothing`` (no name to write) or ``not written`` (yet).
    ``current``: the file's genre values now, ``None`` when they could not be read."""
    from genrify.tagging.choose import decide_tag

    if change is not None:
        return change.state
    if current is None:
        return "not written"
    return {"kept": "kept", "unchanged": "unchanged", "nothing": "nothing"}.get(
        decide_tag(current=current, names=names).outcome, "not written")


def public(song: dict) -> dict:
    """A song as the page gets it: no path, none of the look-up helpers."""
    return {k: v for k, v in song.items() if k != "path" and not k.startswith("_")}


def facets(songs: list[dict]) -> dict:
    """The genres and styles present, for the page's filter."""
    genres = sorted({s["genre"] for s in songs if s["genre"]}, key=str.casefold)
    styles = sorted({n for s in songs for n in s["styles"]}, key=str.casefold)
    return {"genres": genres, "styles": styles}
