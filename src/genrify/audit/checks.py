"""From detector output to findings: evidence in words, a suggested action, what ``--apply`` excludes."""

from __future__ import annotations

import numpy as np

from genrify.audit.findings import AuditConfig, Finding, Inputs


def _track(t) -> dict:
    return {"path": t.path, "genre": t.genre, "artist": t.artist, "title": t.title}


def oof_or_none(inp: Inputs, config: AuditConfig) -> tuple[np.ndarray | None, str | None]:
    """Leave-artist-out out-of-fold probabilities, or ``None`` and the one-line reason they cannot be had."""
    from genrify.audit.labels import out_of_fold_probabilities

    groups = [t.group_for("artist") for t in inp.tracks]
    per_genre = min(len({g for g, k in zip(groups, inp.y) if k == lab}) for lab in range(len(inp.labels)))
    folds = min(config.folds, per_genre)
    if folds < 2:
        small = [inp.labels[lab] for lab in range(len(inp.labels))
                 if len({g for g, k in zip(groups, inp.y) if k == lab}) < 2]
        return None, (f"no mislabel check: {', '.join(small)} has a single artist/track group, so no "
                      "leave-artist-out cross-validation can test it")
    note = None if folds == config.folds else f"mislabel check on {folds} folds (a genre has only {per_genre} artist groups)"
    means = np.stack([w.mean(axis=0) for w in inp.windows])
    return out_of_fold_probabilities(means, inp.y, groups, labels=inp.labels, folds=folds, C=config.C,
                                     seed=config.seed), note


def duplicate_findings(inp: Inputs, oof, fps: dict | None, config: AuditConfig) -> list[Finding]:
    """Groups of tracks that are one recording (identical audio, re-encoded, trimmed, another excerpt)."""
    from genrify.audit.duplicates import embedding_pairs, exact_pairs, group_pairs
    from genrify.audit.fingerprints import matching_pairs

    evidence: dict[tuple[int, int], str] = {}
    for i, j, s in embedding_pairs(inp.windows, threshold=config.near_cosine, neighbours=config.neighbours):
        evidence[(i, j)] = f"a passage of one matches the other (embedding cosine {s:.3f})"
    if fps is not None:
        have = [i for i, t in enumerate(inp.tracks) if t.sha256 in fps]
        for a, b, s, off in matching_pairs([fps[inp.tracks[i].sha256] for i in have], threshold=config.fingerprint_match):
            evidence[(have[a], have[b])] = f"Chromaprint fingerprints agree on {s:.1%} of bits (offset {off * 0.124:+.1f} s)"
    for i, j in exact_pairs(inp.windows, inp.durations):
        evidence[(i, j)] = "the same decoded audio (identical embeddings and duration)"
    out = []
    for group in group_pairs(len(inp.tracks), list(evidence)):
        tracks = [inp.tracks[i] for i in group]
        genres = sorted({t.genre for t in tracks})
        # Keep the copy the model finds most typical of its label (else the longest); the rest are extra.
        own = [oof[i, inp.y[i]] if oof is not None else 0.0 for i in group]
        keep = max(range(len(group)), key=lambda k: (own[k], inp.durations[group[k]]))
        lines = sorted({e for (i, j), e in evidence.items() if i in group and j in group})
        names = ", ".join(f"{t.title or t.path.rsplit('/', 1)[-1]} [{t.genre}]" for t in tracks)
        if len(genres) > 1:
            believed = f"; the model believes {inp.labels[int(oof[group[keep]].argmax())]}" if oof is not None else ""
            out.append(Finding("cross-genre-duplicate", f"one recording filed under {' and '.join(genres)}: {names}",
                               "; ".join(lines), f"keep one copy, under the genre it belongs to{believed}",
                               [_track(t) for t in tracks], [t.path for k, t in enumerate(tracks) if k != keep],
                               float(len(group))))
        else:
            out.append(Finding("duplicate", f"{len(group)} copies of one recording in {genres[0]}: {names}",
                               "; ".join(lines), "keep one copy: repeats weigh the song several times and, when a "
                               "split separates them, let the model recognise instead of generalise",
                               [_track(t) for t in tracks], [t.path for k, t in enumerate(tracks) if k != keep],
                               float(len(group))))
    return out


def build_duplicates(dataset) -> list[Finding]:
    """Identical files the build already left out (status ``ambiguous`` / ``duplicate``)."""
    out = []
    for t in dataset.index.tracks(status=("ambiguous", "duplicate")):
        kind = "cross-genre-duplicate" if t.status == "ambiguous" else "duplicate"
        out.append(Finding(kind, f"identical file {t.path.rsplit('/', 1)[-1]} [{t.genre}]", t.error or t.status,
                           "already left out by 'genrify dataset build'; delete or relabel the extra copy",
                           [_track(t)], [], 1.0))
    return out


def not_music_findings(inp: Inputs, config: AuditConfig) -> list[Finding]:
    """Speech, noise, silence and tones by the bundled music probe over musicnn embeddings; very short
    tracks by duration."""
    from genrify.audit.labels import music_probabilities
    from genrify.predict.resolve import embedding_music_probe

    p_music = music_probabilities(inp.windows, embedding_music_probe())
    out = []
    for i, t in enumerate(inp.tracks):
        short = inp.durations[i] < config.min_seconds
        if p_music[i] < config.music_threshold or short:
            why = [f"music probability {p_music[i]:.0%} (genrify's not-music probe over musicnn embeddings)"] \
                if p_music[i] < config.music_threshold else []
            why += [f"only {inp.durations[i]:.1f} s long"] if short else []
            out.append(Finding("not-music", f"{t.path.rsplit('/', 1)[-1]} [{t.genre}] does not sound like music",
                               "; ".join(why), "listen to it; remove it from the collection if it is speech, noise, "
                               "silence or a test tone", [_track(t)], [t.path], float(1.0 - p_music[i])))
    return out


def mislabel_findings(inp: Inputs, oof) -> list[Finding]:
    """Tracks that confident learning over leave-artist-out probabilities says carry the wrong genre."""
    from genrify.audit.labels import label_issues

    if oof is None:
        return []
    out = []
    for i in label_issues(inp.y, oof):
        t = inp.tracks[i]
        believed = inp.labels[int(oof[i].argmax())]
        out.append(Finding("mislabelled", f"{t.path.rsplit('/', 1)[-1]} is filed as {t.genre}, sounds like {believed}",
                           f"out-of-fold probability {oof[i, inp.y[i]]:.0%} for {t.genre}, {oof[i].max():.0%} for "
                           f"{believed} (leave-artist-out cross-validation)",
                           f"listen and relabel it as {believed}, or drop it", [_track(t)], [t.path],
                           float(1.0 - oof[i, inp.y[i]])))
    return out


def artist_findings(inp: Inputs, config: AuditConfig) -> list[Finding]:
    """Genres with few artists or one dominant artist, and what that does to cross-validation."""
    from genrify.audit.labels import artist_table

    table = artist_table([t.genre for t in inp.tracks], [t.artist for t in inp.tracks])
    if all(row["artists"] == 0 for row in table.values()):
        return [Finding("artist-concentration", "no track names its artist",
                        "neither tags nor a manifest 'artist' column gave an artist",
                        "add an artist column to the manifest: without it a split may test a model on songs by "
                        "artists it trained on, and accuracy reads higher than it is", [], [], 1.0)]
    out = []
    for genre, row in table.items():
        if row["artists"] < config.min_artists or row["top_share"] > config.max_artist_share:
            out.append(Finding(
                "artist-concentration",
                f"{genre}: {row['artists']} artist{'' if row['artists'] == 1 else 's'}, {row['top_artist']} holds {row['top_share']:.0%} of {row['tracks']} tracks",
                f"{row['artists']} distinct artists ({row['unknown']} tracks without one); warning below "
                f"{config.min_artists} artists or above {config.max_artist_share:.0%} for one",
                "a random split puts this artist on both sides, so cross-validation measures artist recognition; "
                "keep 'train --group-by artist' (leave-artist-out) and add other artists' songs",
                [], [], float(row["top_share"])))
    return out


def balance_findings(inp: Inputs, config: AuditConfig) -> list[Finding]:
    from genrify.audit.labels import balance_table

    table = balance_table([t.genre for t in inp.tracks], inp.durations)
    big = max(table, key=lambda g: table[g]["tracks"])
    small = min(table, key=lambda g: table[g]["tracks"])
    ratio = table[big]["tracks"] / max(1, table[small]["tracks"])
    if ratio < config.imbalance:
        return []
    return [Finding("balance", f"{big} has {ratio:.1f}× the tracks of {small}",
                    ", ".join(f"{g} {r['tracks']} tracks / {r['minutes']:.1f} min" for g, r in table.items()),
                    f"genrify's models weight genres by their size already; add songs to {small} "
                    f"('genrify collect --genre {small}') or subsample {big} so accuracy does not favour it",
                    [], [], ratio)]


def label_pairs(labels: list[str], findings: list[Finding]) -> dict:
    """Counts of suspicious label pairs ``matrix[filed][other]``: mislabels (filed → believed) and cross-genre
    duplicates (each extra copy's genre → the kept copy's)."""
    m = np.zeros((len(labels), len(labels)), dtype=int)
    for f in findings:
        if f.kind == "mislabelled":
            filed = f.tracks[0]["genre"]
            believed = f.title.rsplit(" sounds like ", 1)[-1]
            m[labels.index(filed), labels.index(believed)] += 1
        elif f.kind == "cross-genre-duplicate" and f.exclude:
            kept = [t["genre"] for t in f.tracks if t["path"] not in f.exclude][0]
            for t in f.tracks:
                if t["path"] in f.exclude and t["genre"] != kept:
                    m[labels.index(t["genre"]), labels.index(kept)] += 1
    return {"labels": labels, "matrix": m.tolist()}
