"""Refusing cross-site requests to the routes that analyse or change something.

CORS only stops a foreign page from *reading* an answer; the request itself
still reaches the server. Without this check, any web page a user visits could
make their browser post a crafted file to a genrify running on their machine,
or keep it busy analysing. Browsers say where a request comes from:

* an ``Origin`` that is one of the configured CORS origins is accepted;
* ``Sec-Fetch-Site`` (every current browser): ``same-origin`` and ``none``
  (typed, bookmarked) are accepted; ``same-site`` and ``cross-site`` are not,
  since another port of ``127.0.0.1`` counts as the same *site*;
* without ``Sec-Fetch-Site`` (older browsers), ``Origin`` (sent with every POST
  and every cross-origin fetch) is accepted when its host and port are this
  request's ``Host``; ``Origin: null`` (sandboxed frames, files) is not.

A request that carries neither header does not come from a web page (curl,
scripts, the CLI) and is accepted.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request

from genrify.errors import GenrifyError

#: ``Sec-Fetch-Site`` values of requests a foreign page cannot have made.
OWN_SITE = ("same-origin", "none")


class CrossSiteError(GenrifyError):
    """A web page of another origin asked for work (HTTP 403)."""

    status_code = 403


def _own_origin(origin: str, host: str) -> bool:
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    # The scheme is left out: behind a TLS-terminating proxy the app sees http while the page has https.
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc.lower() == host.lower()


def check_same_origin(request: Request, *, allowed: tuple[str, ...] = ()) -> None:
    """Raise :class:`CrossSiteError` unless ``request`` comes from this server's own page,
    from one of the ``allowed`` origins, or not from a browser page at all."""
    origin = request.headers.get("origin")
    if origin is not None and origin in allowed:
        return
    fetch_site = (request.headers.get("sec-fetch-site") or "").strip().lower()
    if fetch_site:
        # Set by the browser itself, so it holds even where a proxy rewrote Host.
        if fetch_site in OWN_SITE:
            return
    elif origin is None or _own_origin(origin, request.headers.get("host", "")):
        return
    raise CrossSiteError("cross-site requests are refused: this route only answers the page it serves")
