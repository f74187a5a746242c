"""An audio file as an HTTP response a player can seek in: the one way every web route serves audio.

A ``<audio>`` element asks for byte ranges (``Range: bytes=…``) to seek and to read a file's
end; every answer says ``Accept-Ranges: bytes``. A satisfiable range gets ``206 Partial
Content`` with ``Content-Range`` (Starlette's :class:`~starlette.responses.FileResponse` sends
the bytes); one that is not — past the end, reversed, malformed, another unit, too many
parts — gets ``416`` with ``Content-Range: bytes */SIZE``, as RFC 9110 asks.

Which file may be served is decided here too (:func:`servable_file`): a route names the file it
looked up by id and the folders it may come from, and only a regular file that, with every link
resolved, lies inside one of them is served. A song replaced by a link to ``/etc/shadow``, or an
index naming ``<library>/../../etc/passwd``, is a 404 on every route alike.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from fastapi import Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from genrify.audio.formats import media_type
from genrify.errors import NotFoundError

#: At most 18 digits a side: every file size fits, and int() never meets a 5,000-digit number.
_RANGE_RE = re.compile(r"^\s*(\d{0,18})\s*-\s*(\d{0,18})\s*$")
#: More parts than this in one ``Range`` header is no player's request.
MAX_RANGES = 16


def servable_file(path: str | os.PathLike, *, roots: Iterable[str | os.PathLike]) -> tuple[Path, os.stat_result]:
    """``path`` with its links resolved and its ``stat``, when that is a regular file inside one of ``roots``
    (their links resolved too); else :class:`~genrify.errors.NotFoundError` naming only the file's name.

    Blocking (a few system calls): routes call it off the event loop, through :func:`audio_response`.
    """
    name = Path(path).name
    real = Path(os.path.realpath(path))
    # Compared resolved, never lexically: "<root>/../x" and a link inside the root both lead out of it.
    if not any(real.is_relative_to(os.path.realpath(root)) for root in roots):
        raise NotFoundError(f"{name}: no such file in the library")
    try:
        st = real.stat()
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        raise NotFoundError(f"{name}: the file is gone")
    return real, st


async def audio_response(path: str | os.PathLike, *, roots: Iterable[str | os.PathLike], request: Request,
                         cache_control: str = "private") -> Response:
    """``path`` (an audio file the route has looked up by id) as the answer to ``request``, when it is
    servable from ``roots`` (:func:`servable_file`, checked off the event loop; else a 404).

    The whole file (200), the ranges asked for (206), or 416 for a ``Range`` that cannot be served;
    ``Content-Type`` from the file's extension (:func:`genrify.audio.formats.media_type`).
    """
    roots = tuple(roots)
    real, st = await run_in_threadpool(lambda: servable_file(path, roots=roots))
    headers = {"Accept-Ranges": "bytes", "Cache-Control": cache_control}
    range_header = request.headers.get("range")
    if range_header is not None and not range_satisfiable(range_header, size=st.st_size):
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{st.st_size}"})
    # The resolved file is sent, not the name the index gave: the link that was checked is not read again.
    return FileResponse(real, media_type=media_type(Path(path).name), headers=headers, stat_result=st,
                        content_disposition_type="inline")


def range_satisfiable(header: str, *, size: int) -> bool:
    """Whether a ``Range`` header names only byte ranges that can be served from a file of ``size`` bytes."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return False
    parts = spec.split(",")
    if len(parts) > MAX_RANGES:
        return False
    for part in parts:
        m = _RANGE_RE.match(part)
        if not m or (not m.group(1) and not m.group(2)):
            return False
        first, last = m.group(1), m.group(2)
        if first:
            if int(first) >= size or (last and int(last) < int(first)):
                return False
        elif int(last) == 0:
            return False
    return True
