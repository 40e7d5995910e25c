"""What the Helm chart ships that is generated elsewhere must not drift from its source."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO_ROOT

CHART = REPO_ROOT / "charts" / "llm-rollout-operator"


def _files(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(directory.glob("*.yaml"))}


def test_chart_crds_equal_the_generated_crds() -> None:
    repo, chart = _files(REPO_ROOT / "crds"), _files(CHART / "crds")
    assert repo, "crds/ is empty"
    assert sorted(chart) == sorted(repo), "the chart's crds/ lists other files: run `make crds`"
    for name, text in repo.items():
        assert chart[name] == text, f"charts/.../crds/{name} differs from crds/: run `make crds`"


def test_values_schema_is_valid_json_and_covers_every_top_level_value() -> None:
    import yaml

    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert schema["additionalProperties"] is False
    assert set(values) <= set(schema["properties"])
