"""The jobs' stages as a Ray actor runs them: a setup (once per actor) and a step (once per item).

Each step calls the same function as the local path (:func:`genrify.predict.batch._analyse_file`,
:func:`genrify.tagging.stage.analyse_song`, :func:`genrify.train.embed.embed_file`), so a cluster
computes what one machine computes. Inputs are paths on a file system every node mounts, or (for
``predict``) fsspec URLs (``s3://…``, ``gs://…``, ``file://…``, ``memory://…``) read as bytes on the
worker; each answer carries the content hash of what was read, so the driver can key its writes by it.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

from genrify.errors import AudioDecodeError, GenrifyError
from genrify.fileio import MAX_FILE_BYTES

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class Stage:
    """``setup(threads=, **kwargs) → state`` once per actor (``threads``: the CPUs Ray reserved for it);
    ``run(state, item) → result`` per item;
    ``lost(item, reason) → result`` for an item whose workers kept dying."""

    setup: Callable[..., Any]
    run: Callable[[Any, Any], Any]
    lost: Callable[[Any, str], Any]


def is_url(source: str) -> bool:
    """``scheme://…`` (read through fsspec) rather than a path."""
    return bool(_URL.match(str(source)))


def read_url(url: str, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes at an fsspec ``url``, at most ``max_bytes``; a one-line :class:`AudioDecodeError` otherwise."""
    try:
        import fsspec
    except ImportError:
        raise AudioDecodeError(f"{url}: reading URLs needs fsspec: pip install 'genrify[ray]'") from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
        if fs.isdir(path):
            raise AudioDecodeError(f"{url}: is a directory, not an audio file")
        size = fs.size(path)
        if size is not None and size > max_bytes:
            raise AudioDecodeError(f"{url}: larger than the {max_bytes // 1024**3} GB genrify reads")
        with fs.open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise AudioDecodeError(f"{url}: no such file") from None
    except (OSError, ValueError, ImportError) as exc:
        raise AudioDecodeError(f"{url}: cannot read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if len(data) > max_bytes:
        raise AudioDecodeError(f"{url}: larger than the {max_bytes // 1024**3} GB genrify reads")
    return data


def file_sha256(path: str) -> str | None:
    """The sha256 of a regular file's content (``None`` when it cannot be read: its analysis says why)."""
    from genrify.fileio import stat_regular

    try:
        stat_regular(path)
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


# ---------------------------------------------------------------------------- predict


def predict_setup(*, model: str | None, model_bytes: bytes | None, fast: bool | None, top_k: int,
                  threads: int) -> dict:
    """Load the classifier once, for many songs on ``threads`` threads: a built-in model by name
    (``"default"``, ``"gtzan"``, ``"musicnn"``, ``"audioset"``) from the worker's own installation, or a model
    file's bytes shipped by the driver."""
    from genrify.predict import load_classifier

    if model_bytes is None:
        return {"clf": load_classifier(model, fast=fast, threads=threads), "top_k": top_k}
    # load_model_file reads a path: the shipped bytes live in a private file only while they load.
    with tempfile.TemporaryDirectory(prefix="genrify-model-") as tmp:
        path = os.path.join(tmp, os.path.basename(model or "model.genrify"))
        with open(path, "wb") as f:
            f.write(model_bytes)
        return {"clf": load_classifier(path, fast=fast, threads=threads), "top_k": top_k}


def predict_run(state: dict, source: str):
    """One song → ``(content sha256 or None, FileResult)``, the local analysis of the same song."""
    from genrify.predict.batch import FileResult, _analyse_file

    clf, top_k = state["clf"], state["top_k"]
    if not is_url(source):
        return file_sha256(source), _analyse_file(clf, source, top_k)
    try:
        data = read_url(source)
        return hashlib.sha256(data).hexdigest(), FileResult(source, clf.analyse(data, top_k=top_k, name=source))
    except GenrifyError as exc:
        return None, FileResult(source, None, str(exc))


def predict_lost(source: str, reason: str):
    from genrify.predict.batch import FileResult

    return None, FileResult(source, None, f"{source}: the analysis process died while analysing this file ({reason})")


# ---------------------------------------------------------------------------- embed


def embed_setup(*, threads: int) -> dict:
    from genrify.predict.threads import set_threads

    set_threads(threads, engine="torch")  # musicnn's embeddings for datasets are computed by torch
    return {}  # the embedder loads on the first song, once per process (genrify.train.embed)


def embed_run(state: dict, job: tuple[str, float | None]):
    """``(path, max_duration)`` → ``(embeddings, None)`` or ``(None, reason)``."""
    from genrify.train.embed import embed_file

    return embed_file(*job)


def embed_lost(job, reason: str):
    return None, f"the embedding process died on this file ({reason})"


# ---------------------------------------------------------------------------- tag


def tag_setup(*, known: frozenset[str] = frozenset(), **classifier) -> dict:
    """:func:`predict_setup`'s classifier, and the content hashes the index knows (their analysis is skipped)."""
    return predict_setup(**classifier) | {"known": frozenset(known)}


def tag_run(state: dict, path: str):
    """One library file → :class:`~genrify.tagging.stage.SongResult` (its facts, content hash included,
    and its analysis unless the hash is known), the stage ``genrify tag`` runs locally."""
    from genrify.tagging.stage import analyse_song

    return analyse_song(path, classifier=state["clf"], top_k=state["top_k"], known=state["known"])


def tag_lost(path: str, reason: str):
    from genrify.tagging.stage import SongResult

    return SongResult(path, None, None, f"{path}: the analysis process died while analysing this file ({reason})")


STAGES: dict[str, Stage] = {
    "predict": Stage(setup=predict_setup, run=predict_run, lost=predict_lost),
    "embed": Stage(setup=embed_setup, run=embed_run, lost=embed_lost),
    "tag": Stage(setup=tag_setup, run=tag_run, lost=tag_lost),
}
