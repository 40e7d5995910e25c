"""The kopf layer: thin. Events wake a per-object loop; the loop runs reconcile.

One daemon per LLMDeployment runs `Controller.reconcile` whenever the engine
asks for it (requeue_after) or something changes: the object itself (spec,
annotations for manual actions) or one of its release Deployments (readiness).
All state is in status, so a restarted operator simply resumes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from llm_rollout import GROUP, PLURAL, VERSION
from llm_rollout.api.evalrun import EVAL_RUN_PLURAL
from llm_rollout.controller.reconcile import Conflict, Controller
from llm_rollout.controller.served import wait_until_served
from llm_rollout.controller.wakers import Wakers
from llm_rollout.kube.builders import LABEL_DEPLOYMENT

log = logging.getLogger("llm_rollout.operator")

# With nothing due, still look again this often (a safety net, not the mechanism).
RESYNC_SECONDS = 60.0
ERROR_BACKOFF_SECONDS = 5.0


def _wakers(memo: Any) -> Wakers:
    wakers: Wakers = memo["controller"].wakers
    return wakers


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    settings.posting.enabled = False  # the controller posts its own decision Events
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.watching.server_timeout = 300
    controller: Controller = memo["controller"]
    host, _sep, port = controller.settings.metrics_listen.rpartition(":")
    memo["metrics_runner"] = await _serve_metrics(controller, host or "0.0.0.0", int(port))
    # kopf starts watching after the startup handlers: wait for the resources to be
    # served first (one INFO line instead of an ERROR per retried watch).
    await wait_until_served(controller.kube, controller.settings.namespaces)


async def _serve_metrics(controller: Controller, host: str, port: int) -> web.AppRunner:
    async def metrics(_: web.Request) -> web.Response:
        body = controller.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("operator metrics and health on http://%s:%d", host, port)
    return runner


@kopf.on.login()
def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    """Log kopf in with the same credentials as the controller's API client (in-cluster,
    or the --kubeconfig given), rather than kopf's guess from the environment."""
    config = memo["controller"].kube.configuration
    header = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix(
        "authorization"
    )
    scheme, _sep, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
    )


@kopf.on.cleanup()
async def shutdown(memo: Any, **_: Any) -> None:
    runner: web.AppRunner | None = memo.get("metrics_runner")
    if runner is not None:
        await runner.cleanup()
    await memo["controller"].aclose()


# The wake-up handlers are async so that kopf runs them on the event loop, where the
# loops' asyncio.Events live (a sync handler runs in a worker thread).
@kopf.on.event(GROUP, VERSION, PLURAL)
async def wake_on_change(
    namespace: str | None,
    name: str | None,
    memo: Any,
    spec: Any,
    body: Any,
    type: str | None,
    **_: Any,
) -> None:
    if not (namespace and name) or type == "DELETED":
        return
    # stage maxDurations, for llm_rollout_step_max_duration_seconds
    memo["controller"].metrics.observe_spec(namespace, name, spec)
    # Not on the operator's own status writes: each would cost a second reconcile.
    if _wakers(memo).decisive_change(namespace, name, body):
        _wakers(memo).wake(namespace, name)


@kopf.on.event("apps", "v1", "deployments", labels={LABEL_DEPLOYMENT: kopf.PRESENT})
async def wake_on_release_change(namespace: str | None, labels: Any, memo: Any, **_: Any) -> None:
    _wakers(memo).wake(namespace, labels.get(LABEL_DEPLOYMENT))


@kopf.on.event(GROUP, VERSION, EVAL_RUN_PLURAL, labels={LABEL_DEPLOYMENT: kopf.PRESENT})
async def wake_on_eval_run_change(namespace: str | None, spec: Any, memo: Any, **_: Any) -> None:
    # An eval run progressed or finished: its LLMDeployment decides again at once.
    _wakers(memo).wake(namespace, (spec or {}).get("deployment"))


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def rollout_loop(
    *, namespace: str | None, name: str, stopped: kopf.DaemonStopped, memo: Any, **_: Any
) -> None:
    assert namespace is not None  # LLMDeployment is namespaced
    controller: Controller = memo["controller"]
    waker = _wakers(memo).register(namespace, name)
    try:
        while not stopped:
            waker.clear()
            try:
                delay = await controller.reconcile(namespace, name)
            except Conflict:
                delay = 0.0  # the object moved on: decide again on the fresh one
            except Exception:
                log.exception(
                    "reconciling %s/%s failed; retrying in %.0fs",
                    namespace,
                    name,
                    ERROR_BACKOFF_SECONDS,
                )
                delay = ERROR_BACKOFF_SECONDS
            timeout = RESYNC_SECONDS if delay is None else min(delay, RESYNC_SECONDS)
            if timeout > 0:
                await _wait_any(waker, stopped, timeout)
    finally:
        _wakers(memo).forget(namespace, name)
        controller.metrics.forget(namespace, name)


async def _wait_any(waker: asyncio.Event, stopped: kopf.DaemonStopped, seconds: float) -> None:
    woken = asyncio.ensure_future(waker.wait())
    halted = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({woken, halted}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        woken.cancel()
        halted.cancel()
