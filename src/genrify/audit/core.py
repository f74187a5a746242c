"""``genrify audit``: check a built dataset before training on it.

:func:`audit_dataset` reads the dataset's index, its stored musicnn embeddings
(computing only missing ones) and cached Chromaprint fingerprints, runs every
detector and returns plain data: findings ranked most harmful first, each with
evidence, a suggested action and the tracks ``--apply`` would exclude, plus the
tables and the label-pair map the report renders (:mod:`genrify.audit.render`).
"""

from __future__ import annotations

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
                  progress: bool = False) -> dict:
    """Audit the dataset folder ``path``; returns ``{dataset, tracks, genres, counts, findings, artists,
    balance, pairs, notes, config}`` with findings as dicts, ranked by :data:`KINDS` then score."""
    from genrify.audit import checks

    dataset = Dataset(path)
    try:
        inp = load_inputs(dataset, progress=progress)
        oof, cv_note = checks.oof_or_none(inp, config)
        inp.notes += [cv_note] if cv_note else []
        fps = None
        if fingerprints:
            from genrify.audit.fingerprints import dataset_fingerprints

            fps = dataset_fingerprints(dataset, inp.tracks, progress=progress)
        findings = (checks.duplicate_findings(inp, oof, fps, config) + checks.build_duplicates(dataset)
                    + checks.not_music_findings(inp, config) + checks.mislabel_findings(inp, oof)
                    + checks.artist_findings(inp, config) + checks.balance_findings(inp, config))
    finally:
        dataset.close()
    findings.sort(key=lambda f: (KINDS.index(f.kind), -f.score))
    counts = {k: sum(1 for f in findings if f.kind == k) for k in KINDS}
    from genrify.audit.labels import artist_table, balance_table

    genres = [t.genre for t in inp.tracks]
    return {"dataset": str(dataset.root), "tracks": len(inp.tracks), "genres": inp.labels, "counts": counts,
            "findings": [f.to_dict() for f in findings],
            "artists": artist_table(genres, [t.artist for t in inp.tracks]),
            "balance": balance_table(genres, inp.durations), "pairs": checks.label_pairs(inp.labels, findings),
            "notes": inp.notes, "config": asdict(config), "fingerprints": fingerprints}


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
