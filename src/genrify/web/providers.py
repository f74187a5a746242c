"""The remote providers the web app can search besides the library, and the sources it tries in order."""

from __future__ import annotations

import importlib
import logging

from genrify.sources.base import Source
from genrify.web.settings import Settings

log = logging.getLogger("genrify.web")

#: Remote providers by name, as ``module:Class``; imported only when configured.
PROVIDERS: dict[str, str] = {
    "deezer": "genrify.sources.deezer:DeezerSource",
    "itunes": "genrify.sources.itunes:ITunesSource",
}

#: How the page names each provider ("searched your library, Deezer, iTunes").
PROVIDER_NAMES = {"deezer": "Deezer", "itunes": "iTunes"}


def build_sources(settings: Settings, library_source: Source | None) -> list[Source]:
    """The configured sources in order; a provider that cannot be loaded is skipped with a warning."""
    out: list[Source] = []
    for name in settings.providers:
        if name == "library":
            if library_source is None:
                log.warning("provider 'library' skipped: no library is available")
            else:
                out.append(library_source)
            continue
        target = PROVIDERS.get(name)
        if target is None:
            log.warning("unknown provider %r skipped (known: library, %s)", name, ", ".join(PROVIDERS))
            continue
        module_name, cls_name = target.split(":")
        try:
            cls = getattr(importlib.import_module(module_name), cls_name)
            base_url = getattr(settings, f"{name}_url", None)
            out.append(cls(base_url) if base_url else cls())
        except Exception as exc:  # a missing optional provider must not stop the server
            log.warning("provider %r skipped: %s", name, exc)
    return out
