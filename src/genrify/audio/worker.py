"""The decoder worker process of :class:`genrify.audio.isolation.DecoderPool` (``python -m genrify.audio.worker``).

It reads requests on stdin and answers on stdout until stdin closes; see
:mod:`genrify.audio.isolation` for the protocol. A request decodes a file
(:func:`genrify.audio.decode.decode_chunks`) or, with ``"op": "tags"``, reads its
tags (:func:`read_tags_in_process`). Only numpy, mutagen and the decoders are
imported here: a worker starts in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np


def read_tags_in_process(path: str | os.PathLike) -> dict:
    """Artist, title, album, genre (``str`` or ``None``) and duration (s) of an audio file, from its tags.

    What :func:`genrify.sources.tags.read_tags` gives, read in this process (a
    worker's, where a file whose tags need too much memory costs that file only).
    Keys are present only for what was found; the duration comes from libsndfile's
    header when mutagen has none. Raises :class:`~genrify.errors.DatasetError`
    (the reason, without the path) when the file is not audio at all.
    """
    import mutagen

    from genrify.audio.formats import ID3_FRAMES
    from genrify.errors import DatasetError

    path = str(path)
    info: dict = {}
    try:
        f = mutagen.File(path, easy=True)
    except MemoryError:
        raise
    except Exception:  # mutagen raises many types on damaged files
        f = None
    if f is not None:
        tags = f.tags or {}
        from mutagen.id3 import ID3

        if isinstance(tags, ID3):  # WAV / AIFF: plain ID3 frames, no "easy" keys
            tags = {key: list(tags[frame].text) for key, frame in ID3_FRAMES.items() if frame in tags}

        def first(key):
            try:
                values = tags.get(key)
            except Exception:
                return None
            if not values:
                return None
            value = values[0] if isinstance(values, list) else values
            value = str(value).strip()
            return value or None

        info = {"artist": first("artist") or first("albumartist"), "title": first("title"),
                "album": first("album"), "genre": first("genre")}
        length = getattr(getattr(f, "info", None), "length", None)
        if length and length > 0:
            info["duration"] = float(length)
    if "duration" not in info:
        # Not recognised by mutagen (or no length): ask libsndfile for the header.
        import soundfile as sf

        if f is None and path.lower().endswith(".mp3"):
            # mutagen reads every real MP3 header; libsndfile's MP3 decoder would
            # only print resync noise on stderr for garbage.
            raise DatasetError("not a recognised audio file (no MPEG audio frames)")
        try:
            si = sf.info(path)
        except Exception as exc:
            if f is None:
                raise DatasetError(f"not a recognised audio file ({type(exc).__name__})") from None
        else:
            if si.frames <= 0 or si.samplerate <= 0:
                raise DatasetError("audio file has no samples")
            info["duration"] = si.frames / si.samplerate
    return info


def _serve(inp, out) -> None:
    from genrify.audio.decode import decode_chunks
    from genrify.errors import GenrifyError

    while line := inp.readline():
        req = json.loads(line)
        source = inp.read(req["nbytes"]) if req["nbytes"] else req["path"]
        tags = req.get("op") == "tags"
        chunks = []
        try:
            if tags:
                answer = {"ok": True, "tags": read_tags_in_process(source)}
            else:
                chunks, sr, cut = decode_chunks(source, sr=req["sr"], max_duration=req["max_duration"],
                                                offset=req["offset"], label=req["label"])
                answer = {"ok": True, "sr": sr, "n": sum(int(c.size) for c in chunks), "cut": cut}
        except GenrifyError as exc:
            answer = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
        except MemoryError:
            chunks = []
            doing = "to read its tags" if tags else "to decode"
            answer = {"ok": False, "error": "DatasetError" if tags else "InvalidAudioError",
                      "message": f"{req['label']}: needs more memory {doing} than a decoder may use"}
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
