"""`python -m llm_rollout.cli`: the same as `llm-rollout`."""

from llm_rollout.cli.commands import main

raise SystemExit(main())
