"""Library search: latency of normal, typo and hostile queries on a library of N real audio files.

    .venv/bin/python benchmarks/bench_search.py             # N = 2000
    .venv/bin/python benchmarks/bench_search.py --smoke     # N = 40, a few queries

The library is N tiny WAV files (0.2 s, 8 kHz, mono), named ``Artist - Title.wav``
from seeded word lists (accents, "(Live)", "(Remastered …)" and "feat." parts
included), written to a temporary folder and indexed by ``LibraryIndex.scan``
(untimed). Each query is timed alone, one at a time
(``LibraryIndex.rank`` and the look-up of the first 5 hits, which is what ``search``
does; default deadline); per kind the script prints p50, p99 and max of the wall time,
p99 of the thread's CPU time (steadier than wall time on a shared machine), how
many searches the deadline cut short and how many tracks difflib scored.
Kinds: *normal* (a track's artist and title as written), *typo* (lower case,
accents dropped, one letter of the title swapped, dropped or replaced), and
hostile ones: *fdfa* (artist U+FDFA × 200, title × 300: 18-fold under NFKD),
*letters* and *soup* (4.5 KB of random letters, or of the library's own words),
*short-words* (4.5 KB of one- and two-letter words), *brackets* (4.5 KB of
"(" and "feat." runs). Then six hostile searches run at once in threads.

The reference is the former search, kept below (``reference_search``): the
query normalised without any cap, then difflib over every playable row of the
same index, in the same run. Hostile queries cost it seconds each, so it runs
only the first ``--reference-hostile`` of each hostile kind. Target: p99 of
every kind <= 100 ms.
"""

from __future__ import annotations

import argparse
import difflib
import io
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

WORDS = ("love night baby heart dance song light fire rain blue summer dream time home road girl boy city star world "
         "river moon golden black white wild young old broken sweet cold electric paper silver ghost ocean morning "
         "highway angel devil thunder velvet midnight crystal shadow echo garden winter honey stone glass sky").split()
ACCENTED = {"e": "é", "o": "ö", "a": "á", "u": "ü", "i": "í"}
HOSTILE = ("fdfa", "letters", "soup", "short-words", "brackets")

# --------------------------------------------------------------------------- the former search (reference)

_FEAT_RE = re.compile(r"(\s*[\(\[]\s*(feat|ft|featuring|with)\b.*$)|(\s+(feat|ft|featuring)\b\.?\s.*$)", re.I)
_BRACKETS_RE = re.compile(r"[\(\[][^\)\]]*[\)\]]")
_PUNCT_RE = re.compile(r"[^\w\s]|_", re.UNICODE)
_SPACE_RE = re.compile(r"\s+")


def _old_normalize(text: str, *, drop_brackets: bool = False) -> str:
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = _FEAT_RE.sub("", text)
    if drop_brackets:
        text = _BRACKETS_RE.sub(" ", text)
    text = _SPACE_RE.sub(" ", _PUNCT_RE.sub(" ", text.replace("&", " and "))).strip()
    return text[4:] if text.startswith("the ") else text


def _old_similarity(qs: set[str], cs: set[str]) -> float:
    best = 0.0
    for q in qs:
        for c in cs:
            if q == c:
                return 1.0
            m = difflib.SequenceMatcher(None, q, c, autojunk=False)
            if m.real_quick_ratio() <= best or m.quick_ratio() <= best:
                continue
            best = max(best, m.ratio())
    return best


def reference_search(conn: sqlite3.Connection, *, artist: str, track: str, limit: int = 5) -> list[str]:
    """The search before the FTS index: every playable row through difflib (ids, best first)."""
    q_artist = _old_normalize(artist)
    q_titles = {v for v in (_old_normalize(track), _old_normalize(track, drop_brackets=True)) if v} or {""}
    if not max(q_titles, key=len) and not q_artist:
        return []
    scored = []
    for tid, n_artist, n_title, n_short in conn.execute(
            "SELECT id, norm_artist, norm_title, norm_title_short FROM tracks WHERE status = 'ok'"):
        s_title = _old_similarity(q_titles, {n_title, n_short}) if any(q_titles) else 1.0
        if s_title < 0.8:
            continue
        s_artist = _old_similarity({q_artist}, {n_artist}) if q_artist else 1.0
        if s_artist >= 0.8:
            scored.append(((s_title + s_artist) / 2, tid))
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [tid for _, tid in scored[:limit]]


# --------------------------------------------------------------------------- the library and the queries


def _name(rng: random.Random, lo: int, hi: int) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]
    if rng.random() < 0.15:  # an accented letter, as in "Beyoncé" or "Sigur Rós"
        k = rng.randrange(len(words))
        words[k] = "".join(ACCENTED.get(ch, ch) if j == 1 else ch for j, ch in enumerate(words[k]))
    return " ".join(w.capitalize() for w in words)


def write_library(root: Path, *, n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` WAV files ``Artist - Title.wav`` under ``root``; returns their (artist, title)."""
    import numpy as np
    import soundfile as sf

    buf = io.BytesIO()
    t = np.arange(1600) / 8000
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000, format="WAV", subtype="PCM_16")
    wav = buf.getvalue()
    rng = random.Random(seed)
    artists = [_name(rng, 1, 3) for _ in range(max(1, n // 7))]
    songs: dict[str, tuple[str, str]] = {}
    while len(songs) < n:
        artist, title = rng.choice(artists), _name(rng, 1, 5)
        extra = rng.random()
        if extra < 0.08:
            title += " (Live)"
        elif extra < 0.14:
            title += f" (Remastered {rng.randint(1990, 2020)})"
        elif extra < 0.20:
            title += f" (feat. {rng.choice(artists)})"
        songs.setdefault(f"{artist} - {title}".casefold(), (artist, title))
    for i, (artist, title) in enumerate(songs.values()):
        folder = root / f"{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{artist} - {title}.wav").write_bytes(wav)
    return list(songs.values())


def _typo(rng: random.Random, text: str) -> str:
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()
    k = rng.randrange(len(text) - 1)
    edit = rng.choice(("swap", "drop", "replace"))
    if edit == "swap":
        return text[:k] + text[k + 1] + text[k] + text[k + 2:]
    if edit == "drop":
        return text[:k] + text[k + 1:]
    return text[:k] + rng.choice("abcdefghijklmnopqrstuvwxyz") + text[k + 1:]


def _hostile(kind: str, rng: random.Random) -> tuple[str, str]:
    if kind == "fdfa":
        return "\ufdfa" * 200, "\ufdfa" * 300
    if kind == "letters":
        text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz     ") for _ in range(4500))
    elif kind == "soup":
        text = " ".join(rng.choice(WORDS) for _ in range(900))[:4500]
    elif kind == "short-words":
        text = " ".join(rng.choice("abcdefghijklmnopqrstuvwxyz") * rng.randint(1, 2) for _ in range(1700))[:4500]
    else:
        text = "".join(rng.choice(("(((((", "[[", " feat. ", "(feat", " ft ", "))")) for _ in range(1000))[:4500]
    return text[:1800], text[1800:]


def queries(songs: list[tuple[str, str]], *, n_normal: int, n_hostile: int, seed: int = 1) -> dict[str, list]:
    """Per kind, a list of ``(artist, track, wanted)``; ``wanted`` is the (artist, title) aimed at, or None."""
    rng = random.Random(seed)
    picks = [rng.choice(songs) for _ in range(n_normal)]
    out: dict[str, list] = {"normal": [(a, t, (a, t)) for a, t in picks],
                            "typo": [(_typo(rng, a) if rng.random() < 0.3 else a.lower(), _typo(rng, t), (a, t))
                                     for a, t in picks]}
    for kind in HOSTILE:
        out[kind] = [(*_hostile(kind, rng), None) for _ in range(n_hostile)]
    return out


# --------------------------------------------------------------------------- measuring


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))]


def measure(index, qs: list, ref_conn: sqlite3.Connection, *, n_ref: int) -> dict:
    times, cpu, found, incomplete, scored = [], [], 0, 0, []
    for artist, track, wanted in qs:
        t, c = C.clock(), time.thread_time()
        ranking = index.rank(artist=artist, track=track)  # what index.search does, keeping what it cost
        hits = [index.get(tid).to_ref() for _, tid in ranking.hits[:5]]
        times.append(C.clock() - t)
        cpu.append(time.thread_time() - c)
        found += wanted is not None and any((h.artist, h.title) == wanted for h in hits)
        incomplete += not ranking.complete
        scored.append(ranking.scored)
    ref_times, agree = [], 0
    for artist, track, _ in qs[:n_ref]:
        t = C.clock()
        ref = reference_search(ref_conn, artist=artist, track=track)
        ref_times.append(C.clock() - t)
        agree += ref == [h.id for h in index.search(artist=artist, track=track)]
    return dict(times=times, cpu=cpu, found=found, incomplete=incomplete, scored=scored, ref_times=ref_times,
                agree=agree)


def at_once(index, qs: list, *, threads: int = 6) -> tuple[float, float, float]:
    """``threads`` searches started together, each from its own thread: (wall s, slowest s, process CPU s)."""
    durations: list[float] = []
    barrier = threading.Barrier(threads)

    def one(artist, track):
        barrier.wait()
        t = C.clock()
        index.search(artist=artist, track=track)
        durations.append(C.clock() - t)

    workers = [threading.Thread(target=one, args=qs[k % len(qs)][:2]) for k in range(threads)]
    cpu, wall = time.process_time(), C.clock()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return C.clock() - wall, max(durations), time.process_time() - cpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="songs in the library (default 2000)")
    ap.add_argument("--queries", type=int, default=300, help="normal and typo queries (default 300)")
    ap.add_argument("--hostile", type=int, default=100, help="queries of each hostile kind (default 100)")
    ap.add_argument("--reference", type=int, default=100, help="normal/typo queries run by the reference (default 100)")
    ap.add_argument("--reference-hostile", type=int, default=1, help="hostile queries per kind run by the reference")
    ap.add_argument("--smoke", action="store_true", help="40 songs, a few queries")
    args = ap.parse_args(argv)
    if args.smoke:
        args.n, args.queries, args.hostile, args.reference = 40, 10, 3, 3
    from genrify.sources.library import LibraryIndex
    from genrify.sources.search import MAX_CANDIDATES, SEARCH_BUDGET_S

    C.machine_header("library search: bounded time", librosa=False,
                     extra={"budget": f"{SEARCH_BUDGET_S * 1e3:.0f} ms a search, {MAX_CANDIDATES} trigram candidates"})
    with tempfile.TemporaryDirectory(prefix="genrify-bench-search-") as tmp:
        root = Path(tmp) / "music"
        songs = write_library(root, n=args.n)
        with LibraryIndex(Path(tmp) / "index.sqlite") as index:
            t = C.clock()
            summary = index.scan(root)
            print(f"library: {len(index)} WAV files (0.2 s each) scanned in {C.clock() - t:.1f} s [{summary}]")
            ref_conn = sqlite3.connect(str(Path(tmp) / "index.sqlite"))
            kinds = queries(songs, n_normal=args.queries, n_hostile=args.hostile)
            print(f"{'kind':12} {'n':>4} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'CPU p99':>7} {'cut':>4} "
                  f"{'scored':>6} {'found':>6} | {'ref n':>5} {'ref p50 ms':>11} {'ratio':>7} {'same top 5':>10}")
            worst = worst_cpu = 0.0
            for kind, qs in kinds.items():
                m = measure(index, qs, ref_conn, n_ref=args.reference_hostile if kind in HOSTILE else args.reference)
                p50, p99 = statistics.median(m["times"]), _pct(m["times"], 99)
                worst = max(worst, p99)
                ref50 = statistics.median(m["ref_times"]) if m["ref_times"] else float("nan")
                worst_cpu = max(worst_cpu, _pct(m["cpu"], 99))
                found = "-" if kind in HOSTILE else f"{m['found']}/{len(qs)}"
                print(f"{kind:12} {len(qs):4d} {p50 * 1e3:7.2f} {p99 * 1e3:7.2f} {max(m['times']) * 1e3:7.2f} "
                      f"{_pct(m['cpu'], 99) * 1e3:7.2f} {m['incomplete']:4d} {statistics.mean(m['scored']):6.1f} "
                      f"{found:>6} | {len(m['ref_times']):5d} "
                      f"{ref50 * 1e3:11.1f} {ref50 / p50:6.0f}x {m['agree']:>4}/{len(m['ref_times'])}")
            hostile = [q for kind in HOSTILE for q in kinds[kind][:2]]
            wall, slowest, cpu = at_once(index, hostile, threads=6)
            print(f"six hostile searches at once (threads): wall {wall * 1e3:.1f} ms, slowest {slowest * 1e3:.1f} ms, "
                  f"process CPU {cpu * 1e3:.1f} ms")
            print(f"worst p99: {worst * 1e3:.2f} ms wall, {worst_cpu * 1e3:.2f} ms CPU (target <= 100 ms)")
            ref_conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
