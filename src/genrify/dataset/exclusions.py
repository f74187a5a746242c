"""The exclusion list of a dataset: tracks that ``train``, ``evaluate`` and ``embed`` leave out.

``<dataset>/exclusions.json`` maps a track's path (as the index stores it) to the
reason it is excluded. ``genrify audit --apply`` writes it; the user's audio files
are never touched. Deleting the file brings every track back.
"""

from __future__ import annotations

import json
from pathlib import Path

from genrify.errors import DatasetError

FILENAME = "exclusions.json"


def exclusions_path(root: str | Path) -> Path:
    return Path(root) / FILENAME


def read_exclusions(root: str | Path) -> dict[str, str]:
    """``{path: reason}`` of the dataset at ``root``; empty when it has no exclusion list."""
    path = exclusions_path(root)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["excluded"]
        return {str(e["path"]): str(e.get("reason", "")) for e in entries}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path}: unreadable exclusion list ({exc}); delete it or rerun 'genrify audit --apply'") from None


def write_exclusions(root: str | Path, excluded: dict[str, str], *, note: str = "") -> Path:
    """Replace the exclusion list of the dataset at ``root`` with ``{path: reason}`` (atomically)."""
    from genrify.fileio import write_text_atomic

    path = exclusions_path(root)
    body = {"note": note, "excluded": [{"path": p, "reason": r} for p, r in sorted(excluded.items())]}
    write_text_atomic(path, json.dumps(body, indent=1) + "\n")
    return path
