"""The dashboard's rows and panels, as data (a table: long on purpose)."""

from __future__ import annotations

from llm_rollout.gen.dashboard.model import (
    Panel,
    dashed,
    dotted,
    mean,
    q,
    quantile,
    ratio,
    sel,
)
from llm_rollout.metrics import names as metric_names

ROWS: list[tuple[str, list[Panel]]] = [
    (
        "Rollout",
        [
            Panel(
                "Phase",
                "stat",
                (
                    q(
                        f"max by (namespace, deployment, phase) ({metric_names.PHASE}{sel()}) == 1",
                        "{{deployment}}: {{phase}}",
                        instant=True,
                    ),
                ),
                description="Where each rollout is now (Progressing, Paused, Promoted, "
                "RolledBack, Failed, Invalid).",
                width=8,
                height=5,
            ),
            Panel(
                "Releases",
                "table",
                (
                    q(
                        f"max by (namespace, deployment, stable, candidate) "
                        f"({metric_names.INFO}{sel()})",
                        "",
                        instant=True,
                    ),
                ),
                description="The stable release and the candidate being rolled out.",
                width=8,
                height=5,
            ),
            Panel(
                "Time in step vs maxDuration",
                "bargauge",
                (
                    q(
                        f"time() - max by (namespace, deployment) "
                        f"({metric_names.STEP_START}{sel()})",
                        "{{deployment}} in step",
                        instant=True,
                    ),
                    q(
                        f"max by (namespace, deployment) ({metric_names.STEP_MAX_DURATION}{sel()})",
                        "{{deployment}} maxDuration",
                        instant=True,
                    ),
                ),
                unit="s",
                width=8,
                height=5,
                description="A step must advance within its stage's maxDuration, else the "
                "rollout rolls back (alert LLMRolloutStuck when it does not).",
            ),
            Panel(
                "Phase over time",
                "state-timeline",
                (
                    q(
                        f"max by (namespace, deployment, phase) ({metric_names.PHASE}{sel()}) == 1",
                        "{{deployment}} {{phase}}",
                    ),
                ),
                width=12,
                height=6,
            ),
            Panel(
                "Stage and step over time",
                "timeseries",
                (
                    q(
                        f"max by (namespace, deployment) ({metric_names.STAGE_INDEX}{sel()})",
                        "{{deployment}} stage index",
                    ),
                    q(
                        f"max by (namespace, deployment, stage) "
                        f"({metric_names.STEP_PERCENT}{sel()}) / 100",
                        "{{deployment}} {{stage}} step",
                    ),
                ),
                description="Stage index (0 = first stage) and the share of the current "
                "stage's cohorts on the candidate (step, 0..1).",
                stepped=True,
                width=12,
                height=6,
            ),
            Panel(
                "Conditions",
                "table",
                (
                    q(
                        f"max by (namespace, deployment, condition, status) "
                        f"({metric_names.CONDITION}{sel()}) == 1",
                        "",
                        instant=True,
                    ),
                ),
                description="Ready, Progressing, Degraded, Paused, MetricsAvailable.",
                width=12,
                height=6,
            ),
            Panel(
                "Knowledge-base age (stable) vs maxAge",
                "bargauge",
                (
                    q(
                        f"time() - max by (deployment, snapshot) "
                        f"({metric_names.KNOWLEDGE_BASE_CREATED}{sel()})",
                        "{{deployment}} {{snapshot}}",
                        instant=True,
                    ),
                    q(
                        f"max by (deployment) ({metric_names.KNOWLEDGE_BASE_MAX_AGE}{sel()})",
                        "{{deployment}} maxAge",
                        instant=True,
                    ),
                ),
                unit="s",
                description="How long ago the stable release's knowledge-base snapshot was "
                "built (release.knowledgeBase.createdAt), next to spec.freshness."
                "knowledgeBaseMaxAge; older than that: KnowledgeFresh=False and the "
                "LLMRolloutKnowledgeBaseStale alert.",
                width=12,
                height=6,
            ),
            Panel(
                "Operator replicas leading",
                "stat",
                (q(f"sum({metric_names.LEADER})", "leaders", instant=True),),
                description="Replicas holding the leader Lease: 1 is healthy.",
                width=6,
                height=6,
            ),
            Panel(
                "Analysis time (p95)",
                "stat",
                (
                    q(
                        "histogram_quantile(0.95, sum by (le) "
                        f"(rate({metric_names.ANALYSIS_DURATION}_bucket[$__rate_interval])))",
                        "p95",
                        instant=True,
                    ),
                ),
                unit="s",
                width=6,
                height=6,
            ),
        ],
    ),
    (
        "Gates",
        [
            Panel(
                "Gate value vs threshold and confidence sequence",
                "timeseries",
                (
                    q(
                        f"max by (deployment, stage, gate) ({metric_names.GATE_VALUE}{sel()})",
                        "{{deployment}} {{gate}}",
                    ),
                    q(
                        f"max by (deployment, stage, gate, bound) "
                        f"({metric_names.GATE_THRESHOLD}{sel()})",
                        "{{deployment}} {{gate}} {{bound}} threshold",
                    ),
                    q(
                        f"max by (deployment, stage, gate) "
                        f"({metric_names.GATE_INTERVAL_LOWER}{sel()})",
                        "{{deployment}} {{gate}} lower",
                    ),
                    q(
                        f"max by (deployment, stage, gate) "
                        f"({metric_names.GATE_INTERVAL_UPPER}{sel()})",
                        "{{deployment}} {{gate}} upper",
                    ),
                ),
                description="The value each gate of the current stage measured, its bounds "
                "(dashed red) and its anytime-valid confidence sequence over the step (dotted; "
                "count-based gates: ratios and expert scores).",
                width=24,
                height=9,
                overrides=(dashed(".* threshold$", "red"), dotted(".* (lower|upper)$")),
            ),
            Panel(
                "Gate verdicts",
                "state-timeline",
                (
                    q(
                        f"max by (deployment, gate, verdict) "
                        f"({metric_names.GATE_VERDICT}{sel()}) == 1",
                        "{{deployment}} {{gate}} {{verdict}}",
                    ),
                ),
                width=12,
            ),
            Panel(
                "Gate samples",
                "timeseries",
                (
                    q(
                        f"max by (deployment, gate) ({metric_names.GATE_SAMPLES}{sel()})",
                        "{{deployment}} {{gate}}",
                    ),
                ),
                description="Samples behind each gate's value (minSamples must be met).",
                width=12,
            ),
        ],
    ),
    (
        "Feedback and evals",
        [
            Panel(
                "Positive user feedback by release and cohort",
                "timeseries",
                (
                    q(
                        ratio(
                            f"{metric_names.FEEDBACK}",
                            "release, cohort",
                            'rating="positive"',
                            "$window",
                            'source="user"',
                        ),
                        "{{release}} {{cohort}}",
                    ),
                ),
                unit="percentunit",
                min=0,
                max=1,
                description="Share of thumbs-up (and 4-5 scores) among user feedback over $window.",
            ),
            Panel(
                "Expert rating (overall) by release and cohort",
                "timeseries",
                (
                    q(
                        mean(
                            f"{metric_names.FEEDBACK_SCORE}",
                            "release, cohort",
                            'source="expert"',
                            'criterion="overall"',
                        ),
                        "{{release}} {{cohort}}",
                    ),
                ),
                min=1,
                max=5,
                description="Mean 1-5 expert score over $window.",
            ),
            Panel(
                "Expert ratings by criterion and release",
                "timeseries",
                (
                    q(
                        mean(
                            f"{metric_names.FEEDBACK_SCORE}",
                            "release, criterion",
                            'source="expert"',
                        ),
                        "{{release}} {{criterion}}",
                    ),
                ),
                min=1,
                max=5,
            ),
            Panel(
                "Feedback volume by release and rating",
                "timeseries",
                (
                    q(
                        f"sum by (release, source, rating) "
                        f"(rate({metric_names.FEEDBACK}{sel()}[$__rate_interval]))",
                        "{{release}} {{source}} {{rating}}",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Eval scores by criterion",
                "timeseries",
                (
                    q(
                        f"max by (release, suite, criterion) ({metric_names.EVAL_SCORE}{sel()})",
                        "{{release}} {{suite}} {{criterion}}",
                    ),
                ),
                unit="percentunit",
                min=0,
                max=1,
                needs="evals",
                description="Latest finished eval run per suite and release (0..1).",
            ),
            Panel(
                "Heuristic check pass rate by release",
                "timeseries",
                (
                    q(
                        ratio(
                            f"{metric_names.HEURISTIC_CHECKS}", "release, check", 'result="pass"'
                        ),
                        "{{release}} {{check}}",
                    ),
                ),
                unit="percentunit",
                min=0,
                max=1,
            ),
        ],
    ),
    (
        "Traffic, errors and latency",
        [
            Panel(
                "Requests by release and cohort",
                "timeseries",
                (
                    q(
                        f"sum by (release, cohort) "
                        f"(rate({metric_names.REQUESTS}{sel()}[$__rate_interval]))",
                        "{{release}} {{cohort}}",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Error rate (5xx) by release",
                "timeseries",
                (
                    q(
                        ratio(
                            f"{metric_names.REQUESTS}", "release", 'code=~"5.."', "$__rate_interval"
                        ),
                        "{{release}}",
                    ),
                ),
                unit="percentunit",
                min=0,
            ),
            Panel(
                "Latency by release",
                "timeseries",
                (
                    q(quantile(0.5, f"{metric_names.REQUEST_DURATION}"), "{{release}} p50"),
                    q(quantile(0.95, f"{metric_names.REQUEST_DURATION}"), "{{release}} p95"),
                ),
                unit="s",
                description="Request received to last byte sent (whole stream).",
            ),
            Panel(
                "Time to first token by release",
                "timeseries",
                (
                    q(quantile(0.5, f"{metric_names.TTFT}"), "{{release}} p50"),
                    q(quantile(0.95, f"{metric_names.TTFT}"), "{{release}} p95"),
                ),
                unit="s",
            ),
            Panel(
                "Fallbacks and upstream errors by release",
                "timeseries",
                (
                    q(
                        f"sum by (release) "
                        f"(rate({metric_names.FALLBACKS}{sel()}[$__rate_interval]))",
                        "{{release}} fallbacks",
                    ),
                    q(
                        f"sum by (release, kind) "
                        f"(rate({metric_names.UPSTREAM_ERRORS}{sel()}[$__rate_interval]))",
                        "{{release}} {{kind}}",
                    ),
                ),
                unit="reqps",
                needs="router errors",
                description="Requests sent to stable because their release failed, and "
                "backend failures by kind.",
            ),
            Panel(
                "Tokens by release",
                "timeseries",
                (
                    q(
                        f"sum by (release, direction) "
                        f"(rate({metric_names.TOKENS}{sel()}[$__rate_interval]))",
                        "{{release}} {{direction}}",
                    ),
                ),
                unit="short",
            ),
        ],
    ),
    (
        "Operator",
        [
            Panel(
                "Decisions by outcome",
                "timeseries",
                (
                    q(
                        f"sum by (deployment, outcome) "
                        f"(increase({metric_names.DECISIONS}{sel()}[$__rate_interval]))",
                        "{{deployment}} {{outcome}}",
                    ),
                ),
                description="Also shown as annotations.",
                width=12,
            ),
            Panel(
                "Prometheus query errors by kind",
                "timeseries",
                (
                    q(
                        f"sum by (deployment, kind) "
                        f"(rate({metric_names.QUERY_ERRORS}{sel()}[$__rate_interval]))",
                        "{{deployment}} {{kind}}",
                    ),
                ),
                unit="reqps",
                width=12,
            ),
        ],
    ),
]
