"""The Prometheus provider against the bed's real Prometheus: values and every error class."""

from __future__ import annotations

from tests.conftest import Prometheus

from llm_rollout.engine import ObservationErrorKind
from llm_rollout.metrics.providers import MetricQueryError, PrometheusProvider
from llm_rollout.testbed.procs import free_port


async def test_values_and_error_classes(prometheus: Prometheus) -> None:
    provider = PrometheusProvider(prometheus.url, timeout=5)
    try:
        results = await provider.query_many(
            [
                "vector(0.75)",
                "scalar(vector(2))",
                "sum(rate(llm_rollout_metric_that_does_not_exist[1m]))",
                'label_replace(vector(1), "a", "x", "", "")'
                ' or label_replace(vector(2), "a", "y", "", "")',
                "vector(0) / vector(0)",
                "sum(rate(up[1m]",
            ]
        )
    finally:
        await provider.aclose()
    assert results[0] == 0.75
    assert results[1] == 2.0
    kinds = [r.kind if isinstance(r, MetricQueryError) else r for r in results[2:]]
    assert kinds == [
        ObservationErrorKind.EMPTY,
        ObservationErrorKind.MULTIPLE_SERIES,
        ObservationErrorKind.NAN,
        ObservationErrorKind.BAD_QUERY,
    ]
    bad = results[5]
    assert isinstance(bad, MetricQueryError) and "parse error" in bad.message


async def test_unreachable_prometheus_is_classified() -> None:
    provider = PrometheusProvider(f"http://127.0.0.1:{free_port()}", timeout=2)
    try:
        [result] = await provider.query_many(["vector(1)"])
    finally:
        await provider.aclose()
    assert isinstance(result, MetricQueryError)
    assert result.kind == ObservationErrorKind.UNREACHABLE
    assert "unreachable" in result.message
