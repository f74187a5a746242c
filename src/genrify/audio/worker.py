"""The decoder worker process of :class:`genrify.audio.isolation.DecoderPool` (``python -m genrify.audio.worker``).

It reads requests on stdin and answers on stdout until stdin closes; see
:mod:`genrify.audio.isolation` for the protocol. Only numpy and the decoders
are imported here: a worker starts in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np


def _serve(inp, out) -> None:
    from genrify.audio.decode import decode_chunks
    from genrify.errors import GenrifyError

    while line := inp.readline():
        req = json.loads(line)
        source = inp.read(req["nbytes"]) if req["nbytes"] else req["path"]
        try:
            chunks, sr, cut = decode_chunks(source, sr=req["sr"], max_duration=req["max_duration"],
                                            offset=req["offset"], label=req["label"])
            answer = {"ok": True, "sr": sr, "n": sum(int(c.size) for c in chunks), "cut": cut}
        except GenrifyError as exc:
            answer, chunks = {"ok": False, "error": type(exc).__name__, "message": str(exc)}, []
        except MemoryError:
            chunks = []
            answer = {"ok": False, "error": "InvalidAudioError",
                      "message": f"{req['label']}: needs more memory to decode than a decoder may use"}
        out.write(json.dumps(answer).encode() + b"\n")
        for chunk in chunks:  # block by block, straight from the arrays: no second copy of the song
            out.write(memoryview(np.ascontiguousarray(chunk, dtype=np.float32)).cast("B"))
        out.flush()


def _main() -> None:
    # The protocol owns the original stdout; C libraries writing to fd 1 or 2 write nowhere.
    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    limit = os.environ.get("GENRIFY_DECODER_ADDRESS_SPACE")
    if limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))
    try:
        _serve(sys.stdin.buffer, out)
    except (BrokenPipeError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    _main()
