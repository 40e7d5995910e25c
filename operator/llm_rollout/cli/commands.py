"""`llm-rollout` (also the kubectl plugin `kubectl llm-rollout`)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llm_rollout import GROUP, PLURAL, VERSION


def _client_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="LLMDeployment name")
    parser.add_argument(
        "-n", "--namespace", default=None, help="namespace (default: the kubeconfig context's)"
    )
    parser.add_argument("--kubeconfig", default=None)


SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _api(args: argparse.Namespace) -> tuple[Any, str]:
    """The API and namespace: the kubeconfig's, else (in a pod, e.g. a CronJob) the pod's
    service account and namespace."""
    from kubernetes import client, config

    namespace = args.namespace
    try:
        config.load_kube_config(config_file=args.kubeconfig)
    except config.ConfigException:
        if args.kubeconfig or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise
        config.load_incluster_config()
        if namespace is None:
            namespace = Path(SERVICE_ACCOUNT_NAMESPACE).read_text().strip()
        return client.CustomObjectsApi(), namespace
    if namespace is None:
        _, context = config.list_kube_config_contexts(config_file=args.kubeconfig)
        namespace = context.get("context", {}).get("namespace", "default")
    return client.CustomObjectsApi(), namespace


def _get(api: Any, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return obj


def cmd_status(args: argparse.Namespace) -> int:
    from kubernetes.client.exceptions import ApiException

    from llm_rollout.cli.statusview import render_status

    api, namespace = _api(args)
    while True:
        try:
            text = render_status(_get(api, namespace, args.name))
        except ApiException as err:
            print(
                f"error: {err.status} {err.reason}: LLMDeployment {namespace}/{args.name}",
                file=sys.stderr,
            )
            return 1
        if args.watch:
            print("\033[2J\033[H" + text, flush=True)  # redraw in place
            time.sleep(args.interval)
        else:
            print(text)
            return 0


def cmd_action(args: argparse.Namespace) -> int:
    from llm_rollout.api.actions import action_patch, kubectl_equivalent

    action = "promote-full" if args.command == "promote" and args.full else args.command
    if args.dry_run:
        print(kubectl_equivalent(action, args.name, args.namespace))
        return 0
    from kubernetes.client.exceptions import ApiException

    api, namespace = _api(args)
    patch = action_patch(action, f"{time.time_ns()}")
    try:
        api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            args.name,
            patch,
            _content_type="application/merge-patch+json",
        )
    except ApiException as err:
        print(
            f"error: {err.status} {err.reason}: LLMDeployment {namespace}/{args.name}",
            file=sys.stderr,
        )
        return 1
    print(f"llmdeployment {namespace}/{args.name}: {action} requested")
    return 0


def knowledge_base_patch(
    snapshot: str, created_at: str, source_revision: str, *, now: datetime
) -> dict[str, Any]:
    """The merge patch of spec.release.knowledgeBase; ValueError for a bad time."""
    if not snapshot:
        raise ValueError("--snapshot must not be empty")
    try:
        when = now if created_at == "now" else datetime.fromisoformat(created_at)
    except ValueError:
        raise ValueError(f"--created-at {created_at!r} is not an RFC 3339 time") from None
    if when.tzinfo is None:
        raise ValueError(f"--created-at {created_at!r} has no time zone (e.g. end it in Z)")
    kb: dict[str, str | None] = {
        "snapshot": snapshot,
        "createdAt": when.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "sourceRevision": source_revision or None,  # null: an old one goes
    }
    return {"spec": {"release": {"knowledgeBase": kb}}}


def cmd_knowledge_base(args: argparse.Namespace) -> int:
    from kubernetes.client.exceptions import ApiException

    try:
        patch = knowledge_base_patch(
            args.snapshot, args.created_at, args.source_revision, now=datetime.now(UTC)
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(json.dumps(patch))
        return 0
    api, namespace = _api(args)
    try:
        api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, args.name, patch,
            _content_type="application/merge-patch+json",
        )  # fmt: skip
    except ApiException as err:
        print(
            f"error: {err.status} {err.reason}: LLMDeployment {namespace}/{args.name}: "
            f"{_api_message(err)}",
            file=sys.stderr,
        )
        return 1
    kb = patch["spec"]["release"]["knowledgeBase"]
    print(
        f"llmdeployment {namespace}/{args.name}: knowledge base {kb['snapshot']} "
        f"(built {kb['createdAt']}) set: a new release, rolled out stage by stage"
    )
    return 0


def _api_message(err: Any) -> str:
    try:
        return str(json.loads(err.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(err.body or "")


def cmd_plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from llm_rollout.api.durations import parse_duration
    from llm_rollout.cli.plot import draw, fetch_timeline

    api, namespace = _api(args)
    obj = _get(api, namespace, args.name)
    end = time.time()
    start = end - parse_duration(args.since)
    stages = [s["name"] for s in obj.get("spec", {}).get("stages", [])]
    timeline = fetch_timeline(
        args.prometheus_url,
        namespace,
        args.name,
        start=start,
        end=end,
        step=args.step,
        history=obj.get("status", {}).get("history"),
        stage_names=stages,
    )
    if timeline.empty:
        print(
            f"error: Prometheus at {args.prometheus_url} has no rollout data for "
            f"{namespace}/{args.name} in the last {args.since} (is it scraping the "
            "operator?)",
            file=sys.stderr,
        )
        return 1
    out = draw(timeline, Path(args.output or f"{args.name}-rollout.png"))
    print(f"wrote {out}")
    return 0


def cmd_crd(args: argparse.Namespace) -> int:
    from llm_rollout.gen.crd import all_crds_yaml

    sys.stdout.write(all_crds_yaml())
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Check LLMDeployment manifests as the operator parses them, before kubectl apply."""
    import yaml
    from pydantic import ValidationError

    from llm_rollout.api import LLMDeploymentSpec

    failed = False
    for path in args.files:
        try:
            if path == "-":
                text = sys.stdin.read()
            else:
                with open(path) as handle:
                    text = handle.read()
            docs = [d for d in yaml.safe_load_all(text) if d]
        except (OSError, yaml.YAMLError) as err:
            print(f"{path}: {err}", file=sys.stderr)
            failed = True
            continue
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") != "LLMDeployment":
                continue
            name = (doc.get("metadata") or {}).get("name", "?")
            try:
                LLMDeploymentSpec.model_validate(doc.get("spec") or {})
            except ValidationError as err:
                failed = True
                for e in err.errors():
                    where = ".".join(str(p) for p in e["loc"])
                    where = f"spec.{where}" if where else "spec"
                    print(f"{path}: LLMDeployment {name}: {where}: {e['msg']}")
            else:
                print(f"{path}: LLMDeployment {name}: valid")
    return 1 if failed else 0


# Long-running commands: (help, the module with their add_arguments and run).
_SERVERS = {
    "operator": ("run the operator", "llm_rollout.controller.main"),
    "router": ("run the cohort router and feedback collector", "llm_rollout.router.main"),
    "eval": (
        "execute one LLMEvalRun (what the operator's eval Jobs and local executor run)",
        "llm_rollout.evals.cli",
    ),
}


def _command_of(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI; with `only`, the arguments of no other long-running command."""
    parser = argparse.ArgumentParser(
        prog="llm-rollout", description="Staged, metric-gated rollouts of LLM application releases."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    # The long-running commands' modules (kopf, aiohttp, ...) take most of a second to
    # import: only the one being run is imported, so `llm-rollout abort` starts fast.
    for name, (text, module_name) in _SERVERS.items():
        server = sub.add_parser(name, help=text)
        if only is None or only == name:
            module = importlib.import_module(module_name)
            module.add_arguments(server)
            server.set_defaults(func=module.run)

    crd = sub.add_parser(
        "crd", help="print the CRDs: LLMDeployment and LLMEvalRun (pipe to kubectl apply -f -)"
    )
    crd.set_defaults(func=cmd_crd)

    va = sub.add_parser(
        "validate",
        help="check LLMDeployment manifests offline; names the stage, gate and metric at fault",
    )
    va.add_argument("files", nargs="+", metavar="FILE", help="YAML files ('-': stdin)")
    va.set_defaults(func=cmd_validate)

    st = sub.add_parser("status", help="show stage, step, gates and recent decisions")
    _client_args(st)
    st.add_argument("-w", "--watch", action="store_true", help="keep redrawing")
    st.add_argument("--interval", type=float, default=2.0, help="seconds between redraws")
    st.set_defaults(func=cmd_status)

    pl = sub.add_parser("plot", help="draw a PNG timeline of a rollout from Prometheus")
    _client_args(pl)
    pl.add_argument(
        "--prometheus-url",
        default=os.environ.get("PROMETHEUS_URL", "http://localhost:9090"),
        help="Prometheus scraping the operator and router (env PROMETHEUS_URL)",
    )
    pl.add_argument("--since", default="30m", help="how far back (e.g. 10m, 2h)")
    pl.add_argument("--step", type=float, default=2.0, help="seconds between points")
    pl.add_argument("-o", "--output", default=None, help="PNG path (default NAME-rollout.png)")
    pl.set_defaults(func=cmd_plot)

    ds = sub.add_parser(
        "dataset",
        help="answers with negative feedback or failed checks, from the trace backend, "
        "as an eval dataset (JSON Lines, ConfigMap)",
    )
    from llm_rollout.cli import dataset

    dataset.add_arguments(ds)
    ds.set_defaults(func=dataset.run)

    kb = sub.add_parser(
        "knowledge-base",
        help="set release.knowledgeBase (a new snapshot: a new release, rolled out like any)",
    )
    _client_args(kb)
    kb.add_argument("--snapshot", required=True, help="the snapshot's id or version")
    kb.add_argument(
        "--created-at",
        default="now",
        metavar="RFC3339",
        help="when the snapshot was built, e.g. 2026-12-01T03:00:00Z (default: now)",
    )
    kb.add_argument("--source-revision", default="", help="e.g. the sources' commit")
    kb.add_argument("--dry-run", action="store_true", help="print the merge patch instead")
    kb.set_defaults(func=cmd_knowledge_base)

    helps = {
        "pause": "hold the rollout where it is",
        "resume": "continue a paused rollout",
        "promote": "skip to the next step or stage (--full: make the candidate stable)",
        "abort": "roll back to stable",
        "retry": "restart a rolled-back candidate at the first stage",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text)
        _client_args(p)
        if name == "promote":
            p.add_argument("--full", action="store_true", help="promote to stable at once")
        p.add_argument(
            "--dry-run", action="store_true", help="print the equivalent kubectl patch instead"
        )
        p.set_defaults(func=cmd_action)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    args = build_parser(only=command if command in _SERVERS else "").parse_args(argv)
    result: int = args.func(args)
    return result
