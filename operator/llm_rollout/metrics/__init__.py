"""Metrics: PromQL templating, built-in metric presets and the Prometheus provider."""
