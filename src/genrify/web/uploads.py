"""Reading an uploaded file with its size limited *while* it streams in.

The request body is read chunk by chunk; a declared ``Content-Length`` over
the limit is refused before any byte is read, and a body that grows past the
limit is refused as soon as it does. Either way the answer is HTTP 413 with a
JSON error. Both ``multipart/form-data`` (field ``file``, as a browser form
sends it) and a raw body (``curl --data-binary @song.mp3``) are accepted.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request

from genrify.errors import AudioDecodeError, GenrifyError

#: Room for the multipart envelope (boundaries, part headers) beyond the file itself.
MULTIPART_OVERHEAD = 64 * 1024
#: After refusing an oversized body, read and discard at most this much more of it
#: (so an ordinary client receives the 413 instead of a reset connection) …
DRAIN_BYTES = 32 * 1024 * 1024
#: … for at most this long.
DRAIN_SECONDS = 3.0


class UploadTooLargeError(GenrifyError):
    """The upload is larger than the configured limit."""

    status_code = 413


class UploadTimeoutError(GenrifyError):
    """The upload did not arrive within the configured time."""

    status_code = 408


class BadUploadError(GenrifyError):
    """The request does not carry a readable upload (bad headers, bad multipart, client gone)."""

    status_code = 422


@dataclass(frozen=True)
class Upload:
    """An uploaded file: its bytes, and the name and content type the client gave (if any)."""

    data: bytes
    filename: str | None
    content_type: str | None


def _too_large(limit: int) -> UploadTooLargeError:
    return UploadTooLargeError(f"the upload is larger than the limit of {limit / (1024 * 1024):g} MB")


async def read_upload(request: Request, *, max_bytes: int, timeout_s: float) -> Upload:
    """The uploaded file's bytes, its name and content type; raises the errors above."""
    content_type = request.headers.get("content-type", "")
    multipart = content_type.lower().startswith("multipart/form-data")
    body = _LimitedBody(request, limit=max_bytes + (MULTIPART_OVERHEAD if multipart else 0), max_bytes=max_bytes,
                        timeout_s=timeout_s)
    if multipart:
        return await _read_multipart(request, body, max_bytes=max_bytes)
    parts = [chunk async for chunk in body.chunks()]
    data = b"".join(parts)
    if not data:
        raise AudioDecodeError("the upload is empty (0 bytes)")
    name = request.headers.get("x-filename")
    return Upload(data=data, filename=name[:200] if name else None, content_type=content_type or None)


async def _read_multipart(request: Request, body: _LimitedBody, *, max_bytes: int) -> Upload:
    """The file of the multipart field ``file``."""
    from starlette.formparsers import MultiPartException, MultiPartParser

    parser = MultiPartParser(request.headers, body.chunks(), max_files=1, max_fields=8)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadUploadError(f"bad multipart upload: {exc.message}") from None
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise BadUploadError("the multipart upload has no file field named 'file'")
        data = await upload.read()
        if len(data) > max_bytes:
            raise _too_large(max_bytes)
        if not data:
            raise AudioDecodeError("the upload is empty (0 bytes)")
        return Upload(data=data, filename=(upload.filename or "")[:200] or None, content_type=upload.content_type)
    finally:
        await form.close()


class _LimitedBody:
    """A request body read chunk by chunk, refused once it grows past ``limit`` bytes (413)
    or once ``timeout_s`` has passed since it was opened (408).

    A declared ``Content-Length`` over ``limit`` is refused here, before any byte is read.
    """

    def __init__(self, request: Request, *, limit: int, max_bytes: int, timeout_s: float):
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                declared_n = int(declared)
            except ValueError:
                raise BadUploadError("bad Content-Length header") from None
            if declared_n > limit:
                raise _too_large(max_bytes)
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
