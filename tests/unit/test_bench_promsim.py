"""The soundness benchmark's simulated Prometheus: increase() as Prometheus computes it,
the query shapes it understands, and the scraped series of one rollout's traffic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bench.soundness import traffic
from bench.soundness.promql import UnsupportedQuery, parse, parse_duration_ms
from bench.soundness.promsim import Empty, Multiple, Prometheus, Series

LABELS = {"__name__": "c_total", "job": "x"}


def series(samples: list[tuple[float, float]], **labels: str) -> Series:
    return Series.of({**LABELS, **labels}, samples)


def every(step: float, values: list[float], start: float = 0.0) -> list[tuple[float, float]]:
    return [(start + i * step, v) for i, v in enumerate(values)]


M5 = 300.0  # the 5m sample spacing of Prometheus's own functions.test


def test_increase_whole_range_from_zero() -> None:
    # functions.test: load 5m, 0+10x10; increase([50m]) at 50m is 100 (no extrapolation)
    s = series(every(M5, [10.0 * i for i in range(11)]))
    assert s.increase(0, 3_000_000) == pytest.approx(100)


def test_increase_counter_reset() -> None:
    # functions.test: 0+10x5 0+10x4 -> 90 (the drop from 50 to 0 adds 50)
    s = series(every(M5, [0, 10, 20, 30, 40, 50, 0, 10, 20, 30, 40]))
    assert s.increase(0, 3_000_000) == pytest.approx(90)


def test_increase_extrapolates_to_boundaries_within_1_1_intervals() -> None:
    # Samples at 5, 15, ..., 55 s: 1..6. Range [0, 60]: 5 s to each edge < 11 s threshold,
    # zero point 50 * 1/5 = 10 s away (not nearer): 5 * 60/50 = 6.
    s = series(every(10, [1, 2, 3, 4, 5, 6], start=5))
    assert s.increase(0, 60_000) == pytest.approx(6.0)


def test_increase_series_starting_inside_range_extrapolates_half_an_interval() -> None:
    # Samples at 30..60 s: 3..6. The start is 30 s >= 11 s away: only 5 s extrapolated;
    # the end is at the query time: 3 * (30 + 5) / 30 = 3.5.
    s = series(every(10, [3, 4, 5, 6], start=30))
    assert s.increase(0, 60_000) == pytest.approx(3.5)


def test_increase_stops_at_the_counters_zero_point() -> None:
    # Samples at 10..40 s: 1, 11, 21, 31. 10 s to the start (< 11: extrapolate), but the
    # counter reaches 0 after 30 * 1/30 = 1 s: 30 * 31/30 = 31.
    s = series(every(10, [1, 11, 21, 31], start=10))
    assert s.increase(0, 40_000) == pytest.approx(31.0)


def test_increase_half_interval_then_zero_point_limit() -> None:
    # functions.test after prometheus#13725: 10+10x10, increase([100m]) at 50m is 105
    # (half an interval, 2.5m, before the zero point 5m away).
    s = series(every(M5, [10 + 10.0 * i for i in range(11)]))
    assert s.increase(-3_000_000, 3_000_000) == pytest.approx(105)
    # First value 8: zero point 4m away, between half an interval and the 5.5m threshold.
    # Since #13725 the half interval wins (105); before it the zero point did (108).
    s = series(every(M5, [8 + 10.0 * i for i in range(11)]))
    assert s.increase(-3_000_000, 3_000_000) == pytest.approx(105)


def test_increase_range_ends_inclusive_and_left_open() -> None:
    # Samples at 0..40 s: 5, 10, 2, 6, 9 (a reset). Prometheus 2.x keeps the sample at the
    # range start: 9 - 5 + 10 = 14, no extrapolation. 3.x drops it: 9 - 10 + 10 = 9 over
    # 30 s, extrapolated 10 s back (zero point 33 s away): 9 * 40/30 = 12.
    s = series(every(10, [5, 10, 2, 6, 9]))
    assert s.increase(0, 40_000) == pytest.approx(14)
    assert s.increase(0, 40_000, left_open=True) == pytest.approx(12)


def test_increase_needs_two_samples() -> None:
    s = series(every(10, [1, 2, 3]))
    assert s.increase(15_000, 25_000) is None  # one sample in range
    assert s.increase(100_000, 160_000) is None
    assert s.increase(10_000, 20_000) == pytest.approx(1)


def test_durations() -> None:
    assert parse_duration_ms("157s") == 157_000
    assert parse_duration_ms("5m") == 300_000
    assert parse_duration_ms("1m30s") == 90_000
    assert parse_duration_ms("1h2m3s") == 3_723_000
    assert parse_duration_ms("2s250ms") == 2_250
    for bad in ("", "1.5h", "30s1m", "5x", "1m1m"):
        with pytest.raises(ValueError):
            parse_duration_ms(bad)


def test_sum_matchers_and_escapes() -> None:
    prom = Prometheus(
        [
            series(every(10, [0, 10, 20]), cohort="beta", code="200"),
            series(every(10, [0, 1, 2]), cohort="beta", code="503"),
            series(every(10, [0, 100, 200]), cohort="beta2", code="500"),
            series(every(10, [0, 5, 10]), cohort='we"ird\\', code="500"),
        ]
    )
    q = 'sum(increase(c_total{job="x",cohort=~"beta"}[20s]))'
    assert prom.answer(q, 20) == pytest.approx(22)  # anchored: not beta2
    q = 'sum(increase(c_total{cohort=~"beta|beta2",code=~"5.."}[20s]))'
    assert prom.answer(q, 20) == pytest.approx(202)
    q = 'sum(increase(c_total{cohort="we\\"ird\\\\"}[20s]))'
    assert prom.answer(q, 20) == pytest.approx(10)
    q = 'sum(increase(c_total{cohort!="beta2",code!~"5.."}[20s]))'
    assert prom.answer(q, 20) == pytest.approx(20)
    assert prom.answer('sum(increase(c_total{cohort="none"}[20s]))', 20) == Empty(
        'sum(increase(c_total{cohort="none"}[20s]))'
    )
    assert isinstance(prom.answer("sum(increase(other_total[1m]))", 20), Empty)


def test_division() -> None:
    prom = Prometheus(
        [
            series(every(10, [0, 10, 20]), part="sum"),
            series(every(10, [0, 4, 8]), part="count"),
            series(every(10, [3, 3, 3]), part="flat"),
        ]
    )
    sel = 'sum(increase(c_total{{part="{}"}}[20s]))'
    assert prom.answer(f"{sel.format('sum')} / {sel.format('count')}", 20) == pytest.approx(2.5)
    zero = prom.answer(f"{sel.format('flat')} / {sel.format('flat')}", 20)
    assert isinstance(zero, float) and math.isnan(zero)
    assert prom.answer(f"{sel.format('sum')} / {sel.format('flat')}", 20) == math.inf
    assert isinstance(prom.answer(f"{sel.format('sum')} / {sel.format('none')}", 20), Empty)


@pytest.mark.parametrize(
    "query",
    [
        'histogram_quantile(0.95, sum by (le) (rate(x_bucket{a="b"}[5m])))',
        "sum(rate(x[5m]))",
        "sum(increase(x[5m] offset 1m))",
        "sum(increase(x[5m:1m]))",
        "max(increase(x[5m]))",
        "sum(x) > bool 0",
        "sum(x) / on() group_left sum(y)",
        "-sum(x)",
        'sum(increase(x{a="b}[5m]))',
        "sum(increase(x[1.5m]))",
    ],
)
def test_unsupported_queries_fail_loudly(query: str) -> None:
    with pytest.raises(UnsupportedQuery, match="promsim cannot answer"):
        parse(query)


def test_exact_count_since_start() -> None:
    # The engine's count since the step began (`@` its start, 1000 s here): the counter now
    # minus then, a series born later counting from 0, increase() after a reset.
    epoch = 1_000_000.0
    prom = Prometheus(
        [
            series(every(10, [5, 6, 8, 9, 12, 15]), r="old"),  # 0..50 s
            series(every(10, [1, 3, 4], start=30), r="new"),  # born at 30 s
            series(every(10, [5, 7, 2, 4, 6, 9]), r="reset"),
        ],
        epoch=epoch,
    )

    def count(r: str, start: float, at: float) -> float | Empty | Multiple:
        sel = f'c_total{{r="{r}"}}'
        window = f"[{round(at - start)}s]"
        q = (
            f"(sum({sel}) - (sum({sel} @ {epoch + start:.3f}) or vector(0))) and on() "
            f"(sum(resets({sel}{window})) == 0) or sum(increase({sel}{window}))"
        )
        return prom.answer(q, at)

    assert count("old", 10, 50) == 15 - 6
    assert count("new", 10, 50) == 4  # nothing at the start: or vector(0)
    # A reset in the range: increase() instead, 9 - 7 + 7 = 9 over [10, 50] exactly.
    assert count("reset", 10, 50) == pytest.approx(9)
    assert count("none", 10, 50) == Empty(
        '(sum(c_total{r="none"}) - (sum(c_total{r="none"} @ 1000010.000) or vector(0))) '
        'and on() (sum(resets(c_total{r="none"}[40s])) == 0) or '
        'sum(increase(c_total{r="none"}[40s]))'
    )
    assert prom.answer('c_total{r=~"old|new"}', 50) == Multiple('c_total{r=~"old|new"}', 2)
    assert prom.answer('increase(c_total{r="old"}[20s])', 50) == pytest.approx(6)
    assert prom.answer('sum(c_total{r="old"}) - 2 * 3', 50) == 9  # precedence
    assert prom.answer("sum(resets(c_total[1m]))", 50) == 1
    assert prom.answer('sum(c_total{r="old"}) > 100', 50) == Empty('sum(c_total{r="old"}) > 100')


def test_traffic_series_appear_at_first_event_and_count_exactly() -> None:
    rng = np.random.default_rng(1)
    t = traffic.Traffic(
        feedback=20,
        positive=0.5,
        requests=30,
        errors=0.1,
        experts=10,
        scores=(0.2, 0.2, 0.2, 0.2, 0.2),
        arrivals="fixed",
    )
    prom = traffic.build(
        rng, t, traffic.Scrape(interval=1.0), candidate="c", stable="s", percent=50, horizon=400
    )
    cand = [
        s
        for s in prom._by_name["llm_feedback_total"]
        if s.labels["release"] == "c" and s.labels["source"] == "user"
    ]
    assert {s.labels["rating"] for s in cand} == {"positive", "negative"}
    for s in cand:
        assert s.values[0] >= 1  # its first sample already holds its first event
    total = sum(float(s.values[-1]) for s in cand)
    assert total == pytest.approx(20 * 400 / 30, abs=1)
    buckets = {
        s.labels["le"]: s
        for s in prom._by_name["llm_feedback_score_bucket"]
        if s.labels["release"] == "c"
    }
    assert list(buckets) == list(traffic.SCORE_BUCKETS)
    assert len({int(s.times[0]) for s in buckets.values()}) == 1  # one histogram child
    q = 'sum(increase(llm_router_requests_total{release="c",cohort=~"beta"}[100s]))'
    assert prom.answer(q, 400) == pytest.approx(100, abs=3)
    # The stable release also serves `everyone`; the candidate only the exposed cohort.
    assert not [
        s
        for s in prom._by_name["llm_router_requests_total"]
        if s.labels["release"] == "c" and s.labels["cohort"] != "beta"
    ]


def test_primed_series_exist_from_exposure() -> None:
    rng = np.random.default_rng(2)
    t = traffic.Traffic(feedback=20, requests=30, errors=0.0)
    prom = traffic.build(
        rng,
        t,
        traffic.Scrape(interval=15.0, primed=True),
        candidate="c",
        stable="s",
        percent=100,
        horizon=120,
    )
    codes = {
        s.labels["code"]: s
        for s in prom._by_name["llm_router_requests_total"]
        if s.labels["release"] == "c"
    }
    assert set(codes) == {"200", "502"}  # what the router primes; no 5xx happened
    assert float(codes["502"].values[-1]) == 0
    assert int(codes["502"].times[0]) < 15_000 and int(codes["200"].times[0]) < 15_000
