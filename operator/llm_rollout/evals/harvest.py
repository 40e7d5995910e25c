"""Production answers that went wrong, turned into eval cases (pure).

Input: spans as a trace backend returns them (`telemetry.sources`), in one shape:
`{"trace_id", "span_id", "parent_id", "name", "start_time", "attributes", "events"}`.
An answer span (it has `llm_rollout.deployment`) is *bad* when one of its checks failed
(`llm_rollout.checks.failed`) or a feedback span under it rated it negative. Its
recorded prompt (`gen_ai.input.messages`, recorded only with content capture on)
becomes the case's messages; an expert's comment on a negative rating can become the
case's reference answer. Cases are de-duplicated by their messages.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llm_rollout.telemetry import genai

REASON_FEEDBACK = "negative-feedback"
REASON_CHECK = "failed-check"


@dataclass(frozen=True)
class HarvestFilter:
    namespace: str
    deployment: str
    release: str | None = None  # None: every release
    reasons: frozenset[str] = frozenset({REASON_FEEDBACK, REASON_CHECK})
    reference_from_expert_comment: bool = False
    redactions: tuple[re.Pattern[str], ...] = ()


@dataclass
class Harvest:
    cases: list[dict[str, Any]] = field(default_factory=list)
    answers: int = 0  # answer spans of the deployment seen
    bad: int = 0  # of which bad
    without_content: int = 0  # bad, but their prompt was not recorded
    duplicates: int = 0

    def jsonl(self) -> str:
        return "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in self.cases)


def _messages(value: object) -> list[dict[str, str]]:
    """Chat messages out of `gen_ai.input.messages` (a JSON string or already parsed)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    out = []
    for m in value if isinstance(value, list) else ():
        if not isinstance(m, Mapping):
            continue
        parts = m.get("parts")
        if isinstance(parts, list):
            text = "".join(str(p.get("content", "")) for p in parts if isinstance(p, Mapping))
        else:
            text = genai.text_of_content(m.get("content"))
        out.append({"role": str(m.get("role") or "user"), "content": text})
    return [m for m in out if m["content"]]


def _negative_feedback(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [
        e.get("attributes") or {}
        for e in events
        if e.get("name") == genai.EVALUATION_EVENT
        and (e.get("attributes") or {}).get(genai.EVALUATION_NAME, "").endswith("_feedback")
        and (e.get("attributes") or {}).get(genai.EVALUATION_LABEL) == "negative"
    ]


def harvest(spans: Sequence[Mapping[str, Any]], want: HarvestFilter) -> Harvest:
    feedback_by_parent: dict[str, list[Mapping[str, Any]]] = {}
    for s in spans:
        if str(s.get("name", "")).startswith("feedback") and s.get("parent_id"):
            feedback_by_parent.setdefault(str(s["parent_id"]), []).extend(
                _negative_feedback(s.get("events") or ())
            )
    out = Harvest()
    seen: set[str] = set()
    for s in sorted(spans, key=lambda s: str(s.get("start_time", ""))):
        a = s.get("attributes") or {}
        if (a.get(genai.NAMESPACE), a.get(genai.DEPLOYMENT)) != (want.namespace, want.deployment):
            continue
        # Answers only: the router's answer spans carry its request id; the operator's
        # analyses (failing gates in checks.failed) and eval cases share the other keys.
        if str(s.get("name", "")).startswith("feedback") or not a.get(genai.REQUEST_ID):
            continue
        release = str(a.get(genai.RELEASE_ID, ""))
        if want.release is not None and release != want.release:
            continue
        out.answers += 1
        failed = [str(c) for c in a.get(genai.CHECKS_FAILED) or ()]
        negative = feedback_by_parent.get(str(s.get("span_id")), [])
        reasons = []
        if negative and REASON_FEEDBACK in want.reasons:
            reasons.append(REASON_FEEDBACK)
        if failed and REASON_CHECK in want.reasons:
            reasons += [f"{REASON_CHECK}:{c}" for c in failed]
        if not reasons:
            continue
        out.bad += 1
        messages = _messages(a.get(genai.INPUT_MESSAGES))
        if not any(m["role"] == "user" for m in messages):
            out.without_content += 1
            continue
        for m in messages:
            m["content"] = genai.redact(m["content"], want.redactions)
        key = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]
        if key in seen:
            out.duplicates += 1
            continue
        seen.add(key)
        case: dict[str, Any] = {
            "id": f"prod-{key}",
            "messages": messages,
            "tags": ["production", f"release:{release}", *reasons],
        }
        if want.reference_from_expert_comment:
            comments = [
                str(f.get(genai.EVALUATION_EXPLANATION))
                for f in negative
                if f.get(genai.EVALUATION_SOURCE) == "expert"
                and f.get(genai.EVALUATION_EXPLANATION)
            ]
            if comments:
                case["reference"] = genai.redact(comments[-1], want.redactions)
        case["trace"] = str(s.get("trace_id", ""))  # where it came from (ignored by evals)
        out.cases.append(case)
    return out


def configmap(name: str, namespace: str, key: str, jsonl: str) -> dict[str, Any]:
    """The ConfigMap an eval suite's `dataset.configMapRef` names."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "llm-rollout-dataset"},
        },
        "data": {key: jsonl},
    }
