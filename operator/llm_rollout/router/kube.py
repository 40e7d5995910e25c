"""Feed a RouterState from the Kubernetes API: list + watch LLMDeployments.

Uses the synchronous `kubernetes` client in a worker thread (kubernetes_asyncio is
not a dependency); every change re-reads the affected object with
`served_from_object` and swaps the whole served set on the event loop. Objects
that cannot be served (invalid routing, checks, ...) are skipped with an error
log; the others keep being served. Needs `list` and `watch` on llmdeployments.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from typing import Any

from kubernetes import client, config, watch

from llm_rollout import GROUP, PLURAL, VERSION
from llm_rollout.router.config import ServedDeployment, served_from_object
from llm_rollout.router.state import RouterState

log = logging.getLogger("llm_rollout.router")

Key = tuple[str, str]


def api_client_from(kubeconfig: str | None = None) -> Any:
    """In-cluster credentials, else the kubeconfig file (or $KUBECONFIG)."""
    if kubeconfig is None:
        try:
            config.load_incluster_config()
            return client.ApiClient()
        except config.ConfigException:
            pass
    return config.new_client_from_config(config_file=kubeconfig)


class KubeSource:
    """Keeps `state` equal to the servable LLMDeployments in `namespace` (None: all)."""

    def __init__(
        self,
        state: RouterState,
        api_client: Any,
        *,
        namespace: str | None = None,
        group: str = GROUP,
        version: str = VERSION,
        plural: str = PLURAL,
        watch_seconds: int = 30,
        retry_seconds: float = 1.0,
    ) -> None:
        self.state = state
        self.api = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.gvp = (group, version, plural)
        self.watch_seconds = watch_seconds
        self.retry_seconds = retry_seconds
        self._stop = threading.Event()
        self._served: dict[Key, ServedDeployment] = {}

    def _list_fn(self) -> tuple[Any, tuple[Any, ...]]:
        if self.namespace:
            return self.api.list_namespaced_custom_object, (
                *self.gvp[:2],
                self.namespace,
                self.gvp[2],
            )
        return self.api.list_cluster_custom_object, self.gvp

    def _apply(self, obj: Mapping[str, Any], deleted: bool = False) -> bool:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        if deleted:
            return self._served.pop(key, None) is not None
        try:
            self._served[key] = served_from_object(obj)
        except ValueError as exc:
            log.error("not serving %s/%s: %s", *key, exc)
            return self._served.pop(key, None) is not None
        return True

    def _push(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._stop.is_set():
            loop.call_soon_threadsafe(self.state.update, list(self._served.values()))

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        fn, args = self._list_fn()
        while not self._stop.is_set():
            try:
                listing = fn(*args)
                self._served = {}
                for obj in listing.get("items", []):
                    self._apply(obj)
                self._push(loop)
                rv = listing["metadata"]["resourceVersion"]
                while not self._stop.is_set():
                    w = watch.Watch()
                    for event in w.stream(
                        fn,
                        *args,
                        resource_version=rv,
                        timeout_seconds=self.watch_seconds,
                        allow_watch_bookmarks=True,
                    ):
                        obj = event["object"]
                        rv = obj["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK" and self._apply(
                            obj, deleted=event["type"] == "DELETED"
                        ):
                            self._push(loop)
                        if self._stop.is_set():
                            w.stop()
            except client.ApiException as exc:
                if exc.status != 410:  # 410 Gone: resourceVersion too old, just re-list
                    log.error("watching LLMDeployments failed: %s", exc)
                    self._stop.wait(self.retry_seconds)
            except Exception as exc:
                log.error("watching LLMDeployments failed: %r", exc)
                self._stop.wait(self.retry_seconds)

    def start(self) -> None:
        """List and watch in a daemon thread until `stop()` (call from the event loop)."""
        loop = asyncio.get_running_loop()
        threading.Thread(
            target=self._run, args=(loop,), name="llm-rollout-watch", daemon=True
        ).start()

    def stop(self) -> None:
        """Stop feeding the state at once; the thread ends within `watch_seconds`."""
        self._stop.set()
