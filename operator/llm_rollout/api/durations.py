"""Duration strings as written in the spec: Go / Kubernetes style ("30s", "10m", "1h30m").

The same subset is understood by CEL's `duration()` on the API server (so admission
rules can compare durations) and, once normalised by `format_duration`, by PromQL
range selectors (which reject fractions such as "1.5h").
"""

from __future__ import annotations

import re

# Units CEL, Go and (after normalisation) PromQL all accept; "ms" must be tried before "m".
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
DURATION_MAX_LENGTH = 32

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_WHOLE = re.compile(DURATION_PATTERN)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration string; ValueError when it is not one."""
    if len(text) > DURATION_MAX_LENGTH or not _WHOLE.match(text):
        raise ValueError(f"invalid duration {text!r}: expected e.g. 30s, 10m, 1h30m")
    return sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _PART.findall(text))


def format_duration(seconds: float) -> str:
    """Canonical duration string in whole units PromQL accepts ("1h30m", "250ms")."""
    if seconds < 0:
        raise ValueError("negative duration")
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s"), (millis, "ms")]
    return "".join(f"{n}{unit}" for n, unit in parts if n)
