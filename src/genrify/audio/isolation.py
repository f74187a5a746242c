"""Decoding in disposable worker processes: a decoder that crashes, hangs or blows up costs one file.

FFmpeg and libsndfile parse untrusted bytes in C; one bad file can segfault
them (PyAV on some 8-channel AAC files did), loop for ever or ask for
gigabytes. :class:`DecoderPool` keeps a few small worker processes (Python,
numpy and the decoders; no torch, no model) and sends each file to one of
them. A worker that dies, overruns :data:`DECODE_TIMEOUT_S` or hits its memory
limit is killed and replaced; the caller gets a one-line
:class:`~genrify.errors.AudioDecodeError` and the process that holds the model
(a server, a batch) goes on.

Tags are read there too (:meth:`DecoderPool.read_tags`): mutagen loads every
tag block whole, and a file can carry hundreds of MB of pictures, so a tag read
gets the same memory and time limits as a decode.

Protocol, over the worker's stdin/stdout: a JSON line with the request (and
``nbytes`` raw bytes when the input is bytes, not a path); the answer is a JSON
line, then ``n`` float32 samples. No pickle crosses the boundary.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

import numpy as np

from genrify.audio.decode import log
from genrify.errors import AudioDecodeError, DatasetError, InvalidAudioError

#: Seconds one file may take to decode before its worker is killed (the work budget,
#: :data:`~genrify.audio.decode.DECODE_WORK_SAMPLES`, decodes in a few seconds on one core).
DECODE_TIMEOUT_S = 120.0

#: Address-space limit of a decoder worker. The worker's own libraries map
#: ~240 MB of address space before decoding anything; decoding within
#: :data:`~genrify.audio.decode.DECODE_BUDGET_BYTES` stays far below this.
#: The environment variable ``GENRIFY_DECODER_ADDRESS_SPACE`` (bytes) sets another
#: limit for :func:`default_pool`.
WORKER_ADDRESS_SPACE_BYTES = 1024**3

_ERRORS = {"AudioDecodeError": AudioDecodeError, "InvalidAudioError": InvalidAudioError, "DatasetError": DatasetError}


class _WorkerGone(Exception):
    pass


class _Worker:
    def __init__(self, *, address_space: int | None):
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        env.pop("GENRIFY_DECODER_ADDRESS_SPACE", None)  # this pool's limit, not the one default_pool read
        if address_space:
            env["GENRIFY_DECODER_ADDRESS_SPACE"] = str(address_space)
        # stderr goes nowhere: decoders print notes about damaged streams there.
        self.proc = subprocess.Popen([sys.executable, "-m", "genrify.audio.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, bufsize=0)
        self._buf = bytearray()

    def request(self, header: dict, payload: bytes, *, timeout: float) -> tuple[dict, np.ndarray]:
        deadline = time.monotonic() + timeout
        try:
            self.proc.stdin.write(json.dumps(header).encode() + b"\n")
            if payload:
                self.proc.stdin.write(payload)
        except (BrokenPipeError, OSError):
            raise _WorkerGone() from None
        answer = json.loads(self._read_line(deadline))
        return answer, self._read_samples(int(answer.get("n", 0)), deadline)

    def _wait(self, deadline: float) -> int:
        fd = self.proc.stdout.fileno()
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError()
        return fd

    def _fill(self, deadline: float) -> None:
        chunk = os.read(self._wait(deadline), 1 << 16)
        if not chunk:
            raise _WorkerGone()
        self._buf += chunk

    def _read_line(self, deadline: float) -> bytes:
        while (end := self._buf.find(b"\n")) < 0:
            self._fill(deadline)
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        return line

    def _read_samples(self, n: int, deadline: float) -> np.ndarray:
        """``n`` float32 samples, read straight into their array (the only copy of the song here)."""
        samples = np.empty(n, np.float32)
        view = memoryview(samples).cast("B")
        got = min(len(self._buf), len(view))
        view[:got] = self._buf[:got]
        del self._buf[:got]
        while got < len(view):
            k = os.readv(self._wait(deadline), [view[got:]])
            if k == 0:
                raise _WorkerGone()
            got += k
        return samples

    def kill(self) -> int | None:
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()


class DecoderPool:
    """Worker processes that decode audio; thread-safe, one file per worker at a time.

    Workers start on demand (one per concurrent caller) and are kept for reuse
    (at most ``max_idle``). ``timeout`` bounds each file's decoding,
    ``address_space`` each worker's memory (``None``: no limit).
    """

    def __init__(self, *, max_idle: int = 4, timeout: float = DECODE_TIMEOUT_S,
                 address_space: int | None = WORKER_ADDRESS_SPACE_BYTES):
        self.max_idle, self.timeout, self.address_space = max_idle, timeout, address_space
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self.replaced = 0  # workers killed after a crash, timeout or memory blow-up

    def prewarm(self) -> None:
        """Start one worker now, so that its start-up overlaps with the caller's (loading a model)."""
        with self._lock:
            if not self._idle:
                self._idle.append(_Worker(address_space=self.address_space))

    def decode(self, source: str | os.PathLike | bytes, *, sr: int | None, max_duration: float | None,
               offset: float, label: str, timeout: float | None = None) -> tuple[np.ndarray, int]:
        """Decode in a worker; same arguments and answer as :func:`genrify.audio.decode.decode_audio`."""
        payload = source if isinstance(source, bytes) else b""
        header = {"path": None if isinstance(source, bytes) else os.fspath(source), "nbytes": len(payload),
                  "sr": sr, "max_duration": max_duration, "offset": offset, "label": label}
        answer, samples = self._ask(header, payload, label=label, doing="decoding", timeout=timeout)
        if answer.get("cut"):
            log.warning("%s", answer["cut"])
        return samples, int(answer["sr"])

    def read_tags(self, path: str | os.PathLike, *, label: str, timeout: float | None = None) -> dict:
        """The tags of the audio file ``path``, read by mutagen in a worker: what
        :func:`genrify.audio.worker.read_tags_in_process` returns, within the worker's memory and time limits."""
        header = {"op": "tags", "path": os.fspath(path), "nbytes": 0, "label": label}
        answer, _ = self._ask(header, b"", label=label, doing="reading its tags", timeout=timeout)
        return answer["tags"]

    def _ask(self, header: dict, payload: bytes, *, label: str, doing: str,
             timeout: float | None) -> tuple[dict, np.ndarray]:
        """One request to a worker: its answer and samples, or the one-line error it (or its end) amounts to."""
        limit = self.timeout if timeout is None else timeout
        worker = self._take()
        try:
            answer, samples = worker.request(header, payload, timeout=limit)
        except TimeoutError:
            self._discard(worker)
            raise AudioDecodeError(f"{label}: {doing} took longer than {limit:g} s and was stopped") from None
        except (_WorkerGone, ValueError):
            code = self._discard(worker)
            raise AudioDecodeError(f"{label}: the decoder crashed on this file ({_how(code)})") from None
        self._give_back(worker)
        if not answer.get("ok"):
            raise _ERRORS.get(answer.get("error"), AudioDecodeError)(answer.get("message") or f"{label}: failed")
        return answer, samples

    def close(self) -> None:
        """Stop every idle worker."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.proc.poll() is None:
                    return worker
        return _Worker(address_space=self.address_space)

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(worker)
                return
        worker.close()

    def _discard(self, worker: _Worker) -> int | None:
        with self._lock:
            self.replaced += 1
        return worker.kill()


def _how(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return "it stopped answering" if code is None else f"exit status {code}"


_POOL: DecoderPool | None = None
_POOL_LOCK = threading.Lock()


def default_pool() -> DecoderPool:
    """The process-wide :class:`DecoderPool` that :func:`genrify.audio.load_audio` uses
    (address-space limit: ``GENRIFY_DECODER_ADDRESS_SPACE`` bytes when set, else
    :data:`WORKER_ADDRESS_SPACE_BYTES`)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            limit = os.environ.get("GENRIFY_DECODER_ADDRESS_SPACE", "").strip()
            _POOL = DecoderPool(address_space=int(limit) if limit.isdigit() else WORKER_ADDRESS_SPACE_BYTES)
        return _POOL
