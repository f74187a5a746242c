"""Auditing a genre collection before training on it (``genrify audit``).

``findings``      finding kinds, thresholds (:class:`AuditConfig`), one :class:`Finding`
``duplicates``    same recording: identical decoded audio, re-encodings, trims, excerpts (embeddings)
``fingerprints``  Chromaprint fingerprints, cached in the dataset, and which tracks share a recording
``labels``        artist concentration, balance, music probability, leave-artist-out mislabels (cleanlab)
``checks``        detector output → findings with evidence, action and exclusions
``core``          :func:`audit_dataset` (the whole audit as data), the stored audit and when it is current
                  (:func:`current_audit`), and ``--apply``'s exclusion list
``render``        terminal text, Markdown, JSON and the label-pair picture
"""

from genrify.audit.findings import AuditConfig, Finding

__all__ = ["AuditConfig", "Finding", "apply_exclusions", "audit_dataset", "current_audit", "stored_audit"]


def __getattr__(name: str):
    # The audit itself (numpy, scikit-learn, cleanlab) loads on first use, so that the CLI can read
    # AuditConfig's defaults for `genrify --help` without it.
    if name in ("apply_exclusions", "audit_dataset", "current_audit", "stored_audit"):
        from genrify.audit import core

        return getattr(core, name)
    raise AttributeError(f"module 'genrify.audit' has no attribute {name!r}")
