"""From detector output to findings: evidence in words, a suggested action, what ``--apply`` excludes."""

from __future__ import annotations

import numpy as np

from genrify.audit.findings import AuditConfig, Finding, Inputs


def _track(t) -> dict:
    return {"path": t.path, "genre": t.genre, "artist": t.artist, "title": t.title}


def cross_validation_kind(tracks) -> str:
    """What the mislabel check's cross-validation really holds out, in words: artists when every track names
    one, artists and single tracks when some do, single tracks when none does."""
    named = sum(1 for t in tracks if t.artist and t.artist.strip())
    if named == len(tracks):
        return "leave-artist-out cross-validation"
    if named == 0:
        # Said plainly: with no artists, one artist's songs can sit on both sides of a fold.
        return "cross-validation by track (no track names its artist, so one artist may be on both sides)"
    return "cross-validation by artist where known, else by track"


def oof_or_none(inp: Inputs, config: AuditConfig, *, progress=None) -> tuple[np.ndarray | None, str | None]:
    """Out-of-fold probabilities (grouped by artist where known, else by track), or ``None`` and the
    one-line reason they cannot be had; ``progress(stage, done, total)`` hears of each fold."""
    from genrify.audit.labels import out_of_fold_probabilities

    groups = [t.group_for("artist") for t in inp.tracks]
    per_genre = min(len({g for g, k in zip(groups, inp.y) if k == lab}) for lab in range(len(inp.labels)))
    folds = min(config.folds, per_genre)
    if folds < 2:
        small = [inp.labels[lab] for lab in range(len(inp.labels))
                 if len({g for g, k in zip(groups, inp.y) if k == lab}) < 2]
        return None, (f"no mislabel check: {', '.join(small)} has a single artist/track group, so no "
                      f"{cross_validation_kind(inp.tracks)} can test it")
    note = None if folds == config.folds else f"mislabel check on {folds} folds (a genre has only {per_genre} groups: artists, or tracks without one)"
    means = np.stack([w.mean(axis=0) for w in inp.windows])
    return out_of_fold_probabilities(means, inp.y, groups, labels=inp.labels, folds=folds, C=config.C,
                                     seed=config.seed, progress=progress), note


def duplicate_findings(inp: Inputs, oof, fps: dict | None, config: AuditConfig) -> list[Finding]:
    """Groups of tracks that are one recording (identical audio, re-encoded, trimmed) or probably one piece
    (a similar passage by embeddings alone)."""
    from genrify.audit.duplicates import embedding_pairs, exact_pairs, group_pairs
    from genrify.audit.fingerprints import matching_pairs

    evidence: dict[tuple[int, int], str] = {}
    # A pair is "one recording" only on proof: identical audio, agreeing fingerprints or a near-1 cosine.
    # A cosine of 0.9-0.99 also joins a live take, a cover or two songs of one album: "probably the same piece".
    same: dict[tuple[int, int], bool] = {}
    for i, j, s in embedding_pairs(inp.windows, threshold=config.near_cosine, neighbours=config.neighbours):
        evidence[(i, j)] = f"a passage of one matches the other (embedding cosine {s:.3f})"
        same[(i, j)] = s >= config.same_recording_cosine
    if fps is not None:
        have = [i for i, t in enumerate(inp.tracks) if t.sha256 in fps]
        for a, b, s, off in matching_pairs([fps[inp.tracks[i].sha256] for i in have], threshold=config.fingerprint_match):
            evidence[(have[a], have[b])] = f"Chromaprint fingerprints agree on {s:.1%} of bits (offset {off * 0.124:+.1f} s)"
            same[(have[a], have[b])] = True
    for i, j in exact_pairs(inp.windows, inp.durations):
        evidence[(i, j)] = "the same decoded audio (identical embeddings and duration)"
        same[(i, j)] = True
    out = []
    for group in group_pairs(len(inp.tracks), list(evidence)):
        tracks = [inp.tracks[i] for i in group]
        genres = sorted({t.genre for t in tracks})
        # Keep the copy the model finds most typical of its label (else the longest); the rest are extra.
        own = [oof[i, inp.y[i]] if oof is not None else 0.0 for i in group]
        keep = max(range(len(group)), key=lambda k: (own[k], inp.durations[group[k]]))
        inside = [(i, j) for (i, j) in evidence if i in group and j in group]
        lines = sorted({evidence[p] for p in inside})
        proven = all(same[p] for p in inside)
        names = ", ".join(f"{t.title or t.path.rsplit('/', 1)[-1]} [{t.genre}]" for t in tracks)
        extra = [t.path for k, t in enumerate(tracks) if k != keep]
        if len(genres) > 1:
            believed = f"; the model believes {inp.labels[int(oof[group[keep]].argmax())]}" if oof is not None else ""
            what = "one recording" if proven else "probably the same piece"
            out.append(Finding("cross-genre-duplicate", f"{what} filed under {' and '.join(genres)}: {names}",
                               "; ".join(lines), f"keep one copy, under the genre it belongs to{believed}"
                               + ("" if proven else " (listen first: similar passages, not identical audio)"),
                               [_track(t) for t in tracks], extra, float(len(group))))
        elif proven:
            out.append(Finding("duplicate", f"{len(group)} copies of one recording in {genres[0]}: {names}",
                               "; ".join(lines), "keep one copy: repeats weigh the song several times and, when a "
                               "split separates them, let the model recognise instead of generalise",
                               [_track(t) for t in tracks], extra, float(len(group))))
        else:
            out.append(Finding("duplicate", f"{len(group)} tracks in {genres[0]} are probably the same piece: {names}",
                               "; ".join(lines), "listen to them: if they are one recording keep one copy (repeats "
                               "let the model recognise instead of generalise); a live take or a cover may stay",
                               [_track(t) for t in tracks], extra, float(len(group))))
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
    """Tracks that confident learning over out-of-fold probabilities says carry the wrong genre; ``relabel``
    holds the genre the page offers instead of excluding the track."""
    from genrify.audit.labels import label_issues

    if oof is None:
        return []
    out = []
    how = cross_validation_kind(inp.tracks)
    for i in label_issues(inp.y, oof):
        t = inp.tracks[i]
        believed = inp.labels[int(oof[i].argmax())]
        out.append(Finding("mislabelled", f"{t.path.rsplit('/', 1)[-1]} is filed as {t.genre}, sounds like {believed}",
                           f"out-of-fold probability {oof[i, inp.y[i]]:.0%} for {t.genre}, {oof[i].max():.0%} for "
                           f"{believed} ({how})",
                           f"listen and relabel it as {believed}, or drop it", [_track(t)], [t.path],
                           float(1.0 - oof[i, inp.y[i]]), {t.path: believed}))
    return out


def artist_findings(inp: Inputs, config: AuditConfig) -> list[Finding]:
    """Genres with few artists or one dominant artist, and what that does to cross-validation."""
    from genrify.audit.labels import artist_table

    table = artist_table([t.genre for t in inp.tracks], [t.artist for t in inp.tracks])
    if all(row["artists"] == 0 for row in table.values()):
        return [Finding("artist-concentration", "no track names its artist",
                        "neither tags nor a manifest 'artist' column gave an artist",
                        "name the artists: besides genre folders, 'genrify dataset build manifest.csv --out my.gdb' "
                        "takes a CSV manifest with path,genre,artist[,title] columns (gtzan-artists.csv is one), "
                        "or give the files artist tags; "
                        "without artists a split may test a model on songs by artists it trained on, and "
                        "accuracy reads higher than it is", [], [], 1.0)]
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
