"""`python -m llm_rollout.crdgen` (make crds)."""

from llm_rollout.crdgen.cli import main

raise SystemExit(main())
