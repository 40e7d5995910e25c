"""Where a release of a deployment is served: the router proxies only to these URLs,
and the eval runner sends its cases there (so neither imports the other)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol

import yaml
from yarl import URL

from llm_rollout.api.routing_table import DEFAULT_SERVICE_PORT


class BackendResolver(Protocol):
    def resolve(self, namespace: str, name: str, release_id: str) -> str | None:
        """Base URL (scheme://host:port[/path]) of a release, or None if unknown."""
        ...


class ServiceBackends:
    """In-cluster: one Service per release, `http://{name}-{release}.{namespace}.svc:{port}`."""

    def __init__(
        self,
        port: int = DEFAULT_SERVICE_PORT,
        port_of: Callable[[str, str], int | None] | None = None,
    ) -> None:
        self._port = port
        self._port_of = port_of

    def resolve(self, namespace: str, name: str, release_id: str) -> str | None:
        port = (self._port_of(namespace, name) if self._port_of else None) or self._port
        return f"http://{name}-{release_id}.{namespace}.svc:{port}"


def check_base_url(url: str) -> str:
    """Validate a backend base URL: http(s), a host, no query or fragment."""
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"backend URL must be http(s)://host[:port][/path]: {url!r}")
    if parsed.query_string or parsed.fragment or parsed.user:
        raise ValueError(f"backend URL must not carry credentials, query or fragment: {url!r}")
    return url.rstrip("/")


def _key(spec: str) -> tuple[str, str, str]:
    parts = spec.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"backend key must be namespace/name/release: {spec!r}")
    return (parts[0], parts[1], parts[2])


class StaticBackends:
    """Local mode: an explicit map `namespace/name/release -> base URL`."""

    def __init__(self, mapping: Mapping[tuple[str, str, str], str] | None = None) -> None:
        self._map = {k: check_base_url(v) for k, v in (mapping or {}).items()}

    @classmethod
    def from_specs(cls, specs: Iterable[str]) -> StaticBackends:
        """From `ns/name/release=http://127.0.0.1:port` strings (the --backend flag)."""
        mapping: dict[tuple[str, str, str], str] = {}
        for spec in specs:
            key, sep, url = spec.partition("=")
            if not sep:
                raise ValueError(f"--backend must be ns/name/release=URL: {spec!r}")
            mapping[_key(key.strip())] = url.strip()
        return cls(mapping)

    @staticmethod
    def parse_file(path: str | Path) -> dict[tuple[str, str, str], str]:
        """A JSON/YAML object `{"ns/name/release": "http://..."}`."""
        try:
            data = yaml.safe_load(Path(path).read_text())  # YAML is a superset of JSON
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: {exc}") from exc
        if data is None:
            return {}
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ValueError(f"{path}: expected an object of 'ns/name/release': 'URL'")
        return {_key(k): check_base_url(v) for k, v in data.items()}

    def replace(self, mapping: Mapping[tuple[str, str, str], str]) -> None:
        """Swap the whole map at once (used when the backend file changes)."""
        self._map = {k: check_base_url(v) for k, v in mapping.items()}

    @property
    def mapping(self) -> dict[tuple[str, str, str], str]:
        return dict(self._map)

    def resolve(self, namespace: str, name: str, release_id: str) -> str | None:
        return self._map.get((namespace, name, release_id))
