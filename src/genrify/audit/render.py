"""An audit for people: a terminal summary, and a folder with Markdown, JSON and the label-pair map.

Renders :func:`genrify.audit.core.audit_dataset`'s result; computes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from genrify.audit.findings import KINDS

HEADINGS = {"cross-genre-duplicate": "Same recording under two genres", "not-music": "Not music",
            "mislabelled": "Probably mislabelled", "duplicate": "Duplicates within a genre",
            "artist-concentration": "Artist concentration", "balance": "Balance"}


def counts_line(result: dict) -> str:
    c = result["counts"]
    return (f"{result['tracks']} tracks, {len(result['genres'])} genres: "
            + ", ".join(f"{c[k]} {HEADINGS[k].lower()}" for k in KINDS if c[k]) if any(c.values())
            else f"{result['tracks']} tracks, {len(result['genres'])} genres: nothing found")


def text(result: dict, *, top: int = 12) -> str:
    """The terminal report: counts, then the ``top`` most harmful findings with evidence and action."""
    lines = [f"audit of {result['dataset']}", counts_line(result)]
    lines += [f"note: {n}" for n in result["notes"]]
    for f in result["findings"][:top]:
        lines += [f"- [{f['kind']}] {f['title']}", f"    evidence: {f['evidence']}", f"    action: {f['action']}"]
    if len(result["findings"]) > top:
        lines.append(f"... and {len(result['findings']) - top} more (--out DIR writes them all)")
    excluded = len({p for f in result["findings"] for p in f["exclude"]})
    if excluded:
        lines.append(f"--apply would leave {excluded} tracks out of train and evaluate (your files stay as they are)")
    return "\n".join(lines)


def markdown(result: dict) -> str:
    """The whole audit as Markdown: counts, findings by kind (most harmful first), balance and artist tables."""
    out = [f"# Audit of `{result['dataset']}`", "", counts_line(result), ""]
    out += [f"- note: {n}" for n in result["notes"]] + ([""] if result["notes"] else [])
    out += ["![suspicious label pairs](label-pairs.png)", ""]
    for kind in KINDS:
        found = [f for f in result["findings"] if f["kind"] == kind]
        if not found:
            continue
        out += [f"## {HEADINGS[kind]} ({len(found)})", ""]
        for f in found:
            out.append(f"- **{f['title']}**  \n  evidence: {f['evidence']}  \n  action: {f['action']}")
            out += [f"  - `{t['path']}` ({t['genre']}{', ' + t['artist'] if t['artist'] else ''})" for t in f["tracks"]
                    if kind in ("cross-genre-duplicate", "duplicate")]
        out.append("")
    out += ["## Tracks, minutes and artists per genre", "",
            "| genre | tracks | minutes | artists | largest artist | share |", "|---|---:|---:|---:|---|---:|"]
    for g in result["genres"]:
        b, a = result["balance"].get(g, {"tracks": 0, "minutes": 0.0}), result["artists"].get(g, {})
        out.append(f"| {g} | {b['tracks']} | {b['minutes']:.1f} | {a.get('artists', 0)} | {a.get('top_artist') or '—'} "
                   f"| {a.get('top_share', 0.0):.0%} |")
    return "\n".join(out) + "\n"


def write_report(result: dict, out: str | Path) -> list[Path]:
    """Write ``audit.md``, ``audit.json`` and ``label-pairs.png`` into the folder ``out``."""
    from genrify import report
    from genrify.errors import WriteError
    from genrify.fileio import write_bytes_atomic, write_text_atomic

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"{out}: cannot create the report folder ({exc.strerror or exc})") from None
    paths = [out / "audit.md", out / "audit.json", out / "label-pairs.png"]
    write_text_atomic(paths[0], markdown(result))
    write_text_atomic(paths[1], json.dumps(result, indent=1) + "\n")
    write_bytes_atomic(paths[2], report.label_pairs_png(result["pairs"], title="Suspicious label pairs"))
    return paths
