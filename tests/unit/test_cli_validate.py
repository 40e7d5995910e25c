"""`llm-rollout validate`: manifests checked offline, as the operator parses them."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_rollout.cli import main

GOOD = """\
apiVersion: rollout.llmops.io/v1alpha1
kind: LLMDeployment
metadata: {name: good}
spec:
  release: {model: {name: m, revision: r1}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: skipped}
"""

BAD = """\
apiVersion: rollout.llmops.io/v1alpha1
kind: LLMDeployment
metadata: {name: bad}
spec:
  release: {model: {name: m, revision: r1}}
  stages:
  - name: experts
    cohorts: [experts, vip]
    gates:
    - {name: typo, kind: Threshold, metric: qualty, min: 0.8}
"""


def test_a_valid_manifest_passes_and_other_kinds_are_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out == f"{path}: LLMDeployment good: valid\n"


def test_an_invalid_manifest_names_the_item_at_fault(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(BAD)
    assert main(["validate", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{good}: LLMDeployment good: valid" in out
    assert f"{bad}: LLMDeployment bad: spec:" in out
    assert 'stage experts: undefined cohorts ["vip"]' in out


def test_a_gate_with_an_undefined_metric_is_named_with_the_metric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD.replace("[experts, vip]", "[experts]"))
    assert main(["validate", str(bad)]) == 1
    assert "stage experts gate typo: undefined metrics qualty" in capsys.readouterr().out


def test_unreadable_files_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [unclosed\n")
    assert main(["validate", str(broken), str(tmp_path / "missing.yaml")]) == 1
    err = capsys.readouterr().err
    assert str(broken) in err and "missing.yaml" in err
