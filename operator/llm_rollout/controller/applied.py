"""What the operator last applied, so that an unchanged release is not applied again on
every tick (two server-side applies per LLMDeployment per analysis otherwise).

An object is applied again when its manifest changed, when it is missing from the
API server's answer the reconcile already has, or when `reapply_seconds` have passed:
that last one is the safety net that puts back what someone else changed or removed
(a Service deleted by hand, a field edited), within minutes instead of at once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

REAPPLY_SECONDS = 300.0

Key = tuple[str, str, str, str]  # kind, namespace, name, field manager


def _digest(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


@dataclass
class AppliedCache:
    reapply_seconds: float = REAPPLY_SECONDS
    _applied: dict[Key, tuple[str, datetime]] = field(default_factory=dict)

    @staticmethod
    def key(manifest: dict[str, Any], manager: str) -> Key:
        meta = manifest["metadata"]
        return manifest["kind"], meta["namespace"], meta["name"], manager

    def needed(
        self, manifest: dict[str, Any], manager: str, *, present: bool, now: datetime
    ) -> bool:
        """Must `manifest` be applied now (see the module docstring)?"""
        last = self._applied.get(self.key(manifest, manager))
        if not present or last is None or last[0] != _digest(manifest):
            return True
        return (now - last[1]).total_seconds() >= self.reapply_seconds

    def applied(self, manifest: dict[str, Any], manager: str, *, now: datetime) -> None:
        self._applied[self.key(manifest, manager)] = (_digest(manifest), now)

    def forget(self, namespace: str, name_prefix: str = "") -> None:
        """Drop what is known of a namespace's objects (of one LLMDeployment: its prefix)."""
        for key in [k for k in self._applied if k[1] == namespace and k[2].startswith(name_prefix)]:
            del self._applied[key]
