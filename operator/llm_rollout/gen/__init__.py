"""Generators of the files the project ships: the CRDs (`gen.crd`) and the Grafana
dashboard (`gen.dashboard`). Each has `--check`, which CI runs."""
