"""The image's inputs: requirements.lock pins every runtime dependency with hashes, the
Dockerfile installs exactly that as a non-root multi-stage build, and the Docker-only
targets say clearly when there is no Docker engine."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib

import pytest
from packaging.requirements import Requirement
from tests.conftest import REPO_ROOT


def locked() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) from requirements.lock."""
    pins: dict[str, tuple[str, int]] = {}
    name = ""
    for line in (REPO_ROOT / "requirements.lock").read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", line):
            name = m.group(1).lower().replace("_", "-")
            pins[name] = (m.group(2), 0)
        elif "--hash=sha256:" in line and name:
            version, hashes = pins[name]
            pins[name] = (version, hashes + 1)
    return pins


def test_every_runtime_dependency_is_pinned_with_hashes() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pins = locked()
    assert all(hashes > 0 for _v, hashes in pins.values()), "every pin has hashes"
    for spec in project["dependencies"]:
        req = Requirement(spec)
        key = req.name.lower().replace("_", "-")
        assert key in pins, f"{req.name} is not in requirements.lock: run `make lock`"
        assert req.specifier.contains(pins[key][0]), (
            f"{req.name}=={pins[key][0]} does not satisfy {req.specifier}: run `make lock`"
        )
    assert "setuptools" in pins, "the build backend is locked too (no-build-isolation)"
    text = (REPO_ROOT / "requirements.lock").read_text()
    assert "--find-links" not in text and "--index-url" not in text, "no machine-local paths"


def test_dockerfile_is_multi_stage_non_root_and_installs_the_lock() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) == 2
    assert "slim" in text
    # The locked wheels, downloaded on the host, installed with no index and hash-checked.
    assert "COPY build/image-wheels/ /wheels/" in text
    assert re.search(
        r"pip install --no-index --find-links /wheels --require-hashes \\\n\s+--no-deps -r "
        r"requirements.lock",
        text,
    )
    assert text.index("requirements.lock") < text.index("COPY operator/")  # layer order
    assert "--no-deps --no-build-isolation ." in text
    final = text.split("\nFROM ")[-1]
    assert re.search(r"^USER 65532:65532$", final, re.M)
    assert 'ENTRYPOINT ["llm-rollout"]' in final
    assert "COPY --from=build /opt/llm-rollout /opt/llm-rollout" in final
    ignored = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert {".git", ".venv", ".cluster", "tests"} <= set(ignored)
    for needed in ("requirements.lock", "pyproject.toml", "README.md", "operator"):
        assert needed not in ignored


@pytest.mark.parametrize(
    ("script", "target"), [("hack/image.sh", "make image"), ("hack/kind-e2e.sh", "make kind-e2e")]
)
def test_docker_targets_explain_a_missing_docker_engine(script: str, target: str) -> None:
    # No engine, and no private one either (where dockerd is installed and we are root,
    # make image would start one: tests/e2e builds the image that way).
    env = {
        **os.environ,
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",
        "LLM_ROLLOUT_PRIVATE_DOCKER": "0",
    }
    result = subprocess.run(
        ["bash", str(REPO_ROOT / script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 1
    assert f"error: {target} needs" in result.stderr
    assert "'make test' and 'make demo' run on a local bed without it" in result.stderr
