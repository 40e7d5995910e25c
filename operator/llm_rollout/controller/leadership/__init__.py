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

from llm_rollout.controller.leadership.config import ElectionConfig, add_arguments, config_from_args
from llm_rollout.controller.leadership.elector import (
    KubeLeases,
    LeaderElector,
    LeaseAPI,
    LostLeadership,
)
from llm_rollout.controller.leadership.lease import (
    DEFAULT_LEASE_DURATION,
    DEFAULT_LEASE_NAME,
    DEFAULT_RENEW_DEADLINE,
    DEFAULT_RETRY_PERIOD,
    JITTER_FACTOR,
    LeaseRecord,
    Move,
    check_timing,
    claim,
    expires_in,
    micro_time,
    must_step_down,
    next_move,
    release_spec,
)
from llm_rollout.controller.leadership.run import run_elected, run_operator
from llm_rollout.controller.leadership.watchdog import Watchdog

__all__ = [
    "DEFAULT_LEASE_DURATION",
    "DEFAULT_LEASE_NAME",
    "DEFAULT_RENEW_DEADLINE",
    "DEFAULT_RETRY_PERIOD",
    "JITTER_FACTOR",
    "ElectionConfig",
    "KubeLeases",
    "LeaderElector",
    "LeaseAPI",
    "LeaseRecord",
    "LostLeadership",
    "Move",
    "Watchdog",
    "add_arguments",
    "check_timing",
    "claim",
    "config_from_args",
    "expires_in",
    "micro_time",
    "must_step_down",
    "next_move",
    "release_spec",
    "run_elected",
    "run_operator",
]
