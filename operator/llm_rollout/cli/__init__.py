"""The `llm-rollout` command (also the kubectl plugin `kubectl llm-rollout`).

`commands` parses and dispatches; `statusview` renders `llm-rollout status`;
`plot` draws a rollout's timeline from Prometheus.
"""

from llm_rollout.cli.commands import build_parser, main

__all__ = ["build_parser", "main"]
