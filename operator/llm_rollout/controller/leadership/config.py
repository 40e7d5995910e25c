"""Leader election settings: the --leader-elect-* flags and their defaults from the pod."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from llm_rollout.controller.leadership.lease import (
    DEFAULT_LEASE_DURATION,
    DEFAULT_LEASE_NAME,
    DEFAULT_RENEW_DEADLINE,
    DEFAULT_RETRY_PERIOD,
    check_timing,
)

log = logging.getLogger("llm_rollout.leadership")


_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


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
