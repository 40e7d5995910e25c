"""docs/architecture.md lists every module of the package, one line each, and the files
it points newcomers to exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "operator" / "llm_rollout"
DOC = REPO / "docs" / "architecture.md"


def _layout_section() -> str:
    text = DOC.read_text()
    start = text.index("## Module layout")
    return text[start : text.index("\n## ", start + 1)]


def _listed() -> list[str]:
    return re.findall(r"^\| `([a-z_/]+\.py)` \|", _layout_section(), flags=re.MULTILINE)


def _has_code(path: Path) -> bool:
    """False for a package's `__init__.py` that is only a docstring (its package row
    describes it)."""
    body = ast.parse(path.read_text()).body
    return bool(body) and not (
        len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    )


def test_every_module_is_listed_once() -> None:
    modules = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if _has_code(p)}
    listed = _listed()
    assert len(listed) == len(set(listed)), "a module is listed twice"
    assert sorted(modules - set(listed)) == [], "modules missing from docs/architecture.md"
    assert sorted(set(listed) - modules) == [], (
        "docs/architecture.md lists modules that do not exist"
    )


def test_where_to_look_names_real_modules() -> None:
    section = _layout_section()
    head = section[: section.index("| module | what |")]
    named = re.findall(r"`([a-z_/]+\.py)`", head)
    assert len(named) >= 8
    for path in named:
        assert (PACKAGE / path).is_file(), path
