"""The exclusion list of a dataset: tracks that ``train``, ``evaluate`` and ``embed`` leave out, and
tracks they read under another genre.

``<dataset>/exclusions.json`` maps a track's path (as the index stores it) to the
reason it is excluded (``excluded``) and, for tracks relabelled on the audit page, to
their new genre (``relabelled``). ``genrify audit --apply`` and the audit page write it;
the user's audio files, their tags and the index are never touched. Deleting the file
brings every track back under its original genre.
"""

from __future__ import annotations

import json
from pathlib import Path

from genrify.errors import DatasetError

FILENAME = "exclusions.json"


def exclusions_path(root: str | Path) -> Path:
    return Path(root) / FILENAME


def _read(root: str | Path) -> dict:
    """The parsed list, ``{}`` when there is none; a damaged one is one line (train must not guess)."""
    path = exclusions_path(root)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {"excluded": {str(e["path"]): str(e.get("reason", "")) for e in data["excluded"]},
                "relabelled": {str(e["path"]): str(e["genre"]) for e in data.get("relabelled", [])}}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DatasetError(f"{path}: unreadable exclusion list ({exc}); delete it or rerun 'genrify audit --apply'") from None


def read_exclusions(root: str | Path) -> dict[str, str]:
    """``{path: reason}`` of the dataset at ``root``; empty when it has no exclusion list."""
    return _read(root).get("excluded", {})


def read_relabels(root: str | Path) -> dict[str, str]:
    """``{path: genre}``: tracks of the dataset at ``root`` that train and evaluate read under another genre."""
    return _read(root).get("relabelled", {})


def write_exclusions(root: str | Path, excluded: dict[str, str], *, note: str = "",
                     relabelled: dict[str, str] | None = None) -> Path:
    """Replace the exclusion list of the dataset at ``root`` with ``{path: reason}`` (atomically), and its
    relabels with ``relabelled`` ``{path: genre}``; ``None`` keeps the relabels already there (``audit
    --apply`` decides exclusions only)."""
    from genrify.fileio import write_text_atomic

    path = exclusions_path(root)
    if relabelled is None:
        try:
            relabelled = read_relabels(root)
        except DatasetError:  # the message above says rerunning --apply mends a damaged list
            relabelled = {}
    body = {"note": note, "excluded": [{"path": p, "reason": r} for p, r in sorted(excluded.items())],
            "relabelled": [{"path": p, "genre": g} for p, g in sorted(relabelled.items())]}
    write_text_atomic(path, json.dumps(body, indent=1) + "\n")
    return path
