"""The web server under hostile clients: slowloris, held uploads, cross-site posts, odd headers.

Every test talks to a real uvicorn on 127.0.0.1 (the protocol, deadlines and caps
of ``genrify serve``) over real sockets. Deadlines are set short for the tests;
client sockets bind other loopback addresses (127.0.0.2, …) to act as other clients.
"""

from __future__ import annotations

import re
import socket
import stat
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from genrify.web.app import create_app  # noqa: E402
from genrify.web.settings import Settings  # noqa: E402
from helpers.server import ServerThread, make_library, read_until_closed, real_classifier  # noqa: E402

HEAD_TIMEOUT = 1.0
PER_CLIENT = 4
MAX_CONNECTIONS = 12
UPLOAD_TIMEOUT = 2.0
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/[^\s/'\"]+/")


# ---------------------------------------------------------------------------- helpers


def connect(port: int, *, source: str = "127.0.0.1", timeout: float = 10.0) -> socket.socket:
    """A TCP connection to the server from the loopback address ``source``."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_response(s: socket.socket) -> bytes:
    """One whole response with a ``Content-Length`` body, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    length = int(header(data, "content-length") or 0)
    while len(data.split(b"\r\n\r\n", 1)[1]) < length:
        data += s.recv(65536)
    return data


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0


def header(response: bytes, name: str) -> str | None:
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def wait_for(predicate, *, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def web(tmp_path_factory, request):
    clf = real_classifier(request)
    base = tmp_path_factory.mktemp("web-hardening")
    library = base / "library"
    rows = make_library(library, base / "outside")
    settings = Settings(
        library=str(library), library_db=str(base / "library.sqlite"), scan="blocking",
        max_upload_bytes=1024 * 1024, max_analyses=1, max_waiting=0, max_lookups=1, queue_timeout_s=0.3,
        upload_timeout_s=UPLOAD_TIMEOUT, header_timeout_s=HEAD_TIMEOUT, max_per_client=PER_CLIENT,
        max_connections=MAX_CONNECTIONS, cors_origins=("https://friend.example",),
    )
    with ServerThread(create_app(settings, classifier=clf)) as server:
        server.rows, server.library, server.base_dir = rows, library, base
        server.state = server.app.state.genrify
        yield server


def client(web) -> httpx.Client:
    return httpx.Client(base_url=web.base, timeout=30)


# ---------------------------------------------------------------------------- connections


def test_slowloris_is_cut_at_the_head_deadline_and_others_are_served(web):
    """One address holding connections with a header line now and then: capped, then cut; others unaffected."""
    held = [connect(web.port, source="127.0.0.2") for _ in range(PER_CLIENT)]
    for s in held:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    extra = connect(web.port, source="127.0.0.2")
    refused = read_until_closed(extra)
    extra.close()
    assert status_of(refused) == 503, refused[:200]
    assert int(header(refused, "retry-after")) >= 1
    assert b'"error"' in refused and b"too many open connections" in refused
    # Another client is served at once while the slowloris connections are held.
    with client(web) as c:
        assert c.get("/healthz").status_code == 200
    # Trickling header lines does not extend the deadline: each held connection gets a 408 and is closed.
    for _ in range(3):
        time.sleep(HEAD_TIMEOUT / 4)
        for s in held:
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                pass
    for s in held:
        answer = read_until_closed(s)
        s.close()
        assert status_of(answer) == 408, answer[:200]
        assert b"did not arrive within" in answer
    # The address may connect again once its connections are gone.
    again = connect(web.port, source="127.0.0.2")
    again.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert status_of(read_until_closed(again)) == 200
    again.close()


def test_a_kept_alive_connection_has_a_head_deadline_too(web):
    s = connect(web.port, source="127.0.0.3")
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status_of(read_response(s)) == 200
    s.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next request's head never ends
    answer = read_until_closed(s)
    s.close()
    assert status_of(answer) == 408


def test_connections_in_all_are_capped_with_retry_after(web):
    extra = 5
    sockets = [connect(web.port, source=f"127.0.0.{20 + i}") for i in range(MAX_CONNECTIONS + extra)]
    answers = []
    for s in sockets:  # the admitted get a 408 at the head deadline, the rest a 503 at once
        answers.append(read_until_closed(s))
        s.close()
    statuses = [status_of(a) for a in answers]
    assert set(statuses) <= {408, 503}
    assert statuses.count(408) <= MAX_CONNECTIONS and statuses.count(503) >= extra
    refusal = answers[statuses.index(503)]
    assert int(header(refusal, "retry-after")) >= 1 and b"too many open connections" in refusal
    with client(web) as c:
        assert wait_for(lambda: c.get("/healthz").status_code == 200)


def test_a_body_nobody_reads_has_a_deadline(web):
    """A GET that declares a body and trickles it: answered, then closed at the body deadline."""
    import select

    s = connect(web.port, source="127.0.0.4")
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n")
    assert status_of(read_response(s)) == 200
    closed, t0 = False, time.monotonic()
    while not closed and time.monotonic() - t0 < 30:
        try:
            s.sendall(b"x")  # a byte now and then keeps uvicorn's keep-alive timer from closing it first
            readable, _, _ = select.select([s], [], [], 0.25)
            closed = bool(readable) and s.recv(65536) == b""
        except OSError:
            closed = True
    s.close()
    assert closed  # long before the 1000 bytes (250 s at this pace) were sent


# ---------------------------------------------------------------------------- uploads


def test_uploads_are_admitted_before_the_body_is_read_and_spooled_to_disk(web):
    spool = web.state.spool_dir
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    held = connect(web.port, source="127.0.0.5")
    held.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/mpeg\r\n"
                 b"Content-Length: 900000\r\n\r\n" + b"\0" * 65536)
    try:
        assert wait_for(lambda: len(list(spool.iterdir())) == 1)  # the one admitted upload streams to a file
        with client(web) as c:
            r = c.post("/api/predict", content=b"ID3" + b"\0" * 5000, headers={"content-type": "audio/mpeg"})
            assert r.status_code == 503, r.text
            assert int(r.headers["retry-after"]) >= 1 and "busy" in r.json()["error"]
            assert c.get("/healthz").json()["uploads"] == {"running": 1, "waiting": 0, "capacity": 1}
    finally:
        held.close()
    assert wait_for(lambda: not list(spool.iterdir()))  # the client left: its file is gone
    with client(web) as c:
        assert wait_for(lambda: c.get("/healthz").json()["uploads"]["running"] == 0)
        # Header-only refusals come before admission, so they never take a slot.
        r = c.post("/api/predict", content=b"x", headers={"content-type": "text/plain"})
        assert r.status_code == 415
    too_big = connect(web.port, source="127.0.0.5")
    too_big.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/mpeg\r\n"
                    b"Content-Length: 99999999999\r\nConnection: close\r\n\r\n")
    assert status_of(read_until_closed(too_big)) == 413
    too_big.close()


def test_spooled_upload_is_analysed_and_removed(web):
    row = web.rows[0]
    data = (web.library / row["path"]).read_bytes()
    with client(web) as c:
        r = c.post("/api/predict?images=false", files={"file": ("song.mp3", data, "audio/mpeg")})
    assert r.status_code == 200, r.text
    assert r.json()["upload"] == {"filename": "song.mp3", "bytes": len(data)}
    assert not list(web.state.spool_dir.iterdir())


# ---------------------------------------------------------------------------- cross-site requests


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"},
    {"Origin": "null"},
])
def test_cross_site_requests_to_analysing_routes_are_refused(web, headers):
    row = web.rows[0]
    with client(web) as c:
        post = c.post("/api/predict", files={"file": ("x.mp3", b"ID3" + b"\0" * 4000, "audio/mpeg")},
                      headers=headers)
        assert post.status_code == 403 and "cross-site" in post.json()["error"]
        for route in ("/api/predict", "/d/music-prediction"):
            r = c.get(route, params={"artist": row["artist"], "track": row["title"]}, headers=headers)
            assert r.status_code == 403, (route, r.text)
        assert c.get("/healthz").json()["analyses"]["running"] == 0


def test_a_cross_site_post_is_refused_before_its_body_is_read(web):
    s = connect(web.port, source="127.0.0.6")
    s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://evil.example\r\n"
              b"Content-Type: audio/mpeg\r\nContent-Length: 900000\r\nConnection: close\r\n\r\n")
    answer = read_until_closed(s)
    s.close()
    assert status_of(answer) == 403
    assert not list(web.state.spool_dir.iterdir())


@pytest.mark.parametrize("headers", [
    {},  # curl, scripts: no browser page involved
    {"Sec-Fetch-Site": "same-origin"},
    {"Sec-Fetch-Site": "none"},
    {"Origin": "SELF"},
    {"Origin": "SELF", "Sec-Fetch-Site": "same-origin"},
    {"Origin": "https://friend.example", "Sec-Fetch-Site": "cross-site"},  # configured with --cors-origin
])
def test_own_and_configured_origins_pass(web, headers):
    headers = {k: web.base if v == "SELF" else v for k, v in headers.items()}
    with client(web) as c:
        r = c.post("/api/predict", files={"file": ("notes.txt", b"plain text " * 20, "text/plain")}, headers=headers)
        assert r.status_code == 415, r.text  # past the origin check, refused as not audio
        r = c.get("/api/predict", params={"artist": "Nobody", "track": "No Such Song"}, headers=headers)
        assert r.status_code == 404


# ---------------------------------------------------------------------------- look-ups


def test_searches_and_lookups_pass_admission_first(web):
    row = web.rows[0]
    params = {"artist": row["artist"], "track": row["title"], "images": "false"}
    lookups = web.state.lookups.limiter
    assert lookups.try_acquire()  # the one look-up slot taken (max_lookups=1)
    try:
        with client(web) as c:
            for route in ("/api/search", "/api/predict", "/d/music-prediction", "/api/examples"):
                r = c.get(route, params=params)
                assert r.status_code == 503, (route, r.text)
                assert int(r.headers["retry-after"]) >= 1 and "busy" in r.json()["error"]
    finally:
        lookups.release()
    with client(web) as c:
        assert c.get("/api/search", params=params).json()["results"][0]["title"] == row["title"]
        assert c.get("/healthz").json()["searches"]["running"] == 0


def test_a_search_past_its_budget_is_a_504_and_its_slot_stays_taken_until_it_ends(tmp_path, request):
    from helpers.fakeprovider import FakeProvider

    clf = real_classifier(request)
    with pytest.MonkeyPatch.context() as mp, FakeProvider() as fake:
        mp.setenv("GENRIFY_CACHE_DIR", str(tmp_path / "cache"))
        settings = Settings(providers=("deezer",), deezer_url=fake.deezer_url, lookup_timeout_s=0.5,
                            max_lookups=1, queue_timeout_s=0.2)
        fake.fail(r"^/deezer/search", "delay", delay=2.0, times=1)
        with ServerThread(create_app(settings, classifier=clf)) as server, \
                httpx.Client(base_url=server.base, timeout=30) as c:
            r = c.get("/api/search", params={"artist": "Metal Band 1", "track": "Metal Song 2"})
            assert r.status_code == 504 and r.json() == {"error": "the search took longer than 0.5 s"}
            # The abandoned search still runs: the next one finds no free slot.
            assert c.get("/api/search", params={"track": "Metal Song 2"}).status_code == 503
            assert wait_for(lambda: c.get("/healthz").json()["searches"]["running"] == 0)
            r = c.get("/api/search", params={"artist": "Metal Band 1", "track": "Metal Song 2"})
            assert r.status_code == 200 and r.json()["results"]


# ---------------------------------------------------------------------------- answers


def test_error_bodies_never_show_absolute_paths(web):
    row = next(r for r in web.rows if r["genre"] == "jazz")
    (web.library / row["path"]).write_bytes(b"ID3" + bytes(range(256)) * 40)  # broken after the scan
    with client(web) as c:
        r = c.get("/api/predict", params={"artist": row["artist"], "track": row["title"]})
        assert 400 <= r.status_code < 500, r.text
        error = r.json()["error"]
        assert error and not ABSOLUTE_PATH.search(error) and str(web.base_dir) not in r.text
        r = c.post("/api/predict", content=b"ID3" + bytes(range(256)) * 40, headers={"content-type": "audio/mpeg"})
        assert 400 <= r.status_code < 500 and not ABSOLUTE_PATH.search(r.json()["error"])
        assert str(web.state.spool_dir) not in r.text
        model = c.get("/healthz").json()["model"]
        assert "/" not in model


def test_a_range_with_thousands_of_digits_is_416(web):
    row = web.rows[0]
    with client(web) as c:
        url = c.get("/api/search", params={"artist": row["artist"], "track": row["title"]}).json()[
            "results"][0]["audio_url"]
        for value in ("bytes=" + "9" * 5000 + "-", "bytes=0-" + "9" * 5000, "bytes=-" + "1" * 5000):
            r = c.get(url, headers={"Range": value})
            assert r.status_code == 416, value[:20]
            assert b"Traceback" not in r.content
        assert c.get(url, headers={"Range": "bytes=0-9"}).status_code == 206


def test_malformed_requests_and_foreign_hosts_get_json_errors(web):
    for raw in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: [zz\r\nConnection: close\r\n\r\n"):
        s = connect(web.port, source="127.0.0.7")
        s.sendall(raw)
        answer = read_until_closed(s)
        s.close()
        assert status_of(answer) == 400, answer[:100]
        assert header(answer, "content-type") == "application/json" and b'"error"' in answer


# ---------------------------------------------------------------------------- fair share of connections (genrify serve)


def _serve(model, tmp_path, *flags):
    """A real ``genrify serve`` process on 127.0.0.1 and a free port, started and answering; ``(proc, port)``."""
    import os
    import subprocess
    import sys

    from conftest import genrify_env

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "library").mkdir()
    env = {**genrify_env(), "GENRIFY_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "genrify", "serve", "--model", str(model), "--library", str(tmp_path / "library"),
         "--providers", "library", "--scan", "off", "--port", str(port), "--log-level", "warning", *flags],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=os.getcwd())
    deadline = time.monotonic() + 60
    while True:
        try:  # a whole answer, read until the server closes: that connection no longer counts
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if status_of(read_until_closed(s)) == 200:
                    return proc, port
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"genrify serve did not start: {proc.communicate()[0][-2000:]}")
        time.sleep(0.1)


def _answered(sockets) -> list[socket.socket]:
    """The sockets on which the server has sent something (an answer, or the close)."""
    import select

    return select.select(sockets, [], [], 0)[0] if sockets else []


def test_stalled_heads_from_several_addresses_leave_room_for_a_new_one(seeded_mlp_model, tmp_path):
    """Addresses each under --max-per-client fill --max-connections with heads that never end; a new
    address is still served, in place of the oldest stalled connection of an address holding the most."""
    cap, per_client = 12, 4
    proc, port = _serve(seeded_mlp_model, tmp_path, "--max-connections", str(cap), "--max-per-client",
                        str(per_client), "--header-timeout", "30")
    stalled = []
    try:
        for address in range(2, 6):  # 4 addresses x 4 connections: one address more than the cap holds
            for _ in range(per_client):
                s = connect(port, source=f"127.0.0.{address}")
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ... and the head never ends
                stalled.append(s)
        # The fourth address takes the oldest place of each fuller one, then is at its share: 3 places each.
        assert wait_for(lambda: len(_answered(stalled)) == per_client)
        for tries in range(5):
            s = connect(port, source="127.0.0.1")
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = read_until_closed(s)
            s.close()
            assert status_of(answer) == 200, (tries, answer[:300])
        # The first try took one stalled place; the others found it free again.
        assert wait_for(lambda: len(_answered(stalled)) == per_client + 1)
        closed = _answered(stalled)
        for s in closed:
            answer = read_until_closed(s)
            assert status_of(answer) == 503 and int(header(answer, "retry-after")) >= 1, answer[:300]
            assert b"too many open connections" in answer
        left = [s.getsockname()[0] for s in stalled if s not in closed]
        assert len(left) == cap - 1 and max(left.count(a) for a in set(left)) <= per_client - 1
    finally:
        for s in stalled:
            s.close()
        proc.terminate()
        proc.communicate(timeout=20)


def test_the_victim_is_a_stalled_head_of_an_address_over_its_share():
    from genrify.web.connections import pick_victim

    stalled, kept_alive, busy = (True, True), (True, False), (False, False)
    heavy = {"a": [busy, stalled, stalled], "b": [kept_alive, stalled], "c": [busy]}
    assert pick_victim(heavy, newcomer="new") == ("a", 1)  # the most, the oldest that never sent a head
    assert pick_victim(heavy, newcomer="c") == ("a", 1)  # 3 against 1: "a" still holds more afterwards
    assert pick_victim(heavy, newcomer="b") is None  # 3 against 2: it would not
    assert pick_victim({"a": [kept_alive] * 3, "b": [busy, stalled]}, newcomer="new") == ("b", 1)  # stalled first
    assert pick_victim({"a": [kept_alive] * 3}, newcomer="c") == ("a", 0)
    assert pick_victim({"a": [busy] * 5, "b": [busy] * 5}, newcomer="new") is None  # requests under way stay
