"""Prometheus metrics of the router. Names are a contract: the engine's presets query them.

Every router instance has its own CollectorRegistry. Labels never carry a user
or request id; `criterion` values are capped (see `RouterMetrics.criterion`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from llm_rollout.metrics import names as metric_names
from llm_rollout.metrics.names import registered

DEP = ("namespace", "deployment", "release", "cohort")
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30)
SCORE_BUCKETS = (1, 2, 3, 4, 5)
MAX_CRITERIA = 64


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            registered(metric_names.REQUESTS),
            "Proxied requests by final status code.",
            [*DEP, "code"],
            registry=r,
        )
        self.duration = Histogram(
            metric_names.REQUEST_DURATION,
            "Time from request received to last response byte sent.",
            DEP,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            metric_names.TTFT,
            "Time from request received to first response body chunk.",
            DEP,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            registered(metric_names.TOKENS),
            "Tokens reported by the backend's OpenAI-style usage.",
            [*DEP, "direction"],
            registry=r,
        )
        self.feedback = Counter(
            registered(metric_names.FEEDBACK),
            "Accepted feedback.",
            [*DEP, "source", "rating"],
            registry=r,
        )
        self.feedback_score = Histogram(
            metric_names.FEEDBACK_SCORE,
            "Feedback scores 1..5 (criterion 'overall' for the main score).",
            [*DEP, "source", "criterion"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.checks = Counter(
            registered(metric_names.HEURISTIC_CHECKS),
            "Online heuristic check results.",
            [*DEP, "check", "result"],
            registry=r,
        )
        self.fallbacks = Counter(
            registered(metric_names.FALLBACKS),
            "Requests sent to stable because their release could not be reached.",
            ["namespace", "deployment", "cohort", "release"],
            registry=r,
        )
        self.upstream_errors = Counter(
            registered(metric_names.UPSTREAM_ERRORS),
            "Upstream failures (connect, timeout, midstream).",
            ["namespace", "deployment", "release", "kind"],
            registry=r,
        )
        self.assignments = Counter(
            registered(metric_names.ASSIGNMENTS),
            "Units placed on a release: users at their first request since their cohort's "
            "routing changed, and requests without a user id (router/assignments.py).",
            DEP,
            registry=r,
        )
        self.unsticky = Counter(
            registered(metric_names.UNSTICKY_REQUESTS),
            "Requests without a user id (bucketed by request id, not sticky).",
            ["namespace", "deployment"],
            registry=r,
        )
        self.feedback_rejected = Counter(
            registered(metric_names.FEEDBACK_REJECTED),
            "Rejected feedback by reason.",
            ["reason"],
            registry=r,
        )
        self.trace_spans = Counter(
            registered(metric_names.TRACE_SPANS),
            "Trace spans by outcome: exported, or dropped (queue_full: the exporter is behind "
            "or the backend is down; export_failed: the backend refused or did not answer).",
            ["outcome"],
            registry=r,
        )
        self._criteria: set[str] = {"overall"}

    def prime(
        self, namespace: str, deployment: str, release: str, cohort: str, checks: list[str]
    ) -> None:
        """Create the main series of a release and cohort at zero.

        A counter series that appears with its first increment already in it is
        invisible to increase()/rate(); priming makes the first request, feedback
        or check result of a new release count.
        """
        dep = (namespace, deployment, release, cohort)
        for code in ("200", "502"):
            self.requests.labels(*dep, code)
        self.duration.labels(*dep)
        self.ttft.labels(*dep)
        self.assignments.labels(*dep)
        for direction in ("input", "output"):
            self.tokens.labels(*dep, direction)
        for source in ("user", "expert"):
            for rating in ("positive", "neutral", "negative"):
                self.feedback.labels(*dep, source, rating)
            self.feedback_score.labels(*dep, source, "overall")
        for check in checks:
            for result in ("pass", "fail"):
                self.checks.labels(*dep, check, result)

    def forget_releases(self, gone: set[tuple[str, str, str]]) -> int:
        """Drop every series of the (namespace, deployment, release) triples in `gone`.

        Keeps a long-running router's series bounded by the releases it serves, not by
        every release it ever served. Returns how many series were removed.
        """
        removed = 0
        for metric in (
            self.requests,
            self.duration,
            self.ttft,
            self.tokens,
            self.feedback,
            self.feedback_score,
            self.checks,
            self.fallbacks,
            self.upstream_errors,
            self.assignments,
        ):
            names = list(metric._labelnames)
            try:
                at = [names.index(n) for n in ("namespace", "deployment", "release")]
            except ValueError:
                continue
            # prometheus-client has no public way to list a metric's label sets.
            for labels in list(metric._metrics):
                if (labels[at[0]], labels[at[1]], labels[at[2]]) in gone:
                    metric.remove(*labels)
                    removed += 1
        return removed

    def count_spans(self, outcome: str, count: int) -> None:
        self.trace_spans.labels(outcome).inc(count)

    def criterion(self, name: str) -> str:
        """Label value for a criterion; beyond MAX_CRITERIA distinct names, 'other'."""
        if name in self._criteria:
            return name
        if len(self._criteria) < MAX_CRITERIA:
            self._criteria.add(name)
            return name
        return "other"
