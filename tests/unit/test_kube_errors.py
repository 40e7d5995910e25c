"""Kubernetes API errors are typed by what they mean, with the API server's words."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from llm_rollout.kube.errors import (
    Conflict,
    Forbidden,
    Invalid,
    KubeError,
    NotFound,
    Unavailable,
    error_for,
)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, NotFound),
        (409, Conflict),
        (400, Invalid),
        (422, Invalid),
        (401, Forbidden),
        (403, Forbidden),
        (429, Unavailable),
        (500, Unavailable),
        (503, Unavailable),
        (418, KubeError),
    ],
)
def test_each_status_has_its_type(status: int, kind: type[KubeError]) -> None:
    err = error_for(status, "Reason", "{}")
    assert type(err) is kind and err.status == status
    assert isinstance(err, ApiException)  # code that catches the client's class still does


def test_the_message_is_the_api_servers_own() -> None:
    body = json.dumps(
        {
            "kind": "Status",
            "message": 'Deployment.apps "x" is invalid: '
            "spec.template.spec.containers[0].image: Required value",
        }
    )
    err = error_for(422, "Unprocessable Entity", body)
    assert err.message.endswith("containers[0].image: Required value")
    assert error_for(500, "Internal Server Error", "not json").message == "Internal Server Error"
