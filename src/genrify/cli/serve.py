"""``genrify serve`` (the web widget and API) and ``genrify library scan`` (index a music folder)."""

from __future__ import annotations

import argparse

from genrify.cli import example_epilog
from genrify.web.settings import Settings

_MB = 1024 * 1024


def _description() -> str:
    import textwrap

    from genrify.sources.demo import credits_text, demo_dir

    intro = (
        "Serve the web page and the JSON API. With no options it uses the bundled default model and the "
        f"demo library in {demo_dir()}: 30 s clips of freely licensed music from the Debian archive, cut by "
        "scripts/setup.sh (which run.sh calls). Where set-up could not fetch them (offline), the server says "
        "so and serves a small synthetic library of generated test clips instead. The library is re-scanned "
        "(incrementally) at every start. Binds 127.0.0.1 unless --host says otherwise; the API is "
        "documented at /docs."
    )
    credits = textwrap.indent(credits_text(), "  ")
    return f"{textwrap.fill(intro, 100)}\n\nDemo songs (title, artist, licence, package):\n{credits}"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve the genre widget and its API (http://127.0.0.1:8000)",
        description=_description(),
        epilog=example_epilog(
            "genrify serve",
            "genrify serve --model cnn.genrify --library ~/Music --port 8080",
            "genrify serve --library ~/Music --index ~/Music/genrify.sqlite   (tagged songs: /library)",
            "genrify serve --providers library,deezer,itunes",
            "genrify serve --allowed-hosts music.example.org --max-per-client 0   (behind a proxy: docs/deploy.md)",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", metavar="PATH",
                   help="model file, or 'gtzan' / 'musicnn' / 'audioset' (default: the bundled taxonomy model)")
    p.add_argument("--fast", action="store_true",
                   help="musicnn models: 3 spread windows per song, about 2x the throughput of new songs "
                        "(bfloat16 only where this CPU measures it faster; docs/performance.md)")
    p.add_argument("--library", metavar="DIR", help="music folder to search (default: the generated demo library)")
    p.add_argument("--db", metavar="PATH", help="the library's index file (default: in the cache folder)")
    p.add_argument("--providers", default=",".join(Settings.providers), metavar="LIST",
                   help="sources tried in order, comma separated: library, deezer, itunes (default: %(default)s)")
    p.add_argument("--host", default=Settings.host, help="address to bind (default %(default)s: this machine only)")
    p.add_argument("--port", type=int, default=Settings.port, help="port (default %(default)s)")
    p.add_argument("--max-upload-mb", type=float, default=Settings.max_upload_bytes / _MB, metavar="MB",
                   help="largest upload (default %(default)g)")
    p.add_argument("--max-analyses", type=int, default=Settings.max_analyses, metavar="N",
                   help="analyses running at once; more wait briefly, then get 503 (default %(default)s)")
    p.add_argument("--max-waiting", type=int, default=Settings.max_waiting, metavar="N",
                   help="analyses allowed to wait (default %(default)s)")
    p.add_argument("--analysis-timeout", type=float, default=Settings.analysis_timeout_s, metavar="SECONDS",
                   help="longest analysis before a 504 (default %(default)g)")
    p.add_argument("--cache-size", type=int, default=Settings.cache_size, metavar="N",
                   help="analysis answers kept in memory: the same file (by content), model and options answers "
                        "at once; 0: off (default %(default)s)")
    p.add_argument("--max-lookups", type=int, default=Settings.max_lookups, metavar="N",
                   help="searches and look-ups running at once; more wait briefly, then get 503 (default %(default)s)")
    p.add_argument("--header-timeout", type=float, default=Settings.header_timeout_s, metavar="SECONDS",
                   help="longest wait for a request's head before a 408 and a closed connection (default %(default)g)")
    p.add_argument("--max-connections", type=int, default=Settings.max_connections, metavar="N",
                   help="open connections in all; more are answered 503 (default %(default)s)")
    p.add_argument("--max-per-client", type=int, default=Settings.max_per_client, metavar="N",
                   help="open connections per client address; 0: no cap, behind a reverse proxy (default %(default)s)")
    p.add_argument("--cors-origin", action="append", default=list(Settings.cors_origins), metavar="ORIGIN",
                   help="allow this origin cross-site (repeatable; default: CORS closed)")
    p.add_argument("--allowed-hosts", metavar="LIST",
                   help="accepted Host headers, comma separated (default: loopback names when bound to loopback)")
    p.add_argument("--scan", choices=("background", "blocking", "off"), default=Settings.scan,
                   help="library scan at start: background (serve while scanning), blocking or off "
                        "(default %(default)s)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="server processes (each loads the model; default 1)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.add_argument("--audit", metavar="DATASET", help="also serve /audit: the findings of 'genrify audit DATASET' "
                   "with players side by side, to accept, relabel or dismiss; reuses the audit 'genrify audit' stored "
                   "while current (one worker)")
    p.add_argument("--index", metavar="PATH", help="results index of 'genrify tag' that the /library page shows "
                   "(default: the one 'genrify tag' uses; one worker)")
    p.set_defaults(handler=run_serve)
    _register_library(subparsers)


def _register_library(subparsers) -> None:
    lib = subparsers.add_parser(
        "library",
        help="index a music folder for search",
        description="Manage the local music library index that 'genrify serve --library DIR' searches.",
        epilog=example_epilog("genrify library scan ~/Music", "genrify library scan ~/Music --db music.sqlite"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lib_sub = lib.add_subparsers(dest="library_command", metavar="ACTION")
    scan = lib_sub.add_parser(
        "scan",
        help="index (or re-index, incrementally) the audio files under DIR",
        description=(
            "Read artist/title tags (or 'Artist - Title' file names) of the audio files under DIR into a "
            "SQLite index. Unchanged files are skipped, vanished ones dropped; links leaving DIR are ignored; "
            "unreadable files are listed and skipped."
        ),
        epilog=example_epilog("genrify library scan ~/Music", "genrify library scan ~/Music --db music.sqlite"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scan.add_argument("dir", metavar="DIR")
    scan.add_argument("--db", metavar="PATH", help="index file (default: in the cache folder, the one serve uses)")
    scan.add_argument("--quiet", action="store_true", help="print only the summary line")
    scan.set_defaults(handler=run_scan)
    lib.set_defaults(handler=lambda args: (lib.print_help(), 2)[1])


def _settings(args) -> Settings:
    return Settings(
        model=args.model,
        fast=args.fast,
        library=args.library,
        library_db=args.db,
        providers=tuple(p.strip() for p in args.providers.split(",") if p.strip()),
        host=args.host,
        port=args.port,
        max_upload_bytes=int(args.max_upload_mb * _MB),
        max_analyses=args.max_analyses,
        max_waiting=args.max_waiting,
        analysis_timeout_s=args.analysis_timeout,
        cache_size=args.cache_size,
        max_lookups=args.max_lookups,
        header_timeout_s=args.header_timeout,
        max_connections=args.max_connections,
        max_per_client=args.max_per_client,
        cors_origins=tuple(args.cors_origin),
        allowed_hosts=(tuple(h.strip() for h in args.allowed_hosts.split(",") if h.strip())
                       if args.allowed_hosts else None),
        scan=args.scan,
    )


def run_serve(args) -> int:
    import logging
    import os
    import sys

    # Before torch loads OpenMP: idle worker threads sleep instead of spinning, so
    # concurrent analyses and the event loop do not steal each other's cores.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    import uvicorn

    from genrify.errors import ConfigError
    from genrify.web.app import create_app
    from genrify.web.connections import server_options

    settings = _settings(args)
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if args.audit and args.workers != 1:
        raise ConfigError("--audit serves from one worker: leave out --workers")
    if args.index and args.workers != 1:
        raise ConfigError("--index serves from one worker: leave out --workers")
    from genrify.predict import resolve_model

    model = resolve_model(settings.model)  # a wrong name, a missing file or bundled model: one line
    if settings.library and not os.path.isdir(os.path.expanduser(settings.library)):
        raise ConfigError(f"{settings.library}: no such folder")
    check_port_free(settings.host, settings.port)
    # Load (and so verify) the model before serving: a damaged or tampered file is one line, not a
    # traceback from the app's start-up. One process uses this classifier; workers each load their own.
    from genrify.predict import load_classifier

    classifier = load_classifier(model, fast=True if settings.fast else None)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    if not settings.library and "library" in settings.providers:
        from genrify.sources.demo import read_credits
        from genrify.web.demo import SYNTHETIC_DEMO_NOTE

        if read_credits() is None:  # said before serving, where a newcomer looks first
            print(f"genrify: {SYNTHETIC_DEMO_NOTE}", file=sys.stderr, flush=True)
    print(f"genrify: serving on http://{shown_host}:{settings.port}  (API docs: /docs; Ctrl-C stops)", flush=True)
    # Head and body deadlines, connection caps and Retry-After on refusals: see genrify.web.connections.
    common = dict(host=settings.host, port=settings.port, log_level=args.log_level, **server_options())
    if args.workers == 1:
        app = create_app(settings, classifier=classifier, audit=args.audit, library_index=args.index)
        if args.audit:  # reused from 'genrify audit' or computed on first visit, and why
            from genrify.fileio import terminal_safe

            print(terminal_safe(f"genrify: {app.state.audit_page.origin}"), file=sys.stderr, flush=True)
        uvicorn.run(app, **common)
    else:
        # Worker processes rebuild the same settings from the environment.
        del classifier
        os.environ.update(settings.to_env())
        uvicorn.run("genrify.web.app:create_app", factory=True, workers=args.workers, **common)
    return 0


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`~genrify.errors.ConfigError` when ``host:port`` cannot be bound (in use, not ours).

    Checked before the model loads and before "serving on ..." is printed, so a busy port is
    one line instead of a start-up message followed by uvicorn's ``Errno 98``. The probe sets
    ``SO_REUSEADDR`` as uvicorn does, so a port left in TIME_WAIT by a stopped server is free.
    """
    import errno
    import socket

    from genrify.errors import ConfigError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: cannot be resolved ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
            raise ConfigError(f"port {port} on {host} {reason}: stop the other server or pass --port N") from None


def run_scan(args) -> int:
    import sys

    from genrify.fileio import terminal_safe
    from genrify.sources.library import LibraryIndex, default_db_path
    from genrify.sources.scan import check_library_folder

    check_library_folder(args.dir)  # before the index file exists: a wrong path leaves nothing behind
    db = args.db or default_db_path(args.dir)
    seen = [0]

    def progress(n, path):
        seen[0] = n
        if not args.quiet and sys.stderr.isatty() and n % 50 == 0:
            print(f"\r{n} files ...", end="", file=sys.stderr, flush=True)

    with LibraryIndex(db) as index:
        summary = index.scan(args.dir, progress=progress)
        total = len(index)
    if not args.quiet and sys.stderr.isatty() and seen[0] >= 50:
        print(file=sys.stderr)
    if not args.quiet:
        for path, reason in summary.failed:
            print(terminal_safe(f"skipped {path}: {reason}"), file=sys.stderr)
    print(terminal_safe(f"{summary}; {total} playable tracks in {db}"))
    return 0
