"""Reading one key of a Secret, with the error a user can act on."""

from __future__ import annotations

import base64

from llm_rollout.kube.client import KubeAPI


class SecretMissing(LookupError):
    """The Secret, or its key, is not there; the message names both."""


async def secret_value(kube: KubeAPI, namespace: str, name: str, key: str) -> str:
    """The decoded value of `key` in Secret `namespace/name`, stripped of surrounding
    whitespace (a key written with `echo` ends in a newline)."""
    secret = await kube.get("v1", "Secret", namespace, name)
    if secret is None:
        raise SecretMissing(f"Secret {namespace}/{name} not found")
    data = (secret.get("data") or {}).get(key)
    if data is None:
        raise SecretMissing(f"Secret {namespace}/{name} has no key {key!r}")
    return base64.b64decode(data).decode().strip()
