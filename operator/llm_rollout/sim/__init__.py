"""Simulated servers for tests and `make demo`: an OpenAI-compatible translation
assistant (`model_server`, good or regressed) and a deterministic LLM judge (`judge`).
See docs/evals.md."""
