"""Pictures of one regressed answer as a user finds it in the trace backend: a B'' answer
that failed the brand-name check and got an expert's negative rating, opened in Phoenix's
UI by headless Chromium (driven over its DevTools protocol), once as the conversation and
once with its evaluation events (`make demo SCREENSHOT=docs/img/...png`)."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from llm_rollout.telemetry import genai
from llm_rollout.testbed.procs import free_port

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
BRAND_CHECK = "brand-names"


def regressed_answer(spans: Iterable[Mapping[str, Any]], release: str) -> Mapping[str, Any] | None:
    """An answer span of `release` that failed the brand-name check and got a negative
    rating (the first by time), else None."""
    spans = list(spans)
    negative_parents = {
        str(s.get("parent_id"))
        for s in spans
        if str(s.get("name", "")).startswith("feedback")
        and any(
            (e.get("attributes") or {}).get(genai.EVALUATION_LABEL) == "negative"
            for e in s.get("events") or ()
        )
    }
    answers = sorted(
        (
            s
            for s in spans
            if (s.get("attributes") or {}).get(genai.RELEASE_ID) == release
            and (s.get("attributes") or {}).get(genai.REQUEST_ID)
            and not str(s.get("name", "")).startswith("feedback")
            and BRAND_CHECK in ((s.get("attributes") or {}).get(genai.CHECKS_FAILED) or ())
        ),
        key=lambda s: str(s.get("start_time", "")),
    )
    for s in answers:
        span_id = str((s.get("context") or {}).get("span_id", ""))
        if span_id in negative_parents:
            return s
    return None


def output_text(span: Mapping[str, Any]) -> str:
    """The text of an answer span's recorded output message ("" when not recorded)."""
    try:
        messages = json.loads(str((span.get("attributes") or {}).get(genai.OUTPUT_MESSAGES)))
        return str(messages[0]["parts"][0]["content"])
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def chromium() -> str:
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    raise RuntimeError(
        "no Chromium to take the screenshot with: install Debian's `chromium` package "
        "(hack/install-chromium.sh)"
    )


# A click on the page: `tab:Events` (a tab), `all:TEXT` (a collapsed row showing TEXT; repeated
# until none is left), `text:TEXT` (the innermost element whose text is TEXT). The script
# says how many it clicked.
_CLICK = """(() => {
  const [how, want] = %s;
  const is = e => e.textContent.trim() === want;
  const inner = [...document.querySelectorAll('body *')]
    .filter(e => is(e) && ![...e.children].some(is));
  const toggles = 'button, [role=button], summary, [aria-expanded]';
  const expandable = [...document.querySelectorAll(toggles)]
    .filter(e => e.textContent.includes(want));
  // One collapsed row per call: the UI can swallow a click made while it redraws.
  const rows = expandable
    .filter(e => !expandable.some(o => o !== e && e.contains(o)))
    .filter(e => e.getAttribute('aria-expanded') !== 'true')
    .slice(0, 1);
  const tabs = [...document.querySelectorAll('[role=tab]')]
    .filter(e => e.textContent.trim().startsWith(want));
  const hits = how === 'tab' ? tabs.slice(0, 1) : how === 'all' ? rows : inner.slice(0, 1);
  hits.forEach(e => e.click());
  return hits.length;
})()"""


class _DevTools:
    """The few DevTools-protocol calls a screenshot needs, over one page's websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next = 0

    async def __call__(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        await self._ws.send_json({"id": ident, "method": method, "params": params})
        async for message in self._ws:
            data = json.loads(message.data)
            if data.get("id") == ident:
                if "error" in data:
                    raise RuntimeError(f"chromium: {method}: {data['error']}")
                return dict(data.get("result") or {})
        raise RuntimeError(f"chromium closed the page during {method}")

    async def evaluate(self, expression: str) -> Any:
        result = await self("Runtime.evaluate", expression=expression, returnByValue=True)
        return (result.get("result") or {}).get("value")


async def capture_page(
    url: str,
    shots: Sequence[tuple[Path, Sequence[str]]],
    *,
    ready_text: str,
    width: int = 1600,
    height: int = 1000,
    within: float = 60.0,
) -> list[Path]:
    """PNGs of `url` in headless Chromium, once the page shows `ready_text`: one per
    (path, clicks first) in order; a click is `tab:NAME`, `all:TEXT` or `text:TEXT`."""
    port = free_port()
    profile = tempfile.mkdtemp(prefix="llm-rollout-chromium-")
    argv = [
        chromium(),
        "--headless",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--remote-debugging-port={port}",
        f"--window-size={width},{height}",
        "about:blank",
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + within
    try:
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(f"{base}/json/version") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if proc.returncode is not None or time.monotonic() > deadline:
                    err = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
                    raise RuntimeError(f"chromium did not start: {err[-1000:]}")
                await asyncio.sleep(0.2)
            async with http.put(f"{base}/json/new?{url}") as r:
                page = await r.json()
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                tools = _DevTools(ws)
                await tools(
                    "Emulation.setDeviceMetricsOverride",
                    width=width,
                    height=height,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                probe = (
                    f"document.body && document.body.innerText.includes({json.dumps(ready_text)})"
                )
                while not await tools.evaluate(probe):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{url} never showed {ready_text!r}")
                    await asyncio.sleep(0.3)
                await asyncio.sleep(1.0)  # the rest of the page's queries drawn
                out = []
                for path, clicks in shots:
                    for click in clicks:
                        how, _, text = click.partition(":")
                        script = _CLICK % json.dumps([how, text])
                        if not await tools.evaluate(script):
                            raise RuntimeError(f"{url}: nothing to click for {click!r}")
                        await asyncio.sleep(0.7)
                        for _ in range(20 if how == "all" else 0):
                            if not await tools.evaluate(script):
                                break
                            await asyncio.sleep(0.7)
                    await asyncio.sleep(1.0)
                    shot = await tools("Page.captureScreenshot", format="png")
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(base64.b64decode(shot["data"]))
                    out.append(path)
                return out
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=10)
            except TimeoutError:
                proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
