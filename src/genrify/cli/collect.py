"""``genrify collect``: a labelled training folder from a provider's genre listings."""

from __future__ import annotations

import argparse

from genrify.cli import example_epilog


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "collect",
        help="download genre-labelled previews into a training folder",
        description=(
            "Gather 30 s previews for each genre from Deezer (genre playlists) or iTunes\n"
            "(primary genre) into OUT/<genre>/<artist> - <title>.<ext>, with OUT/manifest.csv.\n"
            "A track listed under two genres is kept under the first genre given and\n"
            "reported in OUT/duplicates.csv. Rerunning the same command resumes."
        ),
        epilog=example_epilog(
            "genrify collect --provider deezer --genres metal,jazz,classical --per-genre 300 data/previews",
            "genrify collect --provider itunes --genres jazz --per-genre 50 data/itunes",
            "genrify collect --base-url http://127.0.0.1:8765/deezer --genres metal --per-genre 5 /tmp/out",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", metavar="OUT", help="output folder (created if missing)")
    p.add_argument("--provider", choices=("deezer", "itunes"), default="deezer", help="where previews come from")
    p.add_argument("--genres", required=True, help="comma-separated genre names, in priority order")
    p.add_argument("--per-genre", type=int, default=300, metavar="N", help="previews per genre (default 300)")
    p.add_argument("--base-url", metavar="URL", help="the provider's API root (default: the provider's public API)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="connect and read timeout per request (default 10)")
    p.add_argument("--retries", type=int, default=2, metavar="N",
                   help="extra attempts on connection errors, HTTP 5xx and 429 (default 2)")
    p.add_argument("--max-downloads", type=int, metavar="N", help="stop after N downloads (resume later)")
    p.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    p.set_defaults(handler=run)


def run(args) -> int:
    from genrify.errors import ConfigError
    from genrify.sources.collect import collect, make_provider
    from genrify.sources.http import HttpClient, HttpConfig

    if args.timeout <= 0:
        raise ConfigError("--timeout must be positive")
    if args.retries < 0:
        raise ConfigError("--retries must be 0 or more")
    config = HttpConfig(connect_timeout=args.timeout, read_timeout=args.timeout, retries=args.retries)
    genres = [g for g in args.genres.split(",") if g.strip()]
    with HttpClient(config) as client:
        provider = make_provider(args.provider, base_url=args.base_url, client=client)
        bar = None
        if not args.no_progress:
            from tqdm import tqdm

            # disable=None: no bar when stderr is not a terminal (logs, pipes, tests).
            bar = tqdm(total=max(1, args.per_genre) * len(genres), unit="preview", desc="collect", leave=False,
                       disable=None)

        def progress(done: int, total: int, genre: str) -> None:
            if bar is not None:
                bar.total = total
                bar.n = done
                if genre:
                    bar.set_postfix_str(genre, refresh=False)
                bar.refresh()

        try:
            summary = collect(provider=provider, genres=genres, per_genre=args.per_genre, out=args.out,
                              progress=progress, max_downloads=args.max_downloads)
        finally:
            if bar is not None:
                bar.close()
    from genrify.fileio import terminal_safe

    print(terminal_safe(summary.render(), lines=True))  # artists, titles and paths come from outside
    return 0
