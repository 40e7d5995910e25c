"""Router benchmark: the router against the same backend reached directly and through nginx.

    .venv/bin/python bench/router_bench.py            # the full run (`make bench`, ~2 min)
    .venv/bin/python bench/router_bench.py --quick    # a few hundred requests (smoke test)

One run on loopback, each piece in its own process on a free port:

- the backend: a minimal OpenAI-compatible aiohttp server (this file, `--serve-backend`):
  JSON answers with usage, and SSE streams whose first event carries the monotonic time
  at which the backend sent it (after a fixed delay);
- the router: `python -m llm_rollout.cli router`, one LLMDeployment with a stable and a
  candidate release (50 % of `everyone`), one online check, feedback tokens from a key file;
- nginx (Debian's package) as a plain reverse proxy: the peer baseline.

The load comes from this process (and `wrk` for saturation, when installed):

1. latency: an open-loop generator at a fixed rate (200 req/s) per target; the targets
   take turns in short slices, rotating their order, so bursts of other work on the
   machine fall on all of them alike; a request's latency runs from its *scheduled*
   send time, so a stalled proxy cannot hide its own queueing (no coordinated omission);
2. streaming: SSE requests at a fixed rate, in turns as well; time to first chunk (from
   the scheduled send time) and first-chunk forwarding delay (backend send -> client
   receipt; both processes read CLOCK_MONOTONIC);
3. saturation: closed loop at a fixed concurrency (wrk, else Python), with the proxy's
   CPU time from /proc/PID/stat: req/s and req/s per core of the proxy;
4. memory: VmRSS / VmHWM of the router and of nginx (master + worker);
5. feedback: valid signed tokens POSTed to the router's /feedback at 1,000/s; the
   router's `llm_feedback_total` must equal the number sent.

Prints markdown tables, the pass/fail line of each target, and JSON on the last line.
Exits 1 when something broke (a failed request, lost feedback, a process that died),
0 otherwise: missing a target is reported, not an error.
"""

from __future__ import annotations

import sys

from routerbench.backend import serve_backend
from routerbench.cli import main

if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve-backend":
        serve_backend(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
        raise SystemExit(0)
    raise SystemExit(main())
