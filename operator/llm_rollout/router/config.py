"""The router's view of one LLMDeployment, and how it is read from the API object.

`served_from_object` reads only these fields of an LLMDeployment (camelCase, as
the API server returns it):

- `metadata.namespace` (default "default"), `metadata.name`
- `spec.cohorts` (list of Cohort), `spec.defaultCohort` (default "everyone"),
  `spec.userIdHeader` (default "x-user-id"), `spec.release.port` (port of the
  per-release Services; default: the router's --service-port)
- `spec.checks` (optional: online heuristic checks, `llm_rollout.heuristics`)
- `spec.routing.hosts` (optional: Host header values this deployment answers for)
- `spec.tracing.redact` (optional: patterns redacted from recorded trace content)
- `status.routing` (a RoutingTable)

Everything else is ignored, so the router keeps working when the API grows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from llm_rollout.api.cohorts import DEFAULT_COHORT, DEFAULT_USER_ID_HEADER, Cohort
from llm_rollout.api.routing_table import RoutingTable
from llm_rollout.heuristics import HeuristicCheck, parse_checks
from llm_rollout.telemetry.genai import REDACT_ALL, Redactions, compile_redactions

log = logging.getLogger("llm_rollout.router")

_COHORTS = TypeAdapter(list[Cohort])


@dataclass(frozen=True, slots=True)
class CompiledCohort:
    """A cohort's matchers in lookup-friendly form (lower-case header names, sets)."""

    name: str
    headers: tuple[tuple[str, frozenset[str]], ...]
    users: frozenset[str]


@dataclass(frozen=True)
class ServedDeployment:
    namespace: str
    name: str
    cohorts: list[Cohort] = field(default_factory=list)
    default_cohort: str = DEFAULT_COHORT
    user_id_header: str = DEFAULT_USER_ID_HEADER
    routing: RoutingTable = field(default_factory=RoutingTable)
    checks: list[HeuristicCheck] = field(default_factory=list)
    hosts: tuple[str, ...] = ()
    port: int | None = None
    redactions: Redactions = ()
    compiled: tuple[CompiledCohort, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = tuple(
            CompiledCohort(
                name=c.name,
                headers=tuple((h.lower(), frozenset(v)) for h, v in c.match.headers.items()),
                users=frozenset(c.match.users),
            )
            for c in self.cohorts
        )
        object.__setattr__(self, "compiled", compiled)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def has_cohort(self, name: str) -> bool:
        return name == self.default_cohort or any(c.name == name for c in self.cohorts)


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be an object")
    return value


def _redactions(spec: Mapping[str, Any], where: str) -> Redactions:
    """spec.tracing.redact compiled. Patterns that do not compile redact all content:
    the deployment keeps being served, and nothing its team meant to hide is recorded
    (the operator marks the object Invalid, saying which pattern)."""
    redact = _mapping(spec.get("tracing"), "spec.tracing").get("redact") or []
    if not isinstance(redact, list) or not all(isinstance(p, str) for p in redact):
        raise ValueError("spec.tracing.redact must be a list of strings")
    try:
        return compile_redactions(redact)
    except ValueError as exc:
        log.error("%s: %s; recording no message content of it", where, exc)
        return (REDACT_ALL,)


def served_from_object(obj: Mapping[str, Any]) -> ServedDeployment:
    """Build a ServedDeployment from an LLMDeployment object; ValueError if unusable."""
    meta = _mapping(obj.get("metadata"), "metadata")
    spec = _mapping(obj.get("spec"), "spec")
    status = _mapping(obj.get("status"), "status")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("metadata.name is required")
    namespace = meta.get("namespace") or "default"
    where = f"{namespace}/{name}"
    try:
        cohorts = _COHORTS.validate_python(spec.get("cohorts") or [])
        routing = RoutingTable.model_validate(status.get("routing") or {})
        checks = parse_checks(spec.get("checks"))
        redactions = _redactions(spec, where)
    except (ValidationError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc
    hosts = _mapping(spec.get("routing"), "spec.routing").get("hosts") or []
    port = _mapping(spec.get("release"), "spec.release").get("port")
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise ValueError(f"{where}: spec.routing.hosts must be a list of strings")
    if port is not None and (
        not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536
    ):
        raise ValueError(f"{where}: spec.release.port must be a port number")
    return ServedDeployment(
        namespace=str(namespace),
        name=name,
        cohorts=cohorts,
        default_cohort=str(spec.get("defaultCohort") or DEFAULT_COHORT),
        user_id_header=str(spec.get("userIdHeader") or DEFAULT_USER_ID_HEADER),
        routing=routing,
        checks=checks,
        hosts=tuple(h.lower() for h in hosts),
        port=port,
        redactions=redactions,
    )


def objects_from_documents(docs: Iterable[object]) -> list[Mapping[str, Any]]:
    """Flatten YAML/JSON documents: single objects, lists, and `kind: List`-style `items`."""
    out: list[Mapping[str, Any]] = []
    for doc in docs:
        if doc is None:
            continue
        if isinstance(doc, list):
            out.extend(objects_from_documents(doc))
        elif isinstance(doc, Mapping) and isinstance(doc.get("items"), list):
            out.extend(objects_from_documents(doc["items"]))
        elif isinstance(doc, Mapping):
            out.append(doc)
        else:
            raise ValueError("expected LLMDeployment objects")
    return out


def load_config_text(text: str) -> list[ServedDeployment]:
    """Parse a config file (YAML or JSON; one or many LLMDeployment-like objects).

    Raises ValueError on any bad object: a file is applied whole or not at all.
    """
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ValueError(f"cannot parse config: {exc}") from exc
    served = [served_from_object(o) for o in objects_from_documents(docs)]
    keys = [s.key for s in served]
    if len(set(keys)) != len(keys):
        raise ValueError("config lists the same deployment twice")
    return served
