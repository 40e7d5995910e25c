"""The router benchmark (`bench/router_bench.py`), as a small harness: `settings`,
`backend`, `procs`, `load`, `feedback`, `run`, `report`, `cli`. `router_ab.py` reuses it."""
