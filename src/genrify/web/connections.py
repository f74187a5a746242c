"""Connection hygiene: deadlines for each request's head and body, caps on open connections.

uvicorn gives every connection its own protocol object; :class:`GuardedH11Protocol`
is uvicorn's h11 protocol with these limits added:

* **head deadline** — a request's head (request line and headers) must be
  complete within ``header_timeout_s`` of the connection opening, or of the
  first byte of a later request on a kept-alive connection; else the client
  gets a JSON 408 and the connection closes. A client that trickles one header
  line every few seconds (slowloris) cannot hold a connection longer than that.
* **body deadline** — a body must be complete within ``body_timeout_s`` of its
  head; the upload route answers 408 itself before then, so this closes only
  connections whose body nobody reads.
* **caps** — at most ``max_connections`` open connections in all and at most
  ``max_per_client`` per client address. Beyond a cap the connection is
  answered at once with a JSON 503 carrying ``Retry-After`` and closed, so the
  refused never count against anyone else. (uvicorn's own
  ``limit_concurrency`` answers a plain 503 without ``Retry-After``; it is
  replaced by the cap here.)
* **fair share** — when every connection is taken, a newcomer is not refused
  while another address holds more than its share in connections that merely
  wait for a request head: one of them is closed and the newcomer takes its
  place. Connections that never sent a complete head go first (they get a JSON
  503 with ``Retry-After``), then kept-alive ones idle between requests (closed
  as at the keep-alive timeout); among them, the address holding the most, then
  the oldest. The other address must hold more than the newcomer's will
  afterwards, except that an address holding nothing yet always gets its first
  connection (:func:`pick_victim`). So several addresses, each under
  ``max_per_client``, cannot fill the server with stalled heads and lock new
  addresses out. A connection whose request is being served (head complete,
  body or answer under way) is never closed for this.

Limits reach the protocol through the lifespan state (:data:`STATE_KEY`), which
uvicorn hands to every connection, so they hold however the server was started
(``genrify serve``, ``--workers``, or ``uvicorn.run(..., **server_options())``).
Anything beyond one machine's loopback belongs behind a reverse proxy: see ``docs/deploy.md``.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

#: The lifespan-state key under which the app hands its :class:`ConnectionLimits` to the protocol.
STATE_KEY = "genrify_connection_limits"
#: A refused connection reads (and drops) what the client still sends for this long before closing,
#: so the client reads the 503 instead of a reset.
LINGER_S = 1.0
#: The largest request head accepted (h11's own default is 16 KiB).
MAX_HEAD_BYTES = 16 * 1024


@dataclass(frozen=True)
class ConnectionLimits:
    """Deadlines (seconds) and caps of :class:`GuardedH11Protocol`; ``max_per_client`` 0 means no cap."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 70.0
    max_connections: int = 200
    max_per_client: int = 32
    retry_after_s: int = 2

    @classmethod
    def from_settings(cls, settings: Any) -> ConnectionLimits:
        """The limits of a :class:`~genrify.web.settings.Settings`; the body deadline backs up the upload's."""
        # The body deadline trails the upload's own (408 from the route) so that answer gets out first.
        upload = settings.upload_timeout_s
        return cls(header_timeout_s=settings.header_timeout_s, body_timeout_s=upload + min(10.0, upload),
                   max_connections=settings.max_connections, max_per_client=settings.max_per_client,
                   retry_after_s=settings.retry_after_s)


def server_options() -> dict:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` that serve through :class:`GuardedH11Protocol`."""
    return {
        "http": GuardedH11Protocol,
        "ws": "none",  # no route speaks WebSocket; an upgrade would leave these deadlines behind
        "limit_concurrency": None,  # the protocol's caps answer with Retry-After instead
        "timeout_keep_alive": 5,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
        "server_header": False,
    }


def raw_response(status: int, reason: str, message: str, *, retry_after: int | None = None) -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 response with the body ``{"error": message}``."""
    body = json.dumps({"error": message}).encode()
    lines = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", f"content-length: {len(body)}",
             "x-content-type-options: nosniff", "connection: close"]
    if retry_after is not None:
        lines.append(f"retry-after: {retry_after}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


class _Tally:
    """Admitted connections of one server, per client address in the order they opened (one event loop: no lock)."""

    def __init__(self):
        self.total = 0
        self.per_peer: dict[str, dict[GuardedH11Protocol, None]] = {}

    def count(self, peer: str) -> int:
        return len(self.per_peer.get(peer, ()))

    def add(self, peer: str, conn: GuardedH11Protocol) -> None:
        self.total += 1
        self.per_peer.setdefault(peer, {})[conn] = None

    def remove(self, peer: str, conn: GuardedH11Protocol) -> None:
        conns = self.per_peer.get(peer, {})
        if conn in conns:
            del conns[conn]
            self.total -= 1
            if not conns:
                del self.per_peer[peer]


def pick_victim(per_peer: dict[str, list[tuple[bool, bool]]], *, newcomer: str) -> tuple[str, int] | None:
    """Which connection a full server closes to admit one from ``newcomer``, or ``None`` (refuse the newcomer).

    ``per_peer`` maps each address to its open connections, oldest first, as
    ``(waiting_for_head, never_sent_a_head)``. Only a connection waiting for a
    request head may be closed: one that never sent a complete head (stalled since
    it opened) before one kept alive between requests, then the address holding the
    most, then the oldest. The victim's address must hold more connections than the
    newcomer's will after admission, unless the newcomer's address holds none yet: a
    new address always gets in while some connection merely waits. Returns
    ``(address, index in its list)``.
    """
    have = len(per_peer.get(newcomer, ()))
    peers = [p for p in sorted(per_peer, key=lambda p: len(per_peer[p]), reverse=True)
             if p != newcomer and (not have or len(per_peer[p]) > have + 1)]
    for stalled_only in (True, False):
        for peer in peers:
            for i, (waiting, never) in enumerate(per_peer[peer]):
                if waiting and (never or not stalled_only):
                    return peer, i
    return None


#: One tally per running server (keyed by uvicorn's per-server state), so servers in one process stay apart.
_TALLIES: weakref.WeakKeyDictionary[Any, _Tally] = weakref.WeakKeyDictionary()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with head and body deadlines and connection caps (see the module docstring)."""

    def __init__(self, config, server_state, app_state, _loop=None):
        super().__init__(config, server_state, app_state, _loop)
        self.limits: ConnectionLimits = app_state.get(STATE_KEY) or ConnectionLimits()
        self.limit_concurrency = None  # the caps below replace uvicorn's plain 503
        self._tally = _TALLIES.setdefault(server_state, _Tally())
        self._peer: str | None = None  # set while this connection is counted
        self._refused = False
        self._phase: str | None = None  # "head" or "body" while a deadline runs
        self._deadline = None

    # -- connection life ----------------------------------------------------------------

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = self.client[0] if self.client else ""
        tally, limits = self._tally, self.limits
        if limits.max_per_client and tally.count(peer) >= limits.max_per_client:
            return self._refuse(f"too many open connections from one address (at most {limits.max_per_client})")
        if tally.total >= limits.max_connections and not self._make_room(peer):
            return self._refuse("the server has too many open connections; try again shortly")
        tally.add(peer, self)
        self._peer = peer
        self._start("head", limits.header_timeout_s)

    def connection_lost(self, exc) -> None:
        self._stop()
        self._uncount()
        super().connection_lost(exc)

    def _uncount(self) -> None:
        if self._peer is not None:
            self._tally.remove(self._peer, self)
            self._peer = None

    # -- fair share ---------------------------------------------------------------------

    @property
    def waiting_for_head(self) -> bool:
        """No request is being served: the connection waits for (the rest of) a request head."""
        return (not self.transport.is_closing() and self.conn.their_state is h11.IDLE
                and (self.cycle is None or self.cycle.response_complete))

    def _make_room(self, newcomer: str) -> bool:
        """Close one connection that waits for its head on behalf of ``newcomer``; whether one was closed."""
        per_peer = self._tally.per_peer
        # uvicorn starts a request cycle at each complete head: no cycle yet means no head yet.
        view = {peer: [(c.waiting_for_head, c.cycle is None) for c in conns] for peer, conns in per_peer.items()}
        choice = pick_victim(view, newcomer=newcomer)
        if choice is None:
            return False
        peer, index = choice
        list(per_peer[peer])[index]._evict()
        return True

    def _evict(self) -> None:
        """Give this connection's place to a newcomer: closed, with a 503 if it never sent a request."""
        self._stop()
        self._uncount()  # the place is free now, not when the close completes
        if self.cycle is None:
            # A kept-alive connection is closed silently instead: an unasked-for answer
            # would be read as the answer to the client's next request.
            self.transport.write(raw_response(
                503, "Service Unavailable", "the server has too many open connections and this one sent no "
                "complete request; try again shortly", retry_after=self.limits.retry_after_s))
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a refusal: what the client still sends is dropped
        super().data_received(data)
        self._follow_phase()

    # -- deadlines ----------------------------------------------------------------------

    def _follow_phase(self) -> None:
        """Start the head or body deadline when the request enters that phase; stop it when it leaves."""
        state = self.conn.their_state
        if state is h11.IDLE:
            # A deadline that is already running is kept: trickling bytes must not extend it.
            if self._phase != "head":
                self._start("head", self.limits.header_timeout_s)
        elif state is h11.SEND_BODY:
            if self._phase != "body":
                self._start("body", self.limits.body_timeout_s)
        else:
            self._stop()

    def _start(self, phase: str, seconds: float) -> None:
        self._stop()
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expire, phase)

    def _stop(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._phase = None, None

    def _expire(self, phase: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if phase == "head" and state is h11.IDLE:
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(raw_response(
                    408, "Request Timeout",
                    f"the request's head did not arrive within {self.limits.header_timeout_s:g} s"))
            self.transport.close()
        elif phase == "body" and state is h11.SEND_BODY:
            # The route answers a slow upload itself (408) before this; here nobody reads the body.
            self.transport.close()

    def _refuse(self, message: str) -> None:
        """Answer 503 with Retry-After before reading anything, then close after a short linger."""
        self._refused = True
        self.transport.write(raw_response(503, "Service Unavailable", message,
                                          retry_after=self.limits.retry_after_s))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._deadline = self.loop.call_later(LINGER_S, self.transport.close)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to a malformed request, in the one error shape (JSON) instead of plain text.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(raw_response(400, "Bad Request", "invalid HTTP request"))
        self.transport.close()

    def on_response_complete(self) -> None:
        # The keep-alive timer takes over until the next request's first byte; a body still
        # arriving (answered before it was read, e.g. a refused upload) keeps its deadline.
        if self.conn.their_state is not h11.SEND_BODY:
            self._stop()
        super().on_response_complete()
