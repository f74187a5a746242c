"""Abuse of a real ``genrify serve`` on loopback: held uploads (memory, admission) and slowloris (availability).

    python benchmarks/bench_web_abuse.py                 # 100 x 19 MB held 10 s; 200 slowloris sockets, 30 s
    python benchmarks/bench_web_abuse.py --uploads 50 --hold 5 --sockets 100 --seconds 15
    python benchmarks/bench_web_abuse.py --smoke         # 10 x 2 MB held 2 s; 20 sockets, 4 s (CI)
    python benchmarks/bench_web_abuse.py --parts spread --seconds 20   # (c) only

Each part starts its own ``python -m genrify serve`` (bundled default model,
``--scan off``, private GENRIFY_CACHE_DIR / GENRIFY_DATA_DIR in a temporary
folder) on 127.0.0.1 and a free port, and kills it afterwards.

(a) **Held uploads.** N clients each send a raw ``POST /api/predict`` whose
    ``Content-Length`` is B bytes, send B-1 of them and hold the connection H s.
    The server (``--max-per-client 0``, so the per-address cap does not hide the
    upload admission control) is sampled every 0.2 s: VmRSS of the server
    process plus its descendants, from /proc. Reported: idle RSS, peak, RSS 3 s
    after the clients close, answers (503 + Retry-After before the body was
    read; admitted = no answer while sending and holding). Reference, same
    server, same sampler: the peak while ONE ordinary 5 s WAV upload is analysed.

(b) **Slowloris.** S sockets bound to 127.0.0.2 each send a request line, then
    one header line every 5 s (reconnecting when cut), against a server with
    ``--header-timeout 10`` (default per-client cap). Meanwhile a client on
    127.0.0.1 asks ``GET /healthz`` (new connection, 5 s timeout) every 0.5 s
    for T s. Reference, same server: the same client for T s with no attackers.

(c) **Slowloris spread over addresses.** The same sockets as (b), but 30 from
    each of 127.0.0.2, 127.0.0.3, … (under the per-client cap of 32) until S
    are open, more than ``--max-connections`` (200) holds; the same client on
    127.0.0.1 for T s. Without a fair share of the connections the attackers
    fill the server and the client gets 503 throughout.

Only loopback addresses are ever contacted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PeakSampler, descendants, machine_header, synthetic_song  # noqa: E402

HOST = "127.0.0.1"
ATTACKER = "127.0.0.2"
MiB = 1024 * 1024


# --------------------------------------------------------------------------- server and memory


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def tree_vmrss(pid: int) -> int:
    """VmRSS in bytes of ``pid`` plus all its descendants (0 for a process that is gone)."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def rss_sampler(pid: int) -> PeakSampler:
    """Peak :func:`tree_vmrss` of one process tree, sampled every 0.2 s (``.peaks[0]``)."""
    return PeakSampler(lambda: (tree_vmrss(pid),), interval=0.2)


class Server:
    """``python -m genrify serve`` (bundled default model, ``--scan off``) with private cache and data folders."""

    def __init__(self, *extra: str):
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="genrify-abuse-"))
        self.cmd = [sys.executable, "-m", "genrify", "serve", "--host", HOST, "--port", str(self.port),
                    "--scan", "off", "--log-level", "critical", *extra]
        self.command = " ".join(["python"] + self.cmd[1:])
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        self.start()
        return self.wait()

    def start(self) -> Server:
        env = {**os.environ, "GENRIFY_CACHE_DIR": str(self.dir / "cache"), "GENRIFY_DATA_DIR": str(self.dir / "data"),
               "PYTHONUNBUFFERED": "1"}
        self._log = open(self.dir / "server.log", "w")
        self.proc = subprocess.Popen(self.cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def wait(self) -> Server:
        import httpx

        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError(f"genrify serve exited {self.proc.returncode}:\n"
                                       + (self.dir / "server.log").read_text()[-3000:])
                if time.monotonic() > deadline:
                    raise RuntimeError("genrify serve did not answer /healthz within 180 s")
                time.sleep(0.3)
        except BaseException:
            self.__exit__()
            raise

    def rss(self) -> int:
        return tree_vmrss(self.proc.pid)

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def read_head(s: socket.socket, timeout: float = 3.0) -> tuple[str, bool]:
    """(status, has Retry-After) of the response arriving on ``s``; status "none" if nothing readable came."""
    s.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data and len(data) < 65536:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except OSError:
        pass
    if not data.startswith(b"HTTP/"):
        return "none", False
    return data.split(b" ", 2)[1].decode(), b"\nretry-after:" in data.lower()


# --------------------------------------------------------------------------- (a) held uploads


def held_client(port: int, body: memoryview, hold: float, out: list, lock: threading.Lock) -> None:
    """Send all but the last byte of a raw upload, then hold; records what the server answered and when."""
    size = len(body) + 1
    result = {"phase": "connect", "status": "none", "retry_after": False, "sent": 0}
    s = socket.socket()
    try:
        s.settimeout(10)
        s.connect((HOST, port))
        s.sendall(b"POST /api/predict?images=false HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/mpeg\r\n"
                  b"Content-Length: %d\r\n\r\n" % size)
        s.setblocking(False)
        result["phase"] = "sending"
        deadline = time.monotonic() + 120
        while result["sent"] < len(body):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            readable, writable, _ = select.select([s], [s], [], min(left, 1.0))
            if readable:  # answered before the whole body was sent
                break
            if writable:
                try:
                    result["sent"] += s.send(body[result["sent"]:result["sent"] + 256 * 1024])
                except BlockingIOError:
                    pass
        else:
            result["phase"] = "holding"
            readable, _, _ = select.select([s], [], [], hold)
            if not readable:
                result["phase"] = "held"
        if result["phase"] != "held":
            result["status"], result["retry_after"] = read_head(s)
    except OSError as exc:
        result["error"] = type(exc).__name__
        try:
            result["status"], result["retry_after"] = read_head(s, timeout=0.5)
        except OSError:
            pass
    finally:
        s.close()
        with lock:
            out.append(result)


def healthz_stat(base: str) -> dict:
    import httpx

    try:
        return httpx.get(f"{base}/healthz", timeout=5).json().get("uploads", {})
    except (httpx.HTTPError, ValueError):
        return {}


def part_held(srv: Server, n: int, mb: float, hold: float, wav: Path, settle: float) -> None:
    import httpx

    print(f"\n-- (a) held uploads: {n} raw POST /api/predict of {mb:g} MB, each held one byte short for {hold:g} s")
    print(f"server: {srv.command}")
    print("  (--max-per-client 0: no per-address cap, so only the upload admission control limits the clients)")
    time.sleep(settle)
    idle = srv.rss()
    with rss_sampler(srv.proc.pid) as ref:
        t0 = time.perf_counter()
        r = httpx.post(f"{srv.base}/api/predict", params={"images": "false"}, timeout=120,
                       files={"file": (wav.name, wav.read_bytes(), "audio/wav")})
        ref_s = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"reference upload answered {r.status_code}: {r.text[:300]}")
    time.sleep(settle)
    before = srv.rss()

    body = memoryview(bytes(int(mb * MiB) - 1))
    out: list[dict] = []
    lock = threading.Lock()
    threads = [threading.Thread(target=held_client, args=(srv.port, body, hold, out, lock), daemon=True)
               for _ in range(n)]
    mid: dict = {}
    t0 = time.perf_counter()
    with rss_sampler(srv.proc.pid) as attack:
        for t in threads:
            t.start()
        probe = threading.Timer(min(hold / 2, 3.0) + 0.5, lambda: mid.update(healthz_stat(srv.base)))
        probe.start()
        for t in threads:
            t.join()
        probe.join()
        clients_s = time.perf_counter() - t0
        time.sleep(3.0)
    after = srv.rss()
    alive = srv.proc.poll() is None

    early = [x for x in out if x["phase"] == "sending"]
    refused = sum(1 for x in early if x["status"] == "503" and x["retry_after"])
    admitted = sum(1 for x in out if x["phase"] == "held")
    other = Counter(f"{x['phase']}:{x['status']}" + (f":{x['error']}" if "error" in x else "")
                    for x in out if x["phase"] != "held" and not (x in early and x["status"] == "503"
                                                                  and x["retry_after"]))
    sent_early = [x["sent"] / MiB for x in early]
    print(f"reference, ONE 5 s WAV upload analysed: idle RSS {idle / MiB:.0f} MiB -> peak {ref.peaks[0] / MiB:.0f} MiB "
          f"(+{(ref.peaks[0] - idle) / MiB:.0f} MiB), {ref_s:.2f} s; RSS before the attack {before / MiB:.0f} MiB")
    print(f"held uploads: peak RSS {attack.peaks[0] / MiB:.0f} MiB (+{(attack.peaks[0] - before) / MiB:.0f} MiB over "
          f"before-attack; reference +{(ref.peaks[0] - idle) / MiB:.0f} MiB), 3 s after close {after / MiB:.0f} MiB; "
          f"clients done in {clients_s:.1f} s; server alive: {alive}")
    print(f"answers: {refused}/{n} got 503 + Retry-After before their body was read"
          + (f" (answered while still sending; at most {max(sent_early):.2f} MB had gone into the socket)"
             if sent_early else "")
          + f", {admitted}/{n} admitted (held with no answer); other: {dict(other) or 'none'}")
    print(f"server's /healthz during the hold: uploads {mid or '(no answer)'}")


# --------------------------------------------------------------------------- (b) slowloris


def loris(port: int, stop: threading.Event, tally: Counter, lock: threading.Lock, source: str = ATTACKER) -> None:
    while not stop.is_set():
        s = socket.socket()
        try:
            s.bind((source, 0))
            s.settimeout(6)
            s.connect((HOST, port))
            with lock:
                tally["connections"] += 1
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            while not stop.wait(5):
                s.sendall(b"X-a: b\r\n")
        except OSError:
            with lock:
                tally["cut or refused"] += 1
            stop.wait(0.5)  # never spin
        finally:
            s.close()


def health_client(port: int, seconds: float) -> tuple[int, int, float, Counter]:
    """(answered 200, total, longest wait in s, answers) for GET /healthz every 0.5 s for ``seconds``."""
    answers: Counter = Counter()
    longest = 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        try:
            with socket.create_connection((HOST, port), timeout=5) as c:
                c.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                status, _ = read_head(c, timeout=5)
        except OSError as exc:
            status = type(exc).__name__
        longest = max(longest, time.perf_counter() - t0)
        answers[status] += 1
        time.sleep(0.5)
    return answers["200"], sum(answers.values()), longest, answers


def under_loris(srv: Server, sources: list[str], seconds: float, settle: float) -> None:
    """One slowloris socket from each of ``sources`` while :func:`health_client` runs; prints both sides."""
    stop, lock, tally = threading.Event(), threading.Lock(), Counter()
    threads = [threading.Thread(target=loris, args=(srv.port, stop, tally, lock, source), daemon=True)
               for source in sources]
    try:
        for t in threads:
            t.start()
        time.sleep(settle)  # let the attackers connect
        ok, n, worst, answers = health_client(srv.port, seconds)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    print(f"under slowloris:         {ok}/{n} answered 200, longest wait {worst * 1e3:.0f} ms; "
          f"answers {dict(answers)}; server alive: {srv.proc.poll() is None}")
    print(f"attackers: {tally['connections']} connections made, {tally['cut or refused']} cut or refused")


def part_slowloris(srv: Server, sockets: int, seconds: float, settle: float) -> None:
    print(f"\n-- (b) slowloris: {sockets} sockets from {ATTACKER} (a header line every 5 s, reconnecting when cut); "
          f"a client on {HOST} asks GET /healthz every 0.5 s for {seconds:g} s")
    print(f"server: {srv.command}  (default per-client cap)")
    ok0, n0, worst0, _ = health_client(srv.port, seconds)
    print(f"reference, no attackers: {ok0}/{n0} answered 200, longest wait {worst0 * 1e3:.0f} ms")
    under_loris(srv, [ATTACKER] * sockets, seconds, settle)


def part_spread(srv: Server, sockets: int, per_address: int, seconds: float, settle: float) -> None:
    sources = [f"127.0.0.{2 + i // per_address}" for i in range(sockets)]
    print(f"\n-- (c) slowloris spread: {sockets} sockets, {per_address} from each of {sources[0]} … {sources[-1]} "
          f"(a header line every 5 s, reconnecting when cut); a client on {HOST} asks GET /healthz every 0.5 s "
          f"for {seconds:g} s")
    print(f"server: {srv.command}  (default caps: 200 connections, 32 per address)")
    under_loris(srv, sources, seconds, settle)


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--uploads", type=int, default=100, help="parallel held uploads (default 100)")
    ap.add_argument("--mb", type=float, default=19, help="size of each upload in MB (default 19)")
    ap.add_argument("--hold", type=float, default=10, help="seconds each upload is held one byte short (default 10)")
    ap.add_argument("--sockets", type=int, default=200, help="slowloris sockets (default 200)")
    ap.add_argument("--seconds", type=float, default=30, help="seconds the /healthz client runs (default 30)")
    ap.add_argument("--spread", type=int, default=210, help="slowloris sockets of (c), 30 per address (default 210)")
    ap.add_argument("--parts", default="held,slowloris,spread", help="parts to run (default %(default)s)")
    ap.add_argument("--smoke", action="store_true", help="10 x 2 MB held 2 s; 20 sockets, 4 s")
    a = ap.parse_args()
    if a.smoke:
        a.uploads, a.mb, a.hold, a.sockets, a.seconds, a.spread = 10, 2, 2, 20, 4, 20
    parts = {p.strip() for p in a.parts.split(",")}
    with contextlib.ExitStack() as stack:
        # the servers load at once (seconds each); those not under test sit idle meanwhile
        servers = {"held": Server("--max-per-client", "0"), "slowloris": Server("--header-timeout", "10"),
                   "spread": Server("--header-timeout", "10")}
        for name, srv in servers.items():
            if name in parts:
                stack.callback(srv.__exit__)
                srv.start()
        machine_header("genrify serve under abuse: held uploads and slowloris", librosa=False,
                       extra={"sizes": f"uploads={a.uploads} mb={a.mb:g} hold={a.hold:g}s sockets={a.sockets} "
                                       f"spread={a.spread} seconds={a.seconds:g}",
                              "rss": "VmRSS of the server and its children, sampled every 0.2 s"})
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="genrify-abuse-wav-"))
        wav = synthetic_song(Path(tmp) / "ref.wav", style="jazz", seed=1, sr=22050, duration=5.0)
        for name in parts & set(servers):
            servers[name].wait()
        if "held" in parts:
            part_held(servers["held"], a.uploads, a.mb, a.hold, wav, settle=0.5 if a.smoke else 1.0)
            servers["held"].__exit__()  # stopped before the others, so it costs them nothing
        if "slowloris" in parts:
            part_slowloris(servers["slowloris"], a.sockets, a.seconds, settle=1.0 if a.smoke else 2.0)
            servers["slowloris"].__exit__()
        if "spread" in parts:
            part_spread(servers["spread"], a.spread, 30 if not a.smoke else 4, a.seconds,
                        settle=1.0 if a.smoke else 3.0)

if __name__ == "__main__":
    main()
