"""The library page's listing (``GET /api/library``) of a large results index, alone and under hostile searches.

    python benchmarks/bench_library_page.py              # 50,000 songs, 20 hostile clients for 20 s
    python benchmarks/bench_library_page.py --songs 20000 --clients 10 --seconds 10
    python benchmarks/bench_library_page.py --flood      # the hostile clients ignore Retry-After
    python benchmarks/bench_library_page.py --smoke      # 2,000 songs, 4 clients for 2 s (CI)

A results index of N songs (real ``ResultsIndex.add_song`` rows: artist, album, title, genre, styles,
verdict, three windows; the files themselves do not exist) is written once, untimed, under
$GENRIFY_BENCH_CACHE (default /tmp/genrify-bench). A real ``python -m genrify serve --index INDEX``
(bundled default model, ``--scan off``) on 127.0.0.1 answers:

1. the first listing (the server reads the index into its catalogue), once, then the first page of each
   column and order (the catalogue builds that order's index);
2. **reference**: ``GET /healthz`` with nothing else running (sequential, one client);
3. a plain page: ``GET /api/library`` with a random column, order and offset (sequential, one client);
4. **under load**: C clients (threads of another process) each send hostile searches back to back for
   T s, waiting out ``Retry-After`` after a 503 (``--flood``: resending at once): 100 one-letter words
   (refused: more than 8 different words) and 8 different one-letter words with ``sort=album`` (a full
   search of every song), while one client of this process times ``/healthz`` and one the plain page,
   each every 50 ms.

5. one song's details and genre-over-time chart (what ``/timeline`` computes), in a fresh process each,
   for a stored analysis of 3 windows (the reference) and of 28,500 windows over 10 genres (just under the
   2,000,000 characters a row may hold; a hostile row of 300,000 cost +500 MB at 64c6a5c): time and peak RSS.

Latencies are client-side wall times (httpx, keep-alive) in ms, p50 / p99 / max, with ratios against the
unloaded ``/healthz`` of the same run. Every client runs on the same machine as the server.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import string
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
from bench_web_abuse import Server  # noqa: E402

GENRES = ("Rock", "Pop", "Jazz", "Metal", "Classical", "Hip-Hop", "Country", "Blues", "Reggae", "Disco")


def make_index(n: int) -> Path:
    """A results index of ``n`` songs (made once, reused)."""
    from genrify.tagging.index import ResultsIndex

    path = C.CACHE / "library-page" / f"index-{n}.sqlite"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    rng = random.Random(0)
    words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 9))) for _ in range(3000)]
    with ResultsIndex(tmp, batch_songs=5000, batch_seconds=60) as index, index.batch():
        for i in range(n):
            genre = GENRES[i % len(GENRES)]
            verdict = ("genre", "genre", "unsure", "not_music")[i % 4]
            analysis = {"genre": genre if verdict == "genre" else None, "verdict": verdict, "duration": 9.0,
                        "styles": [{"name": f"{genre} style {i % 3}", "probability": 0.6}] if i % 2 else [],
                        "top": [[genre, rng.random()]], "genres": {genre: 0.7},
                        "windows": {"starts": [0.0, 3.0, 6.0], "labels": [genre],
                                    "probabilities": [[0.7], [0.6], [0.8]]}}
            tags = {"artist": " ".join(rng.sample(words, 2)).title(), "album": rng.choice(words).title(),
                    "title": " ".join(rng.sample(words, 3)).title(), "genres": []}
            index.add_song(path=f"/music/{tags['artist']}/{i:06d} {tags['title']}.mp3", digest=f"{i:064x}",
                           size=1, mtime_ns=1, model="bench", analysis=analysis, tags=tags)
    for suffix in ("-wal", "-shm"):
        tmp.with_name(tmp.name + suffix).unlink(missing_ok=True)
    tmp.replace(path)
    return path


def timed(client, url: str, params: dict | None = None) -> tuple[float, int]:
    t = time.perf_counter()
    r = client.get(url, params=params)
    return (time.perf_counter() - t) * 1000, r.status_code


def stats(ms: list[float]) -> tuple[float, float, float]:
    s = sorted(ms)
    return s[len(s) // 2], s[min(len(s) - 1, int(len(s) * 0.99))], s[-1]


def show(name: str, ms: list[float], ref: float | None = None) -> None:
    p50, p99, top = stats(ms)
    ratio = f"  p99 = {p99 / ref:.1f}x unloaded /healthz p99" if ref else ""
    print(f"  {name:<44} n={len(ms):>5}  p50 {p50:7.1f}  p99 {p99:7.1f}  max {top:7.1f} ms{ratio}")


def attack(base: str, hostile: list[dict], clients: int, seconds: float, out, flood: bool) -> None:
    """``clients`` threads sending ``hostile`` searches back to back for ``seconds`` (after a 503, again once
    its ``Retry-After`` passed, or at once with ``flood``); puts the answers' count by status on ``out``.
    Runs in its own process."""
    import httpx

    answers: dict[int, int] = {}
    lock = threading.Lock()
    until = time.monotonic() + seconds

    def one(k: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as c:
            while time.monotonic() < until:
                r = c.get("/api/library", params=hostile[k % len(hostile)])
                with lock:
                    answers[r.status_code] = answers.get(r.status_code, 0) + 1
                if r.status_code == 503 and not flood:
                    time.sleep(float(r.headers.get("retry-after", "1")))

    threads = [threading.Thread(target=one, args=(k,)) for k in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    out.put(answers)


def _rss_mb(field: str) -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def row_cost(windows: int) -> None:
    """In this (fresh) process: one song's details and genre-over-time chart, as ``/api/library/{id}/timeline``
    computes them, for a stored analysis of ``windows`` windows over 10 genres; prints time and peak RSS."""
    import json
    import tempfile

    import numpy as np

    from genrify import report
    from genrify.tagging.index import ResultsIndex
    from genrify.tagging.library import LibraryView
    from genrify.tagging.listing import MAX_ANALYSIS_CHARS
    from genrify.web.analysis import TIMELINE_FONT_PT, TIMELINE_HEIGHT_IN

    labels = list(GENRES)
    analysis = {"genre": "Rock", "verdict": "genre", "styles": [], "top": [["Rock", 0.5]], "duration": 3.0 * windows,
                "windows": {"starts": [3.0 * i for i in range(windows)], "labels": labels,
                            "probabilities": [[round(0.1 + 0.01 * ((i + j) % 7), 4) for j in range(10)]
                                              for i in range(windows)]}}
    chars = len(json.dumps(analysis))
    with tempfile.TemporaryDirectory() as tmp:
        with ResultsIndex(Path(tmp) / "index.sqlite") as index:
            song = index.add_song(path="/music/a.mp3", digest="0" * 64, size=1, mtime_ns=1, model="bench",
                                  analysis=analysis, tags={"title": "a"})
        del analysis
        base = _rss_mb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
        t = time.perf_counter()
        stored = LibraryView(Path(tmp) / "index.sqlite").details(song)["analysis"]
        w = stored["windows"]
        probs = np.asarray(w["probabilities"], dtype=np.float64).reshape(-1, len(w["labels"]))
        report.timeline_png(w["starts"], probs, w["labels"], top=5, duration=stored["duration"],
                            height=TIMELINE_HEIGHT_IN, fontsize=TIMELINE_FONT_PT)
        took = time.perf_counter() - t
        peak = _rss_mb("VmHWM") - base
    print(f"  one row of {windows:>6,} windows ({chars:>9,} characters, bound {MAX_ANALYSIS_CHARS:,}): "
          f"details + chart {took:5.2f} s, peak RSS +{peak:4.0f} MB")


def plain_params(rng: random.Random, songs: int) -> dict:
    from genrify.tagging.library import SORT_KEYS

    return {"sort": rng.choice(SORT_KEYS), "order": rng.choice(("asc", "desc")),
            "offset": rng.randrange(0, max(1, songs - 50)), "limit": 50}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs", type=int, default=50_000)
    ap.add_argument("--clients", type=int, default=20, help="hostile clients (default 20)")
    ap.add_argument("--seconds", type=float, default=20.0, help="how long they run (default 20)")
    ap.add_argument("--flood", action="store_true", help="hostile clients ignore Retry-After and resend at once")
    ap.add_argument("--requests", type=int, default=300, help="sequential requests per unloaded figure")
    ap.add_argument("--smoke", action="store_true", help="2,000 songs, 4 clients for 2 s")
    ap.add_argument("--row-windows", type=int, help=argparse.SUPPRESS)  # one row_cost() in this process
    args = ap.parse_args(argv)
    if args.row_windows is not None:
        row_cost(args.row_windows)
        return 0
    if args.smoke:
        args.songs, args.clients, args.seconds, args.requests = 2000, 4, 2.0, 30

    import httpx

    C.machine_header("Library page: /api/library of a large results index", librosa=False,
                     extra={"songs": args.songs, "hostile clients": args.clients, "seconds": args.seconds,
                            "after a 503": "resend at once" if args.flood else "wait Retry-After"})
    t = time.perf_counter()
    index = make_index(args.songs)
    print(f"index: {index} ({index.stat().st_size / 1e6:.1f} MB; made or found in {time.perf_counter() - t:.1f} s)")
    rng = random.Random(1)
    with Server("--index", str(index)) as srv, httpx.Client(base_url=srv.base, timeout=60) as client:
        print(f"server: {srv.command}")
        first, status = timed(client, "/api/library")
        assert status == 200, status
        print(f"  first listing (reads the index)              {first:7.0f} ms")
        from genrify.tagging.library import SORT_KEYS

        firsts = [timed(client, "/api/library", {"sort": k, "order": o})[0] for k in SORT_KEYS for o in ("asc", "desc")]
        show("first page of each of the 18 orders (its index)", firsts)
        health = [timed(client, "/healthz")[0] for _ in range(args.requests)]
        show("reference: /healthz, unloaded", health)
        ref = stats(health)[1]
        page = [timed(client, "/api/library", plain_params(rng, args.songs))[0] for _ in range(args.requests)]
        show("plain page (random column, order, offset)", page, ref)

        hostile = [{"q": " ".join(rng.choice(string.ascii_lowercase) for _ in range(100))},
                   {"q": " ".join(rng.sample(string.ascii_lowercase, 8)), "sort": "album"}]
        # The attackers run in a process of their own, so that their threads do not slow this one's clocks.
        ctx = multiprocessing.get_context("spawn")
        answers = ctx.Queue()
        attackers = ctx.Process(target=attack, args=(srv.base, hostile, args.clients, args.seconds, answers,
                                                          args.flood))
        attackers.start()
        time.sleep(1.0)  # the attackers' interpreter starts
        stop = threading.Event()

        def sampler(url: str, params_of, out: list) -> None:
            with httpx.Client(base_url=srv.base, timeout=60) as c:
                while not stop.is_set():
                    out.append(timed(c, url, params_of())[0])
                    time.sleep(0.05)

        loaded_health: list[float] = []
        loaded_page: list[float] = []
        threads = [threading.Thread(target=sampler, args=("/healthz", lambda: None, loaded_health), daemon=True),
                   threading.Thread(target=sampler, args=("/api/library", lambda: plain_params(rng, args.songs),
                                                          loaded_page), daemon=True)]
        for th in threads:
            th.start()
        counts = answers.get(timeout=args.seconds + 120)
        stop.set()
        for th in threads:
            th.join(timeout=60)
        attackers.join(timeout=60)
        answers = counts
        print(f"  under {args.clients} hostile clients for {args.seconds:g} s (answers: "
              + ", ".join(f"{k}: {v}" for k, v in sorted(answers.items())) + ")")
        show("/healthz", loaded_health, ref)
        show("plain page", loaded_page, ref)
    print("a song's details and chart (/api/library/{id}/timeline), each in a fresh process; the first is the "
          "reference (the chart's own cost)")
    for windows in (3, 2000 if args.smoke else 28_500):
        subprocess.run([sys.executable, __file__, "--row-windows", str(windows)], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
