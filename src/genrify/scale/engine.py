"""The Ray engine: one pool of actors, each running one :class:`~genrify.scale.stages.Stage`.

Every actor sets its stage up once (loads the model), then answers one item per
call. The driver keeps a bounded number of items in flight, takes answers as
they finish, and owns everything that is written. An item whose actor or node
dies is resubmitted to a live actor, and a replacement actor is started (it
joins once Ray has placed it); the driver answers each item exactly once, so a
late or duplicated answer is dropped. Plain actors rather than Ray Data: Ray
Data's file readers hung on a 2-CPU host, and actors keep the model loaded.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from genrify.errors import ConfigError, GenrifyError
from genrify.scale.stages import STAGES, Stage

INSTALL_HINT = "pip install 'genrify[ray]'"


@dataclass(frozen=True)
class RayConfig:
    """How a job runs on a Ray cluster.

    ``address``: ``"auto"`` (the cluster this machine belongs to) or ``host:port``.
    ``actors``: how many (default: the cluster's CPUs divided by ``cpus_per_actor``).
    ``cpus_per_actor`` also sets the actor's torch threads; ``memory_per_actor``
    (bytes) is reserved on the node, so Ray never packs more actors than fit.
    ``in_flight_per_actor``: items queued per actor (2 hides the round trip).
    ``max_attempts``: how often an item may be lost with its actor before it is
    answered with the failure. ``start_timeout``: seconds to wait for a first actor.
    """

    address: str = "auto"
    actors: int | None = None
    cpus_per_actor: float = 1.0
    memory_per_actor: int | None = 1_500_000_000
    in_flight_per_actor: int = 2
    max_attempts: int = 3
    start_timeout: float = 300.0

    @classmethod
    def from_environment(cls, address: str, environ=None) -> "RayConfig":
        """The config of ``--ray ADDRESS``, sized by ``GENRIFY_RAY_ACTORS``, ``GENRIFY_RAY_ACTOR_CPUS`` and
        ``GENRIFY_RAY_ACTOR_MEMORY`` (bytes, or with a K/M/G suffix) where they are set."""
        env = os.environ if environ is None else environ
        kw: dict = {"address": address}
        for name, field_name, parse in (("GENRIFY_RAY_ACTORS", "actors", int), ("GENRIFY_RAY_ACTOR_CPUS", "cpus_per_actor", float),
                                        ("GENRIFY_RAY_ACTOR_MEMORY", "memory_per_actor", _bytes)):
            if env.get(name):
                try:
                    kw[field_name] = parse(env[name].strip())
                except ValueError:
                    raise ConfigError(f"{name}={env[name]!r} is not a valid number") from None
                if kw[field_name] <= 0:
                    raise ConfigError(f"{name} must be positive (got {env[name]!r})")
        return cls(**kw)


def _bytes(text: str) -> int:
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:].upper(), 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


@dataclass
class RunStats:
    """What a run did, filled in as it goes: ``actors`` (``{"pid", "node"}`` of each actor that
    started), ``in_flight`` (node id → items on its actors now), ``lost`` (items resubmitted after
    their actor or node died), ``duplicates`` (answers dropped because the item was answered already)."""

    actors: list[dict] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    duplicates: int = 0


def import_ray():
    """The ``ray`` module, or a one-line :class:`ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"running on Ray needs the ray extra: {INSTALL_HINT}") from None
    return ray


def connect(address: str):
    """Join the cluster at ``address`` (once per process); returns the ``ray`` module."""
    ray = import_ray()
    if not ray.is_initialized():
        try:
            gcs = _reachable_gcs(address)
            # log_to_driver=False: workers' output must never mix into the driver's stdout (JSON answers).
            ray.init(address=gcs, log_to_driver=False, logging_level="ERROR", configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError, OSError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"cannot join the Ray cluster at {address!r}: {first}") from None
    return ray


def _reachable_gcs(address: str, *, timeout: float = 5.0) -> str:
    """``host:port`` of the cluster's GCS once it answers a TCP connection; Ray itself would retry an
    unreachable address for minutes, or end the process from its C++ core."""
    import socket

    from ray._private.services import canonicalize_bootstrap_address  # "auto" → the address `ray start` left

    gcs = canonicalize_bootstrap_address(address)
    if gcs is None:
        raise ConnectionError("no running Ray cluster found (start one with 'ray start --head')")
    host, _, port = gcs.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise ConnectionError(f"nothing answers at {gcs} ({getattr(exc, 'strerror', None) or exc}); "
                              "is the cluster running ('ray status')?") from None
    return gcs


class StageActor:
    """One worker of a job: sets its stage up once, then runs it on one item per call."""

    def __init__(self, stage: str, setup: dict, threads: int):
        self.stage: Stage = STAGES[stage]
        self.state = self.stage.setup(threads=max(1, threads), **setup)  # the CPUs Ray reserved, no more

    def ready(self) -> dict:
        """Where this actor runs: ``{"pid", "node"}``."""
        import ray

        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}

    def run(self, item):
        return self.stage.run(self.state, item)


class _Pool:
    """The job's actors: ``live`` answer calls, ``starting`` wait for Ray to place and set them up."""

    def __init__(self, ray, stage: str, setup: dict, config: RayConfig, size: int, stats: RunStats):
        opts = {"num_cpus": config.cpus_per_actor, "max_restarts": 0, "max_task_retries": 0}
        if config.memory_per_actor:
            opts["memory"] = config.memory_per_actor
        self.ray, self.config = ray, config
        self.cls = ray.remote(StageActor).options(**opts)
        self.args = (stage, setup, max(1, int(config.cpus_per_actor)))
        self.live: dict[Any, int] = {}  # actor → items in flight
        self.starting: dict[Any, Any] = {}  # ready ref → actor
        self.stats = stats
        self.node_of: dict[Any, str] = {}
        self.failed_starts = 0
        for _ in range(size):
            self.start()

    def start(self) -> None:
        actor = self.cls.remote(*self.args)
        self.starting[actor.ready.remote()] = actor

    def started(self, ref) -> None:
        """A starting actor answered, or died setting up: it is replaced, up to ``max_attempts`` times in
        all; past that, the job goes on with the actors it has, or ends with the reason when it has none."""
        actor = self.starting.pop(ref)
        try:
            where = self.ray.get(ref)
            self.stats.actors.append(where)
            self.node_of[actor] = where["node"]
        except self.ray.exceptions.RayError as exc:
            self.failed_starts += 1
            if self.failed_starts < self.config.max_attempts:
                self.start()
            elif not self.live and not self.starting:  # a bad model, say: every actor fails the same way
                raise GenrifyError(f"Ray workers cannot start this job: {_reason(exc)}") from None
            return
        self.live[actor] = 0

    def lose(self, actor) -> None:
        """``actor`` died (or its node did): forget it and start a replacement."""
        if self.live.pop(actor, None) is not None:
            self.start()

    def count(self, actor, change: int) -> None:
        """``change`` items more (or fewer) in flight on ``actor``."""
        if actor in self.live:
            self.live[actor] += change
        node = self.node_of[actor]
        self.stats.in_flight[node] = self.stats.in_flight.get(node, 0) + change

    def idlest(self):
        """The live actor with the fewest items in flight, when it has room for one more."""
        if not self.live:
            return None
        actor = min(self.live, key=self.live.get)
        return actor if self.live[actor] < self.config.in_flight_per_actor else None

    def close(self) -> None:
        for actor in [*self.live, *self.starting.values()]:
            self.ray.kill(actor, no_restart=True)


def run_stage(stage: str, items: Sequence, *, setup: dict, config: RayConfig,
              ordered: bool = True, stats: RunStats | None = None) -> Iterator[tuple[int, Any]]:
    """Run ``STAGES[stage]`` over ``items`` on the cluster; yields ``(index, result)`` once per item.

    ``ordered``: in the order of ``items`` (answers that finish early wait, at most
    ``actors × in_flight_per_actor`` of them), else as they finish. ``stats``: filled in as it runs.
    """
    if not items:
        return
    ray = connect(config.address)
    size = config.actors or max(1, int(ray.cluster_resources().get("CPU", 1) // config.cpus_per_actor))
    stats = stats if stats is not None else RunStats()
    pool = _Pool(ray, stage, setup, config, min(size, len(items)), stats)
    window = max(1, min(size, len(items))) * config.in_flight_per_actor
    todo, pending, held = deque(range(len(items))), {}, {}
    attempts, answered, next_out = [0] * len(items), set(), 0
    waited_since = time.monotonic()
    try:
        while len(answered) < len(items):
            while todo and len(pending) + len(held) < window and (actor := pool.idlest()) is not None:
                i = todo.popleft()
                pending[actor.run.remote(items[i])] = (i, actor)
                pool.count(actor, +1)
            if not pool.live and not pending:
                if time.monotonic() - waited_since > config.start_timeout:
                    raise GenrifyError(f"no Ray worker started within {config.start_timeout:g} s "
                                       f"(each needs {config.cpus_per_actor:g} CPU; see 'ray status')")
            else:
                waited_since = time.monotonic()
            ready, rest = ray.wait([*pending, *pool.starting], num_returns=1, timeout=1.0)
            if ready and rest:  # and every other answer already in: one wait per batch, not per song
                ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
            for ref in ready:
                if ref in pool.starting:
                    pool.started(ref)
                    continue
                i, actor = pending.pop(ref)
                result = _answer(ray, ref, pool, actor, STAGES[stage], items[i], attempts, i, todo)
                if result is _LOST or i in answered:  # resubmitted, or a duplicate of an answer already given
                    stats.lost += result is _LOST
                    stats.duplicates += result is not _LOST
                    continue
                answered.add(i)
                if not ordered:
                    yield i, result
                    continue
                held[i] = result
                while next_out in held:
                    yield next_out, held.pop(next_out)
                    next_out += 1
    finally:
        pool.close()


_LOST = object()


def _answer(ray, ref, pool: _Pool, actor, stage: Stage, item, attempts: list[int], i: int, todo: deque):
    """The result of ``ref``; or, when its actor was lost, ``_LOST`` after queueing the item again
    (or the stage's failure answer once it was lost ``max_attempts`` times)."""
    pool.count(actor, -1)
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError:
        raise  # the stage itself failed: a bug, not a lost worker
    except ray.exceptions.RayError as exc:
        pool.lose(actor)
        attempts[i] += 1
        if attempts[i] >= pool.config.max_attempts:
            return stage.lost(item, _reason(exc))
        todo.appendleft(i)
        return _LOST


def _reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
