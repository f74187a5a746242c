"""An audio file as an HTTP response a player can seek in: the one way every web route serves audio.

A ``<audio>`` element asks for byte ranges (``Range: bytes=…``) to seek and to read a file's
end; every answer says ``Accept-Ranges: bytes``. A satisfiable range gets ``206 Partial
Content`` with ``Content-Range`` (Starlette's :class:`~starlette.responses.FileResponse` sends
the bytes); one that is not — past the end, reversed, malformed, another unit, too many
parts — gets ``416`` with ``Content-Range: bytes */SIZE``, as RFC 9110 asks.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

from fastapi import Request
from fastapi.responses import FileResponse, Response

from genrify.audio.formats import media_type
from genrify.errors import NotFoundError

#: At most 18 digits a side: every file size fits, and int() never meets a 5,000-digit number.
_RANGE_RE = re.compile(r"^\s*(\d{0,18})\s*-\s*(\d{0,18})\s*$")
#: More parts than this in one ``Range`` header is no player's request.
MAX_RANGES = 16


def audio_response(path: Path, *, request: Request, cache_control: str = "private") -> Response:
    """``path`` (an audio file the route has already resolved from an id) as the answer to ``request``.

    The whole file (200), the ranges asked for (206), or 416 for a ``Range`` that cannot be served;
    ``Content-Type`` from the file's extension (:func:`genrify.audio.formats.media_type`). A file that
    is gone or is not a regular file is :class:`~genrify.errors.NotFoundError` (404), naming only its name.
    """
    try:
        st = path.stat()
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        raise NotFoundError(f"{path.name}: the file is gone")
    headers = {"Accept-Ranges": "bytes", "Cache-Control": cache_control}
    range_header = request.headers.get("range")
    if range_header is not None and not range_satisfiable(range_header, size=st.st_size):
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{st.st_size}"})
    return FileResponse(path, media_type=media_type(path.name), headers=headers, stat_result=st,
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
