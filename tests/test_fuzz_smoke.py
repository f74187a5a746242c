"""The fuzzer's smoke run (``tools/fuzz_pipeline.py``) over ``genrify tag``, ``genrify library scan``, the
/library and /audit pages, and the replay of every finding those targets saved.

The run is real: generated files with hostile names go through the commands in subprocesses, drawn rows
go into a real results index and a real dataset index, and a real ``genrify serve`` on 127.0.0.1 answers.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "tools"
REGRESSIONS = REPO / "tests" / "fuzz_regressions"
#: The targets the smoke run covers (pipeline and upload have their own replay in test_reliability.py).
SMOKE_TARGETS = ("tag", "scan", "library", "audit")


@pytest.mark.slow
def test_a_short_fuzzing_run_over_tag_scan_library_and_audit_finds_nothing(seeded_mlp_model):
    """Each target gets a few seconds and at least one input; a crash, a hang, a traceback or a 5xx fails.
    The draws are seeded: the suite checks what it checked before, and longer runs with new seeds explore."""
    from conftest import genrify_env

    proc = subprocess.run([sys.executable, str(TOOLS / "fuzz_pipeline.py"), "--target", ",".join(SMOKE_TARGETS),
                           "--seconds", "24", "--seed", "0", "--no-save", "--model", str(seeded_mlp_model)],
                          capture_output=True, text=True, timeout=540, env=genrify_env())
    report = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, report
    for target in SMOKE_TARGETS:
        assert re.search(rf"^{target}: [1-9]\d* inputs", proc.stdout, re.M), report
    assert "findings: none" in proc.stdout, report


def _saved() -> list[Path]:
    return sorted(p for p in REGRESSIONS.glob("*.json") if p.name.split("-", 1)[0] in SMOKE_TARGETS)


@pytest.mark.slow
@pytest.mark.parametrize("path", _saved(), ids=lambda p: p.name)
def test_saved_findings_of_tag_scan_library_and_audit_replay_cleanly(path, seeded_mlp_model):
    sys.path.insert(0, str(TOOLS))
    try:
        from fuzz_pipeline import replay
    finally:
        sys.path.remove(str(TOOLS))
    with tempfile.TemporaryDirectory() as work:
        assert replay(path, model=seeded_mlp_model, work=Path(work)) == []
