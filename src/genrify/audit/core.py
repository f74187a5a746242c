"""``genrify audit``: check a built dataset before training on it.

:func:`audit_dataset` reads the dataset's index, its stored musicnn embeddings
(computing only missing ones) and cached Chromaprint fingerprints, runs every
detector and returns plain data: findings ranked most harmful first, each with
evidence, a suggested action and the tracks ``--apply`` would exclude, plus the
tables and the label-pair map the report renders (:mod:`genrify.audit.render`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

import numpy as np

from genrify.audit.findings import KINDS, AuditConfig, Inputs
from genrify.dataset.store import Dataset
from genrify.errors import DatasetError


def load_inputs(dataset: Dataset, *, progress: bool = False) -> Inputs:
    """Every usable track and its per-window embeddings; embeds only tracks that have none yet."""
    from genrify.dataset.embeddings import embedding_store
    from genrify.train.embed import embed_dataset, embed_file

    tracks = dataset.tracks(include_excluded=True)
    if not tracks:
        raise DatasetError(f"{dataset.root}: the dataset has no usable tracks to audit")
    labels = sorted({t.genre for t in tracks})
    if len(labels) < 2:
        raise DatasetError(f"{dataset.root}: every track is filed under {labels[0]!r}; an audit compares genres, "
                           "so it needs at least two")
    store = embedding_store(dataset)
    notes = []
    if any(not store.has(t.sha256) for t in tracks):
        embed_dataset(dataset, progress=progress)
        for t in tracks:  # tracks on the exclusion list are not embedded by 'genrify embed'
            if not store.has(t.sha256):
                embeddings, _ = embed_file(t.path, dataset.audio_config.max_duration)
                if embeddings is not None:
                    store.write(t.sha256, embeddings)
    kept = [t for t in tracks if store.has(t.sha256)]
    if len(kept) < len(tracks):
        notes.append(f"{len(tracks) - len(kept)} tracks could not be embedded and were not audited")
    windows = [np.asarray(store.read(t.sha256), dtype=np.float32) for t in kept]
    y = np.array([labels.index(t.genre) for t in kept])
    return Inputs(kept, labels, y, windows, [float(t.duration or 0.0) for t in kept], notes)


def audit_dataset(path, *, config: AuditConfig = AuditConfig(), fingerprints: bool = True,
                  progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Audit the dataset folder ``path``; returns ``{dataset, tracks, genres, counts, findings, artists,
    balance, pairs, notes, config}`` with findings as dicts, ranked by :data:`KINDS` then score.

    ``progress(stage, done, total)``, if given, hears of every stage that can take seconds (embedding,
    cross-validation, fingerprints, the checks). The result is also stored in the dataset
    (:data:`STORED`), where :func:`current_audit` finds it while it is current.
    """
    from genrify.audit import checks

    dataset = Dataset(path)
    try:
        key = audit_key(dataset, config=config, fingerprints=fingerprints)
        inp = load_inputs(dataset, progress=progress is not None)
        oof, cv_note = checks.oof_or_none(inp, config, progress=progress)
        inp.notes += [cv_note] if cv_note else []
        fps = None
        if fingerprints:
            from genrify.audit.fingerprints import dataset_fingerprints

            fps = dataset_fingerprints(dataset, inp.tracks, progress=progress)
        steps = [lambda: checks.duplicate_findings(inp, oof, fps, config), lambda: checks.build_duplicates(dataset),
                 lambda: checks.not_music_findings(inp, config), lambda: checks.mislabel_findings(inp, oof),
                 lambda: checks.artist_findings(inp, config), lambda: checks.balance_findings(inp, config)]
        findings = []
        for done, step in enumerate(steps, 1):
            findings += step()
            if progress is not None:
                progress("checks", done, len(steps))
    finally:
        dataset.close()
    findings.sort(key=lambda f: (KINDS.index(f.kind), -f.score))
    counts = {k: sum(1 for f in findings if f.kind == k) for k in KINDS}
    from genrify.audit.labels import artist_table, balance_table

    genres = [t.genre for t in inp.tracks]
    result = {"dataset": str(dataset.root), "tracks": len(inp.tracks), "genres": inp.labels, "counts": counts,
              "findings": [f.to_dict() for f in findings],
              "artists": artist_table(genres, [t.artist for t in inp.tracks]),
              "balance": balance_table(genres, inp.durations), "pairs": checks.label_pairs(inp.labels, findings),
              "notes": inp.notes, "config": asdict(config), "fingerprints": fingerprints}
    _store(dataset.root, key, result)
    return result


#: Where an audit keeps its last result, inside the dataset folder, with the key that says when it is current.
STORED = "audit-result.json"


def audit_key(dataset: Dataset, *, config: AuditConfig, fingerprints: bool) -> dict:
    """Everything an audit's result depends on: the model that embeds and judges (musicnn and genrify's
    version, whose bundled probes rule on music and genre), the settings, and a digest of the tracks
    (index rows with any relabels, and each audio file's size and modification time)."""
    import hashlib
    import importlib.metadata
    import json
    import os

    from genrify.dataset.embeddings import BACKBONE

    digest = hashlib.sha256()
    rows = dataset.tracks(include_excluded=True) + dataset.index.tracks(status=("ambiguous", "duplicate"))
    for t in rows:
        try:
            st = os.stat(t.path)
            stamp = [st.st_size, st.st_mtime_ns]
        except OSError:
            stamp = None
        digest.update(json.dumps([t.path, t.sha256, t.genre, t.artist, t.title, t.duration, t.status, stamp]).encode())
    return {"format": 1, "model": f"{BACKBONE}, genrify {importlib.metadata.version('genrify')}", "config": asdict(config),
            "fingerprints": fingerprints, "tracks": digest.hexdigest()}


def _stale_because(stored: dict, key: dict) -> str | None:
    """Why a stored audit with ``stored`` key does not answer for ``key``, or ``None`` when it does."""
    if stored.get("format") != key["format"] or stored.get("model") != key["model"]:
        return f"it was made by another model or genrify version ({stored.get('model')}, now {key['model']})"
    if stored.get("fingerprints") != key["fingerprints"]:
        return ("it was made without Chromaprint fingerprints, now with" if key["fingerprints"]
                else "it was made with Chromaprint fingerprints, now without")
    old = stored.get("config") or {}
    changed = [f"{k} {old.get(k)} → {v}" for k, v in key["config"].items() if old.get(k) != v]
    if changed:
        return f"its settings differ ({', '.join(changed)})"
    if stored.get("tracks") != key["tracks"]:
        return "the dataset changed since (tracks added, removed or relabelled, or audio files modified)"
    return None


def stored_audit(path, *, config: AuditConfig = AuditConfig(),
                 fingerprints: bool = True) -> tuple[dict | None, str | None]:
    """``(result, None)`` when the dataset ``path`` holds a current audit (same tracks, files, model and
    settings as now), else ``(None, why)``: the reason, in words, an audit has to be computed."""
    import json

    dataset = Dataset(path)
    try:
        key = audit_key(dataset, config=config, fingerprints=fingerprints)
    finally:
        dataset.close()
    try:
        stored = json.loads((dataset.root / STORED).read_text(encoding="utf-8"))
        why = _stale_because(stored["key"], key)
        result = dict(stored["result"], dataset=str(dataset.root))  # the folder as named now, wherever it moved
    except FileNotFoundError:
        return None, "no audit of this dataset is stored yet"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, f"the stored audit ({STORED}) is unreadable"
    if why is not None:
        return None, f"the stored audit is out of date: {why}"
    return result, None


def current_audit(path, *, config: AuditConfig = AuditConfig(), fingerprints: bool = True,
                  progress: Callable[[str, int, int], None] | None = None) -> tuple[dict, str | None]:
    """The stored audit of ``path`` when current (``(result, None)``), else a fresh one and why the stored
    one could not serve (``(result, why)``)."""
    result, why = stored_audit(path, config=config, fingerprints=fingerprints)
    if result is not None:
        return result, None
    return audit_dataset(path, config=config, fingerprints=fingerprints, progress=progress), why


def _store(root, key: dict, result: dict) -> None:
    import json

    from genrify.errors import GenrifyError
    from genrify.fileio import write_text_atomic

    try:
        write_text_atomic(root / STORED, json.dumps({"key": key, "result": result}) + "\n")
    except (GenrifyError, OSError) as exc:
        # A read-only dataset still gets its audit; only the next one cannot reuse it.
        result["notes"].append(f"the audit could not be stored for reuse ({exc})")


def exclusions(result: dict) -> dict[str, str]:
    """``{path: reason}`` of every track the findings of ``result`` suggest leaving out."""
    out: dict[str, str] = {}
    for f in result["findings"]:
        for p in f["exclude"]:
            out.setdefault(p, f"{f['kind']}: {f['title']}")
    return out


def apply_exclusions(result: dict) -> tuple[str, int]:
    """Write the exclusion list of ``result``'s dataset (replacing any earlier one); ``(path, count)``."""
    from genrify.dataset.exclusions import write_exclusions

    excluded = exclusions(result)
    path = write_exclusions(result["dataset"], excluded,
                            note="written by 'genrify audit --apply'; delete this file to train on every track again")
    return str(path), len(excluded)
