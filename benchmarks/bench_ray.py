"""genrify predict on Ray: 1 → 2 local nodes against ``--workers 1/2`` without Ray, same songs, same run.

    .venv/bin/python benchmarks/bench_ray.py             # 16 songs per configuration
    .venv/bin/python benchmarks/bench_ray.py --n 8       # fewer
    .venv/bin/python benchmarks/bench_ray.py --smoke     # 2 songs, local 1 worker and a 1-node cluster

Songs: real GTZAN clips from ../shared/data/gtzan-mini (15–20 s, 22.05 kHz WAV), the bundled
default model (musicnn probe). Each Ray node is a ``ray start`` on 127.0.0.1 with 1 CPU
(:class:`genrify.scale.local.LocalCluster`), so "2 nodes" is two raylets on this machine, the
nearest this host comes to two machines. Printed per configuration: wall time, songs/s after
the first answer (model loaded, workers warm), CPU-seconds per song (every process involved,
from /proc), memory (PSS) per node; then Ray's per-task overhead, the driver's CPU per song,
SQLite index writes per second, and the cost model for 10⁶ songs on 32 nodes × 16 cores.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402


def cpu_seconds(pids) -> float:
    """user + system CPU seconds of ``pids`` and all their descendants (children still running included)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, seen = 0.0, set()
    for pid in pids:
        for p in [pid, *C.descendants(pid)]:
            if p in seen:
                continue
            seen.add(p)
            try:
                fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError, ValueError):
                continue
    return total


def timed(stream, n: int, cpu_pids) -> dict:
    """Drain ``stream`` of FileResults; wall, songs/s after the first answer, CPU-s per song
    (processes alive at the end, plus the children this process reaped meanwhile: a finished pool's)."""
    t0, c0 = C.clock(), cpu_seconds(cpu_pids()) + _reaped()
    first = cf = end = c1 = None
    for k, r in enumerate(stream, 1):
        if r.error is not None:
            raise SystemExit(f"prediction failed: {r.error}")
        if first is None:
            first, cf = C.clock(), cpu_seconds(cpu_pids()) + _reaped()
        if k == n:  # measured before the stream ends: that ends the workers, and their CPU time with them
            end, c1 = C.clock(), cpu_seconds(cpu_pids()) + _reaped()
    steady = (n - 1) / (end - first) if n > 1 else n / (end - t0)
    # CPU per song after the first answer: start-up (model loads, process spawns) is paid once per worker.
    cpu = (c1 - cf) / (n - 1) if n > 1 else (c1 - c0) / n
    return {"wall": end - t0, "steady": steady, "cpu": cpu, "startup": first - t0, "startup_cpu": cf - c0}


def _reaped() -> float:
    t = os.times()
    return t.children_user + t.children_system


def local_runs(paths, workers: list[int], *, fast: bool | None = None) -> dict:
    from genrify.predict import analyse_many

    out = {}
    for w in workers:
        # workers=1 runs in this process (1 torch thread, see main); more spawn that many processes.
        r = timed(analyse_many(paths, workers=w, fast=fast), len(paths), lambda: [os.getpid()])
        out[w] = r
        print(f"local --workers {w}{' --fast' if fast else ''}: {r['wall']:6.1f} s wall ({r['startup']:.1f} s to the "
              f"first answer, {r['startup_cpu']:.1f} CPU-s), {r['steady']:5.2f} songs/s after it, {r['cpu']:5.2f} CPU-s/song "
              f"after it", flush=True)
    return out


def ray_run(paths, nodes: int) -> dict:
    from genrify.scale import RayConfig, analyse_many_on_ray, connect
    from genrify.scale.local import LocalCluster, NodeSpec

    t = C.clock()
    with LocalCluster(nodes=nodes, node=NodeSpec(cpus=1, memory=2_000_000_000, object_store=80_000_000)) as cluster:
        started = C.clock() - t
        config = RayConfig(address=cluster.address, actors=nodes, memory_per_actor=1_000_000_000)
        connect(config.address)

        def pids():
            return [os.getpid()] + [p.pid for p in cluster.processes()]

        idle = _idle_cpu(pids)
        with node_memory(cluster, nodes) as mem:
            answers = []
            r = timed(_keep(analyse_many_on_ray(paths, config=config), answers), len(paths), pids)
        memory = list(mem.peaks)
        overhead = _task_overhead(answers[0])
        driver = overhead["driver_ms"] / 1000
    # The cluster's daemons (GCS, raylets, agents) and Ray's threads in the driver use CPU while idle too:
    # per song, what remains once that idle rate is taken off is the analysis and the task traffic.
    net = r["cpu"] - idle / r["steady"]
    r.update(nodes=nodes, memory=memory, driver=driver, overhead=overhead, cluster_start=started, idle=idle, net=net)
    print(f"ray, {nodes} node(s) x 1 CPU: {r['wall']:6.1f} s wall ({r['startup']:.1f} s to the first answer; cluster "
          f"start {started:.1f} s not counted), {r['steady']:5.2f} songs/s after it, {r['cpu']:5.2f} CPU-s/song "
          f"after it (all cluster processes + driver; {net:.2f} without the {idle:.2f} CPU-s/s the idle cluster "
          f"uses); peak PSS per node " + ", ".join(f"{m / 2**20:.0f} MiB" for m in memory), flush=True)
    return r


def _idle_cpu(pids, seconds: float = 5.0) -> float:
    """CPU-seconds per second of the idle cluster with the driver connected."""
    c0, t0 = cpu_seconds(pids()), C.clock()
    time.sleep(seconds)
    return (cpu_seconds(pids()) - c0) / (C.clock() - t0)


def _keep(stream, into: list):
    for r in stream:
        into.append(r)
        yield r


def node_memory(cluster, nodes: int) -> C.PeakSampler:
    """Peak PSS of each node's processes (its raylet and everything below it: the actors) while a run goes."""
    raylets = [cluster.raylet_pid(k) for k in range(nodes)]
    return C.PeakSampler(lambda: [C.tree_memory(r)[1] for r in raylets], interval=1.0)


def _task_overhead(payload, n: int = 300) -> dict:
    """An actor call that does nothing with ``payload`` (a real answer) but return it: wall ms per call one
    at a time and with 32 in flight, and the driver's CPU ms per call (the engine's per-song traffic,
    an upper bound: the answer crosses twice)."""
    import ray

    @ray.remote(num_cpus=0)
    class Echo:
        def ping(self, x=None):
            return x

    echo = Echo.remote()
    ray.get(echo.ping.remote())
    t = C.clock()
    for _ in range(n):
        ray.get(echo.ping.remote(payload))
    serial = (C.clock() - t) / n * 1000
    t, c = C.clock(), time.process_time()
    refs = []
    for _ in range(n):
        refs.append(echo.ping.remote(payload))
        if len(refs) >= 32:
            ray.get(refs.pop(0))
    ray.get(refs)
    pipelined, driver = (C.clock() - t) / n * 1000, (time.process_time() - c) / n * 1000
    ray.kill(echo)
    return {"serial_ms": serial, "pipelined_ms": pipelined, "driver_ms": driver}


def index_writes_per_s(n: int = 20000, batch: int = 200) -> float:
    """Rows per second into a SQLite results table (sha, path, JSON answer), one transaction per ``batch``."""
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "index.sqlite")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE results (sha TEXT PRIMARY KEY, path TEXT, answer TEXT)")
        answer = '{"genre": "Rock", "top": [["Rock", 0.81], ["Metal", 0.1]]}' + " " * 1500  # ~ a --json answer
        t = C.clock()
        for start in range(0, n, batch):
            with db:
                db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                               [(f"{i:064x}", f"/music/song-{i}.mp3", answer) for i in range(start, start + batch)])
        rate = n / (C.clock() - t)
        db.close()
    return rate


def cost_model(cpu_full: float, cpu_fast: float, duration: float, *, ray_extra: float, driver_s: float,
               overhead_ms: float, index_rate: float) -> None:
    """Hours and core-hours for 10⁶ 30-s songs on 32 × 16 cores, and the first limit each mode meets."""
    songs, nodes, cores = 1_000_000, 32, 16
    mp3_mb = 30 * 320 / 8 / 1000  # a 30 s MP3 at 320 kbit/s, the largest common encoding
    print(f"\ncost model: 10^6 songs of 30 s on {nodes} nodes x {cores} cores = {nodes * cores} actors (CPU-s per song "
          f"of the local 1-worker run, scaled from {duration:.1f} s clips to 30 s in full mode, whose windows grow "
          f"with length; fast mode analyses 3 windows whatever the length), plus Ray's measured "
          f"{ray_extra:+.2f} CPU-s/song (1 node, idle cluster rate removed)")
    driver_rate = 1 / driver_s if driver_s > 0 else float("inf")
    for mode, cpu in (("full", cpu_full * 30 / duration), ("fast", cpu_fast)):
        per_song = cpu + max(0.0, ray_extra)
        core_hours = songs * per_song / 3600
        cluster_rate = nodes * cores / per_song
        limits = {"the actors": cluster_rate, "one driver": driver_rate, "SQLite index writes": index_rate}
        bound = min(limits, key=limits.get)
        rate = limits[bound]
        print(f"  {mode:4}: {per_song:5.2f} CPU-s/song -> {core_hours:7.0f} core-hours; the actors could answer "
              f"{cluster_rate:6.0f} songs/s ({core_hours / (nodes * cores):5.2f} h); first limit: {bound} at "
              f"{rate:6.0f} songs/s -> {songs / rate / 3600:5.2f} h; reading {rate * mp3_mb:5.0f} MB/s of MP3 "
              f"from the shared file system")
    print(f"  driver: {driver_s * 1000:.2f} ms CPU per song's call (at most {driver_rate:.0f} songs/s); Ray's "
          f"round trip {overhead_ms:.2f} ms per call with 32 in flight; SQLite index {index_rate:.0f} rows/s on this disk")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16, help="songs per configuration (default 16)")
    ap.add_argument("--smoke", action="store_true", help="2 songs; local 1 worker and a 1-node cluster only")
    args = ap.parse_args(argv)
    n, configs = (2, [1]) if args.smoke else (args.n, [1, 2])
    limiter = C.limit_threads(1)  # noqa: F841 (the 1-worker local run is this process: one core, like one actor)
    C.machine_header("predict on Ray: 1 -> 2 local nodes vs --workers 1/2 without Ray", librosa=False)
    import soundfile as sf

    paths = sorted(str(p) for p in C.GTZAN_MINI.glob("*/*.wav"))
    paths = [paths[(i * 7) % len(paths)] for i in range(n)]  # spread over the genres
    duration = sum(sf.info(p).duration for p in paths) / len(paths)
    print(f"{n} songs from {C.GTZAN_MINI} (mean {duration:.1f} s), default model; the machine is shared and loaded")
    local = local_runs(paths, configs)
    fast = local_runs(paths, [1], fast=True)[1]
    try:
        import ray  # noqa: F401
    except ImportError:
        print("ray is not installed (pip install 'genrify[ray]'): the Ray rows are skipped")
        return 0
    runs = {k: ray_run(paths, k) for k in configs}
    for k in configs:
        o = runs[k]["overhead"]
        print(f"ray {k} node(s): empty actor call {o['serial_ms']:.2f} ms one at a time, {o['pipelined_ms']:.2f} ms "
              f"with 32 in flight; driver CPU {runs[k]['driver'] * 1000:.2f} ms per call with a real answer as "
              f"payload, sent and returned")
    if 2 in configs:
        print(f"scaling 1 -> 2: ray nodes {runs[2]['steady'] / runs[1]['steady']:.2f}x, local workers "
              f"{local[2]['steady'] / local[1]['steady']:.2f}x (songs/s after the first answer)")
    index_rate = index_writes_per_s(2000 if args.smoke else 20000)
    cost_model(local[1]["cpu"], fast["cpu"], duration, ray_extra=runs[1]["net"] - local[1]["cpu"],
               driver_s=max(r["driver"] for r in runs.values()),
               overhead_ms=runs[max(configs)]["overhead"]["pipelined_ms"], index_rate=index_rate)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
