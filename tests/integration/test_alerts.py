"""The chart's alert rules, unit-tested with promtool (Debian's prometheus package):
every alert is tested both firing and not firing."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from tests.conftest import REPO_ROOT

RULES = REPO_ROOT / "charts" / "llm-rollout-operator" / "files" / "alerts.yaml"
TESTS = REPO_ROOT / "tests" / "alerts" / "alerts_test.yaml"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: run hack/install-deps.sh (Debian package prometheus)")
    return found


def test_rules_file_is_valid() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", str(TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    alerts = {
        r["alert"]
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested not firing"
    assert {
        "LLMRolloutStuck",
        "LLMRolloutRolledBack",
        "LLMRolloutMetricsUnavailable",
        "LLMRouterErrorRateHigh",
        "LLMRouterFallbacksRising",
    } <= alerts
