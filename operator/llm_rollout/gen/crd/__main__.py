"""`python -m llm_rollout.gen.crd` (make crds)."""

from llm_rollout.gen.crd.cli import main

raise SystemExit(main())
