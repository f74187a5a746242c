"""Every benchmark script still runs: each in its ``--smoke`` size (seconds), as a subprocess.

The figures themselves live in docs/performance.md; nothing here times anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("bench_*.py"))


@pytest.fixture(scope="module")
def bench_cache(tmp_path_factory):
    """One cache for all smoke runs, so generated songs and the small model are made once."""
    return tmp_path_factory.mktemp("bench")


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_smoke_run(script, bench_cache):
    env = {**os.environ, "GENRIFY_BENCH_CACHE": str(bench_cache / "bench"), "GENRIFY_CACHE_DIR": str(bench_cache / "gc"),
           "XDG_CACHE_HOME": str(bench_cache / "xdg")}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stdout.strip(), "a benchmark must print its figures"
