"""The Lease I/O around the pure decisions: acquire, renew, release."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from llm_rollout.controller.leadership.config import ElectionConfig
from llm_rollout.controller.leadership.lease import (
    LeaseRecord,
    Move,
    claim,
    must_step_down,
    next_move,
    release_spec,
)
from llm_rollout.kube.client import KubeClient
from llm_rollout.kube.errors import Conflict, NotFound

log = logging.getLogger("llm_rollout.leadership")


_LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


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
