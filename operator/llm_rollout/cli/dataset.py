"""`llm-rollout dataset`: answers of a deployment that got negative feedback or failed a
check, from the trace backend or from the router's answer and feedback logs, as an eval
golden set (JSON Lines, and the ConfigMap an eval suite's `dataset.configMapRef` names)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

# evals.harvest's reasons, spelled here: the CLI builds every parser and must start
# fast, so modules are imported by `run` (tests/unit/test_harvest.py checks they agree).
REASON_FEEDBACK, REASON_CHECK = "negative-feedback", "failed-check"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("deployment", metavar="NAMESPACE/NAME", help="the LLMDeployment")
    p.add_argument("--release", default=None, help="only answers of this release id")
    p.add_argument(
        "--phoenix-url",
        default=os.environ.get("PHOENIX_URL", "http://localhost:6006"),
        help="the trace backend (Arize Phoenix; env PHOENIX_URL)",
    )
    p.add_argument("--project", default="default", help="Phoenix project of the router's spans")
    p.add_argument(
        "--from-log",
        action="append",
        default=[],
        metavar="FILE",
        help="read the router's answer and feedback logs (router --answer-log) instead of "
        "the trace backend (repeatable)",
    )
    p.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="HTTP header for the backend, e.g. 'Authorization=Bearer KEY' (repeatable)",
    )
    p.add_argument("--since", default="24h", help="how far back (e.g. 2h, 7d)")
    p.add_argument("--until", default=None, help="end of the range, ISO 8601 (default: now)")
    p.add_argument(
        "--only",
        choices=[REASON_FEEDBACK, REASON_CHECK],
        default=None,
        help="one reason only (default: either)",
    )
    p.add_argument(
        "--reference-from-expert-comment",
        action="store_true",
        help="an expert's comment on a negative rating becomes the case's reference answer",
    )
    p.add_argument(
        "--redact",
        action="append",
        default=[],
        metavar="REGEX",
        help="also replace matches by [REDACTED] (repeatable; content was redacted by "
        "spec.tracing.redact when recorded)",
    )
    p.add_argument("-o", "--output", default="-", help="JSON Lines file ('-': stdout)")
    p.add_argument(
        "--configmap",
        default=None,
        metavar="NAME",
        help="also write a ConfigMap NAME holding the cases (to --configmap-output)",
    )
    p.add_argument("--configmap-key", default="cases.jsonl")
    p.add_argument("--configmap-output", default=None, help="default: NAME.yaml")


def _until(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    at = datetime.fromisoformat(value)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    import yaml

    from llm_rollout.api.durations import parse_duration
    from llm_rollout.evals.dataset import parse_dataset
    from llm_rollout.evals.harvest import HarvestFilter, configmap, harvest
    from llm_rollout.telemetry.genai import compile_redactions
    from llm_rollout.telemetry.sources import (
        LogSource,
        PhoenixSource,
        TraceSource,
        TraceSourceError,
    )

    namespace, _, name = args.deployment.partition("/")
    if not namespace or not name:
        print("error: give the deployment as NAMESPACE/NAME", file=sys.stderr)
        return 2
    try:
        end = _until(args.until)
        start = end - timedelta(seconds=parse_duration(args.since))
        redactions = compile_redactions(args.redact)
        headers = dict(h.split("=", 1) for h in args.header if "=" in h)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    source: TraceSource
    if args.from_log:
        source = log_source = LogSource(args.from_log)
    else:
        log_source = None
        source = PhoenixSource(args.phoenix_url, args.project, headers)
    try:
        spans = source.spans(start, end)
    except TraceSourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    reasons = frozenset([args.only] if args.only else [REASON_FEEDBACK, REASON_CHECK])
    result = harvest(
        spans,
        HarvestFilter(
            namespace,
            name,
            args.release,
            reasons,
            args.reference_from_expert_comment,
            redactions,
        ),
    )
    jsonl = result.jsonl()
    parse_dataset(jsonl)  # what the eval runner will read: fail here, not in a run
    if args.output == "-":
        sys.stdout.write(jsonl)
    else:
        Path(args.output).write_text(jsonl)
    if args.configmap:
        out = Path(args.configmap_output or f"{args.configmap}.yaml")
        manifest = configmap(args.configmap, namespace, args.configmap_key, jsonl)
        out.write_text(yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True))
    print(
        f"{len(result.cases)} cases from {result.bad} bad answers of {result.answers} "
        f"({result.duplicates} duplicates; {result.without_content} without recorded content: "
        "the router records prompts only with content capture on)",
        file=sys.stderr,
    )
    if log_source is not None and log_source.unreadable:
        print(f"{log_source.unreadable} log records did not parse (skipped)", file=sys.stderr)
    return 0
