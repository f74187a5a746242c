"""The demo library the web app serves when no ``--library`` is given.

The real one is freely licensed music from the Debian archive (:mod:`genrify.sources.demo`),
built at set-up; where set-up could not fetch it (offline), the server falls back to
generated clips and says so, in its log and on the page.
"""

from __future__ import annotations

import logging
from pathlib import Path

from genrify.web.settings import Settings

log = logging.getLogger("genrify.web")

#: Shown (log and page) when the server falls back to the synthetic demo library.
SYNTHETIC_DEMO_NOTE = ("The real demo library (freely licensed music from the Debian archive) is not built: "
                       "scripts/setup.sh could not fetch it (offline?). These demo songs are synthetic: generated "
                       "test clips, not real recordings. Run scripts/setup.sh online to build the real one.")


def open_demo_library(settings: Settings) -> tuple[Path | None, dict | None]:
    """The demo library's folder and its description for :attr:`~genrify.web.state.AppState.demo`.

    The real one (:mod:`genrify.sources.demo`, built at set-up) when it exists; otherwise the
    synthetic library of :func:`~genrify.sources.library.ensure_demo_library`, labelled as such.
    """
    from genrify.sources.demo import demo_dir, read_credits
    from genrify.sources.library import ensure_demo_library

    root = demo_dir()
    credits = read_credits(root)
    if credits is not None:
        return root, {"kind": "debian", "credits": credits, "note": "Demo songs: freely licensed music from the "
                      "Debian archive, 30 s clips."}
    log.warning("%s", SYNTHETIC_DEMO_NOTE)
    try:
        root = ensure_demo_library(per_genre=settings.demo_per_genre)
    except Exception as exc:
        log.warning("demo library unavailable: %s", exc)
        return None, None
    return root, {"kind": "synthetic", "credits": [], "note": SYNTHETIC_DEMO_NOTE}
