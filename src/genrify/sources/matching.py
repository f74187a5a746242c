"""Tolerant matching of artist and title names, as the library search does it.

Names are compared *normalised* (:func:`normalize`): Unicode NFKD with accents
removed, case-folded, "feat./ft./featuring …" parts removed, punctuation turned
into spaces, a leading "the" dropped. Small typos are accepted through
:class:`difflib.SequenceMatcher` (:func:`similarity`): a track matches when the
similarity of both the artist and the title is at least :data:`MATCH_THRESHOLD`
(0.8, about one wrong letter in five).

Every step costs time in proportion to the text, so :func:`normalize` reads at
most :data:`MAX_NAME_CHARS` × 2 characters and returns at most
:data:`MAX_NAME_CHARS`: compatibility decomposition can expand one character
18-fold (U+FDFA), and a 4.5 KB query once cost seconds of difflib per track.
Indexed names and queries are cut alike, so an exact match stays exact.
"""

from __future__ import annotations

import difflib
import os
import re
import unicodedata
from pathlib import Path

#: Minimum :class:`difflib.SequenceMatcher` ratio, for the artist and for the
#: title separately, for a fuzzy match (1.0 = identical normalised text).
MATCH_THRESHOLD = 0.8

#: Longest normalised name, in characters (longer ones are cut; real titles rarely pass 100).
MAX_NAME_CHARS = 200
# Characters read before and after compatibility decomposition: enough for any real name,
# and the cap that keeps the per-character work below bounded whatever the input.
_RAW_CHARS = 2 * MAX_NAME_CHARS

_FEAT_RE = re.compile(
    r"(\s*[\(\[]\s*(feat|ft|featuring|with)\b.*$)|(\s+(feat|ft|featuring)\b\.?\s.*$)", re.IGNORECASE
)
_BRACKETS_RE = re.compile(r"[\(\[][^\)\]]*[\)\]]")
_PUNCT_RE = re.compile(r"[^\w\s]|_", re.UNICODE)
_SPACE_RE = re.compile(r"\s+")


def normalize(text: str, *, drop_brackets: bool = False) -> str:
    """Normalise a name for matching: "Beyoncé feat. JAY-Z" → "beyonce".

    NFKD with combining marks removed, case-folded, "feat./ft./featuring …"
    (and "(with …)") removed, ``&`` read as "and", punctuation and underscores
    turned into spaces, a leading "the " dropped, spaces collapsed.
    ``drop_brackets`` also removes "(…)" and "[…]" parts ("(Remastered 2011)").
    At most :data:`MAX_NAME_CHARS` characters are returned.
    """
    text = unicodedata.normalize("NFKD", (text or "")[:_RAW_CHARS])[:_RAW_CHARS]
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    # Spaces collapsed first: a run of them made the "feat." pattern retry at every position (quadratic).
    text = _SPACE_RE.sub(" ", text)
    text = _FEAT_RE.sub("", text)
    if drop_brackets:
        text = _BRACKETS_RE.sub(" ", text)
    text = text.replace("&", " and ")
    text = _PUNCT_RE.sub(" ", text)
    text = _SPACE_RE.sub(" ", text).strip()
    if text.startswith("the "):
        text = text[4:]
    return text[:MAX_NAME_CHARS].rstrip()


def similarity(query: str | set[str], candidate: str | set[str], *, at_least: float = 0.0) -> float:
    """Best :class:`difflib.SequenceMatcher` ratio between normalised names, 0–1.

    Either side may be a set of variants (e.g. a title with and without its
    bracketed part, so "Song" still matches "Song (Live)"); the best pair counts.
    Pairs whose cheap upper bounds stay below ``at_least`` are not compared in
    full (the costly step), so a result below ``at_least`` only means "below it".
    """
    qs = {query} if isinstance(query, str) else set(query)
    cs = {candidate} if isinstance(candidate, str) else set(candidate)
    best = 0.0
    for q in qs:
        for c in cs:
            if q == c:
                return 1.0
            m = difflib.SequenceMatcher(None, q, c, autojunk=False)
            # Upper bounds first (length, then letter counts): ratio() is the quadratic step.
            if any((b := bound()) <= best or b < at_least for bound in (m.real_quick_ratio, m.quick_ratio)):
                continue
            best = max(best, m.ratio())
    return best


def variants(text: str) -> set[str]:
    """A name normalised with and without its bracketed parts (empty variants dropped; ``{""}`` if none is left)."""
    return {v for v in (normalize(text), normalize(text, drop_brackets=True)) if v} or {""}


def parse_filename(path: str | os.PathLike) -> tuple[str, str]:
    """``"Artist - Title.ext"`` → ``(artist, title)``; no separator → ``("", stem)``.

    Underscores count as spaces, so ``Kevin_MacLeod_-_Vibe_Ace.ogg`` works too.
    """
    stem = Path(path).stem.replace("_", " ")
    stem = _SPACE_RE.sub(" ", stem).strip()
    if " - " in stem:
        artist, title = stem.split(" - ", 1)
        return artist.strip(), title.strip()
    return "", stem
