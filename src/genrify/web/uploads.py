"""Receiving an uploaded file: admitted first, size and time limited while it streams, spooled to disk.

The route takes an upload slot (:mod:`genrify.web.admission`) *before* the first
body byte is read, then :func:`spooled_upload` streams the body into a private
temporary file that is deleted when the request ends: a body never sits whole
in memory (at most :data:`FLUSH_BYTES` per upload is buffered between writes).

A declared ``Content-Length`` over the limit is refused before any byte is read
(:func:`refuse_declared_oversize`), and a body that grows past the limit is
refused as soon as it does. Either way the answer is HTTP 413 with a JSON error.
Both ``multipart/form-data`` (field ``file``, as a browser form sends it) and a
raw body (``curl --data-binary @song.mp3``) are accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from genrify.errors import AudioDecodeError, GenrifyError
from genrify.web.admission import ServerBusyError

#: Room for the multipart envelope (boundaries, part headers) beyond the file itself.
MULTIPART_OVERHEAD = 64 * 1024
#: After refusing an oversized body, read and discard at most this much more of it
#: (so an ordinary client receives the 413 instead of a reset connection) …
DRAIN_BYTES = 32 * 1024 * 1024
#: … for at most this long.
DRAIN_SECONDS = 3.0
#: Received bytes are written to the spool file in batches of about this size.
FLUSH_BYTES = 1024 * 1024
#: The first bytes of an upload are kept in memory for sniffing.
HEAD_BYTES = 2048
#: Parts a multipart upload may have (the file and a few form fields).
MAX_PARTS = 8


class UploadTooLargeError(GenrifyError):
    """The upload is larger than the configured limit."""

    status_code = 413


class UploadTimeoutError(GenrifyError):
    """The upload did not arrive within the configured time."""

    status_code = 408


class BadUploadError(GenrifyError):
    """The request does not carry a readable upload (bad headers, bad multipart, client gone)."""

    status_code = 422


class UploadStorageError(ServerBusyError):
    """The upload could not be written to the spool folder (disk full, folder gone)."""


@dataclass(frozen=True)
class Upload:
    """An uploaded file, spooled to ``path``: its size, first bytes, and the name and type the client gave."""

    path: Path
    size: int
    head: bytes
    filename: str | None
    content_type: str | None


def _too_large(limit: int) -> UploadTooLargeError:
    return UploadTooLargeError(f"the upload is larger than the limit of {limit / (1024 * 1024):g} MB")


def _is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


def body_limit(request: Request, *, max_bytes: int) -> int:
    """The most body bytes accepted for a file of at most ``max_bytes`` (room for a multipart envelope)."""
    return max_bytes + (MULTIPART_OVERHEAD if _is_multipart(request) else 0)


def refuse_declared_oversize(request: Request, *, max_bytes: int) -> None:
    """413 for a declared ``Content-Length`` over the limit, 422 for a malformed one; reads nothing."""
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not declared.isascii() or not declared.strip().isdigit() or len(declared.strip()) > 19:
        raise BadUploadError("bad Content-Length header")
    if int(declared) > body_limit(request, max_bytes=max_bytes):
        raise _too_large(max_bytes)


@contextlib.asynccontextmanager
async def spooled_upload(request: Request, *, max_bytes: int, timeout_s: float,
                         spool_dir: Path) -> AsyncIterator[Upload]:
    """``async with spooled_upload(...) as upload:`` the file in ``spool_dir``, deleted on leaving the block.

    Raises :class:`UploadTooLargeError` (413), :class:`UploadTimeoutError` (408),
    :class:`BadUploadError` (422), ``AudioDecodeError`` for an empty file, and
    :class:`UploadStorageError` (503) when the file cannot be written.
    """
    refuse_declared_oversize(request, max_bytes=max_bytes)
    body = _LimitedBody(request, limit=body_limit(request, max_bytes=max_bytes), max_bytes=max_bytes,
                        timeout_s=timeout_s)
    try:
        fd, name = tempfile.mkstemp(dir=spool_dir, suffix=".upload")
    except OSError:
        raise UploadStorageError("the server cannot store uploads right now") from None
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            spool = _Spool(fh, max_bytes=max_bytes)
            if _is_multipart(request):
                filename, ctype = await _spool_multipart(request, body, spool)
            else:
                async for chunk in body.chunks():
                    await spool.write(chunk)
                header_name = request.headers.get("x-filename")
                filename, ctype = header_name or None, request.headers.get("content-type") or None
            await spool.flush()
        if spool.size == 0:
            raise AudioDecodeError("the upload is empty (0 bytes)")
        yield Upload(path=path, size=spool.size, head=bytes(spool.head),
                     filename=filename[:200] if filename else None, content_type=ctype)
    finally:
        # An analysis abandoned at its deadline may still hold the file open; POSIX keeps
        # its data until that thread closes it, so removing it here is always safe.
        path.unlink(missing_ok=True)


class _Spool:
    """An open file written in :data:`FLUSH_BYTES` batches off the event loop; counts bytes, keeps the head."""

    def __init__(self, fh, *, max_bytes: int):
        self.fh, self.max_bytes = fh, max_bytes
        self.size = 0
        self.head = bytearray()
        self._pending: list[bytes] = []
        self._pending_n = 0

    async def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise _too_large(self.max_bytes)
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        self._pending.append(data)
        self._pending_n += len(data)
        if self._pending_n >= FLUSH_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending, self._pending_n = [], 0
        try:
            await run_in_threadpool(self.fh.write, data)
        except OSError:
            raise UploadStorageError("the server cannot store the upload right now (disk full?)") from None


class _FilePart:
    """python-multipart callbacks that pass on the data of the part named ``file`` and nothing else."""

    def __init__(self):
        self.parts = 0
        self.found = self.in_file = False
        self.filename: str | None = None
        self.content_type: str | None = None
        self.pending: list[bytes] = []
        self._headers: dict[bytes, bytes] = {}
        self._field = self._value = b""

    def callbacks(self) -> dict:
        return {"on_part_begin": self._begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._data,
                "on_part_end": self._end}

    def _begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise BadUploadError(f"bad multipart upload: more than {MAX_PARTS} parts")
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.strip().lower()] = self._value.strip()
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self.in_file = options.get(b"name") == b"file" and not self.found
        if self.in_file:
            name = options.get(b"filename")
            self.filename = name.decode("utf-8", "replace") if name else None
            ctype = self._headers.get(b"content-type")
            self.content_type = ctype.decode("latin-1") if ctype else None

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.pending.append(data[start:end])

    def _end(self) -> None:
        if self.in_file:
            self.found, self.in_file = True, False


async def _spool_multipart(request: Request, body: _LimitedBody, spool: _Spool) -> tuple[str | None, str | None]:
    """Stream the part named ``file`` into ``spool``; its file name and content type."""
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadUploadError("bad multipart upload: no boundary")
    part = _FilePart()
    try:
        parser = MultipartParser(boundary, part.callbacks())
        async for chunk in body.chunks():
            parser.write(chunk)
            for data in part.pending:
                await spool.write(data)
            part.pending.clear()
        parser.finalize()
    except FormParserError:
        raise BadUploadError("bad multipart upload: the body is not valid multipart data") from None
    if not part.found:
        raise BadUploadError("the multipart upload has no file field named 'file'")
    return part.filename, part.content_type


class _LimitedBody:
    """A request body read chunk by chunk, refused once it grows past ``limit`` bytes (413)
    or once ``timeout_s`` has passed since it was opened (408)."""

    def __init__(self, request: Request, *, limit: int, max_bytes: int, timeout_s: float):
        self.limit, self.max_bytes, self.timeout_s = limit, max_bytes, timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.received = 0
        self._stream = request.stream()

    async def chunks(self):
        """The body's chunks, counted against the limit as they arrive."""
        while True:
            chunk = await self._next_chunk()
            if chunk is None:
                return
            self.received += len(chunk)
            if self.received > self.limit:
                await self._drain()
                raise _too_large(self.max_bytes)
            yield chunk

    async def _next_chunk(self) -> bytes | None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise UploadTimeoutError(f"the upload took longer than {self.timeout_s:g} s")
        try:
            return await asyncio.wait_for(self._stream.__anext__(), remaining)
        except StopAsyncIteration:
            return None
        except asyncio.TimeoutError:
            raise UploadTimeoutError(f"the upload took longer than {self.timeout_s:g} s") from None
        except ClientDisconnect:
            raise BadUploadError("the client disconnected during the upload") from None

    async def _drain(self) -> None:
        # Politeness to ordinary clients; bounded in bytes and time.
        t_end, left = time.monotonic() + DRAIN_SECONDS, DRAIN_BYTES
        try:
            while left > 0 and time.monotonic() < t_end:
                chunk = await asyncio.wait_for(self._stream.__anext__(), max(0.01, t_end - time.monotonic()))
                left -= len(chunk)
        except (StopAsyncIteration, asyncio.TimeoutError, ClientDisconnect, RuntimeError):
            pass
