"""The web app served by a real uvicorn on 127.0.0.1, and the small hostile library it serves.

Shared by the ``test_web*.py`` files.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import soundfile as sf
import uvicorn

#: The title of the library track that tries to inject a script into the page.
XSS_TITLE = "<script>alert(1)</script>"


def read_until_closed(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or the socket times out)."""
    chunks = []
    while True:
        try:
            data = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def raw_request(port: int, request: bytes, *, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send bytes exactly as given (no URL normalisation) and return (status, whole response)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        response = read_until_closed(s)
    status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0
    return status, response


def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """``GET target`` sent as written (``..`` and ``%2f`` reach the server untouched)."""
    return raw_request(port, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())


def real_classifier(request):
    """The bundled default model; where it is not installed, the session's tiny CNN (``tiny_cnn_model``)."""
    from genrify.errors import ModelFileError
    from genrify.predict import GenreClassifier

    try:
        return GenreClassifier.default()
    except ModelFileError:
        return GenreClassifier.from_file(request.getfixturevalue("tiny_cnn_model"))


def make_library(root: Path, outside: Path) -> list[dict]:
    """Synthetic tagged MP3s, a track titled like a script, a link leaving the library."""
    from mutagen.flac import FLAC

    from genrify.sources.synthetic import generate_clip, write_demo_corpus

    rows = write_demo_corpus(root, per_genre=1, seed=0, duration=6.0, fmt="mp3")
    xss = root / "odd" / "x.flac"
    xss.parent.mkdir(parents=True)
    sf.write(xss, generate_clip("jazz", seed=5, sr=22050, duration=4.0), 22050, format="FLAC")
    tags = FLAC(xss)
    tags["artist"], tags["title"] = "Mallory & <b>Co</b>", XSS_TITLE
    tags.save()
    outside.mkdir(parents=True, exist_ok=True)
    secret = outside / "Secret Artist - Secret Song.wav"
    sf.write(secret, generate_clip("metal", seed=1, sr=22050, duration=3.0), 22050)
    os.symlink(secret, root / "Secret Artist - Secret Song.wav")
    return rows


class ServerThread:
    """A real uvicorn server for ``app`` on 127.0.0.1 and a free port, in a background thread."""

    def __init__(self, app):
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        from genrify.web.connections import server_options

        # The same protocol, deadlines and caps as `genrify serve`.
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **server_options()))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()
