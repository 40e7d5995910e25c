"""`python -m llm_rollout.gen.dashboard` (make dashboard)."""

from llm_rollout.gen.dashboard.cli import main

raise SystemExit(main())
