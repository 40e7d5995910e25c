"""The router against the real test bed: routing fed by a watch on a real kube-apiserver,
metrics scraped by a real Prometheus and answered for the engine's preset queries."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from llm_rollout.router import Router, RouterState
from llm_rollout.router.tokens import TokenSigner
from llm_rollout.traffic.backends import StaticBackends
from tests.router.conftest import KEY, NAME, deployment, start_app

pytestmark = pytest.mark.integration

# A stand-in CRD in its own group (the real one is generated from the API models and may
# not be installed): same kind and plural, any fields kept, status subresource on.
GROUP, VERSION, PLURAL = "routertest.llmops.io", "v1alpha1", "llmdeployments"
CHAT = "/v1/chat/completions"
BODY = {"messages": [{"role": "user", "content": "hi"}]}


def ensure_crd(api_client: Any) -> None:
    from kubernetes import client

    ext = client.ApiextensionsV1Api(api_client)
    name = f"{PLURAL}.{GROUP}"
    try:
        ext.read_custom_resource_definition(name)
        return
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    ext.create_custom_resource_definition(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {
                "group": GROUP,
                "scope": "Namespaced",
                "names": {"kind": "LLMDeployment", "plural": PLURAL, "singular": "llmdeployment"},
                "versions": [
                    {
                        "name": VERSION,
                        "served": True,
                        "storage": True,
                        "subresources": {"status": {}},
                        "schema": {"openAPIV3Schema": schema},
                    }
                ],
            },
        }
    )
    api = client.CustomObjectsApi(api_client)
    deadline = time.monotonic() + 30
    while True:  # established
        try:
            api.list_cluster_custom_object(GROUP, VERSION, PLURAL)
            return
        except client.ApiException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


async def release_of(url: str, user: str) -> str:
    async with (
        aiohttp.ClientSession() as s,
        s.post(url + CHAT, json=BODY, headers={"x-user-id": user}) as r,
    ):
        await r.read()
        return r.headers.get("x-llm-release", str(r.status))


async def eventually(fn: Any, expected: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    got = None
    while time.monotonic() < deadline:
        got = await fn()
        if got == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {expected!r}, still {got!r}")


async def test_routing_follows_the_api_server(cluster, namespace, model_servers) -> None:
    from kubernetes import client

    from llm_rollout.router.kube import KubeSource

    await asyncio.to_thread(ensure_crd, cluster.api_client)
    api = client.CustomObjectsApi(cluster.api_client)
    stable, cand = await model_servers("stable1"), await model_servers("cand2")
    obj = deployment(routes={"all": 0}, ns=namespace)
    obj["apiVersion"] = f"{GROUP}/{VERSION}"
    status = obj.pop("status")
    await asyncio.to_thread(
        api.create_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, obj
    )

    def set_status(routing_status: dict[str, Any]) -> None:
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, NAME, {"status": routing_status}
        )

    await asyncio.to_thread(set_status, status)
    state = RouterState()
    backends = StaticBackends.from_specs(
        [f"{namespace}/{NAME}/stable1={stable.url}", f"{namespace}/{NAME}/cand2={cand.url}"]
    )
    router = Router(state, backends, TokenSigner([KEY]))
    runner, port = await start_app(router.make_app())
    source = KubeSource(
        state, cluster.api_client, namespace=namespace, group=GROUP, watch_seconds=5
    )
    source.start()
    url = f"http://127.0.0.1:{port}"
    try:
        await eventually(lambda: release_of(url, "u1"), "stable1")
        status["routing"]["routes"] = [{"cohort": "all", "candidatePercent": 100}]
        await asyncio.to_thread(set_status, status)
        await eventually(lambda: release_of(url, "u1"), "cand2", within=5)
        await asyncio.to_thread(
            api.delete_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, NAME
        )
        await eventually(lambda: release_of(url, "u1"), "404", within=5)
    finally:
        source.stop()
        await runner.cleanup()


async def test_prometheus_answers_the_presets(prometheus, model_servers, make_router) -> None:
    from llm_rollout.metrics.presets import PRESETS
    from llm_rollout.metrics.promql import TemplateValues, render

    ns = f"prom-{int(time.time() * 1000) % 10**8}"  # series of this test only
    stable, cand = await model_servers("stable1"), await model_servers("cand2")
    router = await make_router(
        [deployment(routes={"experts": 100}, ns=ns)],
        {f"{ns}/{NAME}/stable1": stable.url, f"{ns}/{NAME}/cand2": cand.url},
    )
    # start 0: the counts since the epoch, i.e. all of them
    values = TemplateValues(
        namespace=ns,
        name=NAME,
        release="cand2",
        stable_release="stable1",
        cohorts=("experts",),
        window="5m",
        start="0",
    )

    async def value(query: str) -> float:
        return float(await asyncio.to_thread(prometheus.wait_value, query, 30.0))

    target = f"router-{ns}"
    await asyncio.to_thread(prometheus.add_target, target, f"127.0.0.1:{router.port}")
    try:
        # The router primes its series at zero: Prometheus sees them before any traffic,
        # so increase() counts the very first requests and ratings of the candidate.
        assert await value(f'sum(llm_feedback_total{{namespace="{ns}"}})') == 0
        async with aiohttp.ClientSession() as s:
            for i in range(10):
                async with s.post(
                    router.url + CHAT,
                    json=BODY,
                    headers={"x-user-id": f"u{i}", "x-user-group": "expert"},
                ) as r:
                    await r.read()
                    token = r.headers["x-llm-feedback-token"]
                body = {"token": token, "score": 5 if i < 8 else 2, "source": "expert"}
                async with s.post(router.url + "/feedback", json=body) as r:
                    assert r.status == 202
        deadline = time.monotonic() + 30
        while await value(f'sum(llm_feedback_total{{namespace="{ns}"}})') < 10:
            assert time.monotonic() < deadline, "feedback never scraped"
            await asyncio.sleep(0.5)

        # expert-rating counts each score: cumulative buckets of 8 fives and 2 twos
        buckets = [
            await value(render(template, values))
            for _, template in PRESETS["expert-rating"].buckets
        ]
        assert buckets == [0, 2, 2, 2, 10]
        positive = PRESETS["feedback-positive-rate"]
        share = await value(
            f"({render(positive.success, values)}) / ({render(positive.total, values)})"
        )
        assert share == pytest.approx(0.8, rel=1e-6)
        errors = PRESETS["error-rate"]
        assert await value(render(errors.success, values)) == 0
        assert await value(render(errors.total, values)) >= 10
    finally:
        await asyncio.to_thread(prometheus.remove_target, target)
