"""Searching the library index in bounded time: an FTS5 trigram index proposes, difflib only confirms.

Comparing a query with every indexed track through difflib made a search cost
grow with the library and with the query (one 4.5 KB query of U+FDFA cost
16.7 s of CPU on 2,000 songs). A search is now bounded three ways:

* names are cut after normalisation (:data:`~genrify.sources.matching.MAX_NAME_CHARS`);
* candidates come from indexes: tracks whose normalised names equal the query's
  (B-tree indexes), then at most :data:`MAX_CANDIDATES` tracks sharing the most
  trigrams with it (SQLite FTS5, ``trigram`` tokenizer, over the space-padded
  normalised artist and titles, ranked by bm25, at most :data:`MAX_TERMS`
  trigrams per field) among those whose lengths allow a match at all (difflib's
  ratio cannot reach the threshold T when one name is shorter than T / (2 - T)
  of the other: 2/3 for 0.8); only those are scored by
  :func:`~genrify.sources.matching.similarity`, with the same threshold as before;
* a deadline (a :func:`time.monotonic` instant, by default
  :data:`SEARCH_BUDGET_S` after the search has the index) stops the trigram
  query and the scoring; what was found by then is returned, and
  :attr:`Ranking.complete` says whether the search finished. Exact matches
  are always looked up: on a loaded machine a song named as it is indexed
  is still found.

When nothing matches as a whole, a search falls back to words: tracks holding
each word of the query (of three letters or more) as a substring of their names
("sugar plum" finds "Dance of the Sugar Plum Fairy"); a query of three or more
words typed without an artist may miss one ("Brahms Hungarian Dance" finds
"Hungarian Dance No. 5" by another performer). Word matches score below
:data:`~genrify.sources.matching.MATCH_THRESHOLD`, under every whole-name match.
A query of more than :data:`MAX_WORDS` words is no word search. When even
words find nothing, :attr:`Ranking.closest` names the candidates that came
nearest, for a "did you mean" list.

Trigrams keep typos findable: one wrong letter spoils at most three of a name's
trigrams, and padding gives even a one- or two-letter name some ("u2" → " u2", "u2 ").

The FTS table ``tracks_fts`` mirrors the playable rows of ``tracks`` through
triggers, so every write to ``tracks`` (a scan's insert, update or delete, or
any other) keeps it in sync; :func:`install` creates it, and builds it for
index files written before it existed (``PRAGMA user_version`` below
:data:`FTS_VERSION`).
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from dataclasses import dataclass

from genrify.sources.matching import MATCH_THRESHOLD, MAX_NAME_CHARS, normalize, similarity, variants

#: Most tracks the trigram index proposes for difflib to score (exact matches come on top).
MAX_CANDIDATES = 32
#: Most distinct trigrams of one field (artist, or title) put into the index query.
MAX_TERMS = 32
#: Default time a search may take, in seconds, counted from when it has the index (see ``deadline``).
SEARCH_BUDGET_S = 0.25
#: Longest wait, in seconds, for the index when no ``deadline`` is given. Writers hold it for one row at a
#: time, so a long wait is the machine's load, not the search's work: it is not taken from the budget.
LOCK_WAIT_S = 5.0
#: Longest query (in words) searched word by word when nothing matches as a whole.
MAX_WORDS = 8
#: Shortest word of a word search (the trigram index cannot look up shorter ones).
MIN_WORD = 3
#: How many near misses :attr:`Ranking.closest` lists.
CLOSEST = 3
#: ``PRAGMA user_version`` of an index file whose FTS table and triggers exist.
FTS_VERSION = 1


def indexed_names(*, artist: str, title: str) -> tuple[str, str, str]:
    """``(norm_artist, norm_title, norm_title_short)``: what the index stores and searches for a track."""
    return normalize(artist), normalize(title), normalize(title, drop_brackets=True)


# --------------------------------------------------------------------------- the FTS table


def _rowid(col: str) -> str:
    """SQL for a stable FTS rowid from a 16-hex-digit track id: its first 15 digits (60 bits, positive).

    Not ``tracks.rowid``: VACUUM may renumber the implicit rowids of a table
    keyed by text, which would point the FTS rows at other tracks.
    """
    digits = (f"((instr('0123456789abcdef', substr({col}, {k + 1}, 1)) - 1) << {4 * (14 - k)})" for k in range(15))
    return "(" + " + ".join(digits) + ")"


def _fts_row(t: str) -> str:
    # Padded with spaces so that a name's first and last letters, and a name of one or two, form trigrams.
    return (f"{_rowid(t + '.id')}, {t}.id, ' ' || {t}.norm_artist || ' ', ' ' || {t}.norm_title || ' ', "
            f"' ' || {t}.norm_title_short || ' '")


# OR REPLACE: two ids sharing their first 15 hex digits (odds ~ n²/2^61) must not stop a scan.
_FTS_INSERT = "INSERT OR REPLACE INTO tracks_fts (rowid, id, artist, title, title_short)"
_FTS_STATEMENTS = (
    "DROP TRIGGER IF EXISTS tracks_fts_insert",
    "DROP TRIGGER IF EXISTS tracks_fts_delete",
    "DROP TRIGGER IF EXISTS tracks_fts_update",
    "DROP TABLE IF EXISTS tracks_fts",
    "CREATE VIRTUAL TABLE tracks_fts USING fts5(id UNINDEXED, artist, title, title_short, tokenize='trigram')",
    f"""CREATE TRIGGER tracks_fts_insert AFTER INSERT ON tracks WHEN new.status = 'ok' BEGIN
          {_FTS_INSERT} VALUES ({_fts_row('new')}); END""",
    f"""CREATE TRIGGER tracks_fts_delete AFTER DELETE ON tracks BEGIN
          DELETE FROM tracks_fts WHERE rowid = {_rowid('old.id')}; END""",
    f"""CREATE TRIGGER tracks_fts_update AFTER UPDATE ON tracks BEGIN
          DELETE FROM tracks_fts WHERE rowid = {_rowid('old.id')};
          {_FTS_INSERT} SELECT {_fts_row('new')} WHERE new.status = 'ok'; END""",
    f"{_FTS_INSERT} SELECT {_fts_row('tracks')} FROM tracks WHERE status = 'ok'",
)


def install(conn: sqlite3.Connection) -> None:
    """Create the FTS table and its triggers, or build them for an index file that predates them.

    The stored normalised names are recomputed first (normalisation now cuts
    long names, and an exact match needs both sides cut alike). One IMMEDIATE
    transaction, so two processes opening the same file build it once, and an
    interrupted build leaves the file as it was.
    """
    if conn.execute("PRAGMA user_version").fetchone()[0] >= FTS_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] < FTS_VERSION:
            rows = conn.execute("SELECT id, artist, title FROM tracks").fetchall()
            conn.executemany(
                "UPDATE tracks SET norm_artist = ?, norm_title = ?, norm_title_short = ? WHERE id = ?",
                [(*indexed_names(artist=r[1], title=r[2]), r[0]) for r in rows],
            )
            for statement in _FTS_STATEMENTS:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {FTS_VERSION}")
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class Query:
    """A search, normalised: the artist (``""``: any) and the title's variants (``{""}``: any)."""

    artist: str
    titles: frozenset[str]

    @classmethod
    def parse(cls, *, artist: str, track: str) -> Query:
        return cls(normalize(artist or ""), frozenset(variants(track or "")))

    @property
    def empty(self) -> bool:
        return not self.artist and not any(self.titles)

    def match_expression(self) -> str | None:
        """The FTS5 query: any trigram of the artist in ``artist``, any of the titles in ``title``/``title_short``."""
        groups = [("artist", [self.artist] if self.artist else []),
                  ("{title title_short}", sorted(t for t in self.titles if t))]
        parts = [f"{cols} : ({' OR '.join(_terms(names))})" for cols, names in groups if names]
        return " OR ".join(parts) or None

    def words(self) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """``(artist words, title words)`` of :data:`MIN_WORD` letters or more, each without repeats;
        ``None`` when the query is too long for a word search (over :data:`MAX_WORDS` words) or has none."""
        title = max(self.titles, key=len)
        if len(self.artist.split()) + len(title.split()) > MAX_WORDS:
            return None
        a, t = ([w for w in dict.fromkeys(text.split()) if len(w) >= MIN_WORD] for text in (self.artist, title))
        return (tuple(a), tuple(t)) if a or t else None

    def length_windows(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """``((lo, hi), (lo, hi))``: lengths a track's title, and its artist, need to be able to match at all.

        :func:`~genrify.sources.matching.similarity` is at most ``2 * min(a, b) / (a + b)``
        for names of lengths ``a`` and ``b``; an unconstrained field gets ``(0, MAX_NAME_CHARS)``.
        """
        def window(lengths: list[int]) -> tuple[int, int]:
            if not lengths:
                return 0, MAX_NAME_CHARS
            t = MATCH_THRESHOLD
            return math.floor(min(lengths) * t / (2 - t)), math.ceil(max(lengths) * (2 - t) / t)

        return window([len(v) for v in self.titles if v]), window([len(self.artist)] if self.artist else [])


def _terms(names: list[str]) -> list[str]:
    """The distinct trigrams of the space-padded names, at most :data:`MAX_TERMS`, as quoted FTS5 strings."""
    grams = list(dict.fromkeys(p[i:i + 3] for p in (f" {n} " for n in names) for i in range(len(p) - 2)))
    if len(grams) > MAX_TERMS:  # spread over the whole name, not just its start
        grams = [grams[i * len(grams) // MAX_TERMS] for i in range(MAX_TERMS)]
    return ['"' + g.replace('"', '""') + '"' for g in grams]


@dataclass(frozen=True)
class Ranking:
    """One search's matches as ``(score, track id)``, best first, and what it cost.

    ``candidates``: tracks proposed by the indexes (exact matches plus at most
    :data:`MAX_CANDIDATES`); ``scored``: those compared by difflib;
    ``complete``: False when the deadline cut the search short.
    """

    hits: tuple[tuple[float, str], ...]
    candidates: int
    scored: int
    complete: bool
    #: When there are no hits: the ids of up to :data:`CLOSEST` candidates that came nearest, best first.
    closest: tuple[str, ...] = ()


_COLS = "t.id, t.norm_artist, t.norm_title, t.norm_title_short"


def _exact_rows(conn: sqlite3.Connection, q: Query) -> list[sqlite3.Row]:
    where, args = ["t.status = 'ok'"], []
    if q.artist:
        where.append("t.norm_artist = ?")
        args.append(q.artist)
    titles = sorted(t for t in q.titles if t)
    if titles:
        marks = ", ".join("?" * len(titles))
        where.append(f"(t.norm_title IN ({marks}) OR t.norm_title_short IN ({marks}))")
        args += titles * 2
    # Ordered by id: ties keep the order the full scan gave them.
    sql = f"SELECT {_COLS} FROM tracks t WHERE {' AND '.join(where)} ORDER BY t.id LIMIT ?"
    return conn.execute(sql, (*args, MAX_CANDIDATES)).fetchall()


def _ranked_rows(conn: sqlite3.Connection, sql: str, params: tuple, *,
                 deadline: float) -> tuple[list[sqlite3.Row], bool]:
    """Run a ranked full-text query until ``deadline``; its rows and whether it finished in time."""
    if time.monotonic() >= deadline:
        return [], False
    conn.set_progress_handler(lambda: time.monotonic() >= deadline, 1000)  # non-zero aborts the query
    try:
        rows = conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "interrupted" not in str(exc):
            raise
        return [], False
    finally:
        conn.set_progress_handler(None, 0)
    return rows, True


def _trigram_rows(conn: sqlite3.Connection, q: Query, *, deadline: float) -> tuple[list[sqlite3.Row], bool]:
    """The tracks sharing the most trigrams with ``q``, best first, and whether the query finished in time."""
    expr = q.match_expression()
    if expr is None:
        return [], True
    (t_lo, t_hi), (a_lo, a_hi) = q.length_windows()
    # The length filter comes before the ranking, so bm25 runs only on rows that could match
    # (ranking every row sharing a trigram cost 40 ms on 2,000 songs for a query of common words).
    return _ranked_rows(conn, f"""WITH hits AS (
                    SELECT id, bm25(tracks_fts) AS score FROM tracks_fts WHERE tracks_fts MATCH ?
                      AND (length(title) - 2 BETWEEN ? AND ? OR length(title_short) - 2 BETWEEN ? AND ?)
                      AND length(artist) - 2 BETWEEN ? AND ?
                    ORDER BY score LIMIT ?)
                SELECT {_COLS} FROM hits JOIN tracks t ON t.id = hits.id WHERE t.status = 'ok'
                ORDER BY hits.score""",
                        (expr, t_lo, t_hi, t_lo, t_hi, a_lo, a_hi, MAX_CANDIDATES), deadline=deadline)


def _word_rows(conn: sqlite3.Connection, words: tuple[tuple[str, ...], tuple[str, ...]], *,
               deadline: float) -> tuple[list[sqlite3.Row], bool]:
    """At most :data:`MAX_CANDIDATES` tracks holding any of ``words`` in their names, most words first."""
    terms = ['"' + w.replace('"', '""') + '"' for w in dict.fromkeys(words[0] + words[1])]
    return _ranked_rows(conn, f"""WITH hits AS (
                    SELECT id, bm25(tracks_fts) AS score FROM tracks_fts
                    WHERE tracks_fts MATCH ? ORDER BY score LIMIT ?)
                SELECT {_COLS} FROM hits JOIN tracks t ON t.id = hits.id WHERE t.status = 'ok'
                ORDER BY hits.score""",
                        ("{artist title title_short} : (" + " OR ".join(terms) + ")", MAX_CANDIDATES),
                        deadline=deadline)


def _word_score(q: Query, words: tuple[tuple[str, ...], tuple[str, ...]], row: sqlite3.Row) -> float | None:
    """A word match's score (below :data:`MATCH_THRESHOLD`, higher the more of the names the words
    cover), or None. With an artist: the artist matches and every title word is in the title.
    Without: every word is in the names, or all but one of three or more."""
    artist_words, title_words = words
    names = f"{row['norm_artist']} {row['norm_title']}"
    if q.artist:
        artist_ok = (all(w in row["norm_artist"] for w in artist_words) if artist_words else False) or (
            similarity(q.artist, row["norm_artist"], at_least=MATCH_THRESHOLD) >= MATCH_THRESHOLD)
        found = [w for w in title_words if w in row["norm_title"] or w in row["norm_title_short"]]
        if not artist_ok or len(found) < len(title_words):
            return None
    else:
        found = [w for w in title_words if w in names]
        if not found or len(found) < len(title_words) - (1 if len(title_words) >= 3 else 0):
            return None
    coverage = sum(map(len, found)) / max(1, len(names.replace(" ", "")))
    return MATCH_THRESHOLD * (0.9 + 0.1 * min(1.0, coverage))


def _closest(q: Query, rows: list[sqlite3.Row], *, deadline: float) -> tuple[str, ...]:
    """The ids of up to :data:`CLOSEST` of ``rows`` nearest to ``q`` by name similarity (no threshold)."""
    scored = []
    for row in rows:
        if time.monotonic() >= deadline:
            break
        s_title = similarity(set(q.titles), {row["norm_title"], row["norm_title_short"]}) if any(q.titles) else 1.0
        s_artist = similarity(q.artist, row["norm_artist"]) if q.artist else 1.0
        scored.append((-(s_title + s_artist), row["id"]))
    return tuple(tid for _, tid in sorted(set(scored))[:CLOSEST])


def _score(q: Query, row: sqlite3.Row) -> float | None:
    """Mean of the title and artist similarities, or None when either is below the threshold."""
    s_title = s_artist = 1.0
    if q.artist:  # first: one pair, where the title may take four
        s_artist = similarity(q.artist, row["norm_artist"], at_least=MATCH_THRESHOLD)
        if s_artist < MATCH_THRESHOLD:
            return None
    if any(q.titles):
        s_title = similarity(set(q.titles), {row["norm_title"], row["norm_title_short"]}, at_least=MATCH_THRESHOLD)
        if s_title < MATCH_THRESHOLD:
            return None
    return (s_title + s_artist) / 2


def rank_tracks(
    conn: sqlite3.Connection, *, lock: threading.RLock, artist: str, track: str, deadline: float | None = None
) -> Ranking:
    """Rank the playable tracks of the index on ``conn`` (used under ``lock``) against a search.

    Exact matches of the normalised names score 1.0; fuzzy matches score the
    mean of the title and artist similarities, both at least
    :data:`~genrify.sources.matching.MATCH_THRESHOLD`; ties go by id. An empty
    ``artist`` matches any, as does an empty ``track``; both empty match nothing.
    ``deadline`` is a :func:`time.monotonic` instant (default: :data:`SEARCH_BUDGET_S` after the search
    has the index, which it waits for at most :data:`LOCK_WAIT_S`); once it passes, nothing more is
    scored or looked up through the trigram index. Exact matches are indexed look-ups: a search that has
    the index always finds them, however loaded the machine, so a song typed as it is named is found.
    """
    q = Query.parse(artist=artist, track=track)
    if q.empty:
        return Ranking(hits=(), candidates=0, scored=0, complete=True)
    wait = LOCK_WAIT_S if deadline is None else max(0.0, deadline - time.monotonic())
    if not lock.acquire(timeout=wait):
        return Ranking(hits=(), candidates=0, scored=0, complete=False)
    deadline = time.monotonic() + SEARCH_BUDGET_S if deadline is None else deadline
    try:
        exact = _exact_rows(conn, q)
        fuzzy, complete = _trigram_rows(conn, q, deadline=deadline)
    finally:
        lock.release()
    found = {row["id"]: 1.0 for row in exact}
    todo = [row for row in fuzzy if row["id"] not in found]
    scored = 0
    for row in todo:
        if time.monotonic() >= deadline:
            complete = False
            break
        scored += 1
        score = _score(q, row)
        if score is not None:
            found[row["id"]] = score
    candidates = len(exact) + len(todo)
    closest: tuple[str, ...] = ()
    words = q.words() if not found else None
    if words is not None:  # nothing matched as a whole: try word by word
        with lock:
            word_rows, words_complete = _word_rows(conn, words, deadline=deadline)
        complete = complete and words_complete
        seen = {row["id"] for row in todo}
        extra = [row for row in word_rows if row["id"] not in seen]
        candidates += len(extra)
        for row in todo + extra:
            if time.monotonic() >= deadline:
                complete = False
                break
            score = _word_score(q, words, row)
            if score is not None:
                found[row["id"]] = score
        if not found:
            closest = _closest(q, todo + extra, deadline=deadline)
    elif not found:
        closest = _closest(q, todo, deadline=deadline)
    hits = sorted(((s, tid) for tid, s in found.items()), key=lambda t: (-t[0], t[1]))
    return Ranking(hits=tuple(hits), candidates=candidates, scored=scored, complete=complete, closest=closest)
