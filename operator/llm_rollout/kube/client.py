"""Kubernetes I/O for the operator: server-side apply, reads, status patches, Events.

Thin async wrappers over the official client's ApiClient (run in a thread), with
paths built from apiVersion/kind so the same code serves Deployments, Services,
Gateway API and Istio objects alike.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from kubernetes import client as k8s

from llm_rollout import PLURAL
from llm_rollout.kube.errors import Conflict, NotFound, error_for
from llm_rollout.kube.times import format_time

FIELD_MANAGER = "llm-rollout-operator"

_PLURALS = {
    "Deployment": "deployments",
    "Service": "services",
    "Event": "events",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "Job": "jobs",
    "LLMDeployment": PLURAL,
    "LLMEvalRun": "llmevalruns",
}


def register_plural(kind: str, plural: str) -> None:
    """Teach the client a kind's resource name (routing providers register theirs)."""
    _PLURALS[kind] = plural


def resource_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{_PLURALS[kind]}"
    return f"{path}/{name}" if name else path


class KubeAPI(Protocol):
    """What the operator asks of the Kubernetes API. KubeClient is the real one; unit
    tests of the reconciler use an in-memory store with the same contract."""

    async def apply(
        self, manifest: dict[str, Any], *, manager: str = FIELD_MANAGER
    ) -> dict[str, Any]: ...

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None: ...

    async def get_path(
        self, path: str, *, query: list[tuple[str, str]] | None = None
    ) -> dict[str, Any]: ...

    async def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]: ...

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool: ...

    async def replace_status(
        self, obj: dict[str, Any], status: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def create(
        self, manifest: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any] | None: ...

    async def patch_status(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        status: dict[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]: ...

    async def event(
        self, owner: dict[str, Any], *, reason: str, message: str, warning: bool = False
    ) -> None: ...


class KubeClient:
    """`on_request(verb)` is called once per request (from the request's thread)."""

    def __init__(self, api_client: Any, on_request: Callable[[str], None] | None = None) -> None:
        self._api = api_client
        self._on_request = on_request

    @property
    def configuration(self) -> Any:
        """The client's connection settings (server, TLS files, token)."""
        return self._api.configuration

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        query: list[tuple[str, str]] | None = None,
        timeout: float = 30.0,
    ) -> Any:
        """One blocking request (the async methods run it in a thread); an error status
        raises its typed KubeError (kube/errors.py)."""
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        _method, url, headers, serialized, _post = self._api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        if self._on_request is not None:
            self._on_request(method)
        response = self._api.call_api(
            method, url, header_params=headers, body=serialized, _request_timeout=timeout
        )
        data = response.read()
        if not 200 <= response.status < 300:
            raise error_for(response.status, str(response.reason), data.decode("utf-8", "replace"))
        return json.loads(data) if data else {}

    async def apply(
        self, manifest: dict[str, Any], *, manager: str = FIELD_MANAGER
    ) -> dict[str, Any]:
        """Server-side apply as `manager` (force: the operator owns these fields)."""
        meta = manifest["metadata"]
        path = resource_path(
            manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"]
        )
        result: dict[str, Any] = await asyncio.to_thread(
            self.call,
            "PATCH",
            path,
            body=manifest,
            content_type="application/apply-patch+yaml",
            query=[("fieldManager", manager), ("force", "true")],
        )
        return result

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await asyncio.to_thread(
                self.call, "GET", resource_path(api_version, kind, namespace, name)
            )
        except NotFound:
            return None
        return result

    async def get_path(
        self, path: str, *, query: list[tuple[str, str]] | None = None
    ) -> dict[str, Any]:
        """GET an API path as it is (raises a KubeError on any error status)."""
        result: dict[str, Any] = await asyncio.to_thread(self.call, "GET", path, query=query)
        return result

    async def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]:
        result = await asyncio.to_thread(
            self.call,
            "GET",
            resource_path(api_version, kind, namespace),
            query=[("labelSelector", label_selector)],
        )
        return list(result.get("items", []))

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete the object; False when there was none (or no such kind is served)."""
        try:
            await asyncio.to_thread(
                self.call, "DELETE", resource_path(api_version, kind, namespace, name)
            )
        except NotFound:
            return False
        return True

    async def replace_status(self, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Write the LLMDeployment's status through the status subresource.

        Optimistic: the object carries the resourceVersion the decision was made on,
        so a concurrent change surfaces as Conflict (HTTP 409) instead of being
        overwritten; the caller decides again on the fresh object.
        """
        meta = obj["metadata"]
        path = (
            resource_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
            + "/status"
        )
        body = {**obj, "status": status}
        result: dict[str, Any] = await asyncio.to_thread(self.call, "PUT", path, body=body)
        return result

    async def create(
        self, manifest: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any] | None:
        """POST a new object; None when one of that name exists already (HTTP 409)."""
        meta = manifest["metadata"]
        path = resource_path(manifest["apiVersion"], manifest["kind"], meta["namespace"])
        query = [("fieldManager", FIELD_MANAGER)] + ([("dryRun", "All")] if dry_run else [])
        try:
            result: dict[str, Any] = await asyncio.to_thread(
                self.call, "POST", path, body=manifest, query=query
            )
        except Conflict:
            return None
        return result

    async def patch_status(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        status: dict[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """JSON merge patch of an object's status subresource (None values clear fields).

        With `resource_version`, only if the object is still at that version (else
        Conflict)."""
        path = resource_path(api_version, kind, namespace, name) + "/status"
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        result: dict[str, Any] = await asyncio.to_thread(
            self.call, "PATCH", path, body=body, content_type="application/merge-patch+json"
        )
        return result

    async def event(
        self, owner: dict[str, Any], *, reason: str, message: str, warning: bool = False
    ) -> None:
        """A core/v1 Event on the LLMDeployment (`kubectl describe` and `get events`)."""
        meta = owner["metadata"]
        now = format_time(dt.datetime.now(dt.UTC))
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:12]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": FIELD_MANAGER},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await asyncio.to_thread(
            self.call, "POST", resource_path("v1", "Event", meta["namespace"]), body=body
        )


def new_api_client(kubeconfig: str | None = None) -> Any:
    """An ApiClient from a kubeconfig, or the in-cluster service account."""
    from kubernetes import config

    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return k8s.ApiClient()
