"""Leader election on a coordination.k8s.io/v1 Lease, so that several operator
replicas can run and exactly one of them acts.

kopf's own peering freezes every operator when two of them have the same
priority, so the operator runs kopf with peering off (`standalone=True`) and
starts kopf's handlers only once it holds the Lease:

- **acquire**: every `retry_period`, read the Lease. Take it when it does not
  exist, when it was released (no holder), or when its record has not changed
  for `leaseDurationSeconds` *as measured by our own clock* since we first saw
  that record (the holder's timestamps are never compared with our clock, so
  clock skew between nodes does not matter). Every write carries the
  resourceVersion it was based on: of two candidates, the API server lets
  exactly one win, the other gets 409 Conflict and keeps waiting.
- **renew**: the leader rewrites `renewTime` every `retry_period`. If no renewal
  has succeeded for `renew_deadline` (counted from when the last successful
  request was *sent*), or the Lease names another holder, it stops acting at
  once: the process exits with status 1 and the pod restarts as a standby.
  Because `renew_deadline < lease_duration`, a leader has stopped before any
  other replica can consider its Lease expired.
- **release**: on a graceful stop (SIGTERM), the leader clears the holder so a
  standby takes over within one `retry_period` instead of a lease duration.

A killed leader is replaced after at most about `lease_duration + retry_period`
(plus the API round trip). The pure parts (`next_move`, `must_step_down`,
`claim`, `release_spec`, `check_timing`) hold the decisions and are unit-tested;
`LeaderElector` does the I/O around them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from llm_rollout.kube.client import KubeClient
from llm_rollout.kube.errors import Conflict, NotFound

log = logging.getLogger("llm_rollout.leadership")

DEFAULT_LEASE_NAME = "llm-rollout-operator"
DEFAULT_LEASE_DURATION = 15.0
DEFAULT_RENEW_DEADLINE = 10.0
DEFAULT_RETRY_PERIOD = 2.0
# client-go's rule: the renew deadline must leave room for a jittered retry.
JITTER_FACTOR = 1.2
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


# -- the pure part ------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease says about its holder (`holder == ""`: released or never held)."""

    holder: str
    duration: float
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def from_lease(cls, lease: dict[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration=float(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )


class Move(StrEnum):
    CREATE = "create"  # no Lease yet
    ACQUIRE = "acquire"  # released, or expired: take it over
    RENEW = "renew"  # ours: extend it
    WAIT = "wait"  # someone else holds a live Lease


def next_move(record: LeaseRecord | None, *, identity: str, observed_at: float, now: float) -> Move:
    """What to do with the Lease as last read.

    `observed_at` is when (on our monotonic clock) we first saw this exact record;
    a record unchanged for its own `duration` since then is expired.
    """
    if record is None:
        return Move.CREATE
    if record.holder == identity:
        return Move.RENEW
    if not record.holder or now >= observed_at + record.duration:
        return Move.ACQUIRE
    return Move.WAIT


def must_step_down(*, last_renewed: float, now: float, renew_deadline: float) -> bool:
    """A leader whose last successful renewal was sent at `last_renewed` stops acting
    once `renew_deadline` has passed without another."""
    return now - last_renewed >= renew_deadline


def expires_in(record: LeaseRecord, *, observed_at: float, now: float) -> float:
    """Seconds until a record someone else holds counts as expired (0: it does)."""
    return max(0.0, observed_at + record.duration - now)


def micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def claim(
    record: LeaseRecord | None, *, identity: str, lease_duration: float, now: datetime
) -> dict[str, Any]:
    """The Lease spec that makes (or keeps) `identity` the holder."""
    stamp = micro_time(now)
    if record is not None and record.holder == identity:
        return {
            "holderIdentity": identity,
            "leaseDurationSeconds": _seconds(lease_duration),
            "acquireTime": record.acquire_time or stamp,
            "renewTime": stamp,
            "leaseTransitions": record.transitions,
        }
    transitions = 0 if record is None else record.transitions + (1 if record.holder else 0)
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": _seconds(lease_duration),
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": transitions,
    }


def release_spec(record: LeaseRecord, *, now: datetime) -> dict[str, Any]:
    """The Lease spec of a leader stepping down gracefully: no holder, so the next
    candidate takes it at once."""
    stamp = micro_time(now)
    return {
        "holderIdentity": None,
        "leaseDurationSeconds": 1,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": record.transitions,
    }


def _seconds(value: float) -> int:
    return max(1, round(value))


def check_timing(lease_duration: float, renew_deadline: float, retry_period: float) -> None:
    """Raise ValueError unless retry period < renew deadline < lease duration."""
    if min(lease_duration, renew_deadline, retry_period) <= 0:
        raise ValueError("leader election durations must be positive")
    if lease_duration != round(lease_duration) or lease_duration < 1:
        raise ValueError(
            "--leader-elect-lease-duration must be whole seconds (the Lease "
            "stores leaseDurationSeconds as an integer)"
        )
    if renew_deadline >= lease_duration:
        raise ValueError(
            f"--leader-elect-renew-deadline ({renew_deadline:g}s) must be shorter "
            f"than --leader-elect-lease-duration ({lease_duration:g}s): a leader "
            "must stop acting before others may take over"
        )
    if renew_deadline <= JITTER_FACTOR * retry_period:
        raise ValueError(
            f"--leader-elect-renew-deadline ({renew_deadline:g}s) must be longer "
            f"than {JITTER_FACTOR} x --leader-elect-retry-period "
            f"({retry_period:g}s)"
        )


# -- configuration --------------------------------------------------------------------


@dataclass(frozen=True)
class ElectionConfig:
    namespace: str
    name: str = DEFAULT_LEASE_NAME
    identity: str = ""
    lease_duration: float = DEFAULT_LEASE_DURATION
    renew_deadline: float = DEFAULT_RENEW_DEADLINE
    retry_period: float = DEFAULT_RETRY_PERIOD

    def __post_init__(self) -> None:
        check_timing(self.lease_duration, self.renew_deadline, self.retry_period)
        if not self.identity:
            raise ValueError("leader election needs an identity")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "leader election", "Run several replicas: only the holder of a Lease acts."
    )
    g.add_argument(
        "--leader-elect",
        action="store_true",
        help="wait for the Lease before acting, renew it while acting "
        "(required with more than one replica)",
    )
    g.add_argument(
        "--leader-elect-namespace",
        default=None,
        help="namespace of the Lease (default: $POD_NAMESPACE, the service "
        "account's namespace, the first --namespace, or 'default')",
    )
    g.add_argument("--leader-elect-name", default=DEFAULT_LEASE_NAME, help="name of the Lease")
    g.add_argument(
        "--leader-elect-identity",
        default=None,
        help="this replica's identity (default: $POD_NAME or the host name, plus a random suffix)",
    )
    g.add_argument(
        "--leader-elect-lease-duration",
        type=float,
        default=DEFAULT_LEASE_DURATION,
        metavar="SECONDS",
        help="how long standbys wait, after the Lease last changed, before taking it over",
    )
    g.add_argument(
        "--leader-elect-renew-deadline",
        type=float,
        default=DEFAULT_RENEW_DEADLINE,
        metavar="SECONDS",
        help="a leader that could not renew for this long stops acting (exits 1)",
    )
    g.add_argument(
        "--leader-elect-retry-period",
        type=float,
        default=DEFAULT_RETRY_PERIOD,
        metavar="SECONDS",
        help="how often to renew, and how often standbys try",
    )


def config_from_args(args: argparse.Namespace) -> ElectionConfig:
    namespace = args.leader_elect_namespace or os.environ.get("POD_NAMESPACE")
    if not namespace and _SA_NAMESPACE.exists():
        namespace = _SA_NAMESPACE.read_text().strip()
    if not namespace:
        namespace = args.namespace[0] if getattr(args, "namespace", None) else "default"
    identity = args.leader_elect_identity or (
        f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    )
    return ElectionConfig(
        namespace=namespace,
        name=args.leader_elect_name,
        identity=identity,
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period,
    )


# -- I/O --------------------------------------------------------------------------------


class LeaseAPI(Protocol):
    """Lease reads and writes; create and replace raise kube.errors.Conflict on a lost race."""

    def get(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]: ...


class KubeLeases:
    """Leases through the operator's own client, blocking (the elector runs in a thread)."""

    def __init__(self, kube: KubeClient, timeout: float) -> None:
        self._kube = kube
        self._timeout = timeout

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self._kube.call(
                "GET", _LEASES.format(namespace=namespace) + f"/{name}", timeout=self._timeout
            )
        except NotFound:
            return None
        return result

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._kube.call(
            "POST",
            _LEASES.format(namespace=namespace),
            body=body,
            content_type="application/json",
            timeout=self._timeout,
        )
        return result

    def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._kube.call(
            "PUT",
            _LEASES.format(namespace=namespace) + f"/{name}",
            body=body,
            content_type="application/json",
            timeout=self._timeout,
        )
        return result


class LostLeadership(Exception):
    """The Lease could not be renewed in time, or another replica holds it."""


class LeaderElector:
    """Acquire, renew and release one Lease (`ElectionConfig`) through `api`."""

    def __init__(
        self,
        api: LeaseAPI,
        config: ElectionConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api = api
        self.config = config
        self.clock = clock
        self.wall = wall
        self._lease: dict[str, Any] | None = None
        self._record: LeaseRecord | None = None
        self._observed_at = 0.0
        self.last_renewed: float | None = None  # when the last successful write was sent

    @property
    def holder(self) -> str | None:
        return self._record.holder if self._record else None

    def _observe(self, lease: dict[str, Any] | None, now: float) -> LeaseRecord | None:
        record = LeaseRecord.from_lease(lease) if lease is not None else None
        # Any write changes the resourceVersion, even one within the same microsecond.
        if record != self._record or _version(lease) != _version(self._lease):
            self._observed_at = now
        self._lease, self._record = lease, record
        return record

    def try_acquire_or_renew(self) -> bool:
        """One attempt (blocking): True when we hold the Lease afterwards."""
        cfg = self.config
        sent = self.clock()
        try:
            lease = self.api.get(cfg.namespace, cfg.name)
        except Exception as err:  # network, 5xx, 403: try again next period
            log.warning("reading Lease %s/%s failed: %s", cfg.namespace, cfg.name, err)
            return False
        record = self._observe(lease, self.clock())
        move = next_move(
            record, identity=cfg.identity, observed_at=self._observed_at, now=self.clock()
        )
        if move is Move.WAIT:
            return False
        spec = claim(
            record, identity=cfg.identity, lease_duration=cfg.lease_duration, now=self.wall()
        )
        try:
            if move is Move.CREATE:
                written = self.api.create(
                    cfg.namespace,
                    {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                        "spec": spec,
                    },
                )
            else:
                assert lease is not None
                written = self.api.replace(
                    cfg.namespace, cfg.name, {**lease, "spec": spec}
                )  # carries metadata.resourceVersion
        except Conflict:
            return False
        except Exception as err:
            log.warning("writing Lease %s/%s failed: %s", cfg.namespace, cfg.name, err)
            return False
        self._observe(written, self.clock())
        self.last_renewed = sent
        if move is not Move.RENEW:
            log.info(
                "acquired Lease %s/%s as %s (%s)", cfg.namespace, cfg.name, cfg.identity, move.value
            )
        return True

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Try every retry period until we hold the Lease (True) or `stop` is set."""
        cfg = self.config
        reported: str | None = None
        while not stop.is_set():
            if await asyncio.to_thread(self.try_acquire_or_renew):
                return True
            if self.holder and self.holder != reported:
                reported = self.holder
                log.info(
                    "standing by: Lease %s/%s is held by %s", cfg.namespace, cfg.name, self.holder
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), cfg.retry_period)
        return False

    async def keep(self) -> None:
        """Renew every retry period; raise LostLeadership when we must stop acting."""
        cfg = self.config
        while True:
            await asyncio.sleep(cfg.retry_period)
            assert self.last_renewed is not None
            remaining = cfg.renew_deadline - (self.clock() - self.last_renewed)
            try:
                ok = await asyncio.wait_for(
                    asyncio.to_thread(self.try_acquire_or_renew), max(remaining, 0.001)
                )
            except TimeoutError:
                ok = False
            if not ok and self.holder and self.holder != cfg.identity:
                raise LostLeadership(
                    f"Lease {cfg.namespace}/{cfg.name} is now held by {self.holder}"
                )
            if must_step_down(
                last_renewed=self.last_renewed, now=self.clock(), renew_deadline=cfg.renew_deadline
            ):
                raise LostLeadership(
                    f"could not renew Lease {cfg.namespace}/{cfg.name} within "
                    f"{cfg.renew_deadline:g}s"
                )

    def release(self) -> None:
        """Give the Lease up (blocking), if we still hold it as last read."""
        if (
            self._lease is None
            or self._record is None
            or self._record.holder != self.config.identity
        ):
            return
        cfg = self.config
        try:
            self.api.replace(
                cfg.namespace,
                cfg.name,
                {**self._lease, "spec": release_spec(self._record, now=self.wall())},
            )
            log.info("released Lease %s/%s", cfg.namespace, cfg.name)
        except Exception as err:  # the standby then waits for expiry: slower, still safe
            log.warning("releasing Lease %s/%s failed: %s", cfg.namespace, cfg.name, err)


def _version(lease: dict[str, Any] | None) -> str | None:
    return None if lease is None else (lease.get("metadata") or {}).get("resourceVersion")


def _exit_now(reason: str) -> None:
    log.error(
        "stopping: lost leadership (%s); exiting so that this replica restarts as a standby", reason
    )
    logging.shutdown()
    os._exit(1)


class Watchdog:
    """A thread that ends the process once the renew deadline has passed, even if the
    event loop is stuck (a handler blocking it, a paused process resuming)."""

    def __init__(
        self, elector: LeaderElector, on_lost: Callable[[str], None], interval: float = 0.1
    ) -> None:
        self.elector = elector
        self.on_lost = on_lost
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leader-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        cfg = self.elector.config
        while not self._stop.wait(self.interval):
            last = self.elector.last_renewed
            if last is not None and must_step_down(
                last_renewed=last, now=self.elector.clock(), renew_deadline=cfg.renew_deadline
            ):
                self.on_lost(f"no renewal for {cfg.renew_deadline:g}s")
                return


async def run_elected(
    elector: LeaderElector,
    operator: Callable[[], Coroutine[Any, Any, None]],
    *,
    standby: Callable[[], Awaitable[Callable[[], Awaitable[None]]]] | None = None,
    on_leading: Callable[[bool], None] = lambda _leading: None,
    on_lost: Callable[[str], None] = _exit_now,
) -> int:
    """Wait for the Lease, then run `operator()` while renewing it.

    `standby()` starts what a waiting replica serves (health, metrics) and returns its
    stop function; it is stopped before the operator starts. SIGTERM/SIGINT while
    waiting returns 0; once leading, the operator handles them and the Lease is
    released after it stopped. Losing the Lease calls `on_lost` (default: exit 1 now).
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    on_leading(False)
    stop_standby = await standby() if standby is not None else None
    try:
        acquired = await elector.acquire(stop)
    finally:
        if stop_standby is not None:
            await stop_standby()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    if not acquired:
        log.info("stopped while standing by")
        return 0
    on_leading(True)
    watchdog = Watchdog(elector, on_lost)
    watchdog.start()
    # Created before the operator starts, so kopf leaves it alone when it shuts down.
    keeper = asyncio.create_task(elector.keep(), name="leader-election renew")
    running = asyncio.create_task(operator(), name="operator")
    try:
        done, _ = await asyncio.wait({keeper, running}, return_when=asyncio.FIRST_COMPLETED)
        if keeper in done:
            err = keeper.exception()
            on_lost(str(err) if err else "renewal stopped")
            running.cancel()  # only reached when on_lost returns (tests)
            with contextlib.suppress(asyncio.CancelledError):
                await running
            return 1
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        watchdog.stop()
        await asyncio.to_thread(elector.release)
        on_leading(False)
        running.result()  # re-raise the operator's failure, if any
        return 0
    finally:
        watchdog.stop()


def run_operator(
    args: argparse.Namespace,
    api_client: Any,
    controller: Any,
    operator: Callable[[], Coroutine[Any, Any, None]],
) -> int:
    """`llm-rollout operator --leader-elect`: stand by (serving /healthz and /metrics on
    --metrics-listen) until this replica holds the Lease, then run `operator`."""
    try:
        config = config_from_args(args)
    except ValueError as err:
        log.error("leader election: %s", err)
        return 2
    elector = LeaderElector(
        KubeLeases(KubeClient(api_client), timeout=min(5.0, config.renew_deadline / 2)), config
    )
    log.info(
        "leader election: identity %s, Lease %s/%s (duration %gs, renew deadline %gs, retry %gs)",
        config.identity,
        config.namespace,
        config.name,
        config.lease_duration,
        config.renew_deadline,
        config.retry_period,
    )

    async def standby() -> Callable[[], Awaitable[None]]:
        from llm_rollout.controller.handlers import _serve_metrics

        host, _sep, port = controller.settings.metrics_listen.rpartition(":")
        runner = await _serve_metrics(controller, host or "0.0.0.0", int(port))
        stop: Callable[[], Awaitable[None]] = runner.cleanup
        return stop

    def leading(on: bool) -> None:
        controller.metrics.leader.set(1 if on else 0)

    return asyncio.run(run_elected(elector, operator, standby=standby, on_leading=leading))
