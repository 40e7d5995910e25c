"""An in-memory stand-in for the Kubernetes API, for unit tests of the reconciler.

Named as what it is: a fake, with the contract of kube.client.KubeAPI. Objects live
in a dict; server-side apply merges maps (lists replace); status writes check the
resourceVersion (409 on a stale one); `reject` makes the API server refuse a kind
(422) and `conflict_once` makes the next status write lose a race. Integration
tests run against the real API server instead.
"""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

from llm_rollout.kube.errors import error_for

Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value:
                return False
        elif term not in labels:
            return False
    return True


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.reject: dict[str, str] = {}  # kind -> the API server's message
        self.unserved: set[str] = {"HTTPRoute", "VirtualService"}  # meshes not installed
        self.forbidden_delete: set[str] = set()  # kinds RBAC does not let the operator delete
        self.conflict_once = False
        self.writes: list[tuple[str, str, str]] = []  # (verb, kind, name)
        self._versions = itertools.count(1)

    # -- helpers for tests --------------------------------------------------------------

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(next(self._versions))
        self.objects[self._key(obj)] = obj
        return obj

    def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return next(
            (
                o
                for (_, k, ns, n), o in self.objects.items()
                if (k, ns, n) == (kind, namespace, name)
            ),
            None,
        )

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for (_, k, _, _), o in self.objects.items() if k == kind]

    @staticmethod
    def _key(obj: dict[str, Any]) -> Key:
        meta = obj["metadata"]
        return obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"]

    def _refuse(self, status: int, message: str) -> None:
        raise error_for(status, "Refused", json.dumps({"message": message}))

    # -- the KubeAPI contract -----------------------------------------------------------

    async def apply(
        self, manifest: dict[str, Any], *, manager: str = "llm-rollout-operator"
    ) -> dict[str, Any]:
        kind, meta = manifest["kind"], manifest["metadata"]
        if kind in self.unserved:
            self._refuse(404, f"the server could not find the requested resource ({kind})")
        if kind in self.reject:
            self._refuse(422, f'{kind} "{meta["name"]}" is invalid: {self.reject[kind]}')
        key = self._key(manifest)
        current = self.objects.get(key)
        if current is None and kind in ("Deployment", "Service") and "spec" not in manifest:
            self._refuse(422, f"{kind} {meta['name']}: spec: Required value")
        merged = _merge(current or {}, manifest)
        if current is None or merged.get("spec") != current.get("spec"):
            merged["metadata"]["generation"] = (current or {}).get("metadata", {}).get(
                "generation", 0
            ) + 1
        self.writes.append(("apply", kind, meta["name"]))
        return copy.deepcopy(self.put(merged))

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        obj = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    async def get_path(
        self, path: str, *, query: list[tuple[str, str]] | None = None
    ) -> dict[str, Any]:
        return {"items": []}

    async def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(o)
            for (v, k, ns, _), o in sorted(self.objects.items())
            if (v, k, ns) == (api_version, kind, namespace)
            and _matches(o["metadata"].get("labels") or {}, label_selector)
        ]

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        if kind in self.forbidden_delete:
            self._refuse(403, f'{kind.lower()}s "{name}" is forbidden: cannot delete')
        self.writes.append(("delete", kind, name))
        return self.objects.pop((api_version, kind, namespace, name), None) is not None

    async def replace_status(self, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        key = self._key(obj)
        current = self.objects[key]
        if self.conflict_once or (
            obj["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]
        ):
            self.conflict_once = False
            self._refuse(
                409,
                "the object has been modified; please apply your changes "
                "to the latest version and try again",
            )
        self.writes.append(("status", obj["kind"], obj["metadata"]["name"]))
        return copy.deepcopy(self.put({**current, "status": copy.deepcopy(status)}))

    async def create(
        self, manifest: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any] | None:
        if self._key(manifest) in self.objects:
            return None
        return manifest if dry_run else copy.deepcopy(self.put(copy.deepcopy(manifest)))

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
        current = self.objects[(api_version, kind, namespace, name)]
        merged = _merge(current, {"status": status})
        return copy.deepcopy(self.put(merged))

    async def event(
        self, owner: dict[str, Any], *, reason: str, message: str, warning: bool = False
    ) -> None:
        self.events.append(
            {
                "reason": reason,
                "message": message,
                "warning": warning,
                "object": owner["metadata"]["name"],
            }
        )
