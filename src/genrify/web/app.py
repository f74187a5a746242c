"""The web app: :func:`create_app` builds it; nothing happens at import time.

The model loads once, in the lifespan handler; settings come from
:func:`~genrify.web.settings.get_settings` unless passed in. Errors of the
project (:class:`~genrify.errors.GenrifyError`) become ``{"error": "..."}``
with the class's status code; anything unexpected becomes a 500 with the same
shape, and the server keeps running. Every response carries a strict
Content-Security-Policy (the page uses only its own scripts and styles);
CORS is closed unless origins are configured; ``Host`` headers are checked
(loopback names only when bound to loopback). Error messages never show an
absolute path (:func:`public_message`), and every 503 carries ``Retry-After``.
Connection deadlines and caps live one level down, in the uvicorn protocol of
:mod:`genrify.web.connections`, which gets its limits from the lifespan state.

Run it with ``genrify serve``, or ``uvicorn.run("genrify.web.app:create_app", factory=True,
**connections.server_options())`` (plain ``uvicorn --factory`` runs without the connection limits).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from genrify.errors import GenrifyError
from genrify.web.settings import Settings, get_settings, static_dir

log = logging.getLogger("genrify.web")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class SafeJSONResponse(JSONResponse):
    """JSON with ``<``, ``>`` and ``&`` written as ``\\u003c`` etc.: the same data, never readable as HTML."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        # A lone surrogate (a file name's undecodable byte, kept in an index) goes out as the JSON escape \udcXX.
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode(
            "utf-8", "backslashreplace")


#: An absolute POSIX path of two or more parts, not inside a URL or a media type ("text/plain").
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])(?:/[^\s/'\"]+){2,}/?")


def public_message(message: str) -> str:
    """``message`` with every absolute path cut to its last part: errors name files, never where they live."""
    return _ABSOLUTE_PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1], message)


def error_response(status: int, message: str, headers: dict | None = None, *, retry_after: int = 2,
                   **extra) -> SafeJSONResponse:
    """The one error shape, ``{"error": "..."}``; a 503 always says when to come back."""
    headers = dict(headers or {})
    if status == 503 and not any(k.lower() == "retry-after" for k in headers):
        headers["Retry-After"] = str(retry_after)
    return SafeJSONResponse({"error": public_message(message), **extra}, status_code=status, headers=headers)


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response (plain ASGI, streaming-safe)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend((k, v) for k, v in SECURITY_HEADERS if k not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HostCheckMiddleware:
    """Only ``Host`` headers in ``allowed`` (``*.example.org`` matches its subdomains) reach the app; else a
    JSON 400. A page of another site that rebinds its DNS name to 127.0.0.1 still sends its own name."""

    def __init__(self, app, *, allowed: tuple[str, ...]):
        self.app = app
        self.allowed = tuple(h.lower().strip("[]") for h in allowed)

    def host_ok(self, header: str | None) -> bool:
        from urllib.parse import urlsplit

        try:
            host = urlsplit("//" + (header or "")).hostname or ""
        except ValueError:
            return False
        return bool(host) and any(host == a or (a.startswith("*.") and host.endswith(a[1:])) for a in self.allowed)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
            if not self.host_ok(header):
                return await error_response(400, "invalid Host header")(scope, receive, send)
        await self.app(scope, receive, send)


def _validation_problem(err: dict) -> str:
    """One request-validation error as ``"track: ..."``, naming the parameter in words a person uses."""
    where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
    kind = err.get("type", "")
    if kind == "missing":
        return f"{where}: required parameter is missing" if where else "a required parameter is missing"
    if kind == "string_pattern_mismatch" or (kind == "string_too_short" and err.get("ctx", {}).get("min_length") == 1):
        return f"{where}: must not be empty" if where else "a parameter must not be empty"
    return f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", "invalid")


def _add_error_handlers(app: FastAPI, settings: Settings) -> None:
    """Every error becomes one JSON line (:func:`error_response`); unexpected ones are logged, never shown."""

    @app.exception_handler(GenrifyError)
    async def _genrify_error(request: Request, exc: GenrifyError):
        headers = {}
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers["Retry-After"] = str(int(retry_after))
        status = int(getattr(exc, "status_code", 400))
        if status >= 500 and status not in (502, 503, 504):
            log.error("%s: %s", type(exc).__name__, exc)
        extra = dict(getattr(exc, "details", None) or {})  # structured parts of the error (e.g. suggestions)
        problems = getattr(exc, "problems", None)
        if problems:
            extra.update(retry=True, problems=[public_message(str(p)) for p in problems])
        return error_response(status, str(exc), headers=headers, retry_after=settings.retry_after_s, **extra)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        problems = [_validation_problem(err) for err in exc.errors()]
        return error_response(422, "; ".join(problems) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None),
                              retry_after=settings.retry_after_s)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return error_response(500, "internal error (see the server log)")


def create_app(settings: Settings | None = None, *, classifier: Any = None, audit: str | None = None,
               library_index: str | None = None) -> FastAPI:
    """Build the app. ``classifier`` (any object with the ``GenreClassifier`` API) skips loading a model file;
    ``audit`` (a dataset folder) adds the audit page (:mod:`genrify.web.audit`); ``library_index``: the results
    index of ``genrify tag`` the library page (:mod:`genrify.web.library_page`) shows (default: the usual one)."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        from starlette.concurrency import run_in_threadpool

        from genrify.web.connections import STATE_KEY, ConnectionLimits
        from genrify.web.state import build_state

        state = await run_in_threadpool(build_state, settings, classifier=classifier)
        app.state.genrify = state
        log.info("genrify ready: %d labels, sources: %s", len(state.classifier.labels),
                 ", ".join(s.name for s in state.sources) or "none")
        try:
            # uvicorn hands this state to every connection's protocol (connections.GuardedH11Protocol).
            yield {STATE_KEY: ConnectionLimits.from_settings(settings)}
        finally:
            state.close()

    from genrify import __version__
    from genrify.web import routes

    app = FastAPI(
        title="genrify",
        version=__version__,
        description=routes.API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load JS from a CDN; /docs is served locally instead
        redoc_url=None,
        default_response_class=SafeJSONResponse,
    )
    app.state.settings = settings

    _add_error_handlers(app, settings)

    app.include_router(routes.router)
    from genrify.web import audit as audit_page

    audit_page.register(app, audit or None)  # without a dataset, /audit says how to start one
    from genrify.web import library_page

    library_page.register(app, index=library_index, library=settings.library)
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["*"])
    if "*" not in settings.trusted_hosts:
        app.add_middleware(HostCheckMiddleware, allowed=tuple(settings.trusted_hosts))
    app.add_middleware(SecurityHeadersMiddleware)
    return app
