"""`python -m llm_rollout.gen.crd`: write or check the CRDs and the reference doc."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from llm_rollout import GROUP, PLURAL
from llm_rollout.api.evalrun import (
    EVAL_RUN_PLURAL,
)
from llm_rollout.gen.crd.documents import crd_yaml, eval_run_crd_yaml
from llm_rollout.gen.crd.reference import docs_markdown

REPO = Path(__file__).resolve().parents[4]


CRD_PATH = REPO / "crds" / f"{GROUP}_{PLURAL}.yaml"


EVAL_RUN_CRD_PATH = REPO / "crds" / f"{GROUP}_{EVAL_RUN_PLURAL}.yaml"


DOCS_PATH = REPO / "docs" / "crd-reference.md"


# --- entry point ---------------------------------------------------------------------


def _check(path: Path, wanted: str) -> bool:
    current = path.read_text() if path.exists() else ""
    if current == wanted:
        return True
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        wanted.splitlines(keepends=True),
        fromfile=f"{path} (committed)",
        tofile=f"{path} (generated)",
    )
    sys.stdout.writelines(diff)
    print(f"\n{path} is stale: run `python -m llm_rollout.gen.crd` (make crds)", file=sys.stderr)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_rollout.gen.crd", description=__doc__)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--docs", action="store_true", help="the reference doc, not the CRD")
    which.add_argument("--all", action="store_true", help="the CRD and the reference doc")
    parser.add_argument("--check", action="store_true", help="exit 1 with a diff if stale")
    parser.add_argument("--stdout", action="store_true", help="print instead of writing")
    args = parser.parse_args(argv)
    targets = []
    if not args.docs:
        targets.append((CRD_PATH, crd_yaml()))
        targets.append((EVAL_RUN_CRD_PATH, eval_run_crd_yaml()))
    if args.docs or args.all:
        targets.append((DOCS_PATH, docs_markdown()))
    ok = True
    for path, text in targets:
        if args.stdout:
            sys.stdout.write(text)
        elif args.check:
            ok = _check(path, text) and ok
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}", file=sys.stderr)
    return 0 if ok else 1
