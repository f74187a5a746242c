"""The web app's settings: one frozen dataclass, read once from the environment.

``genrify serve`` builds a :class:`Settings` from its command line; a server
started another way (``uvicorn --factory genrify.web.app:create_app``) reads
``GENRIFY_*`` environment variables through :func:`get_settings`:

=============================  ================================================  =============
variable                       meaning                                           default
=============================  ================================================  =============
``GENRIFY_MODEL``              model file                                        bundled model
``GENRIFY_FAST``               musicnn fast mode (3 windows, bfloat16): 1 or 0   0
``GENRIFY_LIBRARY``            music folder to index and search                  demo library
``GENRIFY_LIBRARY_DB``         the library's SQLite index                        in the cache
``GENRIFY_PROVIDERS``          sources tried in order, comma separated           ``library``
``GENRIFY_DEEZER_URL``         Deezer API base URL                               Deezer
``GENRIFY_ITUNES_URL``         iTunes Search API base URL                        iTunes
``GENRIFY_MAX_UPLOAD_MB``      largest accepted upload, MB                       20
``GENRIFY_MAX_ANALYSES``       analyses running at once                          2
``GENRIFY_MAX_WAITING``        analyses allowed to wait for a slot               8
``GENRIFY_QUEUE_TIMEOUT``      longest wait for a slot, s (then 503)             10
``GENRIFY_ANALYSIS_TIMEOUT``   longest analysis, s (then 504)                    120
``GENRIFY_UPLOAD_TIMEOUT``     longest upload, s (then 408)                      60
``GENRIFY_MAX_LOOKUPS``        searches / look-ups running at once               4
``GENRIFY_LOOKUP_TIMEOUT``     longest search or look-up, s (then 504)           30
``GENRIFY_HEADER_TIMEOUT``     longest wait for a request's head, s (then 408)   10
``GENRIFY_MAX_CONNECTIONS``    open connections in all (more: 503)               200
``GENRIFY_MAX_PER_CLIENT``     open connections per client address (0: no cap)   32
``GENRIFY_CORS_ORIGINS``       origins allowed cross-site (none: CORS closed)    (none)
``GENRIFY_ALLOWED_HOSTS``      accepted ``Host`` headers                         loopback names
``GENRIFY_SCAN``               library scan at start: background, blocking, off  ``background``
``GENRIFY_ANALYSIS_CACHE``     answers kept in memory, entries (0: off)          256
=============================  ================================================  =============
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from genrify.errors import ConfigError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True)
class Settings:
    """Everything the web app needs to start. See the module docstring for the environment names."""

    model: str | None = None
    fast: bool = False
    library: str | None = None
    library_db: str | None = None
    providers: tuple[str, ...] = ("library",)
    deezer_url: str | None = None
    itunes_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = 20 * 1024 * 1024
    max_analyses: int = 2
    max_waiting: int = 8
    queue_timeout_s: float = 10.0
    analysis_timeout_s: float = 120.0
    upload_timeout_s: float = 60.0
    max_lookups: int = 4
    lookup_timeout_s: float = 30.0
    header_timeout_s: float = 10.0
    max_connections: int = 200
    max_per_client: int = 32
    retry_after_s: int = 2
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] | None = None
    scan: str = "background"
    demo_per_genre: int = 2
    #: Analysis answers kept in memory (:mod:`genrify.web.cache`), in entries; 0 turns the cache off.
    cache_size: int = 256

    def __post_init__(self):
        if self.max_upload_bytes <= 0:
            raise ConfigError("the upload limit must be positive")
        if self.max_analyses < 1 or self.max_waiting < 0 or self.max_lookups < 1:
            raise ConfigError("max_analyses and max_lookups must be >= 1 and max_waiting >= 0")
        if self.max_connections < 1 or self.max_per_client < 0:
            raise ConfigError("max_connections must be >= 1 and max_per_client >= 0 (0: no cap)")
        if min(self.header_timeout_s, self.upload_timeout_s, self.lookup_timeout_s) <= 0:
            raise ConfigError("the header, upload and look-up timeouts must be positive")
        if self.scan not in ("background", "blocking", "off"):
            raise ConfigError(f"scan must be 'background', 'blocking' or 'off', not {self.scan!r}")
        if not self.providers:
            raise ConfigError("at least one provider is needed")
        if self.cache_size < 0:
            raise ConfigError(f"the analysis cache size must be >= 0 (0: off), not {self.cache_size}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"bad port {self.port}")

    @property
    def trusted_hosts(self) -> tuple[str, ...]:
        """``Host`` headers accepted: given ones, else loopback names when bound to loopback, else any."""
        if self.allowed_hosts is not None:
            return self.allowed_hosts
        return LOOPBACK_HOSTS if self.host in LOOPBACK_HOSTS else ("*",)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Settings from ``GENRIFY_*`` variables (``env`` defaults to ``os.environ``), then ``overrides``."""
        env = os.environ if env is None else env

        def get(name):
            value = env.get(f"GENRIFY_{name}")
            return value.strip() if value is not None and value.strip() else None

        def number(name, kind):
            value = get(name)
            if value is None:
                return None
            try:
                return kind(value)
            except ValueError:
                raise ConfigError(f"GENRIFY_{name}={value!r} is not a number") from None

        def names(name):
            value = get(name)
            return None if value is None else tuple(p.strip() for p in value.split(",") if p.strip())

        values = {
            "model": get("MODEL"),
            "fast": None if get("FAST") is None else get("FAST") not in ("0", "false", "no", ""),
            "library": get("LIBRARY"),
            "library_db": get("LIBRARY_DB"),
            "providers": names("PROVIDERS"),
            "deezer_url": get("DEEZER_URL"),
            "itunes_url": get("ITUNES_URL"),
            "host": get("HOST"),
            "port": number("PORT", int),
            "max_analyses": number("MAX_ANALYSES", int),
            "max_waiting": number("MAX_WAITING", int),
            "queue_timeout_s": number("QUEUE_TIMEOUT", float),
            "analysis_timeout_s": number("ANALYSIS_TIMEOUT", float),
            "upload_timeout_s": number("UPLOAD_TIMEOUT", float),
            "max_lookups": number("MAX_LOOKUPS", int),
            "lookup_timeout_s": number("LOOKUP_TIMEOUT", float),
            "header_timeout_s": number("HEADER_TIMEOUT", float),
            "max_connections": number("MAX_CONNECTIONS", int),
            "max_per_client": number("MAX_PER_CLIENT", int),
            "cors_origins": names("CORS_ORIGINS"),
            "allowed_hosts": names("ALLOWED_HOSTS"),
            "scan": get("SCAN"),
            "cache_size": number("ANALYSIS_CACHE", int),
        }
        mb = number("MAX_UPLOAD_MB", float)
        if mb is not None:
            values["max_upload_bytes"] = int(mb * 1024 * 1024)
        values = {k: v for k, v in values.items() if v is not None}
        values.update(overrides)
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The ``GENRIFY_*`` variables that rebuild these settings (for worker processes)."""
        env = {
            "GENRIFY_PROVIDERS": ",".join(self.providers),
            "GENRIFY_HOST": self.host,
            "GENRIFY_PORT": str(self.port),
            "GENRIFY_MAX_UPLOAD_MB": repr(self.max_upload_bytes / (1024 * 1024)),
            "GENRIFY_MAX_ANALYSES": str(self.max_analyses),
            "GENRIFY_MAX_WAITING": str(self.max_waiting),
            "GENRIFY_QUEUE_TIMEOUT": repr(self.queue_timeout_s),
            "GENRIFY_ANALYSIS_TIMEOUT": repr(self.analysis_timeout_s),
            "GENRIFY_UPLOAD_TIMEOUT": repr(self.upload_timeout_s),
            "GENRIFY_MAX_LOOKUPS": str(self.max_lookups),
            "GENRIFY_LOOKUP_TIMEOUT": repr(self.lookup_timeout_s),
            "GENRIFY_HEADER_TIMEOUT": repr(self.header_timeout_s),
            "GENRIFY_MAX_CONNECTIONS": str(self.max_connections),
            "GENRIFY_MAX_PER_CLIENT": str(self.max_per_client),
            "GENRIFY_SCAN": self.scan,
            "GENRIFY_FAST": "1" if self.fast else "0",
            "GENRIFY_ANALYSIS_CACHE": str(self.cache_size),
        }
        for key, value in (("MODEL", self.model), ("LIBRARY", self.library), ("LIBRARY_DB", self.library_db),
                           ("DEEZER_URL", self.deezer_url), ("ITUNES_URL", self.itunes_url)):
            if value:
                env[f"GENRIFY_{key}"] = value
        if self.cors_origins:
            env["GENRIFY_CORS_ORIGINS"] = ",".join(self.cors_origins)
        if self.allowed_hosts is not None:
            env["GENRIFY_ALLOWED_HOSTS"] = ",".join(self.allowed_hosts)
        return env


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings.from_env()


def static_dir() -> Path:
    """The folder of the page's files (HTML, JS, CSS), installed with the package."""
    return Path(str(resources.files("genrify.web") / "static"))
