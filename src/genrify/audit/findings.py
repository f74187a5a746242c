"""What an audit finds: the finding kinds, the detectors' thresholds, one finding, the audited inputs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from genrify.config import ModelConfig, VerdictConfig

if TYPE_CHECKING:  # only annotations: `genrify --help` reads AuditConfig's defaults without numpy
    import numpy as np

#: Finding kinds, most harmful first: the report and the page list them in this order.
KINDS = ("cross-genre-duplicate", "not-music", "mislabelled", "duplicate", "artist-concentration", "balance")


@dataclass(frozen=True)
class AuditConfig:
    """Thresholds of every detector.

    ``near_cosine``: best window-to-window cosine of standardised embeddings from which two
    tracks share a passage ("probably the same piece"); ``same_recording_cosine``: from which
    that cosine alone calls them copies of one recording (identical audio and matching
    Chromaprint fingerprints always do); ``fingerprint_match``: share of equal Chromaprint bits from which
    two tracks are one recording; ``min_artists`` / ``max_artist_share``: an artist-concentration
    warning below / above these; ``min_seconds``: shorter tracks are "too short to be a song";
    ``imbalance``: largest/smallest genre (in tracks) from which balance is a finding.
    """

    folds: int = 5
    seed: int = 0
    C: float = ModelConfig.C
    near_cosine: float = 0.9
    same_recording_cosine: float = 0.99
    neighbours: int = 5
    fingerprint_match: float = 0.85
    min_artists: int = 5
    max_artist_share: float = 0.30
    min_seconds: float = 1.5
    music_threshold: float = VerdictConfig.music_threshold
    imbalance: float = 1.5


@dataclass
class Finding:
    """One thing wrong with the collection: ``tracks`` are ``{path, genre, artist, title}``;
    ``exclude`` the paths ``genrify audit --apply`` leaves out of training (may be empty);
    ``relabel`` ``{path: genre}``, the genre the audit page offers instead (mislabels only)."""

    kind: str
    title: str
    evidence: str
    action: str
    tracks: list[dict] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    score: float = 0.0
    relabel: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Inputs:
    """The dataset's usable tracks (exclusions included) with their stored arrays."""

    tracks: list
    labels: list[str]
    y: np.ndarray
    windows: list[np.ndarray]
    durations: list[float]
    notes: list[str]
