"""Start and stop the local test bed: etcd, kube-apiserver and Prometheus.

State (ports, PIDs, directories) lives in one JSON file in the bed's directory,
so a bed started by `llm-rollout-testbed up` can be found and stopped later by
PID, and a second `up` sees the first one instead of starting another.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from llm_rollout.testbed.certs import make_certs
from llm_rollout.testbed.procs import free_port, pid_alive, spawn, stop_pid, wait_until

REPO_ROOT = Path(__file__).resolve().parents[3]
STATE_FILE = "bed.json"
TARGETS_FILE = "targets.json"


class TestBedError(RuntimeError):
    """The bed could not be built or started; the message says why and where to look."""


def tools_bin_dir() -> Path:
    """Directory holding kube-apiserver, etcd, kubectl and helm (built once, cached)."""
    override = os.environ.get("LLM_ROLLOUT_TOOLS_BIN")
    if override:
        return Path(override)
    script = REPO_ROOT / "hack" / "build-tools.sh"
    result = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise TestBedError(f"building the test bed binaries failed ({script}); see the log above")
    return Path(result.stdout.strip().splitlines()[-1])


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise TestBedError(
            "prometheus is not installed: run hack/install-deps.sh (Debian package 'prometheus')"
        )
    return found


@dataclass
class BedState:
    root: str
    bin_dir: str
    etcd_port: int = 0
    etcd_peer_port: int = 0
    apiserver_port: int = 0
    prometheus_port: int = 0
    pids: dict[str, int] = field(default_factory=dict)
    owns_root: bool = True

    @property
    def kubeconfig(self) -> str:
        return str(Path(self.root) / "kubeconfig")

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"


def _is_server(pid: int, name: str) -> bool:
    """Is `pid` alive and running the `name` binary (not a process that reused the PID)?"""
    if not pid_alive(pid):
        return False
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    return Path(argv0.decode(errors="replace")).name == name


class TestBed:
    """A real kube-apiserver + etcd + Prometheus on free loopback ports."""

    __test__ = False  # not a pytest test class

    def __init__(self, state: BedState) -> None:
        self.state = state

    # -- lifecycle -----------------------------------------------------------------

    @classmethod
    def start(
        cls, root: Path | None = None, *, detached: bool = False, ready_timeout: float = 90.0
    ) -> TestBed:
        bin_dir = tools_bin_dir()
        prometheus = prometheus_binary()
        owns_root = root is None
        root = Path(tempfile.mkdtemp(prefix="llm-rollout-bed-")) if root is None else root
        root.mkdir(parents=True, exist_ok=True)
        state = BedState(root=str(root), bin_dir=str(bin_dir), owns_root=owns_root)
        bed = cls(state)
        try:
            bed._start_etcd(detached)
            bed._start_apiserver(detached)
            bed._start_prometheus(prometheus, detached)
            bed._save()
            bed.wait_ready(ready_timeout)
        except BaseException:
            bed.stop()
            raise
        return bed

    @classmethod
    def recorded(cls, root: Path) -> TestBed | None:
        """The bed recorded in `root`, whatever state its processes are in."""
        path = root / STATE_FILE
        if not path.exists():
            return None
        return cls(BedState(**json.loads(path.read_text())))

    @classmethod
    def load(cls, root: Path) -> TestBed | None:
        """The bed recorded in `root`, if all its processes are still running."""
        bed = cls.recorded(root)
        return bed if bed is not None and bed.running() else None

    def alive(self) -> dict[str, bool]:
        """Each recorded process: is it still the bed's own server?"""
        return {name: _is_server(pid, name) for name, pid in self.state.pids.items()}

    def running(self) -> bool:
        alive = self.alive()
        return bool(alive) and all(alive.values())

    def stop(self) -> list[str]:
        """Stop every recorded process still alive and remove the bed's files.

        Returns the names of the processes that had already exited. A PID whose process
        is no longer the recorded server (the PID was reused) is left alone.
        """
        exited = []
        for name in ("prometheus", "kube-apiserver", "etcd"):
            pid = self.state.pids.pop(name, None)
            if pid is None:
                continue
            if _is_server(pid, name):
                stop_pid(pid)
            else:
                exited.append(name)
        root = Path(self.state.root)
        if self.state.owns_root:
            shutil.rmtree(root, ignore_errors=True)
        else:
            for child in (
                "etcd-data",
                "prometheus-data",
                "certs",
                STATE_FILE,
                "kubeconfig",
                TARGETS_FILE,
                "prometheus.yml",
            ):
                target = root / child
                if target.is_dir():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)
        return exited

    # -- pieces -------------------------------------------------------------------

    def _log(self, name: str) -> Path:
        return Path(self.state.root) / f"{name}.log"

    def _start_etcd(self, detached: bool) -> None:
        s = self.state
        s.etcd_port, s.etcd_peer_port = free_port(), free_port()
        client = f"http://127.0.0.1:{s.etcd_port}"
        peer = f"http://127.0.0.1:{s.etcd_peer_port}"
        argv = [
            str(Path(s.bin_dir) / "etcd"),
            "--name",
            "bed",
            "--data-dir",
            str(Path(s.root) / "etcd-data"),
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            f"bed={peer}",
            "--unsafe-no-fsync",
            "--log-level",
            "warn",
        ]
        s.pids["etcd"] = spawn(argv, self._log("etcd"), tied_to_parent=not detached).pid

    def _start_apiserver(self, detached: bool) -> None:
        s = self.state
        certs = make_certs(Path(s.root) / "certs")
        s.apiserver_port = free_port()
        argv = [
            str(Path(s.bin_dir) / "kube-apiserver"),
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
            "--secure-port",
            str(s.apiserver_port),
            "--etcd-servers",
            f"http://127.0.0.1:{s.etcd_port}",
            "--tls-cert-file",
            str(certs.serving_cert),
            "--tls-private-key-file",
            str(certs.serving_key),
            "--client-ca-file",
            str(certs.ca_cert),
            "--service-account-issuer",
            "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file",
            str(certs.sa_pub),
            "--service-account-signing-key-file",
            str(certs.sa_key),
            "--service-cluster-ip-range",
            "10.96.0.0/16",
            "--authorization-mode",
            "RBAC",
            "--allow-privileged=true",
            # No controller-manager runs here, so nothing creates the default
            # ServiceAccount that this admission plugin insists on.
            "--disable-admission-plugins",
            "ServiceAccount",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "-v",
            "1",
        ]
        s.pids["kube-apiserver"] = spawn(
            argv, self._log("kube-apiserver"), tied_to_parent=not detached
        ).pid
        self._write_kubeconfig(certs.ca_cert, certs.admin_cert, certs.admin_key)

    def _write_kubeconfig(self, ca: Path, cert: Path, key: Path) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "bed",
                    "cluster": {
                        "server": self.state.apiserver_url,
                        "certificate-authority": str(ca),
                    },
                }
            ],
            "users": [
                {"name": "admin", "user": {"client-certificate": str(cert), "client-key": str(key)}}
            ],
            "contexts": [
                {
                    "name": "bed",
                    "context": {"cluster": "bed", "user": "admin", "namespace": "default"},
                }
            ],
            "current-context": "bed",
        }
        Path(self.state.kubeconfig).write_text(yaml.safe_dump(config))

    def _start_prometheus(self, binary: str, detached: bool) -> None:
        s = self.state
        s.prometheus_port = free_port()
        root = Path(s.root)
        (root / TARGETS_FILE).write_text("[]")
        config = {
            "global": {
                "scrape_interval": "1s",
                "evaluation_interval": "1s",
                "scrape_timeout": "1s",
            },
            "scrape_configs": [
                {
                    "job_name": "bed",
                    # Tests add targets at run time by rewriting this file
                    # (Prometheus watches it; see add_scrape_target).
                    "file_sd_configs": [
                        {"files": [str(root / TARGETS_FILE)], "refresh_interval": "1s"}
                    ],
                }
            ],
        }
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        argv = [
            binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{s.prometheus_port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ]
        s.pids["prometheus"] = spawn(argv, self._log("prometheus"), tied_to_parent=not detached).pid

    def _save(self) -> None:
        (Path(self.state.root) / STATE_FILE).write_text(json.dumps(asdict(self.state), indent=2))

    # -- readiness ----------------------------------------------------------------

    def _client_ssl(self) -> ssl.SSLContext:
        certs = Path(self.state.root) / "certs"
        ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        ctx.load_cert_chain(str(certs / "admin.crt"), str(certs / "admin.key"))
        return ctx

    def api_get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        """GET a raw API server path as the admin user."""
        req = urllib.request.Request(self.state.apiserver_url + path)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._client_ssl()) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as err:
            return int(err.code), err.read().decode()

    def _ok(self, fn: Callable[[], bool]) -> bool:
        try:
            return bool(fn())
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return False

    def _diagnose(self) -> str:
        lines = []
        for name, pid in self.state.pids.items():
            alive = "running" if pid_alive(pid) else "EXITED"
            tail = self._log(name).read_text(errors="replace").splitlines()[-15:]
            lines.append(f"--- {name} (pid {pid}, {alive}), last log lines:\n" + "\n".join(tail))
        return "\n".join(lines)

    def wait_ready(self, timeout: float) -> None:
        def apiserver_ready() -> bool:
            return self.api_get("/readyz", timeout=2)[0] == 200

        def prometheus_ready() -> bool:
            url = self.state.prometheus_url + "/-/ready"
            with urllib.request.urlopen(url, timeout=2) as resp:
                return int(resp.status) == 200

        checks: list[tuple[str, Callable[[], bool]]] = [
            ("kube-apiserver /readyz", apiserver_ready),
            ("prometheus /-/ready", prometheus_ready),
        ]
        for what, check in checks:
            try:
                wait_until(
                    functools.partial(self._ok, check),
                    timeout=timeout,
                    what=what,
                    on_timeout=self._diagnose,
                )
            except TimeoutError as err:
                raise TestBedError(str(err)) from None

    # -- Prometheus helpers --------------------------------------------------------

    def set_scrape_targets(self, targets: dict[str, str]) -> None:
        """Replace the scrape targets: job label -> "host:port"."""
        groups = [
            {"targets": [addr], "labels": {"bed_target": name}}
            for name, addr in sorted(targets.items())
        ]
        path = Path(self.state.root) / TARGETS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups))
        tmp.replace(path)  # atomic: Prometheus never reads half a file

    def scrape_targets(self) -> dict[str, str]:
        path = Path(self.state.root) / TARGETS_FILE
        groups = json.loads(path.read_text())
        return {g["labels"]["bed_target"]: g["targets"][0] for g in groups}

    def add_scrape_target(self, name: str, address: str) -> None:
        targets = self.scrape_targets()
        targets[name] = address
        self.set_scrape_targets(targets)

    def remove_scrape_target(self, name: str) -> None:
        targets = self.scrape_targets()
        targets.pop(name, None)
        self.set_scrape_targets(targets)

    def env_lines(self) -> str:
        return (
            f"export KUBECONFIG={self.state.kubeconfig}\n"
            f"export PROMETHEUS_URL={self.state.prometheus_url}\n"
            f"export PATH={self.state.bin_dir}:$PATH\n"
        )


def wait_for_prometheus_value(url: str, query: str, timeout: float = 30.0) -> float:
    """Poll an instant query until it returns one sample; return its value."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        full = url + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(full, timeout=5) as resp:
            body = json.loads(resp.read())
        result = body.get("data", {}).get("result", [])
        if len(result) == 1:
            return float(result[0]["value"][1])
        last = json.dumps(body)[:300]
        time.sleep(0.25)
    raise TimeoutError(f"query {query!r} returned no single sample in {timeout}s: {last}")
