"""A stand-in for the kubelet the local bed does not have.

The bed runs no kubelet and no controller-manager, so no pod ever starts and no
Deployment ever becomes available by itself. The operator only reads a release
Deployment's availability (status), so this writes that status — as the
controllers would once the pods were ready — for the release Deployments of a
namespace. `is_ready(release_id)` decides when: always (tests), or once the
release's local model server answers its health check (`make demo`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from llm_rollout.kube.builders import LABEL_DEPLOYMENT, LABEL_RELEASE

log = logging.getLogger("llm_rollout.testbed.kubelet")


class KubeletStandIn:
    def __init__(
        self,
        api_client: Any,
        namespace: str,
        is_ready: Callable[[str], bool] = lambda _release: True,
        period: float = 0.2,
    ) -> None:
        self.apps = client.AppsV1Api(api_client)
        self.namespace = namespace
        self.is_ready = is_ready
        self.hold: set[str] = set()  # Deployment names to leave unavailable
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, daemon=True, name=f"kubelet-stand-in-{namespace}"
        )
        self._thread.start()

    def _sync_once(self) -> None:
        deps: list[Any] = self.apps.list_namespaced_deployment(
            self.namespace, label_selector=LABEL_DEPLOYMENT
        ).items
        for dep in deps:
            name, generation = dep.metadata.name, dep.metadata.generation
            replicas = dep.spec.replicas or 0
            release = (dep.metadata.labels or {}).get(LABEL_RELEASE, "")
            st = dep.status
            available = bool(
                st
                and st.observed_generation == generation
                and (st.available_replicas or 0) == replicas
            )
            if name in self.hold or available or not self.is_ready(release):
                continue
            body = {
                "status": {
                    "observedGeneration": generation,
                    "replicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                    "updatedReplicas": replicas,
                }
            }
            self.apps.patch_namespaced_deployment_status(name, self.namespace, body)
            log.info("marked %s/%s available (%d replicas)", self.namespace, name, replicas)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync_once()
            except ApiException as err:  # a conflict or a deleted Deployment: next round
                log.debug("kubelet stand-in: %s", err.reason)
            except Exception:  # keep standing in; the next round may succeed
                log.exception("kubelet stand-in failed a round")
            self._stop.wait(self.period)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
