"""genrify's jobs on a real Ray cluster: a head and a second node on 127.0.0.1, started and stopped here.

The cluster runs on this machine with 1 CPU per node; songs are GTZAN excerpts (2–3 s). The
node-killing test runs last: it leaves the cluster with the head alone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

try:
    import ray  # noqa: F401

    HAVE_RAY = True
except ImportError:
    HAVE_RAY = False

needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'genrify[ray]'; "
                                                    "scripts/setup.sh --test installs it)")
#: Each actor reserves this much of a node's memory: one actor per 1-CPU node, and the machine is shared.
ACTOR_MEMORY = 600_000_000


def _songs(gtzan_excerpts: Path, n: int) -> list[str]:
    """``n`` excerpts, round-robin over the genres, so every genre's sound is in the run."""
    by_genre = [sorted(d.glob("*.wav")) for d in sorted(gtzan_excerpts.iterdir()) if d.is_dir()]
    return [str(by_genre[i % len(by_genre)][i // len(by_genre)]) for i in range(n)]


@pytest.fixture(scope="module")
def cluster():
    from genrify.scale.local import LocalCluster, NodeSpec

    with LocalCluster(nodes=2, node=NodeSpec(cpus=1, memory=1_500_000_000, object_store=80_000_000)) as c:
        yield c


def _config(cluster, **kw):
    from genrify.scale import RayConfig

    return RayConfig(address=cluster.address, memory_per_actor=ACTOR_MEMORY, start_timeout=120, **kw)


def test_stage_reads_fsspec_urls_like_paths(gtzan_excerpts, tmp_path):
    """The predict stage on fsspec's memory and local file systems answers what the path answers."""
    fsspec = pytest.importorskip("fsspec")
    from genrify.scale.stages import predict_run, predict_setup

    song = _songs(gtzan_excerpts, 1)[0]
    data = Path(song).read_bytes()
    with fsspec.open("memory://songs/blues.wav", "wb") as f:
        f.write(data)
    state = predict_setup(model=None, model_bytes=None, fast=None, top_k=2, threads=1)
    sha, by_path = predict_run(state, song)
    assert sha == hashlib.sha256(data).hexdigest()
    for url in ("memory://songs/blues.wav", Path(song).as_uri()):
        url_sha, by_url = predict_run(state, url)
        assert url_sha == sha
        assert json.dumps(by_url.analysis.to_dict()) == json.dumps(by_path.analysis.to_dict())
    _, missing = predict_run(state, "memory://songs/nothing.wav")
    assert missing.analysis is None and missing.error == "memory://songs/nothing.wav: no such file"


def test_without_ray_the_flag_says_how_to_install(run_genrify, gtzan_excerpts, tmp_path):
    """``--ray`` without the extra: one line naming the extra (Ray hidden from the import system)."""
    script = ("import sys; sys.modules['ray'] = None; from genrify.cli import main; "
              f"sys.exit(main(['predict', {_songs(gtzan_excerpts, 1)[0]!r}, '--ray', 'auto']))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "genrify: error: running on Ray needs the ray extra: pip install 'genrify[ray]'"


@needs_ray
@pytest.mark.slow
def test_predict_json_on_two_nodes_equals_the_local_run(cluster, run_genrify, gtzan_excerpts, tmp_path, monkeypatch):
    """Like with like: a local run of a few songs would take the NumPy engine, the actors (many songs)
    take torch, and the two engines differ in round-off; on one engine and one thread the answers
    are byte-identical."""
    songs = _songs(gtzan_excerpts, 6)
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio at all")
    args = ["predict", *songs, str(not_audio), "--json", "-v"]
    monkeypatch.setenv("GENRIFY_ENGINE", "torch")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the actors' one reserved CPU
    local = run_genrify(*args, timeout=300)
    on_ray = run_genrify(*args, "--ray", cluster.address, timeout=300)
    assert "torch engine, 1 thread" in local.stderr and "torch engine, 1 thread" in on_ray.stderr
    assert local.returncode == on_ray.returncode == 1  # the text file is answered with its error, by both
    assert on_ray.stdout == local.stdout
    answers = json.loads(on_ray.stdout)
    assert [a["path"] for a in answers] == [*songs, str(not_audio)] and "error" in answers[-1]


@needs_ray
@pytest.mark.slow
def test_embed_on_ray_writes_what_the_local_run_writes(cluster, gtzan_excerpts, tmp_path):
    import csv

    import numpy as np

    from genrify.config import AudioConfig, FeatureConfig
    from genrify.dataset import Dataset
    from genrify.dataset.build import build_dataset
    from genrify.dataset.embeddings import embedding_store
    from genrify.scale import embed_engine
    from genrify.train.embed import embed_dataset

    manifest = tmp_path / "songs.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "genre"])
        for song in _songs(gtzan_excerpts, 3):
            w.writerow([song, Path(song).parent.name])
    fc = FeatureConfig(sr=22050)
    build_dataset(manifest, tmp_path / "local.gdb", features=fc, audio=AudioConfig(sr=22050), workers=1)
    shutil.copytree(tmp_path / "local.gdb", tmp_path / "ray.gdb")
    local, remote = Dataset(tmp_path / "local.gdb"), Dataset(tmp_path / "ray.gdb")
    assert embed_dataset(local, workers=1)["embedded"] == 3
    summary = embed_dataset(remote, engine=embed_engine(_config(cluster)))
    assert summary == {"tracks": 3, "embedded": 3, "reused": 0, "failed": []}
    for track in local.tracks():
        a = np.asarray(embedding_store(local).read(track.sha256))
        b = np.asarray(embedding_store(remote).read(track.sha256))
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)  # the same stage on the same CPU kind


@needs_ray
@pytest.mark.slow
def test_tag_on_ray_fills_the_index_as_the_local_run_does(cluster, run_genrify, gtzan_excerpts, tmp_path, monkeypatch):
    """``genrify tag --ray``: the actors analyse, the driver records; same table, same export as locally
    (both on the actors' engine and thread count, whose round-off the answers carry)."""
    monkeypatch.setenv("GENRIFY_ENGINE", "torch")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    library = tmp_path / "library"
    library.mkdir()
    for song in _songs(gtzan_excerpts, 3):
        shutil.copyfile(song, library / Path(song).name)
    local = run_genrify("tag", library, "--index", tmp_path / "local.sqlite", "--export", tmp_path / "local.json")
    on_ray = run_genrify("tag", library, "--ray", cluster.address, "--index", tmp_path / "ray.sqlite",
                         "--export", tmp_path / "ray.json")
    assert local.returncode == on_ray.returncode == 0, on_ray.stderr
    assert on_ray.stdout == local.stdout and "3 files: 3 analysed, 0 known from the index" in on_ray.stdout
    assert (tmp_path / "ray.json").read_text() == (tmp_path / "local.json").read_text()
    again = run_genrify("tag", library, "--ray", cluster.address, "--index", tmp_path / "ray.sqlite")
    assert "3 files: 0 analysed, 3 known from the index" in again.stdout  # the index is keyed by content


@needs_ray
@pytest.mark.slow
def test_killing_the_second_node_costs_only_its_songs_in_flight(cluster, gtzan_excerpts):
    """kill -9 of the second node's raylet (and the processes under it) mid-job: every song is still
    answered exactly once, correctly."""
    import ray

    from genrify.predict import analyse_many, load_classifier
    from genrify.scale import RunStats, connect
    from genrify.scale.jobs import analyse_with_hashes

    songs = _songs(gtzan_excerpts, 24)  # enough that the second node's actor is up (model loaded) well before the end
    answered, killed_at, stats = [], None, RunStats()
    connect(cluster.address)
    second = next(n["NodeID"] for n in ray.nodes() if n["NodeManagerPort"] == cluster.node_ports[1] and n["Alive"])
    for i, (sha, result) in analyse_with_hashes(songs, config=_config(cluster, actors=2), ordered=False, stats=stats):
        answered.append((i, sha, result))
        if killed_at is None and stats.in_flight.get(second, 0) > 0:  # the second node is analysing songs
            cluster.kill_node(1)
            killed_at = time.monotonic()
    assert killed_at is not None, "the second node never got a song"
    assert stats.lost >= 1  # its songs in flight were lost with it, and answered by the head's actor
    assert sorted(i for i, _, _ in answered) == list(range(len(songs)))  # each song once, none missing
    assert all(r.error is None for _, _, r in answered), [r.error for _, _, r in answered if r.error]
    assert all(sha == hashlib.sha256(Path(songs[i]).read_bytes()).hexdigest() for i, sha, _ in answered)
    deadline = time.monotonic() + 60
    while len([n for n in ray.nodes() if n["Alive"]]) != 1 and time.monotonic() < deadline:
        time.sleep(1)
    assert len([n for n in ray.nodes() if n["Alive"]]) == 1  # the node really died
    # And the answers are the local ones on the actors' engine and threads (a sample, to keep the test short).
    by_index = {i: r for i, _, r in answered}
    clf = load_classifier(None, threads=1)  # many songs: the torch engine, as in the actors
    assert clf.runtime.engine == "torch"
    for i, local in enumerate(analyse_many(songs[:3], classifier=clf)):
        assert json.dumps(by_index[i].analysis.to_dict()) == json.dumps(local.analysis.to_dict())


def test_actor_size_comes_from_the_environment():
    from genrify.errors import ConfigError
    from genrify.scale import RayConfig

    config = RayConfig.from_environment("10.0.0.5:6379", {"GENRIFY_RAY_ACTOR_CPUS": "2", "GENRIFY_RAY_ACTOR_MEMORY": "3G",
                                                          "GENRIFY_RAY_ACTORS": "64"})
    assert (config.address, config.cpus_per_actor, config.memory_per_actor, config.actors) == ("10.0.0.5:6379", 2.0, 3 * 2**30, 64)
    assert RayConfig.from_environment("auto", {}) == RayConfig(address="auto")
    for bad in ({"GENRIFY_RAY_ACTORS": "many"}, {"GENRIFY_RAY_ACTOR_MEMORY": "-1G"}):
        with pytest.raises(ConfigError):
            RayConfig.from_environment("auto", bad)
