"""The markdown tables, the targets' pass/fail lines, and what counts as broken."""

from __future__ import annotations

from typing import Any

from routerbench.settings import TARGET_ADDED_P99_MS, TARGET_FEEDBACK_RPS, TARGET_FIRST_CHUNK_MS


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0.005 and a == a else "n/a"


def report(res: dict[str, Any]) -> list[str]:
    """Markdown tables and pass/fail lines."""
    t = res["targets"]
    names = list(t)
    other = ", ".join(f"{k} {v:.2f}" for k, v in res["other_work_cores"].items())
    out = [
        f"date {res['date']}, {res['cores']} cores, load average "
        f"{' '.join(f'{x:.2f}' for x in res['load_average_start'])} at start, "
        f"{' '.join(f'{x:.2f}' for x in res['load_average_end'])} at end; "
        f"CPU used by other work on the machine (cores, by phase): {other}; "
        f"saturation load from {res['saturation_tool']}",
        "",
    ]
    p = res["plan"]
    out += [
        f"Latency: open loop at {p['rate']:g} req/s per target, {p['slices']} turns of "
        f"{p['slice_seconds']:g} s each (from the scheduled send time). Saturation: "
        f"closed loop, {p['concurrency']} connections, {p['saturation_seconds']:g} s.",
        "",
        "| target | p50 ms | p99 ms | added p50 ms | added p99 ms | saturation req/s "
        "| proxy CPU (cores) | req/s per proxy core |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in names:
        r = t[n]
        who = " (backend)" if n == "direct" else ""
        out.append(
            f"| {n} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['added_p50_ms']:+.2f} "
            f"| {r['added_p99_ms']:+.2f} | {r['sat_rps']:.0f} | {r['sat_cpu_cores']:.2f}{who} "
            f"| {r['sat_rps_per_core']:.0f}{who} |"
        )
    out += [
        "",
        f"Streaming: SSE at {p['stream_rate']:g} streams/s, {p['slices']} turns of "
        f"{p['stream_slice_seconds']:g} s per target; the backend sends chunk 1 "
        f"{p['first_chunk_delay'] * 1000:g} ms after the headers. Forwarding = backend "
        "send -> client receipt of chunk 1.",
        "",
        "| target | TTFC p50 ms | TTFC p99 ms | TTFC overhead p50 / p99 ms "
        "| first-chunk forwarding p50 / p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for n in names:
        r = t[n]
        out.append(
            f"| {n} | {r['ttfc_p50_ms']:.2f} | {r['ttfc_p99_ms']:.2f} "
            f"| {r['ttfc_overhead_p50_ms']:+.2f} / {r['ttfc_overhead_p99_ms']:+.2f} "
            f"| {r['forward_p50_ms']:.2f} / {r['forward_p99_ms']:.2f} |"
        )
    out += [
        "",
        "| proxy | RSS idle MiB | RSS after load MiB | peak RSS (VmHWM) MiB |",
        "|---|---:|---:|---:|",
    ]
    for n in names:
        if "rss_kib" in t[n]:
            r = t[n]
            out.append(
                f"| {n} | {r['idle_rss_kib'] / 1024:.1f} | {r['rss_kib'] / 1024:.1f} "
                f"| {r['hwm_kib'] / 1024:.1f} |"
            )
    fb = res["feedback"]
    out += [
        "",
        f"Feedback: {fb['sent']} posts offered at {fb['offered_rate']:g}/s, done in "
        f"{fb['seconds']:.2f} s ({fb['rate']:.0f}/s); 2xx {fb['accepted_2xx']}, counted by "
        f"llm_feedback_total {fb['counted']:.0f}, lost {fb['lost']:.0f}; latency p50 "
        f"{fb['p50_ms']:.2f} ms, p99 {fb['p99_ms']:.2f} ms.",
    ]
    if "nginx" in t:
        ro, ng = t["router"], t["nginx"]
        out += [
            "",
            "| router / nginx | ratio |",
            "|---|---:|",
            f"| added p50 | {ratio(ro['added_p50_ms'], ng['added_p50_ms'])} |",
            f"| added p99 | {ratio(ro['added_p99_ms'], ng['added_p99_ms'])} |",
            f"| TTFC overhead p50 | "
            f"{ratio(ro['ttfc_overhead_p50_ms'], ng['ttfc_overhead_p50_ms'])} |",
            f"| first-chunk forwarding p99 | {ratio(ro['forward_p99_ms'], ng['forward_p99_ms'])} |",
            f"| req/s per proxy core (nginx / router) | "
            f"{ratio(ng['sat_rps_per_core'], ro['sat_rps_per_core'])} |",
            f"| RSS after load | {ratio(ro['rss_kib'], ng['rss_kib'])} |",
        ]
    out += [""] + [f"- {line}" for line in verdicts(res)]
    return out


def verdicts(res: dict[str, Any]) -> list[str]:
    t, fb = res["targets"], res["feedback"]
    ro = t["router"]

    def mark(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    ref = f"; nginx {t['nginx']['added_p99_ms']:+.2f} ms" if "nginx" in t else ""
    fwd_ref = f"; direct {t['direct']['forward_p99_ms']:.2f} ms" + (
        f", nginx {t['nginx']['forward_p99_ms']:.2f} ms" if "nginx" in t else ""
    )
    rate_ok = fb["rate"] >= 0.95 * TARGET_FEEDBACK_RPS
    return [
        f"{mark(ro['added_p99_ms'] < TARGET_ADDED_P99_MS)} added p99 at "
        f"{res['plan']['rate']:g} req/s < {TARGET_ADDED_P99_MS:g} ms: router "
        f"{ro['added_p99_ms']:+.2f} ms{ref}",
        f"{mark(ro['forward_p99_ms'] < TARGET_FIRST_CHUNK_MS)} first streamed chunk forwarded "
        f"within {TARGET_FIRST_CHUNK_MS:g} ms (p99): router {ro['forward_p99_ms']:.2f} ms"
        f"{fwd_ref}",
        f"{mark(rate_ok and fb['lost'] == 0)} {TARGET_FEEDBACK_RPS} feedback posts/s, none "
        f"lost: {fb['rate']:.0f}/s, sent {fb['sent']}, counted {fb['counted']:.0f}, "
        f"lost {fb['lost']:.0f}",
    ]


def broken(res: dict[str, Any]) -> list[str]:
    """What makes the run a failure (exit 1), as opposed to a missed target."""
    out = [
        f"{n}: {r['errors']} failed requests {r['error_samples']}"
        for n, r in res["targets"].items()
        if r["errors"]
    ]
    fb = res["feedback"]
    if fb["errors"]:
        out.append(f"feedback: {fb['errors']} failed posts {fb['error_samples']}")
    if fb["lost"]:
        out.append(
            f"feedback: {fb['lost']:.0f} lost (sent {fb['sent']}, counted {fb['counted']:.0f})"
        )
    return out
