"""The processes of a run: the backend, the router and nginx, started on free ports, with
their CPU time and memory from /proc."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from routerbench.settings import CANDIDATE, CLK_TCK, COHORT, NAME, NS, SCRIPT, STABLE


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pids(self) -> list[int]:
        """The process and its children (nginx: master + worker)."""
        return [self.popen.pid, *children(self.popen.pid)]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                out.append(int(entry))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return total / CLK_TCK


def memory_kib(pids: list[int]) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) summed over these processes, in KiB."""
    out = {"rss_kib": 0, "hwm_kib": 0}
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out["rss_kib" if key == "VmRSS" else "hwm_kib"] += int(value.split()[0])
    return out


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


class OtherWork:
    """CPU the rest of the machine used meanwhile: all busy time (/proc/stat) less that of
    the benchmark's own processes (this one, its children, the servers)."""

    def __init__(self, procs: list[Proc]) -> None:
        self.procs = procs
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle, iowait
        busy = (sum(fields[:8]) - idle) / CLK_TCK  # up to steal; guest is within user
        t = os.times()
        ours = (
            t.user
            + t.system
            + t.children_user
            + t.children_system
            + cpu_seconds([pid for p in self.procs for pid in p.pids])
        )
        return time.monotonic(), busy, ours

    def cores(self) -> float:
        """Average cores used by other work since the start."""
        t1, busy1, ours1 = self._sample()
        t0, busy0, ours0 = self.start
        return max(0.0, (busy1 - busy0) - (ours1 - ours0)) / max(t1 - t0, 1e-9)


@contextmanager
def started(name: str, argv: list[str], workdir: Path, env: dict[str, str]) -> Iterator[Proc]:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL
        )
    proc = Proc(name, popen, log)
    try:
        yield proc
    finally:
        if proc.alive():
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=5)


def wait_up(url: str, proc: Proc, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited at start-up:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not answer {url} within {seconds:.0f} s:\n{proc.tail()}")


def backend_argv(port: int, first_chunk_delay: float, chunks: int) -> list[str]:
    return [
        sys.executable,
        str(SCRIPT),
        "--serve-backend",
        str(port),
        str(first_chunk_delay),
        str(chunks),
    ]


def router_files(workdir: Path) -> bytes:
    """The router's config (one LLMDeployment, stable + candidate at 50 % of everyone, one
    check) and feedback key file in `workdir`; returns the key."""
    key = secrets.token_hex(32).encode()
    (workdir / "keys").write_bytes(key + b"\n")
    (workdir / "deployment.json").write_text(
        json.dumps(
            {
                "metadata": {"namespace": NS, "name": NAME},
                "spec": {
                    "cohorts": [
                        {"name": "experts", "match": {"headers": {"x-user-group": ["expert"]}}}
                    ],
                    "defaultCohort": COHORT,
                    "checks": [{"name": "short", "type": "maxLength", "max": 100000}],
                },
                "status": {
                    "routing": {
                        "stable": {"id": STABLE, "model": "bench-v1"},
                        "candidate": {"id": CANDIDATE, "model": "bench-v2"},
                        "routes": [
                            {"cohort": "experts", "candidatePercent": 100},
                            {"cohort": COHORT, "candidatePercent": 50},
                        ],
                    }
                },
            }
        )
    )
    return key


def router_argv(workdir: Path, port: int, metrics_port: int, backend_url: str) -> list[str]:
    """`llm-rollout router` as `make bench` runs it (logging at its default level, INFO)."""
    return [
        sys.executable,
        "-m",
        "llm_rollout.cli",
        "router",
        "--listen",
        f"127.0.0.1:{port}",
        "--metrics-listen",
        f"127.0.0.1:{metrics_port}",
        "--config",
        str(workdir / "deployment.json"),
        "--token-key-file",
        str(workdir / "keys"),
        "--backend",
        f"{NS}/{NAME}/{STABLE}={backend_url}",
        "--backend",
        f"{NS}/{NAME}/{CANDIDATE}={backend_url}",
        "--shutdown-grace",
        "2",
    ]


def nginx_config(workdir: Path, port: int, backend_port: int) -> Path:
    """A plain reverse proxy: one worker, upstream keep-alive, no buffering, no access log."""
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    tmp = workdir / "tmp"
    conf = workdir / "nginx.conf"
    conf.write_text(f"""\
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    upstream backend {{
        server 127.0.0.1:{backend_port};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
""")
    return conf
