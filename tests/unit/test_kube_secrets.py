"""Reading one key of a Secret: the value decoded, or an error naming what is missing."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from tests.unit.kube_fake import FakeKube

from llm_rollout.kube.secrets import SecretMissing, secret_value


def _secret(data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"namespace": "team", "name": "judge-api-key"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


async def test_the_value_is_decoded_and_stripped() -> None:
    kube = FakeKube()
    kube.put(_secret({"token": "sk-123\n"}))
    assert await secret_value(kube, "team", "judge-api-key", "token") == "sk-123"


async def test_a_missing_secret_or_key_is_named() -> None:
    kube = FakeKube()
    with pytest.raises(SecretMissing, match=r"Secret team/judge-api-key not found"):
        await secret_value(kube, "team", "judge-api-key", "token")
    kube.put(_secret({"other": "x"}))
    with pytest.raises(SecretMissing, match=r"Secret team/judge-api-key has no key 'token'"):
        await secret_value(kube, "team", "judge-api-key", "token")
